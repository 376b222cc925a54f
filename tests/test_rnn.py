"""The Elman RNN (course_lib.rnn): the recurrence by hand, shapes, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.rnn import rnn_forward


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
    from course_lib.rnn import rnn_input_jacobians

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
