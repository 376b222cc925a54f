"""The Elman RNN (course_lib.rnn): the recurrence by hand, shapes, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.rnn import (
    gru_backward,
    gru_forward,
    gru_update_gates,
    rnn_backward,
    rnn_forward,
    rnn_input_jacobians,
)


def test_two_steps_by_hand() -> None:
    # d_in = d_h = 1: h_1 = tanh(1·0.5 + 0·2 + 0.1), h_2 = tanh(-1·0.5 + h_1·2 + 0.1)
    X = np.array([[1.0], [-1.0]])
    H = rnn_forward(X, np.array([[0.5]]), np.array([[2.0]]), np.array([0.1]))
    h_1 = np.tanh(0.6)
    np.testing.assert_allclose(H[:, 0], [h_1, np.tanh(-0.4 + 2 * h_1)])


def test_matches_the_recurrence_with_batch_axes_and_h0() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 5, 4), dtype=np.float32)
    W_xh = rng.standard_normal((4, 6), dtype=np.float32)
    W_hh = rng.standard_normal((6, 6), dtype=np.float32) / 3
    b_h = rng.standard_normal(6, dtype=np.float32)
    h0 = rng.standard_normal((3, 6), dtype=np.float32)
    copies = [a.copy() for a in (X, W_xh, W_hh, b_h, h0)]
    H = rnn_forward(X, W_xh, W_hh, b_h, h0)
    assert H.shape == (3, 5, 6) and H.dtype == np.float32
    for b in range(3):
        h = h0[b].astype(np.float64)
        for t in range(5):
            h = np.tanh(X[b, t] @ W_xh + h @ W_hh + b_h)
            np.testing.assert_allclose(H[b, t], h, rtol=1e-5, atol=1e-6)
    for original, copy in zip((X, W_xh, W_hh, b_h, h0), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_h0_defaults_to_zeros() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 2))
    args = (rng.standard_normal((2, 3)), rng.standard_normal((3, 3)), np.zeros(3))
    np.testing.assert_array_equal(rnn_forward(X, *args), rnn_forward(X, *args, h0=np.zeros(3)))


def test_wrong_shapes_are_named() -> None:
    with pytest.raises(ValueError, match=r"W_xh must be \(4, 3\).*got W_xh \(3, 4\)"):
        rnn_forward(np.zeros((5, 4)), np.zeros((3, 4)), np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn_forward(np.zeros((5, 4)), np.zeros((4, 3)), np.zeros((3, 3)), np.zeros(3), np.zeros(2))


def test_input_jacobians_match_finite_differences() -> None:
    rng = np.random.default_rng(2)
    n, d_in, d_h = 6, 3, 4
    X = rng.standard_normal((n, d_in))
    W_xh, W_hh = rng.standard_normal((d_in, d_h)), rng.standard_normal((d_h, d_h)) / 2
    b_h = rng.standard_normal(d_h)
    J = rnn_input_jacobians(X, W_xh, W_hh, b_h)
    assert J.shape == (n, d_h, d_in)
    eps = 1e-6
    for b in range(d_in):
        step = np.zeros_like(X)
        step[0, b] = eps
        central = (rnn_forward(X + step, W_xh, W_hh, b_h) - rnn_forward(X - step, W_xh, W_hh, b_h))
        np.testing.assert_allclose(J[:, :, b], central / (2 * eps), atol=1e-8)


# --- rnn_backward, gru_forward, gru_backward ---------------------------------------------------


def _central_differences(f, args: list[np.ndarray], dH: np.ndarray, eps: float = 1e-6) -> list:
    """∂(Σ f(*args) ⊙ dH)/∂args[i] for every argument, one entry at a time (float64)."""
    gradients = []
    for i, a in enumerate(args):
        g = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            plus, minus = [x.copy() for x in args], [x.copy() for x in args]
            plus[i][index] += eps
            minus[i][index] -= eps
            g[index] = np.sum((f(*plus) - f(*minus)) * dH) / (2 * eps)
        gradients.append(g)
    return gradients


def _recurrent_args(seed: int, batch: tuple, h0_batch: tuple | None, n: int, d_in: int,
                    d_h: int, gates: int) -> list[np.ndarray]:
    """X, W_x, W_h, one bias (Elman) or two (GRU), h0: moderate sizes, nothing saturates."""
    rng = np.random.default_rng(seed)
    args = [rng.standard_normal((*batch, n, d_in)),
            0.6 * rng.standard_normal((d_in, gates * d_h)),
            0.6 * rng.standard_normal((d_h, gates * d_h))]
    args += [0.5 * rng.standard_normal(gates * d_h) for _ in range(1 if gates == 1 else 2)]
    if h0_batch is not None:
        args.append(0.6 * rng.standard_normal((*h0_batch, d_h)))
    return args


_shapes = st.tuples(
    st.integers(0, 2**16),  # seed
    st.sampled_from([((), None), ((), ()), ((2,), None), ((2,), (2,)), ((3,), ()),
                     ((2, 1), (3,)), ((), (2,))]),  # batch axes of X and of h0 (None: zeros)
    st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),  # n, d_in, d_h
)


_CELLS = {  # forward, backward, number of gates, names of the gradients
    "rnn": (rnn_forward, rnn_backward, 1, ["dX", "dW_xh", "dW_hh", "db_h", "dh0"]),
    "gru": (gru_forward, gru_backward, 3, ["dX", "dW_x", "dW_h", "db_x", "db_h", "dh0"]),
}


@pytest.mark.parametrize("cell", sorted(_CELLS))
@settings(max_examples=25, deadline=None)
@given(shape=_shapes)
def test_backward_matches_central_differences(cell: str, shape) -> None:
    forward, backward, gates, names = _CELLS[cell]
    seed, (batch, h0_batch), n, d_in, d_h = shape
    args = _recurrent_args(seed, batch, h0_batch, n, d_in, d_h, gates=gates)
    n_weights = len(names) - 1  # X and the weights come before dH, h0 after it
    if h0_batch is None:  # h0 = None means zeros: dh0 is still the gradient at that zero state
        args_with_h0 = [*args, np.zeros((*batch, d_h))]
    else:
        args_with_h0 = args
    H = forward(*args)
    dH = np.random.default_rng(seed + 1).standard_normal(H.shape)
    grads = backward(*args[:n_weights], dH, *args[n_weights:])
    expected = _central_differences(forward, args_with_h0, dH)
    assert len(grads) == len(names)
    for name, got, want in zip(names, grads, expected, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, atol=1e-7, rtol=1e-6, err_msg=name)


def test_gru_forward_one_step_by_hand() -> None:
    # d_in = 1, d_h = 2: the torch.nn.GRU equations written out entry by entry for one step
    x, h = 0.7, np.array([0.2, -0.4])
    W_x = np.array([[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]])  # [W_ir | W_iz | W_in], (1, 6)
    W_h = np.array([[0.5, 0.1, -0.3, 0.2, 0.7, -0.1],
                    [-0.2, 0.4, 0.6, -0.5, 0.3, 0.8]])  # [W_hr | W_hz | W_hn], (2, 6)
    b_x = np.array([0.05, -0.1, 0.15, 0.2, -0.25, 0.3])
    b_h = np.array([-0.3, 0.25, 0.2, -0.15, 0.1, -0.05])

    def sigma(a: float) -> float:
        return 1 / (1 + np.exp(-a))

    h_new = np.empty(2)
    for k in range(2):  # column k of each block: r at k, z at 2 + k, n at 4 + k
        r = sigma(x * W_x[0, k] + b_x[k] + h @ W_h[:, k] + b_h[k])
        z = sigma(x * W_x[0, 2 + k] + b_x[2 + k] + h @ W_h[:, 2 + k] + b_h[2 + k])
        n = np.tanh(x * W_x[0, 4 + k] + b_x[4 + k] + r * (h @ W_h[:, 4 + k] + b_h[4 + k]))
        h_new[k] = (1 - z) * n + z * h[k]
    H = gru_forward(np.array([[x]]), W_x, W_h, b_x, b_h, h0=h)
    np.testing.assert_allclose(H, h_new[None, :], rtol=1e-12)
    # a second step reads h_1, and h0 = None means zeros
    H2 = gru_forward(np.array([[x], [x]]), W_x, W_h, b_x, b_h, h0=h)
    np.testing.assert_allclose(H2[1], gru_forward(np.array([[x]]), W_x, W_h, b_x, b_h, H2[0])[0])
    np.testing.assert_array_equal(gru_forward(np.array([[x]]), W_x, W_h, b_x, b_h),
                                  gru_forward(np.array([[x]]), W_x, W_h, b_x, b_h, np.zeros(2)))


def test_gru_update_gate_near_one_keeps_the_state() -> None:
    # z ≈ 1 (a large b_iz): h_t ≈ h_{t-1}, the gated path that carries information far
    d_h = 3
    b_x = np.zeros(3 * d_h)
    b_x[d_h:2 * d_h] = 30.0
    rng = np.random.default_rng(3)
    h0 = rng.standard_normal(d_h)
    H = gru_forward(rng.standard_normal((50, 2)), rng.standard_normal((2, 3 * d_h)),
                    rng.standard_normal((d_h, 3 * d_h)), b_x, np.zeros(3 * d_h), h0)
    np.testing.assert_allclose(H[-1], h0, atol=1e-9)


def test_backward_keeps_float32_and_leaves_inputs_alone() -> None:
    args = [a.astype(np.float32) for a in _recurrent_args(4, (2,), (2,), 3, 2, 3, gates=3)]
    copies = [a.copy() for a in args]
    dH = np.ones((2, 3, 3), dtype=np.float32)
    assert gru_forward(*args).dtype == np.float32
    assert all(g.dtype == np.float32 for g in gru_backward(*args[:5], dH, args[5]))
    rnn_args = [a.astype(np.float32) for a in _recurrent_args(4, (2,), None, 3, 2, 3, gates=1)]
    assert all(g.dtype == np.float32 for g in rnn_backward(*rnn_args, dH))
    for original, copy in zip(args, copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_empty_sequences_give_empty_gradients() -> None:
    args = _recurrent_args(5, (2,), None, 1, 2, 3, gates=3)
    X = np.zeros((2, 0, 2))
    assert gru_forward(X, *args[1:]).shape == (2, 0, 3)
    dX, dW_x, dW_h, db_x, db_h, dh0 = gru_backward(X, *args[1:], np.zeros((2, 0, 3)))
    assert dX.shape == (2, 0, 2) and dh0.shape == (2, 3)
    assert not (dW_x.any() or dW_h.any() or db_x.any() or db_h.any() or dh0.any())


def test_recurrent_shape_errors_are_named() -> None:
    args = _recurrent_args(6, (), None, 2, 2, 3, gates=3)
    with pytest.raises(ValueError, match=r"W_x must be \(2, 9\).*got W_x \(2, 3\)"):
        gru_forward(args[0], args[1][:, :3], *args[2:])
    with pytest.raises(ValueError, match=r"b_h must be \(9,\)"):
        gru_forward(*args[:4], args[4][:3])
    with pytest.raises(ValueError, match="dH must have the shape of H"):
        gru_backward(*args, np.zeros((3, 3)))
    rnn_args = _recurrent_args(6, (), None, 2, 2, 3, gates=1)
    with pytest.raises(ValueError, match="dH must have the shape of H"):
        rnn_backward(*rnn_args, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn_backward(*rnn_args, np.zeros((2, 3)), np.zeros(4))


def test_an_empty_sequence_gives_no_hidden_states() -> None:
    """n = 0: H is empty, of shape (..., 0, d_h), with or without a batch and h0."""
    W_xh, W_hh, b_h = np.ones((3, 2)), np.eye(2), np.zeros(2)
    assert rnn_forward(np.zeros((0, 3)), W_xh, W_hh, b_h).shape == (0, 2)
    H = rnn_forward(np.zeros((4, 0, 3), np.float32), W_xh.astype(np.float32),
                    W_hh.astype(np.float32), b_h.astype(np.float32), h0=np.ones((4, 2)))
    assert H.shape == (4, 0, 2) and H.dtype == np.float32


def test_input_jacobians_of_an_empty_sequence_are_empty() -> None:
    J = rnn_input_jacobians(np.zeros((0, 3)), np.ones((3, 4)), np.eye(4), np.zeros(4))
    assert J.shape == (0, 4, 3)


def test_gru_update_gates_are_those_of_the_forward_pass() -> None:
    """z_t by hand from h_{t-1} of gru_forward: σ(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)."""
    rng = np.random.default_rng(7)
    d_in, d_h = 3, 2
    X = rng.standard_normal((2, 4, d_in)).astype(np.float32)  # a batch of 2 sequences
    W_x, W_h = rng.standard_normal((d_in, 3 * d_h)), rng.standard_normal((d_h, 3 * d_h))
    b_x, b_h, h0 = rng.standard_normal(3 * d_h), rng.standard_normal(3 * d_h), np.ones(d_h)
    Z = gru_update_gates(X, W_x, W_h, b_x, b_h, h0)
    H = gru_forward(X, W_x, W_h, b_x, b_h, h0)
    H_prev = np.concatenate([np.broadcast_to(h0, (2, 1, d_h)), H[:, :-1]], axis=1)
    z = slice(d_h, 2 * d_h)  # gate order r, z, n
    by_hand = 1 / (1 + np.exp(-(X @ W_x[:, z] + b_x[z] + H_prev @ W_h[:, z] + b_h[z])))
    assert Z.shape == H.shape and Z.dtype == np.float64  # float64 weights: float64 result
    np.testing.assert_allclose(Z, by_hand, rtol=1e-6)
