"""The backward pass through attention (softmax_backward, self_attention_backward).

A small case worked by hand, then central differences on many random shapes, batch axes,
masks (including fully blocked rows), d_k ≠ d_v, float32 and float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    causal_mask,
    self_attention,
    self_attention_backward,
    softmax,
    softmax_backward,
)
from course_lib.training import numerical_gradient, relative_error

# ---------------------------------------------------------------------------------------------
# Worked by hand: n = 2 tokens, d_model = d_k = d_v = 1, W_Q = W_K = W_V = [[1]], X = [[1], [0]],
# so Q = K = V = [1, 0]ᵀ, and L = o_1 (the first output), that is dO = [[1], [0]].
#
#   Ã = Q Kᵀ / √1 = [[1, 0], [0, 0]]
#   α_1 = softmax([1, 0]) = [σ, 1 − σ] with σ = e / (e + 1) = 0.731059;  α_2 = [0.5, 0.5]
#   dV = αᵀ dO = [α_11, α_12] = [0.731059, 0.268941]
#   dα = dO Vᵀ = [[1, 0], [0, 0]]
#   dÃ_1 = α_1 ⊙ (dα_1 − α_1 · dα_1) = [σ(1 − σ), (1 − σ)(0 − σ)] = [0.196612, −0.196612];
#   dÃ_2 = 0 (row 2 does not reach the loss)
#   dQ = dÃ K = [0.196612, 0];   dK = dÃᵀ Q = [0.196612, −0.196612]
#   dX = dQ + dK + dV = [0.196612 + 0.196612 + 0.731059, 0 − 0.196612 + 0.268941]
#      = [1.124283, 0.072329]
#   dW_Q = Xᵀ dQ = 0.196612,  dW_K = Xᵀ dK = 0.196612,  dW_V = Xᵀ dV = 0.731059
# ---------------------------------------------------------------------------------------------
SIGMA = math.e / (math.e + 1)
S1 = SIGMA * (1 - SIGMA)  # 0.196612


def test_worked_example() -> None:
    X, W = np.array([[1.0], [0.0]]), np.array([[1.0]])
    dO = np.array([[1.0], [0.0]])
    weights = self_attention(X, W, W, W)[1]
    np.testing.assert_allclose(weights, [[SIGMA, 1 - SIGMA], [0.5, 0.5]])
    np.testing.assert_allclose(softmax_backward(weights, [[1.0, 0.0], [0.0, 0.0]]),
                               [[S1, -S1], [0, 0]])
    dX, dW_Q, dW_K, dW_V = self_attention_backward(X, W, W, W, dO)
    np.testing.assert_allclose(dX, [[2 * S1 + SIGMA], [1 - SIGMA - S1]])
    np.testing.assert_allclose(dX, [[1.124283], [0.072329]], atol=1e-6)
    np.testing.assert_allclose(dW_Q, [[S1]])
    np.testing.assert_allclose(dW_K, [[S1]])
    np.testing.assert_allclose(dW_V, [[SIGMA]])


def test_softmax_backward_is_the_jacobian_product() -> None:
    """d_scores = Jᵀ dα with J = diag(α) − α αᵀ, the Jacobian lesson 03 measured."""
    rng = np.random.default_rng(1)
    x, d_weights = rng.standard_normal(5), rng.standard_normal(5)
    alpha = softmax(x)
    J = np.diag(alpha) - np.outer(alpha, alpha)
    np.testing.assert_allclose(softmax_backward(alpha, d_weights), J.T @ d_weights)
    numerical = numerical_gradient(lambda p: softmax(p["x"]) @ d_weights, {"x": x})["x"]
    assert relative_error(softmax_backward(alpha, d_weights), numerical) < 1e-8


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3))
@example(316292, 1)  # saturated: the case CI found
def test_softmax_backward_any_axis(seed: int, axis_choice: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 4, size=3))
    axis = (-1, 0, 1, 2)[axis_choice]
    x, d_weights = 3 * rng.standard_normal(shape), rng.standard_normal(shape)
    numerical = numerical_gradient(lambda p: np.sum(softmax(p["x"], axis) * d_weights), {"x": x})
    analytic = softmax_backward(softmax(x, axis), d_weights, axis)
    # Measured against the upstream gradient dα as well as its own size: where the softmax is
    # saturated (found in CI: x = 3 N(0, 1) over 2 entries gives a gradient of 2e-4), the
    # differences' rounding noise, about 1e-10 ‖dα‖, is 2e-7 of that gradient although the
    # formula is right. A wrong formula is off by about α(1 − α) ‖dα‖, far above this limit.
    error = np.linalg.norm(analytic - numerical["x"])
    scale = np.linalg.norm(analytic) + np.linalg.norm(numerical["x"]) + np.linalg.norm(d_weights)
    assert error / scale < 1e-8


# ---------------------------------------------------------------------------------------------
# self_attention_backward against central differences, on many random inputs.
# ---------------------------------------------------------------------------------------------
@st.composite
def backward_inputs(draw):
    """X (batch..., n, d_model), W_Q, W_K, W_V, a mask or None, and dO, all of one dtype."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    n, d_model, d_k, d_v = (draw(st.integers(1, 5)) for _ in range(4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    X = rng.standard_normal((*batch, n, d_model)).astype(dtype)
    W_Q, W_K, W_V = (rng.standard_normal(s).astype(dtype)
                     for s in [(d_model, d_k), (d_model, d_k), (d_model, d_v)])
    mask_kind = draw(st.sampled_from(["none", "causal", "random", "blocked row", "batched",
                                      "batched, unbatched X", "batched, X batch of 1"]))
    mask = {
        "none": None,
        "causal": causal_mask(n),
        "random": rng.random((n, n)) < 0.6,
        "blocked row": np.ones((n, n), bool),
        "batched": rng.random((*batch, n, n)) < 0.6,
        "batched, unbatched X": rng.random((2, n, n)) < 0.6,
        "batched, X batch of 1": rng.random((3, n, n)) < 0.6,
    }[mask_kind]
    if mask_kind == "blocked row":
        mask[rng.integers(n)] = False  # one row may attend to nothing
    if mask_kind == "batched, unbatched X":
        X = X.reshape(-1, n, d_model)[0]  # the mask alone has a batch axis
    if mask_kind == "batched, X batch of 1":
        X = X.reshape(-1, n, d_model)[:1]  # X (1, n, d_model) is broadcast against 3 masks
    O = self_attention(X, W_Q, W_K, W_V, mask)[0]
    dO = rng.standard_normal(O.shape).astype(dtype)
    return X, W_Q, W_K, W_V, mask, dO


SATURATED = tuple(np.array(a, dtype=np.float32) for a in (  # found by hypothesis in CI: α ≈ 7e-8
    [[-0.42634535, 1.0716214, -0.5924166, -0.23560618],
     [1.9551256, -1.0404216, 0.7078518, -1.1619691]],
    [[0.8419777, -1.5412568], [-0.2296508, 1.5824451], [-0.27868396, 0.12442331],
     [-0.42335185, -1.6654222]],
    [[1.2389812, -1.3185363], [-1.7982342, 0.1306044], [-0.03876121, -0.0048427],
     [-0.3539297, -0.38980585]],
    [[-1.6193707], [-0.2933008], [1.441314], [1.3800292]],
))


@settings(max_examples=80, deadline=None)
@given(backward_inputs())
@example((*SATURATED, np.array([[True, False], [True, True]]),
          np.array([[1.6482507], [0.6742041]], dtype=np.float32)))
def test_self_attention_backward_matches_central_differences(inputs) -> None:
    X, W_Q, W_K, W_V, mask, dO = inputs
    copies = [a.copy() for a in (X, W_Q, W_K, W_V, dO)]
    grads = self_attention_backward(X, W_Q, W_K, W_V, dO, mask)

    for grad, param in zip(grads, (X, W_Q, W_K, W_V), strict=True):
        assert grad.shape == param.shape
        assert grad.dtype == X.dtype  # float32 in, float32 out
        assert np.all(np.isfinite(grad))
    for original, copy in zip((X, W_Q, W_K, W_V, dO), copies, strict=True):
        np.testing.assert_array_equal(original, copy)  # inputs never modified

    # L = Σ O ⊙ dO has ∂L/∂O = dO; central differences in float64 on the same values
    params = {"X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V}
    dO64 = dO.astype(np.float64)

    def loss(p):
        return np.sum(self_attention(p["X"], p["W_Q"], p["W_K"], p["W_V"], mask)[0] * dO64)

    # Each error is measured against the largest gradient of the problem, not against its own
    # size: where a row is saturated (α ≈ 1e-7), dW_Q and dW_K are about 1e-6 while dX is about
    # 1, and float32's rounding (about 1e-7 of the largest terms) or the differences' own noise
    # would make their relative error large although the formula is right.
    numerical = numerical_gradient(loss, params)
    scale = max(float(np.linalg.norm(g)) for g in numerical.values()) + 1e-12
    errors = {name: float(np.linalg.norm(grad - numerical[name])) / scale
              for name, grad in zip(params, grads, strict=True)}
    limit = 1e-4 if X.dtype == np.float32 else 1e-7
    assert max(errors.values()) < limit, errors


def test_masked_positions_get_no_gradient() -> None:
    """A key no row may attend to gets no gradient; a fully blocked row passes none back."""
    rng = np.random.default_rng(3)
    n = 4
    X = rng.standard_normal((2, n, 3))
    W_Q, W_K, W_V = (rng.standard_normal(shape) for shape in [(3, 2), (3, 2), (3, 5)])
    mask = np.ones((n, n), bool)
    mask[:, 1] = False  # token 1 is never attended to
    mask[3] = False  # token 3 attends to nothing
    dO = rng.standard_normal((2, n, 5))
    dO_blocked = np.zeros_like(dO)
    dO_blocked[:, 3] = dO[:, 3]  # the loss depends only on the fully blocked row's output
    for grad in self_attention_backward(X, W_Q, W_K, W_V, dO_blocked, mask):
        assert np.all(grad == 0)  # zeros, not NaN
    alone = mask.copy()
    alone[1] = False  # now token 1 neither attends nor is attended to
    dX, *_ = self_attention_backward(X, W_Q, W_K, W_V, dO, alone)
    assert np.all(dX[:, 1] == 0)  # none of its paths (query, key, value) reaches the loss
    assert np.all(np.isfinite(dX)) and np.any(dX[:, 0] != 0)


def test_weight_gradients_are_summed_over_the_batch() -> None:
    rng = np.random.default_rng(4)
    X, dO = rng.standard_normal((3, 4, 3)), rng.standard_normal((3, 4, 2))
    W_Q, W_K, W_V = (rng.standard_normal((3, 2)) for _ in range(3))
    batched = self_attention_backward(X, W_Q, W_K, W_V, dO)
    one_by_one = [self_attention_backward(X[b], W_Q, W_K, W_V, dO[b]) for b in range(3)]
    np.testing.assert_allclose(batched[0], np.stack([g[0] for g in one_by_one]))
    for k in (1, 2, 3):
        np.testing.assert_allclose(batched[k], sum(g[k] for g in one_by_one))


def test_errors_name_the_mistake() -> None:
    X, W = np.ones((3, 2)), np.ones((2, 2))
    with pytest.raises(ValueError, match=r"dO has shape \(3, 3\) but O has shape \(3, 2\)"):
        self_attention_backward(X, W, W, W, np.ones((3, 3)))
    with pytest.raises(ValueError, match="W_K has shape"):
        self_attention_backward(X, W, np.ones((3, 2)), W, np.ones((3, 2)))
    with pytest.raises(ValueError, match="the shapes must be equal"):
        softmax_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="d_weights must hold numbers"):
        softmax_backward(np.ones(3), np.array(["a", "b", "c"]))
