"""float16 inputs: sums, running statistics and products are computed in float32 and the
result rounded to float16 once (issue 21 §2). Each path is compared with float64 computed from
the same (float16) inputs, within float16's precision: a relative error of 2⁻¹⁰ of the
result's scale."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.attention import (
    attention_weights,
    blockwise_attention,
    multi_head_self_attention,
    self_attention,
    self_attention_backward,
    softmax,
    softmax_backward,
    weighted_sum,
)
from course_lib.rnn import gru_backward, gru_forward, rnn_backward, rnn_forward

HALF = 2.0**-10  # float16 keeps 11 significant bits: one rounding is at most 2⁻¹¹ relative


def close_to_float64(result: np.ndarray, expected: np.ndarray, factor: float = 2.0) -> None:
    """`result` is float16 and within float16's precision of the float64 `expected`: an error
    of at most a few float16 roundings of the result's scale."""
    assert result.dtype == np.float16
    assert np.isfinite(result).all()
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float16).tiny)
    np.testing.assert_allclose(result.astype(np.float64), expected,
                               rtol=factor * HALF, atol=factor * HALF * scale)


def halves(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float16)


def test_softmax_of_more_equal_scores_than_float16_can_count() -> None:
    """65,505 or more exp(0) = 1 summed in float16 overflow to inf: every weight became 0."""
    x = np.zeros((1, 70_000), np.float16)
    weights = softmax(x)
    close_to_float64(weights, np.full((1, 70_000), 1 / 70_000))
    assert weights.astype(np.float64).sum() == pytest.approx(1, rel=1e-2)


def test_blockwise_attention_over_4096_keys_in_small_blocks() -> None:
    """In float16 the running sum l stops growing at 2048 (the spacing there is 2) while o goes
    on: the output came out about twice the truth."""
    rng = np.random.default_rng(0)
    Q, K = halves(rng, 4, 8, scale=0.1), halves(rng, 4096, 8, scale=0.1)
    V = (np.abs(halves(rng, 4096, 3)) + 1).astype(np.float16)  # positive values: O far from 0
    O = blockwise_attention(Q, K, V, block_size=16)
    expected = blockwise_attention(*(a.astype(np.float64) for a in (Q, K, V)), block_size=16)
    close_to_float64(O, expected)


def test_full_attention_and_weighted_sum_over_long_rows() -> None:
    rng = np.random.default_rng(1)
    Q, K = halves(rng, 3, 8, scale=0.1), halves(rng, 20_000, 8, scale=0.1)
    V = halves(rng, 20_000, 2)
    weights = attention_weights(Q, K)
    weights64 = attention_weights(Q.astype(np.float64), K.astype(np.float64))
    close_to_float64(weights, weights64)
    np.testing.assert_allclose(weights.astype(np.float64).sum(axis=-1), 1, rtol=1e-2)
    close_to_float64(weighted_sum(weights64.astype(np.float16), V),
                     weighted_sum(weights64.astype(np.float16).astype(np.float64), V.astype(float)))
    O, _ = self_attention(halves(rng, 2000, 4), *(halves(rng, 4, 4, scale=0.3) for _ in range(3)))
    assert O.dtype == np.float16 and np.isfinite(O).all()


def test_multi_head_attention_in_float16() -> None:
    rng = np.random.default_rng(2)
    X = halves(rng, 2, 800, 8)
    W_Q, W_K, W_V, W_O = (halves(rng, 8, 8, scale=0.3) for _ in range(4))
    O, weights = multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads=2)
    O64, weights64 = multi_head_self_attention(
        *(a.astype(np.float64) for a in (X, W_Q, W_K, W_V, W_O)), n_heads=2)
    close_to_float64(O, O64, factor=4)
    close_to_float64(weights, weights64)


def test_weight_gradients_summed_over_a_long_batch() -> None:
    """dW_Q = Σ over 64 sequences of Xᵀ dQ: thousands of terms, summed in float32."""
    rng = np.random.default_rng(3)
    X, dO = halves(rng, 64, 64, 4), halves(rng, 64, 64, 4)
    W = [halves(rng, 4, 4, scale=0.5) for _ in range(3)]
    grads = self_attention_backward(X, *W, dO)
    grads64 = self_attention_backward(X.astype(float), *(w.astype(float) for w in W),
                                      dO.astype(float))
    for grad, grad64 in zip(grads, grads64, strict=True):
        close_to_float64(grad, grad64, factor=4)
    alpha = softmax(halves(rng, 5, 5000))
    d_alpha = halves(rng, 5, 5000)
    close_to_float64(softmax_backward(alpha, d_alpha),
                     softmax_backward(alpha.astype(float), d_alpha.astype(float)))


def test_recurrent_networks_over_long_sequences_in_float16() -> None:
    rng = np.random.default_rng(4)
    X, dH = halves(rng, 8, 500, 3), halves(rng, 8, 500, 5, scale=0.1)
    W_xh, W_hh, b_h = halves(rng, 3, 5, scale=0.5), halves(rng, 5, 5, scale=0.3), halves(rng, 5)
    as64 = [a.astype(np.float64) for a in (X, W_xh, W_hh, b_h)]
    close_to_float64(rnn_forward(X, W_xh, W_hh, b_h), rnn_forward(*as64))
    for grad, grad64 in zip(rnn_backward(X, W_xh, W_hh, b_h, dH),
                            rnn_backward(*as64, dH.astype(np.float64)), strict=True):
        close_to_float64(grad, grad64, factor=4)
    W_x, W_h = halves(rng, 3, 15, scale=0.5), halves(rng, 5, 15, scale=0.3)
    b_x, b_h3 = halves(rng, 15), halves(rng, 15)
    gru64 = [a.astype(np.float64) for a in (X, W_x, W_h, b_x, b_h3)]
    close_to_float64(gru_forward(X, W_x, W_h, b_x, b_h3), gru_forward(*gru64))
    for grad, grad64 in zip(gru_backward(X, W_x, W_h, b_x, b_h3, dH),
                            gru_backward(*gru64, dH.astype(np.float64)), strict=True):
        close_to_float64(grad, grad64, factor=4)
