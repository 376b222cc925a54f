"""The reference attention (course_lib.attention): a worked example, the loop oracle, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from course_lib.attention import (
    attention_loops,
    attention_scores,
    attention_weights,
    blockwise_attention,
    causal_mask,
    merge_heads,
    multi_head_self_attention,
    padding_mask,
    project_qkv,
    scale_scores,
    self_attention,
    sinusoidal_positions,
    softmax,
    split_heads,
    weighted_sum,
)

# ---------------------------------------------------------------------------------------------
# One example worked by hand: 3 tokens, d_model = d_k = d_v = 2.
#
#   X = [[1, 0],      W_Q = W_K = I (so Q = K = X),   W_V = [[1, 0],
#        [0, 1],                                             [0, 10]]
#        [1, 1]]      so V = X W_V = [[1, 0], [0, 10], [1, 10]]
#
#   A = Q Kᵀ = [[1, 0, 1],        Ã = A / √2 = [[0.7071, 0,      0.7071],
#               [0, 1, 1],                      [0,      0.7071, 0.7071],
#               [1, 1, 2]]                      [0.7071, 0.7071, 1.4142]]
#
#   row 0: exp(0.7071) = 2.0281, exp(0) = 1  ->  sum 5.0562  ->  α_0 = [0.4011, 0.1978, 0.4011]
#   row 2: exp(0.7071) = 2.0281 (twice), exp(1.4142) = 4.1133  ->  sum 8.1695
#          ->  α_2 = [0.2483, 0.2483, 0.5035]
#   o_0 = 0.4011 [1, 0] + 0.1978 [0, 10] + 0.4011 [1, 10] = [0.8022, 5.9889]
#   o_2 = 0.2483 [1, 0] + 0.2483 [0, 10] + 0.5035 [1, 10] = [0.7517, 7.5175]
# ---------------------------------------------------------------------------------------------
X_HAND = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
I2 = np.eye(2)
W_V_HAND = np.array([[1.0, 0.0], [0.0, 10.0]])
WEIGHTS_HAND = np.array(
    [[0.4011, 0.1978, 0.4011], [0.1978, 0.4011, 0.4011], [0.2483, 0.2483, 0.5035]]
)
O_HAND = np.array([[0.8022, 5.9889], [0.5989, 8.0222], [0.7517, 7.5175]])


def test_worked_example_step_by_step() -> None:
    Q, K, V = project_qkv(X_HAND, I2, I2, W_V_HAND)
    np.testing.assert_array_equal(V, [[1, 0], [0, 10], [1, 10]])
    A = attention_scores(Q, K)
    np.testing.assert_array_equal(A, [[1, 0, 1], [0, 1, 1], [1, 1, 2]])
    np.testing.assert_allclose(scale_scores(A, 2)[2], [0.7071, 0.7071, 1.4142], atol=1e-4)
    weights = attention_weights(Q, K)
    np.testing.assert_allclose(weights, WEIGHTS_HAND, atol=1e-4)
    np.testing.assert_allclose(weighted_sum(weights, V), O_HAND, atol=1e-3)


@pytest.mark.parametrize("implementation", [self_attention, attention_loops])
def test_worked_example_end_to_end(implementation) -> None:
    O, weights = implementation(X_HAND, I2, I2, W_V_HAND)
    np.testing.assert_allclose(weights, WEIGHTS_HAND, atol=1e-4)
    np.testing.assert_allclose(O, O_HAND, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# The vectorized functions against the loop oracle, on many random shapes, dtypes and masks.
# ---------------------------------------------------------------------------------------------
@st.composite
def attention_inputs(draw):
    """X (batch..., n, d_model), W_Q, W_K, W_V and an optional boolean mask; n may be 0."""
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    n = draw(st.integers(0, 6))
    d_model, d_k, d_v = (draw(st.integers(1, 6)) for _ in range(3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    elements = st.floats(-3, 3, width=32)
    X = draw(hnp.arrays(dtype, (*batch, n, d_model), elements=elements))
    W_Q, W_K, W_V = (
        draw(hnp.arrays(dtype, shape, elements=elements))
        for shape in [(d_model, d_k), (d_model, d_k), (d_model, d_v)]
    )
    mask_kind = draw(st.sampled_from(["none", "causal", "random", "batched"]))
    mask = {
        "none": None,
        "causal": causal_mask(n),
        "random": draw(hnp.arrays(np.bool_, (n, n))),
        "batched": draw(hnp.arrays(np.bool_, (*batch, n, n))),
    }[mask_kind]
    return X, W_Q, W_K, W_V, mask


def tolerance(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-9}


@settings(max_examples=150, deadline=None)
@given(attention_inputs())
def test_self_attention_matches_loops(inputs) -> None:
    X, W_Q, W_K, W_V, mask = inputs
    copies = [a.copy() for a in (X, W_Q, W_K, W_V)]
    O, weights = self_attention(X, W_Q, W_K, W_V, mask)
    O_loops, weights_loops = attention_loops(X, W_Q, W_K, W_V, mask)

    assert O.dtype == weights.dtype == X.dtype  # float32 in, float32 out
    assert O.shape == (*X.shape[:-1], W_V.shape[1])
    assert weights.shape == (*X.shape[:-1], X.shape[-2])
    np.testing.assert_allclose(weights, weights_loops, **tolerance(X.dtype))
    np.testing.assert_allclose(O, O_loops, **tolerance(X.dtype))
    for original, copy in zip((X, W_Q, W_K, W_V), copies, strict=True):
        np.testing.assert_array_equal(original, copy)  # inputs never modified

    # each row sums to 1, or is all zeros when the mask blocks every position of the row
    row_sums = weights.sum(axis=-1)
    blocked = np.zeros(weights.shape[:-1], bool) if mask is None else ~np.broadcast_to(
        mask, weights.shape).any(axis=-1)
    np.testing.assert_allclose(row_sums[~blocked], 1, rtol=1e-5)
    assert np.all(weights[blocked] == 0)
    if mask is not None:
        assert np.all(weights[~np.broadcast_to(mask, weights.shape)] == 0)
    assert np.all(np.isfinite(O))


def test_float32_stays_float32_through_every_step() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3), dtype=np.float32)
    W = rng.standard_normal((3, 2), dtype=np.float32)
    Q, K, V = project_qkv(X, W, W, W)
    A = attention_scores(Q, K)
    for result in (Q, K, V, A, scale_scores(A, 2), softmax(A), attention_weights(Q, K),
                   weighted_sum(softmax(A), V)):
        assert result.dtype == np.float32


def test_integer_inputs_become_float64() -> None:
    X = np.arange(6).reshape(3, 2)
    O, weights = self_attention(X, np.eye(2, dtype=int), np.eye(2, dtype=int), np.eye(2, dtype=int))
    assert O.dtype == weights.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# softmax: stability and the all-blocked row
# ---------------------------------------------------------------------------------------------
def test_softmax_stable_for_huge_scores() -> None:
    x = np.array([[1e4, -1e4, 1e4 - 1], [-1e4, -1e4 + 1, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no NaN
        weights = softmax(x)
    expected_row0 = np.array([1, 0, math.exp(-1)]) / (1 + math.exp(-1))
    np.testing.assert_allclose(weights[0], expected_row0)
    np.testing.assert_allclose(weights[1], softmax(np.array([0.0, 1.0, 0.0])))


def test_softmax_row_far_below_other_rows() -> None:
    # A single global maximum would underflow the second row to 0 / 0 = NaN.
    x = np.array([[0.0, 1.0, 2.0], [-5000.0, -4999.0, -4998.0]], dtype=np.float32)
    weights = softmax(x)
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, rtol=1e-6)


def test_softmax_row_of_minus_infinity_gives_zeros() -> None:
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        weights = softmax(x)
    np.testing.assert_array_equal(weights, [[0, 0, 0], [0.5, 0, 0.5]])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
               elements=st.floats(-1e4, 1e4)),
    st.data(),
)
def test_softmax_properties(x: np.ndarray, data) -> None:
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    original = x.copy()
    weights = softmax(x, axis=axis)
    np.testing.assert_array_equal(x, original)
    assert weights.shape == x.shape
    assert np.all((weights >= 0) & (weights <= 1))
    if x.shape[axis] == 0:  # nothing to weigh along the axis: an empty result
        return
    np.testing.assert_allclose(weights.sum(axis=axis), 1, rtol=1e-9)
    # shift invariance: adding a constant to every score changes nothing
    np.testing.assert_allclose(softmax(x + 7.5, axis=axis), weights, atol=1e-9)


def test_softmax_along_axis_0() -> None:
    x = np.array([[0.0, 10.0], [0.0, -10.0]])
    np.testing.assert_allclose(softmax(x, axis=0), softmax(x.T, axis=-1).T)


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------
def test_causal_mask() -> None:
    np.testing.assert_array_equal(
        causal_mask(3), [[True, False, False], [True, True, False], [True, True, True]]
    )
    assert causal_mask(1).dtype == np.bool_


@pytest.mark.parametrize(("n", "past"), [(1, 0), (1, 5), (3, 2), (0, 4), (4, 0)])
def test_causal_mask_after_past_tokens_is_the_last_rows_of_the_whole_mask(n, past) -> None:
    """A KV cache's new rows (positions past .. past + n − 1), built without the whole mask."""
    mask = causal_mask(n, past=past)
    assert mask.shape == (n, past + n) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, causal_mask(past + n)[past:])


def test_causal_attention_ignores_later_tokens() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 4))
    W_Q, W_K, W_V = (rng.standard_normal((4, 3)) for _ in range(3))
    changed = X.copy()
    changed[4:] += 5.0  # change the last two tokens
    O, _ = self_attention(X, W_Q, W_K, W_V, causal_mask(6))
    O_changed, _ = self_attention(changed, W_Q, W_K, W_V, causal_mask(6))
    np.testing.assert_allclose(O[:4], O_changed[:4])  # earlier outputs are unchanged
    assert not np.allclose(O[4:], O_changed[4:])
    O_bi, _ = self_attention(X, W_Q, W_K, W_V)
    O_bi_changed, _ = self_attention(changed, W_Q, W_K, W_V)
    assert not np.allclose(O_bi[:4], O_bi_changed[:4])  # without a mask every output changes


def test_mask_is_applied_before_the_softmax() -> None:
    # Blocking a position renormalises the others (not zeroing weights afterwards).
    Q = K = np.array([[1.0, 0.0], [0.0, 1.0]])
    mask = np.array([[True, False], [True, True]])
    weights = attention_weights(Q, K, mask)
    np.testing.assert_allclose(weights[0], [1.0, 0.0])
    np.testing.assert_allclose(weights[1], softmax(np.array([0.0, 1.0]) / math.sqrt(2)))


def test_weighted_sum_sanity_cases() -> None:
    V = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    equal = np.full((1, 3), 1 / 3)
    np.testing.assert_allclose(weighted_sum(equal, V), V.mean(axis=0, keepdims=True))
    one_hot = np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(weighted_sum(one_hot, V), V[[1]])


def test_scores_for_different_query_and_key_counts() -> None:
    Q = np.ones((2, 3))
    K = np.arange(12.0).reshape(4, 3)
    A = attention_scores(Q, K)
    assert A.shape == (2, 4)
    np.testing.assert_array_equal(A[0], K.sum(axis=1))


# ---------------------------------------------------------------------------------------------
# bad input: clear errors in the course's words
# ---------------------------------------------------------------------------------------------
def test_project_qkv_names_shapes_and_d_model() -> None:
    X, W_Q = np.zeros((5, 8)), np.zeros((6, 4))
    with pytest.raises(ValueError) as error:
        project_qkv(X, W_Q, np.zeros((8, 4)), np.zeros((8, 4)))
    message = str(error.value)
    assert "(6, 4)" in message and "(5, 8)" in message and "d_model = 8" in message
    assert "W_Q" in message


def test_project_qkv_query_and_key_widths_must_agree() -> None:
    with pytest.raises(ValueError, match="same width d_k"):
        project_qkv(np.zeros((5, 8)), np.zeros((8, 4)), np.zeros((8, 3)), np.zeros((8, 4)))


def test_attention_scores_width_mismatch() -> None:
    with pytest.raises(ValueError, match=r"same width d_k \(got 3 and 2\)"):
        attention_scores(np.zeros((4, 3)), np.zeros((4, 2)))


def test_one_dimensional_input_is_explained() -> None:
    with pytest.raises(ValueError, match=r"X must have at least 2 axes \(n, d_model\)"):
        project_qkv(np.zeros(8), np.zeros((8, 4)), np.zeros((8, 4)), np.zeros((8, 4)))


def test_non_numeric_input_is_explained() -> None:
    with pytest.raises(TypeError, match="Q must hold numbers"):
        attention_scores(np.array([["a", "b"]]), np.zeros((1, 2)))


def test_weighted_sum_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"n_k = 3 must equal the number of rows of V \(4\)"):
        weighted_sum(np.zeros((2, 3)), np.zeros((4, 5)))


def test_batch_axes_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="leading \\(batch\\) axes"):
        attention_scores(np.zeros((2, 4, 3)), np.zeros((3, 4, 3)))


@pytest.mark.parametrize("d_k", [0, -4, float("nan"), float("inf")])
def test_scale_scores_rejects_non_positive_d_k(d_k) -> None:
    with pytest.raises(ValueError, match="d_k must be a positive number"):
        scale_scores(np.zeros((2, 2)), d_k)


@pytest.mark.parametrize("d_k", ["4", None, True])
def test_scale_scores_rejects_non_numbers(d_k) -> None:
    with pytest.raises(TypeError, match="d_k must be a positive number"):
        scale_scores(np.zeros((2, 2)), d_k)


def test_mask_of_wrong_dtype() -> None:
    Q = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"mask must be boolean.*astype\(bool\)"):
        attention_weights(Q, Q, np.tril(np.ones((3, 3))))


def test_a_float_mask_is_refused_with_what_to_do_for_each_convention() -> None:
    """An additive mask (0 / −inf, PyTorch's float attn_mask) must not be told astype(bool),
    which would invert it; each library's convention gets its own conversion."""
    Q = np.zeros((3, 2))
    additive = np.triu(np.full((3, 3), -np.inf), k=1)  # generate_square_subsequent_mask(3)
    with pytest.raises(ValueError) as error:
        attention_weights(Q, Q, additive)
    message = str(error.value)
    assert "mask == 0" in message and "additive" in message
    assert "1 = may attend, mask.astype(bool)" in message
    assert "MultiheadAttention" in message and "~attn_mask" in message
    # a key_padding_mask (B, n_k) needs the queries' axis, not only the ~ (issue 21 §3)
    assert "~key_padding_mask[:, None, :]" in message and "[:, None, None, :]" in message
    np.testing.assert_array_equal(additive == 0, causal_mask(3))  # the advice is right


def test_mask_of_wrong_shape() -> None:
    Q = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 2\) does not fit the scores"):
        attention_weights(Q, Q, np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="mask of shape"):
        attention_loops(Q, np.eye(2), np.eye(2), np.eye(2), np.ones((4, 3), dtype=bool))


@pytest.mark.parametrize("n", [-1, 2.5, True])
def test_causal_mask_needs_a_whole_number(n) -> None:
    with pytest.raises(ValueError, match=r"n must be a whole number >= 0"):
        causal_mask(n)


# ---------------------------------------------------------------------------------------------
# empty sequences (n = 0): empty results of the right shapes, on every path
# ---------------------------------------------------------------------------------------------
def test_an_empty_sequence_gives_empty_results_everywhere() -> None:
    X = np.zeros((0, 4))
    W, W_V = np.ones((4, 3)), np.ones((4, 2))
    Q = K = np.zeros((0, 3))
    assert causal_mask(0).shape == (0, 0) and causal_mask(0).dtype == np.bool_
    assert sinusoidal_positions(0, 4).shape == (0, 4)
    assert softmax(np.zeros((2, 0))).shape == (2, 0)
    assert softmax(np.zeros(0)).shape == (0,)
    assert attention_weights(Q, K).shape == (0, 0)
    assert attention_weights(Q, K, causal_mask(0)).shape == (0, 0)
    assert blockwise_attention(Q, K, np.zeros((0, 2)), 2).shape == (0, 2)
    for implementation in (self_attention, attention_loops):
        O, weights = implementation(X, W, W, W_V, causal_mask(0))
        assert O.shape == (0, 2) and weights.shape == (0, 0)
        O, weights = implementation(np.zeros((3, 0, 4)), W, W, W_V)
        assert O.shape == (3, 0, 2) and weights.shape == (3, 0, 0)
    O, weights = multi_head_self_attention(X, *(np.eye(4),) * 4, n_heads=2)
    assert O.shape == (0, 4) and weights.shape == (2, 0, 0)


def test_queries_without_keys_get_zero_weights_and_zero_output() -> None:
    """n_k = 0: each query has nothing to attend to, like a row whose every key is blocked."""
    Q, K, V = np.ones((3, 2)), np.zeros((0, 2)), np.zeros((0, 5))
    weights = attention_weights(Q, K)
    assert weights.shape == (3, 0)
    np.testing.assert_array_equal(weighted_sum(weights, V), np.zeros((3, 5)))
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(blockwise_attention(Q, K, V, 2), np.zeros((3, 5)))


def test_a_width_of_zero_is_refused_on_every_path() -> None:
    X, W0 = np.ones((3, 4)), np.zeros((4, 0))
    for call in (
        lambda: attention_weights(np.ones((3, 0)), np.ones((3, 0))),
        lambda: blockwise_attention(np.ones((3, 0)), np.ones((3, 0)), np.ones((3, 2)), 2),
        lambda: self_attention(X, W0, W0, np.ones((4, 2))),
        lambda: attention_loops(X, W0, W0, np.ones((4, 2))),
    ):
        with pytest.raises(ValueError, match=r"width d_k = 0"):
            call()


# ---------------------------------------------------------------------------------------------
# rows of −∞: every path gives weights 0 and output 0 where no score is finite, never NaN
# ---------------------------------------------------------------------------------------------
def test_a_fully_blocked_row_gives_zeros_on_every_path() -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 3))
    W_Q, W_K, W_V = (rng.standard_normal((3, 3)) for _ in range(3))
    mask = causal_mask(4)
    mask[2] = False  # token 2 may attend to nothing
    with np.errstate(invalid="raise", divide="raise"):
        for implementation in (self_attention, attention_loops):
            O, weights = implementation(X, W_Q, W_K, W_V, mask)
            np.testing.assert_array_equal(weights[2], 0)
            np.testing.assert_array_equal(O[2], 0)
            np.testing.assert_allclose(weights[[0, 1, 3]].sum(axis=-1), 1)
        _, weights = multi_head_self_attention(X, W_Q, W_K, W_V, np.eye(3), 3, mask)
        np.testing.assert_array_equal(weights[:, 2], 0)


@pytest.mark.parametrize(("dtype", "big"), [(np.float16, 300.0), (np.float64, 1e200)])
def test_scores_that_overflow_to_minus_infinity_get_weight_zero(dtype, big) -> None:
    """q · k = −90000 is −inf in float16 (and −1e400 in float64): that key gets weight 0."""
    Q = np.array([[big]], dtype)
    K = np.array([[-big], [1.0]], dtype)
    with np.errstate(over="ignore"), np.errstate(invalid="raise"):
        weights = attention_weights(Q, K)
        np.testing.assert_array_equal(weights, [[0.0, 1.0]])
        np.testing.assert_array_equal(softmax(np.array([[-np.inf, -np.inf]], dtype)), [[0, 0]])


def test_plain_lists_are_accepted_everywhere() -> None:
    X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    I = [[1.0, 0.0], [0.0, 1.0]]
    for implementation in (self_attention, attention_loops):
        O, weights = implementation(X, I, I, I)
        np.testing.assert_allclose(weights, WEIGHTS_HAND, atol=1e-4)


# --- padding masks of a batch (issue 21 §3) ------------------------------------------------------


def test_a_padding_mask_without_the_queries_axis_is_refused_with_the_fix() -> None:
    """A (B, n) key-padding mask against scores (B, n, n): numpy would read it as (n_q, n_k)."""
    X = np.random.default_rng(0).standard_normal((3, 5, 4))
    is_token = np.ones((3, 5), dtype=bool)
    with pytest.raises(ValueError, match=r"mask\[:, None, :\], of shape \(3, 1, 5\)"):
        self_attention(X, np.eye(4), np.eye(4), np.eye(4), is_token)


@pytest.mark.parametrize("batch", [2, 5])  # 5 = n: a (B, n) mask would have fitted by accident
def test_padding_mask_blocks_the_padded_keys_of_each_sequence(batch: int) -> None:
    rng = np.random.default_rng(batch)
    n, d = 5, 4
    X = rng.standard_normal((batch, n, d))
    W_Q, W_K, W_V = (rng.standard_normal((d, d)) for _ in range(3))
    lengths = rng.integers(1, n + 1, size=batch)
    is_token = np.arange(n)[None, :] < lengths[:, None]  # (B, n): True for real tokens
    mask = padding_mask(is_token)
    assert mask.shape == (batch, 1, n)
    O, weights = self_attention(X, W_Q, W_K, W_V, mask)
    for b, length in enumerate(lengths):  # each sequence as if it had only its real tokens
        O_b, weights_b = self_attention(X[b, :length], W_Q, W_K, W_V)
        np.testing.assert_allclose(weights[b, :length, :length], weights_b, atol=1e-12)
        np.testing.assert_array_equal(weights[b, :, length:], 0)  # no query looks at padding
        np.testing.assert_allclose(O[b, :length], O_b, atol=1e-12)
    both = mask & causal_mask(n)  # (B, 1, n) & (n, n) -> (B, n, n)
    _, head_weights = multi_head_self_attention(X, W_Q, W_K, W_V, np.eye(d), 2, both)
    assert head_weights.shape == (batch, 2, n, n)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(head_weights[b, :, :, length:], 0)
        np.testing.assert_array_equal(np.triu(head_weights[b], k=1), 0)


def test_padding_mask_refuses_what_is_not_a_boolean_batch() -> None:
    with pytest.raises(ValueError, match=r"boolean array of shape \(B, n_k\)"):
        padding_mask(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"boolean array of shape \(B, n_k\)"):
        padding_mask(np.ones(3, dtype=bool))


def test_split_heads_gives_each_head_its_block_of_columns_and_merge_heads_undoes_it() -> None:
    M = np.arange(2 * 3 * 6.0).reshape(2, 3, 6)  # a batch of 2, n = 3, d_model = 6
    heads = split_heads(M, 3)  # (2, 3 heads, 3, d_head = 2)
    assert heads.shape == (2, 3, 3, 2)
    for h in range(3):
        np.testing.assert_array_equal(heads[:, h], M[..., 2 * h:2 * h + 2])
    np.testing.assert_array_equal(merge_heads(heads), M)
