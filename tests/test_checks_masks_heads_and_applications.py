"""Catalogues for the checkers of exercise 08: causal_mask, masked_attention_weights and
multi_head_self_attention.

Every valid solution must pass; every wrong one must fail with the hint that names its mistake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from catalogue import assert_rejected, name_of

from course_lib.checks import (
    check_causal_mask,
    check_masked_attention_weights,
    check_multi_head_self_attention,
)
from course_lib.checks.masks_heads_and_applications import MASKED_ATTENTION_WEIGHTS


def softmax(x, axis=-1):
    """The softmax the exercise gives: a row of −∞ only (fully blocked) gets weights 0."""
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - np.where(m == -np.inf, 0, m))
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1)


def naive_softmax(x, axis=-1):
    """Stable, but a fully blocked row gives −∞ − (−∞) = NaN."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- causal_mask ---------------------------------------------------------------------------------


def mask_tril(n):
    return np.tril(np.ones((n, n), dtype=bool))


def mask_tri(n):
    return np.tri(n, dtype=bool)


def mask_compare(n):
    i = np.arange(n)
    return i[:, None] >= i[None, :]


def mask_loops(n):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = True
    return mask


def mask_float_converted(n):
    return np.tril(np.ones((n, n))).astype(bool)


def mask_triu_transposed(n):
    return np.triu(np.ones((n, n), dtype=bool)).T


def mask_inverted_upper(n):
    return ~np.triu(np.ones((n, n), dtype=bool), k=1)


def mask_future(n):
    return np.triu(np.ones((n, n), dtype=bool))


def mask_no_diagonal(n):
    return np.tril(np.ones((n, n), dtype=bool), k=-1)


def mask_true_blocked(n):
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def mask_inverted_with_tilde(n):
    return ~np.tril(np.ones((n, n), dtype=bool))


def mask_future_no_diagonal(n):
    i = np.arange(n)
    return i[:, None] < i[None, :]


def mask_all_true(n):
    return np.ones((n, n), dtype=bool)


def mask_next_token(n):
    return np.tril(np.ones((n, n), dtype=bool), k=1)


def mask_floats(n):
    return np.tril(np.ones((n, n)))


def mask_ints(n):
    return np.tril(np.ones((n, n), dtype=int))


def mask_list(n):
    return np.tril(np.ones((n, n), dtype=bool)).tolist()


@pytest.mark.parametrize(
    "fn",
    [mask_tril, mask_tri, mask_compare, mask_loops, mask_float_converted, mask_triu_transposed,
     mask_inverted_upper],
    ids=name_of,
)
def test_causal_mask_accepts(fn):
    result = check_causal_mask(fn)
    assert result.passed, result.feedback


def test_causal_mask_accepts_harder():
    assert check_causal_mask(mask_compare, harder=True)


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (mask_future, "future-instead-of-past", "see the future instead of the past"),
        (mask_no_diagonal, "diagonal-excluded", "excludes the diagonal"),
        (mask_true_blocked, "true-means-blocked", "True marks the blocked positions"),
        (mask_inverted_with_tilde, "true-means-blocked", "True marks the blocked positions"),
        (mask_future_no_diagonal, "true-means-blocked", "True marks the blocked positions"),
        (mask_all_true, "all-true", "bidirectional"),
        (mask_next_token, "next-token-admitted", "also lets token i see the next token"),
        (mask_floats, "not-boolean", "dtype=bool"),
        (mask_ints, "not-boolean", "dtype=bool"),
        (mask_list, "type", "must return a NumPy array"),
    ],
    ids=name_of,
)
def test_causal_mask_rejects(fn, key, hint):
    assert_rejected(check_causal_mask, fn, key, hint)


# -- masked_attention_weights --------------------------------------------------------------------


def _scaled(Q, K):
    return Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])


def mw_where_inf(Q, K, mask):
    return softmax(np.where(mask, _scaled(Q, K), -np.inf))


def mw_einsum_where_inf(Q, K, mask):
    scaled = np.einsum("...id,...jd->...ij", Q, K) / np.sqrt(Q.shape[-1])
    return softmax(np.where(mask, scaled, -np.inf))


def mw_own_safe_softmax(Q, K, mask):
    scores = np.where(mask, _scaled(Q, K), -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0.0))
    return np.divide(e, e.sum(axis=-1, keepdims=True), out=np.zeros_like(e),
                     where=mask.any(axis=-1, keepdims=True))


def mw_large_then_zero_blocked_rows(Q, K, mask):
    """−1e9 is fine where a row has an allowed position; the fully blocked rows set to 0."""
    weights = naive_softmax(np.where(mask, _scaled(Q, K), -1e9))
    return weights * mask.any(axis=-1, keepdims=True)


def mw_assign_in_copy(Q, K, mask):
    scores = _scaled(Q, K)
    scores[~mask] = -np.inf
    return softmax(scores)


def mw_zero_and_renormalise(Q, K, mask):
    weights = softmax(_scaled(Q, K)) * mask
    total = weights.sum(axis=-1, keepdims=True)
    return weights / np.where(total > 0, total, 1)


def mw_zero_with_where(Q, K, mask):
    weights = np.where(mask, softmax(_scaled(Q, K)), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    return np.where(total > 0, weights / np.maximum(total, 1e-300), 0.0)


def mw_loops(Q, K, mask):
    n_q, n_k = len(Q), len(K)
    weights = np.zeros((n_q, n_k))
    for i in range(n_q):
        allowed = [j for j in range(n_k) if mask[i, j]]
        if not allowed:
            continue  # a query that may attend to nothing: its weights stay 0
        row = {j: float(Q[i] @ K[j]) / math.sqrt(Q.shape[1]) for j in allowed}
        m = max(row.values())
        exps = {j: math.exp(a - m) for j, a in row.items()}
        for j, e in exps.items():
            weights[i, j] = e / sum(exps.values())
    return weights


def mw_float32_aware(Q, K, mask):
    scores = np.where(mask, _scaled(Q, K), -np.inf)
    return softmax(scores).astype(Q.dtype)


def mw_naive_softmax(Q, K, mask):
    return naive_softmax(np.where(mask, _scaled(Q, K), -np.inf))


def mw_large_negative(Q, K, mask):
    return softmax(np.where(mask, _scaled(Q, K), -1e9))


def mw_large_negative_naive_softmax(Q, K, mask):
    return naive_softmax(np.where(mask, _scaled(Q, K), -1e9))


def mw_subtract_large(Q, K, mask):
    return softmax(_scaled(Q, K) - 1e10 * (~mask))


def mw_finfo_min(Q, K, mask):
    scores = np.where(mask, _scaled(Q, K), np.finfo(Q.dtype).min)
    return softmax(scores).astype(Q.dtype)


def mw_renormalised_without_guard(Q, K, mask):
    weights = softmax(_scaled(Q, K)) * mask
    return weights / weights.sum(axis=-1, keepdims=True)


def mw_ignored(Q, K, mask):
    return softmax(_scaled(Q, K))


def mw_inverted(Q, K, mask):
    return softmax(np.where(~mask, _scaled(Q, K), -np.inf))


def mw_inverted_large(Q, K, mask):
    return softmax(np.where(mask, -1e9, _scaled(Q, K)))


def mw_zeroed_not_renormalised(Q, K, mask):
    return softmax(_scaled(Q, K)) * mask


def mw_blocked_zero(Q, K, mask):
    return softmax(np.where(mask, _scaled(Q, K), 0.0))


def mw_multiplied_by_mask(Q, K, mask):
    return softmax(_scaled(Q, K) * mask)


def mw_transposed_mask(Q, K, mask):
    return softmax(np.where(mask.T, _scaled(Q, K), -np.inf))


def mw_no_scaling(Q, K, mask):
    return softmax(np.where(mask, Q @ K.T, -np.inf))


def mw_added(Q, K, mask):
    return softmax(_scaled(Q, K) + mask)


def mw_unstable(Q, K, mask):
    e = np.exp(np.where(mask, _scaled(Q, K), -np.inf))
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1)


def mw_unstable_unguarded(Q, K, mask):
    e = np.exp(np.where(mask, _scaled(Q, K), -np.inf))
    return e / e.sum(axis=-1, keepdims=True)


def mw_in_place(Q, K, mask):
    mask &= True
    Q /= np.sqrt(Q.shape[-1])
    return softmax(np.where(mask, Q @ K.T, -np.inf))


@pytest.mark.parametrize(
    "fn",
    [mw_where_inf, mw_einsum_where_inf, mw_own_safe_softmax, mw_large_then_zero_blocked_rows,
     mw_assign_in_copy, mw_zero_and_renormalise, mw_zero_with_where, mw_loops,
     mw_float32_aware],
    ids=name_of,
)
def test_masked_attention_weights_accepts(fn):
    result = check_masked_attention_weights(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    "fn", [mw_where_inf, mw_einsum_where_inf, mw_own_safe_softmax, mw_zero_and_renormalise],
    ids=name_of,
)
def test_masked_attention_weights_accepts_harder(fn):
    result = check_masked_attention_weights(fn, harder=True)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (mw_ignored, "mask-ignored", "ignore the mask"),
        (mw_inverted, "mask-inverted", "the mask is inverted"),
        (mw_inverted_large, "mask-inverted", "the mask is inverted"),
        (mw_zeroed_not_renormalised, "zeroed-not-renormalised", "no longer sum to 1"),
        (mw_blocked_zero, "blocked-scores-zero", "exp(0) = 1"),
        (mw_multiplied_by_mask, "blocked-scores-zero", "exp(0) = 1"),
        (mw_transposed_mask, "mask-transposed", "your mask is transposed"),
        (mw_no_scaling, "no-scaling", "no scaling"),
        (mw_added, "mask-added", "added the boolean mask"),
        (mw_unstable, "unstable-softmax", "not stable"),
        (mw_in_place, "mutation", "changed its input `Q`"),
        # a fully blocked row (a query that may attend to nothing) must get weights 0
        (mw_naive_softmax, "nan-blocked-row", "−∞ − (−∞) = NaN"),
        (mw_unstable_unguarded, "nan-blocked-row", "divide only where the row sum is above 0"),
        (mw_renormalised_without_guard, "nan-blocked-row", "fully blocked row"),
        (mw_large_negative, "large-negative", "equal weight 1/n"),
        (mw_large_negative_naive_softmax, "large-negative", "equal weight 1/n"),
        (mw_finfo_min, "large-negative", "equal weight 1/n"),
        (mw_subtract_large, "large-negative", "such as -1e9 in place of −∞"),
    ],
    ids=name_of,
)
@pytest.mark.parametrize("harder", [False, True])
def test_masked_attention_weights_rejects(fn, key, hint, harder):
    assert_rejected(check_masked_attention_weights, fn, key, hint, harder=harder)


@pytest.mark.parametrize("harder", [False, True])
def test_a_fully_blocked_row_is_checked_and_gets_zeros(harder):
    """The cases include a query that may attend to nothing; the reference gives it zeros."""
    blocked = [case for case in MASKED_ATTENTION_WEIGHTS.cases(harder)
               if not np.all(np.any(case.inputs["mask"], axis=-1))]
    assert len(blocked) == (3 if harder else 2)
    for case in blocked:
        weights = MASKED_ATTENTION_WEIGHTS.expected(case)[0]
        rows = ~np.any(case.inputs["mask"], axis=-1)
        assert np.array_equal(weights[..., rows, :], np.zeros_like(weights[..., rows, :]))
        assert np.allclose(weights[..., ~rows, :].sum(axis=-1), 1.0)


def test_the_first_blocked_row_case_comes_right_after_the_hand_worked_one():
    """A learner who gets blocked rows wrong sees the small hand-worked blocked case first."""
    feedback = check_masked_attention_weights(mw_large_negative).feedback
    assert "hand-worked, causal mask, the last query may attend to nothing" in feedback


# -- multi_head_self_attention -------------------------------------------------------------------


def mh_loop(X, W_Q, W_K, W_V, W_O, n_heads):
    d_head = X.shape[-1] // n_heads
    heads, weights = [], []
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        Q, K, V = X @ W_Q[:, cols], X @ W_K[:, cols], X @ W_V[:, cols]
        alpha = softmax(Q @ np.swapaxes(K, -1, -2) / np.sqrt(d_head))
        heads.append(alpha @ V)
        weights.append(alpha)
    return np.concatenate(heads, axis=-1) @ W_O, np.stack(weights, axis=-3)


def mh_reshape(X, W_Q, W_K, W_V, W_O, n_heads):
    n, d_model = X.shape
    d_head = d_model // n_heads

    def split(M):
        return M.reshape(n, n_heads, d_head).transpose(1, 0, 2)

    Q, K, V = split(X @ W_Q), split(X @ W_K), split(X @ W_V)
    weights = softmax(Q @ K.transpose(0, 2, 1) / math.sqrt(d_head))
    heads = weights @ V
    return heads.transpose(1, 0, 2).reshape(n, d_model) @ W_O, weights


def mh_einsum_list(X, W_Q, W_K, W_V, W_O, n_heads):
    n, d_model = X.shape
    d_head = d_model // n_heads
    Q, K, V = ((X @ W).reshape(n, n_heads, d_head) for W in (W_Q, W_K, W_V))
    weights = softmax(np.einsum("ihd,jhd->hij", Q, K) / np.sqrt(d_head))
    concat = np.einsum("hij,jhd->ihd", weights, V).reshape(n, d_model)
    return [concat @ W_O, weights]


def mh_split_weights_first(X, W_Q, W_K, W_V, W_O, n_heads):
    d_head = X.shape[-1] // n_heads
    outputs, weights = [], []
    for W_Qh, W_Kh, W_Vh in zip(np.split(W_Q, n_heads, axis=1), np.split(W_K, n_heads, axis=1),
                                np.split(W_V, n_heads, axis=1), strict=True):
        alpha = softmax((X @ W_Qh) @ (X @ W_Kh).T / d_head**0.5)
        outputs.append(alpha @ (X @ W_Vh))
        weights.append(alpha)
    return np.hstack(outputs) @ W_O, np.array(weights)


def mh_per_head_W_O(X, W_Q, W_K, W_V, W_O, n_heads):
    """concat(heads) W_O = Σ_h head_h W_O[rows of head h]: the same, summed per head."""
    d_head = X.shape[-1] // n_heads
    O = 0
    weights = []
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        alpha = softmax((X @ W_Q[:, cols]) @ (X @ W_K[:, cols]).T / np.sqrt(d_head))
        O = O + alpha @ (X @ W_V[:, cols]) @ W_O[cols]
        weights.append(alpha)
    return O, np.stack(weights)


def _split_no_transpose(M, n_heads):
    n, d_model = M.shape
    return M.reshape(n_heads, n, d_model // n_heads)


def mh_split_reshape(X, W_Q, W_K, W_V, W_O, n_heads):
    n, d_model = X.shape
    d_head = d_model // n_heads
    Q, K, V = (_split_no_transpose(X @ W, n_heads) for W in (W_Q, W_K, W_V))
    weights = softmax(Q @ K.transpose(0, 2, 1) / np.sqrt(d_head))
    return (weights @ V).transpose(1, 0, 2).reshape(n, d_model) @ W_O, weights


def mh_split_and_merge_reshape(X, W_Q, W_K, W_V, W_O, n_heads):
    n, d_model = X.shape
    d_head = d_model // n_heads
    Q, K, V = (_split_no_transpose(X @ W, n_heads) for W in (W_Q, W_K, W_V))
    weights = softmax(Q @ K.transpose(0, 2, 1) / np.sqrt(d_head))
    return (weights @ V).reshape(n, d_model) @ W_O, weights


def mh_merge_reshape(X, W_Q, W_K, W_V, W_O, n_heads):
    n, d_model = X.shape
    _, weights = mh_reshape(X, W_Q, W_K, W_V, W_O, n_heads)
    d_head = d_model // n_heads
    V = (X @ W_V).reshape(n, n_heads, d_head).transpose(1, 0, 2)
    return (weights @ V).reshape(n, d_model) @ W_O, weights


def mh_strided(X, W_Q, W_K, W_V, W_O, n_heads):
    heads, weights = [], []
    for h in range(n_heads):
        Q, K, V = X @ W_Q[:, h::n_heads], X @ W_K[:, h::n_heads], X @ W_V[:, h::n_heads]
        alpha = softmax(Q @ K.T / np.sqrt(Q.shape[1]))
        heads.append(alpha @ V)
        weights.append(alpha)
    return np.concatenate(heads, axis=-1) @ W_O, np.stack(weights)


def _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, *, scale=None, reverse=False, project=True,
                  weights_how="stack"):
    d_head = X.shape[-1] // n_heads
    heads, weights = [], []
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        Q, K, V = X @ W_Q[:, cols], X @ W_K[:, cols], X @ W_V[:, cols]
        alpha = softmax(Q @ K.T / np.sqrt(d_head if scale is None else scale))
        heads.append(alpha @ V)
        weights.append(alpha)
    if reverse:
        heads = heads[::-1]
    concat = np.concatenate(heads, axis=-1)
    O = concat @ W_O if project else concat
    stacked = np.stack(weights)
    if weights_how == "mean":
        return O, stacked.mean(axis=0)
    if weights_how == "last":
        return O, weights[-1]
    return O, stacked


def mh_d_model_scale(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, scale=X.shape[-1])


def mh_no_scale(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, scale=1.0)


def mh_no_W_O(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, project=False)


def mh_reversed(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, reverse=True)


def mh_averaged(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, weights_how="mean")


def mh_last_head(X, W_Q, W_K, W_V, W_O, n_heads):
    return _loop_variant(X, W_Q, W_K, W_V, W_O, n_heads, weights_how="last")


def mh_W_O_transposed(X, W_Q, W_K, W_V, W_O, n_heads):
    O, weights = mh_loop(X, W_Q, W_K, W_V, np.eye(X.shape[-1]), n_heads)
    return O @ W_O.T, weights


def mh_swapped(X, W_Q, W_K, W_V, W_O, n_heads):
    O, weights = mh_loop(X, W_Q, W_K, W_V, W_O, n_heads)
    return weights, O


def mh_unstable(X, W_Q, W_K, W_V, W_O, n_heads):
    d_head = X.shape[-1] // n_heads
    heads, weights = [], []
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        e = np.exp((X @ W_Q[:, cols]) @ (X @ W_K[:, cols]).T / np.sqrt(d_head))
        alpha = e / e.sum(axis=-1, keepdims=True)
        heads.append(alpha @ (X @ W_V[:, cols]))
        weights.append(alpha)
    return np.concatenate(heads, axis=-1) @ W_O, np.stack(weights)


@pytest.mark.parametrize(
    "fn",
    [mh_loop, mh_reshape, mh_einsum_list, mh_split_weights_first, mh_per_head_W_O],
    ids=name_of,
)
def test_multi_head_self_attention_accepts(fn):
    result = check_multi_head_self_attention(fn)
    assert result.passed, result.feedback


def test_multi_head_self_attention_accepts_harder():
    assert check_multi_head_self_attention(mh_loop, harder=True)
    assert not check_multi_head_self_attention(mh_reshape, harder=True)  # 2-D only


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (mh_split_reshape, "split-reshape-no-transpose", "split by a reshape without"),
        (mh_split_and_merge_reshape, "split-reshape-no-transpose", "split by a reshape without"),
        (mh_merge_reshape, "concat-reshape-no-transpose", "concatenated by a reshape without"),
        (mh_strided, "strided-split", "every n_heads-th column"),
        (mh_d_model_scale, "scaled-by-d_model", "√d_model"),
        (mh_no_scale, "no-scaling", "no scaling"),
        (mh_no_W_O, "W_O-missing", "output projection is missing"),
        (mh_W_O_transposed, "W_O-transposed", "W_Oᵀ"),
        (mh_reversed, "heads-out-of-order", "out of order"),
        (mh_averaged, "weights-averaged", "combined over the heads"),
        (mh_last_head, "weights-one-head", "one head only"),
        (mh_swapped, "wrong-order", "wrong order"),
        (mh_unstable, "unstable-softmax", "not stable"),
    ],
    ids=name_of,
)
def test_multi_head_self_attention_rejects(fn, key, hint):
    assert_rejected(check_multi_head_self_attention, fn, key, hint)


def test_feedback_shows_the_smallest_failing_case():
    feedback = check_masked_attention_weights(mw_blocked_zero).feedback
    assert "Smallest failing case" in feedback and "hand-worked" in feedback
    assert "Expected:" in feedback and "Received:" in feedback


# -- a mask of the wrong kind is named before any mistake is ranked ----------------------------


def mask_pytorch_additive(n):
    """What torch.nn.Transformer.generate_square_subsequent_mask(n) returns: 0 where token i
    may attend, −inf above the diagonal (a float mask, added to the scores)."""
    return np.triu(np.full((n, n), -np.inf), k=1)


def mask_additive_large_negative(n):
    return np.triu(np.full((n, n), -1e9), k=1)


@pytest.mark.parametrize("fn", [mask_pytorch_additive, mask_additive_large_negative],
                         ids=name_of)
def test_an_additive_float_mask_gets_its_own_hint(fn):
    result = check_causal_mask(fn)
    assert not result and result.diagnosis == "additive-mask", result.feedback
    assert "inverted" not in result.summary
    for words in ("added to the scores", "scaled_dot_product_attention", "True = may NOT attend",
                  "mask == 0", "not mask.astype(bool)"):
        assert words in result.hint, words
    np.testing.assert_array_equal(fn(5) == 0, np.tril(np.ones((5, 5), dtype=bool)))


@pytest.mark.parametrize(("fn", "holds"), [(mask_pytorch_additive, "0 and −inf"),
                                           (mask_additive_large_negative, "0 and −1e9")],
                         ids=name_of)
def test_the_additive_mask_hint_says_what_the_mask_holds(fn, holds):
    hint = check_causal_mask(fn).hint
    assert f"your mask holds {holds}:" in hint, hint
    if holds != "0 and −inf":
        assert "holds 0 and −inf" not in hint, hint


def test_the_large_negative_hint_says_where_it_differs_and_why():
    """−1e9 is what many libraries do: fine on every row but a fully blocked one."""
    hint = check_masked_attention_weights(mw_large_negative).hint
    for words in ("is fine on every row that may attend to something",
                  "only on a fully blocked row", "equal weight 1/n", "weights 0"):
        assert words in hint, words
