"""Blockwise (online-softmax) attention, sinusoidal positions and multi-head attention."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    attention_loops,
    attention_weights,
    blockwise_attention,
    causal_mask,
    multi_head_self_attention,
    self_attention,
    sinusoidal_positions,
    weighted_sum,
)


@settings(max_examples=80, deadline=None)
@given(
    n_q=st.integers(0, 9), n_k=st.integers(0, 20), d_k=st.integers(1, 5), d_v=st.integers(1, 4),
    block_size=st.integers(1, 25), seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]), batch=st.sampled_from([(), (2,), (2, 3)]),
)
def test_blockwise_equals_full_attention(n_q, n_k, d_k, d_v, block_size, seed, dtype, batch):
    rng = np.random.default_rng(seed)
    Q = (rng.standard_normal((*batch, n_q, d_k)) * 3).astype(dtype)
    K = (rng.standard_normal((*batch, n_k, d_k)) * 3).astype(dtype)
    V = rng.standard_normal((*batch, n_k, d_v)).astype(dtype)
    copies = [a.copy() for a in (Q, K, V)]
    with np.errstate(invalid="raise", divide="raise"):  # no 0 / 0 when n_k = 0
        O = blockwise_attention(Q, K, V, block_size)
    expected = weighted_sum(attention_weights(Q, K), V)
    assert O.dtype == dtype and O.shape == expected.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(O, expected, rtol=tol, atol=tol)
    for original, copy in zip((Q, K, V), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_blockwise_survives_a_maximum_that_rises_block_after_block() -> None:
    # Scores rise by 500 from block to block: without rescaling the running sums by
    # exp(m − m'), exp overflows or the early blocks keep a wrong weight.
    Q = np.ones((1, 1))
    K = np.arange(0.0, 3000.0, 500.0)[:, None]
    V = np.arange(6.0)[:, None]
    np.testing.assert_allclose(blockwise_attention(Q, K, V, block_size=2), [[5.0]])


@pytest.mark.parametrize(("dtype", "big"), [(np.float16, 300.0), (np.float64, 1e200)])
def test_blockwise_survives_a_first_block_whose_scores_overflow_to_minus_infinity(dtype, big):
    """The first key's score overflows to −∞ (−90000 in float16, −1e400 in float64): the
    running maximum is still −∞ after the first block, and exp(m − m') must not be
    exp(−∞ − (−∞)) = NaN. Full attention gives [[7.]]."""
    Q = np.array([[big]], dtype)
    K = np.array([[-big], [1.0]], dtype)
    V = np.array([[7.0], [7.0]], dtype)
    with np.errstate(over="ignore"), np.errstate(invalid="raise"):
        expected = attention_weights(Q, K) @ V
        np.testing.assert_array_equal(expected, [[7.0]])
        np.testing.assert_array_equal(blockwise_attention(Q, K, V, block_size=1), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_blockwise_block_of_minus_infinity_then_finite_blocks(dtype) -> None:
    """Token 0: two whole blocks of scores that overflow to −∞, then a block of finite ones.
    The same as full attention, for it and for the ordinary rows."""
    big = np.finfo(dtype).max
    Q = np.array([[big], [0.0], [1.0]], dtype)
    K = np.array([[-4.0], [-4.0], [-4.0], [-4.0], [0.5], [-0.25]], dtype)
    K[4:] *= dtype(1e-3) if dtype != np.float16 else dtype(1e-4)  # finite scores in the last block
    V = np.arange(12.0).reshape(6, 2).astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = attention_weights(Q, K) @ V
    with np.errstate(over="ignore"), np.errstate(invalid="raise"):
        O = blockwise_attention(Q, K, V, block_size=2)
    assert np.all(np.isfinite(O))
    np.testing.assert_allclose(O, expected, rtol=1e-3)


def test_every_path_gives_zeros_for_a_row_whose_scores_all_overflow() -> None:
    """float32: token 0's every score is −inf (−9e40 and −1.2e41 overflow). Full, blockwise
    and multi-head attention give that row weights 0 and output 0; the other rows are
    untouched. (float16 inputs are computed in float32, where ±300 · 400 is finite.)"""
    big = np.float32(3e20)
    Q = np.array([[big], [0.5]], np.float32)
    K = np.array([[-big], [-4 * big / 3]], np.float32)
    V = np.array([[1.0], [3.0]], np.float32)
    with np.errstate(over="ignore"), np.errstate(invalid="raise"):
        weights = attention_weights(Q, K)
        np.testing.assert_array_equal(weights[0], [0.0, 0.0])
        np.testing.assert_array_equal(blockwise_attention(Q, K, V, block_size=1), weights @ V)
        X = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)  # Q = X W_Q = [[big, 0], [0, 0.5]]
        W_Q = np.array([[big, 0.0], [0.0, 0.5]], np.float32)
        W_K = np.array([[-big, 0.0], [-4 * big / 3, 0.0]], np.float32)
        _, heads = multi_head_self_attention(X, W_Q, W_K, np.eye(2, dtype=np.float32),
                                             np.eye(2, dtype=np.float32), 2)
    np.testing.assert_array_equal(heads[0, 0], [0.0, 0.0])  # head 0, token 0: all −inf
    np.testing.assert_allclose(heads[1].sum(axis=-1), 1)  # head 1: finite scores


def test_blockwise_never_holds_an_n_by_n_array() -> None:
    rng = np.random.default_rng(0)
    n, d = 2048, 16
    Q, K, V = (rng.standard_normal((n, d), dtype=np.float32) for _ in range(3))
    tracemalloc.start()
    blockwise_attention(Q, K, V, block_size=64)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * n * 4 / 8, f"peak {peak} bytes: an n x n float32 array is {n * n * 4}"


def test_blockwise_rejects_bad_block_size() -> None:
    with pytest.raises(ValueError, match="block_size must be a positive whole number"):
        blockwise_attention(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), 0)


def test_sinusoidal_positions_follow_the_formula() -> None:
    PE = sinusoidal_positions(7, 6)
    assert PE.shape == (7, 6)
    for pos in range(7):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert PE[pos, 2 * i] == pytest.approx(math.sin(angle))
            assert PE[pos, 2 * i + 1] == pytest.approx(math.cos(angle))
    odd = sinusoidal_positions(4, 5)  # an odd width ends with a sine column
    assert odd.shape == (4, 5)
    np.testing.assert_allclose(odd[:, 4], np.sin(np.arange(4) / 10000 ** (4 / 5)))


def test_positions_break_permutation_equivariance() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 4))
    W = [rng.standard_normal((4, 4)) for _ in range(3)]
    order = np.array([4, 2, 0, 1, 3])
    O, _ = self_attention(X, *W)
    np.testing.assert_allclose(self_attention(X[order], *W)[0], O[order])  # equivariant
    PE = sinusoidal_positions(5, 4)
    O_pos, _ = self_attention(X + PE, *W)
    assert not np.allclose(self_attention(X[order] + PE, *W)[0], O_pos[order])


@pytest.mark.parametrize("n_heads", [1, 2, 4])
@pytest.mark.parametrize("masked", [False, True])
def test_multi_head_matches_loops_per_head(n_heads: int, masked: bool) -> None:
    rng = np.random.default_rng(n_heads)
    n, d_model = 5, 8
    d_head = d_model // n_heads
    X = rng.standard_normal((2, n, d_model), dtype=np.float32)
    W_Q, W_K, W_V, W_O = (rng.standard_normal((d_model, d_model), dtype=np.float32)
                          for _ in range(4))
    mask = causal_mask(n) if masked else None
    O, weights = multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads, mask)
    assert O.shape == (2, n, d_model) and weights.shape == (2, n_heads, n, n)
    assert O.dtype == weights.dtype == np.float32
    heads = []
    for h in range(n_heads):
        columns = slice(h * d_head, (h + 1) * d_head)
        O_h, weights_h = attention_loops(X, W_Q[:, columns], W_K[:, columns], W_V[:, columns], mask)
        np.testing.assert_allclose(weights[:, h], weights_h, rtol=1e-4, atol=1e-5)
        heads.append(O_h)
    np.testing.assert_allclose(O, np.concatenate(heads, axis=-1) @ W_O, rtol=1e-4, atol=1e-4)


def test_one_head_is_self_attention_then_W_O() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 6))
    W_Q, W_K, W_V, W_O = (rng.standard_normal((6, 6)) for _ in range(4))
    O, weights = multi_head_self_attention(X, W_Q, W_K, W_V, W_O, 1)
    O_single, weights_single = self_attention(X, W_Q, W_K, W_V)
    np.testing.assert_allclose(O, O_single @ W_O)
    np.testing.assert_allclose(weights[0], weights_single)


def test_n_heads_must_divide_d_model() -> None:
    W = np.eye(6)
    with pytest.raises(ValueError, match="n_heads = 4 does not divide d_model = 6"):
        multi_head_self_attention(np.zeros((3, 6)), W, W, W, W, 4)


def test_multi_head_needs_square_projections() -> None:
    W = np.eye(6)
    with pytest.raises(ValueError, match=r"W_O must have shape \(d_model, d_model\)"):
        multi_head_self_attention(np.zeros((3, 6)), W, W, W, np.zeros((6, 3)), 2)
    with pytest.raises(ValueError, match="W_Q, W_K and W_V must have shape"):
        multi_head_self_attention(np.zeros((3, 6)), np.zeros((6, 4)), np.zeros((6, 4)), W, W, 2)
