"""Checkers of exercise 08, masks and heads: `causal_mask(n)`, `masked_attention_weights(Q, K,
mask)` and `multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads) -> (O, weights)`.

Lesson: notebooks/08_masks_heads_and_applications.ipynb.
Exercise: exercises/08_masks_heads_and_applications.ipynb.
Tests: tests/test_checks_masks_heads_and_applications.py.

Every valid way passes: a blocked score set to −∞ before a softmax that gives a fully blocked
row (a query that may attend to nothing) zeros, or the weights zeroed after the softmax and
renormalised where the row sum is above 0; a loop over the heads or one reshape; a list instead of
a tuple. A very large negative number (−1e9) in place of −∞ is a known mistake: it gives a fully
blocked row equal weights instead of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake, T
from course_lib.checks.core import Checker
from course_lib.checks.diagnosis import LARGE_NEGATIVE_MASK
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = [
    "CAUSAL_MASK",
    "MASKED_ATTENTION_WEIGHTS",
    "MULTI_HEAD_SELF_ATTENTION",
    "check_causal_mask",
    "check_masked_attention_weights",
    "check_multi_head_self_attention",
]



# -- causal_mask(n) ------------------------------------------------------------------------------


def _mask_cases() -> list[Case]:
    return [Case(f"n = {n}", (("n", n),)) for n in (1, 2, 3, 4, 6)]


def _mask_harder() -> list[Case]:
    return [Case("n = 50", (("n", 50),))]


def _tri(n: int, k: int = 0, upper: bool = False) -> np.ndarray:
    ones = np.ones((n, n), dtype=bool)
    return np.triu(ones, k) if upper else np.tril(ones, k)


CAUSAL_MASK = Checker(
    function="causal_mask",
    outputs=("mask",),
    reference=attention.causal_mask,
    make_cases=_mask_cases,
    make_harder=_mask_harder,
    mistakes=(
        Mistake(
            "true-means-blocked",
            "your mask is inverted: True marks the blocked positions (the future). In the "
            "course, as in PyTorch, True means \"may attend\": token i may attend to every "
            "j <= i, so True on and below the diagonal (np.tril).",
            lambda n: ~_tri(n),
        ),
        Mistake(
            "future-instead-of-past",
            "your mask lets each token see the future instead of the past: row i is True for "
            "j >= i (np.triu, above the diagonal). A causal token i attends to j <= i: True on "
            "and below the diagonal, np.tril.",
            lambda n: _tri(n, upper=True),
        ),
        Mistake(
            "diagonal-excluded",
            "your mask excludes the diagonal: a token may always attend to itself (j = i), so "
            "the diagonal is True. Use np.tril(..., k=0), not k=-1.",
            lambda n: _tri(n, -1),
        ),
        Mistake(
            "future-diagonal-excluded",
            "your mask lets each token see only the future (j > i), and not itself: a causal "
            "token i attends to j <= i, True on and below the diagonal (np.tril).",
            lambda n: _tri(n, 1, upper=True),
        ),
        Mistake(
            "next-token-admitted",
            "your mask is off by one: it also lets token i see the next token, j = i + 1 "
            "(np.tril(..., k=1)). Position i may attend to j <= i only, never to a token after "
            "it: True on and below the diagonal, np.tril(..., k=0), the default.",
            lambda n: _tri(n, 1),
        ),
        Mistake(
            "all-true",
            "every position is True: that is the bidirectional (BERT-style) mask, which blocks "
            "nothing. The causal mask blocks the future: True only where j <= i (np.tril).",
            lambda n: np.ones((n, n), dtype=bool),
        ),
    ),
    hint="the causal mask is True where token i may attend to token j, that is where j <= i: "
    "np.tril(np.ones((n, n), dtype=bool)), shape (n, n), True on and below the diagonal.",
)


def check_causal_mask(
    causal_mask: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `causal_mask(n)`: boolean (n, n), True on and below the diagonal."""
    return CAUSAL_MASK.check(causal_mask, timeout=timeout, harder=harder)


# -- masked_attention_weights(Q, K, mask) --------------------------------------------------------


def _mw_case(name: str, Q: Any, K: Any, mask: Any) -> Case:
    return Case(name, (("Q", np.asarray(Q)), ("K", np.asarray(K)),
                       ("mask", np.asarray(mask, dtype=bool))))


def _random_pattern(seed: int, n_q: int, n_k: int) -> np.ndarray:
    """A boolean mask with no pattern, but at least one True in every row."""
    mask = np.random.default_rng(seed).random((n_q, n_k)) < 0.5
    mask[np.arange(n_q), np.arange(n_q) % n_k] = True
    return mask


def _with_blocked_row(mask: np.ndarray, row: int) -> np.ndarray:
    """`mask` with every position of `row` blocked: a query that may attend to nothing."""
    mask = np.array(mask, dtype=bool)
    mask[..., row, :] = False
    return mask


def _mw_cases() -> list[Case]:
    causal3 = attention.causal_mask(3)
    padding = np.ones((4, 4), dtype=bool)
    padding[:, 3] = False  # the last token is padding: nobody attends to it
    # scaled scores near 1000, blocked ones a little above the allowed: overflow without the
    # max subtraction, yet fine for zeroing and renormalising after a stable softmax
    big_Q = np.array([[30.0, 10.0], [31.0, -10.0], [32.0, 0.0]])
    big_K = np.array([[47.0, 0.0], [47.5, 1.0], [48.0, -1.0]])
    return [
        _mw_case("hand-worked, causal mask, n = 3, d_k = 2",
                 [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 1.0], [1.0, -1.0]],
                 causal3),
        # weights 0 on the blocked row: NaN from −∞ − (−∞) or 0 / 0, equal weights from −1e9
        _mw_case("hand-worked, causal mask, the last query may attend to nothing (a fully "
                 "blocked row), n = 3, d_k = 2",
                 [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 1.0], [1.0, -1.0]],
                 _with_blocked_row(causal3, 2)),
        _mw_case("random, causal mask, n = 4, d_k = 3", random_normal(700, 4, 3),
                 random_normal(701, 4, 3), attention.causal_mask(4)),
        _mw_case("random, padding mask (nobody attends to the last token), n = 4, d_k = 2",
                 random_normal(702, 4, 2, scale=2), random_normal(703, 4, 2, scale=2), padding),
        _mw_case("random, a mask without pattern, n = 5, d_k = 4", random_normal(704, 5, 4),
                 random_normal(705, 5, 4), _random_pattern(706, 5, 5)),
        _mw_case("random, mask all True (bidirectional), n = 3, d_k = 4",
                 random_normal(707, 3, 4), random_normal(708, 3, 4), np.ones((3, 3), bool)),
        _mw_case("2 queries, 4 keys, mask 2 × 4", random_normal(709, 2, 3),
                 random_normal(710, 4, 3), _random_pattern(711, 2, 4)),
        _mw_case("float32, causal mask, n = 4, d_k = 2",
                 random_normal(712, 4, 2, dtype=np.float32),
                 random_normal(713, 4, 2, dtype=np.float32), attention.causal_mask(4)),
        _mw_case("random, a fully blocked row (query 1) in a mask without pattern, n = 5, "
                 "d_k = 3", random_normal(716, 5, 3), random_normal(717, 5, 3),
                 _with_blocked_row(_random_pattern(718, 5, 5), 1)),
        _mw_case("scaled scores near 1000, causal mask", big_Q, big_K, causal3),
    ]


def _mw_harder() -> list[Case]:
    padded = np.ones((4, 4), dtype=bool)
    padded[:, 3] = False  # token 3 is padding: nobody attends to it, and it attends to nothing
    return [
        _mw_case("a batch of 2 sequences sharing one causal mask, n = 3, d_k = 2",
                 random_normal(714, 2, 3, 2), random_normal(715, 2, 3, 2),
                 attention.causal_mask(3)),
        _mw_case("a batch of 2 sequences sharing one padding mask (query 3 and key 3 are "
                 "padding: a fully blocked row), n = 4, d_k = 2",
                 random_normal(791, 2, 4, 2), random_normal(792, 2, 4, 2),
                 _with_blocked_row(padded, 3)),
    ]


def _scaled(Q: np.ndarray, K: np.ndarray, scale: bool = True) -> np.ndarray:
    A = Q.astype(np.float64) @ T(K.astype(np.float64))
    return A / math.sqrt(Q.shape[-1]) if scale else A


def _stable(scores: np.ndarray) -> np.ndarray:
    """Softmax of each row, with a row of −∞ only giving NaN (what a learner's code gives)."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _blocked(scores: np.ndarray, allowed: np.ndarray, style: str) -> np.ndarray:
    """softmax with the positions where `allowed` is False blocked, the way a learner may do it.

    "inf": −∞ before the softmax (a fully blocked row is NaN), "large": −1e9 (a fully blocked
    row is uniform), "reference": the course's (a fully blocked row is zeros).
    """
    if style == "reference":
        return attention.softmax(np.where(allowed, scores, -np.inf))
    return _stable(np.where(allowed, scores, -np.inf if style == "inf" else -1e9))


_STYLES = ("inf", "large", "reference")


def _with_mask(key: str, hint: str, wrong_mask: Callable[[np.ndarray], np.ndarray],
               scale: bool = True) -> list[Mistake]:
    """The mistake `key` under every way of blocking: −∞, a large negative number, reference."""
    def make(style: str) -> Callable[..., np.ndarray]:
        def variant(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return _blocked(_scaled(Q, K, scale), wrong_mask(np.asarray(mask)), style)
        return variant

    return [Mistake(key, hint, make(style)) for style in _STYLES]


def _unnormalised(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return attention.softmax(_scaled(Q, K)) * mask


def _zero_scores(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return attention.softmax(np.where(mask, _scaled(Q, K), 0.0))


def _unstable(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """No max subtraction (large scores overflow), yet a fully blocked row right (zeros): the
    mistake on its own, so that NaN on a blocked row alone is not blamed on it."""
    e = np.exp(np.where(mask, _scaled(Q, K), -np.inf))
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1)


def _large_negative(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """np.where(mask, scores, -1e9): a fully blocked row gets equal weights 1/n_k."""
    return _blocked(_scaled(Q, K), mask, "large")


def _large_subtracted(Q: np.ndarray, K: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scores − 1e9 · (not mask): a fully blocked row gets the softmax of its own scores."""
    return _stable(_scaled(Q, K) - 1e9 * ~np.asarray(mask))


_INVERTED = (
    "you blocked the positions where the mask is True and kept those where it is False: the "
    "mask is inverted. True means \"may attend\": keep the scores where mask is True and set "
    "the others to −∞, np.where(mask, scores, -np.inf)."
)

MASKED_ATTENTION_WEIGHTS = Checker(
    function="masked_attention_weights",
    outputs=("weights",),
    reference=attention.attention_weights,
    make_cases=_mw_cases,
    make_harder=_mw_harder,
    mistakes=(
        Mistake(
            "mask-ignored",
            "your weights ignore the mask: every position got a weight. Blocked positions "
            "(mask False) must get weight exactly 0: set their scaled scores to −∞ before the "
            "softmax, np.where(mask, scores, -np.inf).",
            lambda Q, K, mask: attention.softmax(_scaled(Q, K)),
        ),
        *_with_mask("mask-inverted", _INVERTED, lambda mask: ~mask),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, _large_negative),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, _large_subtracted),
        Mistake(
            "zeroed-not-renormalised",
            "you zeroed the blocked weights after the softmax, but the remaining weights no "
            "longer sum to 1 (the blocked ones took their share of the softmax). Set blocked "
            "scores to −∞ before the softmax instead, or divide each row by its new sum.",
            _unnormalised,
        ),
        Mistake(
            "blocked-scores-zero",
            "you set the blocked scores to 0, but a score of 0 still gets weight exp(0) = 1 in "
            "the softmax: blocked tokens still receive attention. Set them to −∞ "
            "(np.where(mask, scores, -np.inf)): exp(−∞) = 0.",
            _zero_scores,
        ),
        *_with_mask(
            "mask-transposed",
            "your mask is transposed: mask[i, j] says whether query i may attend to key j, so "
            "it lines up with the scores Q Kᵀ as it is. Do not transpose it.",
            lambda mask: T(mask),
        ),
        *_with_mask(
            "no-scaling",
            "no scaling: divide the scores by √d_k before masking and the softmax, "
            "softmax(Q Kᵀ / √d_k), with d_k = Q.shape[-1].",
            lambda mask: mask, scale=False,
        ),
        Mistake(
            "mask-added",
            "you added the boolean mask to the scores (True counts as 1): that shifts the "
            "allowed scores by 1 and blocks nothing. Use it to choose: "
            "np.where(mask, scores, -np.inf).",
            lambda Q, K, mask: attention.softmax(_scaled(Q, K) + mask),
        ),
        Mistake(
            "unstable-softmax",
            "your softmax is not stable: with large scores np.exp overflows (inf / inf = NaN). "
            "Subtract the row maximum (of the masked scores) before np.exp.",
            _unstable,
        ),
    ),
    hint="weights = softmax(Ã) along each row, where Ã = Q Kᵀ / √d_k with the blocked scores "
    "(mask False) set to −∞ first: np.where(mask, scores, -np.inf). Blocked positions get weight "
    "0, a row with an allowed position sums to 1, and a fully blocked row is all zeros.",
    nan_hint="your weights contain NaN or inf: the softmax overflowed (subtract the row maximum "
    "before np.exp), or a row had all its scores blocked (check that True means \"may attend\").",
)


def check_masked_attention_weights(
    masked_attention_weights: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `masked_attention_weights(Q, K, mask)`: softmax(Q Kᵀ / √d_k) with the
    positions where mask is False blocked (−∞) before the softmax."""
    return MASKED_ATTENTION_WEIGHTS.check(masked_attention_weights, timeout=timeout,
                                          harder=harder)


# -- multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads) -----------------------------------


def _mh_case(name: str, seed: int, n: int, d_model: int, n_heads: int, scale: float = 1.0,
             dtype: Any = float, batch: tuple[int, ...] = ()) -> Case:
    return Case(name, (
        ("X", random_normal(seed, *batch, n, d_model, scale=scale, dtype=dtype)),
        ("W_Q", random_normal(seed + 1, d_model, d_model, dtype=dtype)),
        ("W_K", random_normal(seed + 2, d_model, d_model, dtype=dtype)),
        ("W_V", random_normal(seed + 3, d_model, d_model, dtype=dtype)),
        ("W_O", random_normal(seed + 4, d_model, d_model, dtype=dtype)),
        ("n_heads", n_heads),
    ))


def _mh_cases() -> list[Case]:
    eye = np.eye(4)
    hand = Case("hand-worked, n = 2, d_model = 4, n_heads = 2", (
        ("X", np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0]])),
        ("W_Q", eye * 2.0),
        ("W_K", eye),
        ("W_V", np.arange(16.0).reshape(4, 4) / 8),
        ("W_O", eye[::-1]),
        ("n_heads", 2),
    ))
    return [
        hand,
        _mh_case("random, n = 3, d_model = 4, n_heads = 2", 720, 3, 4, 2),
        _mh_case("random, n = 3, d_model = 6, n_heads = 2", 730, 3, 6, 2),
        _mh_case("random, n = 4, d_model = 6, n_heads = 3", 740, 4, 6, 3),
        _mh_case("random, one head: n = 3, d_model = 4, n_heads = 1", 750, 3, 4, 1),
        _mh_case("random, n = 5, d_model = 8, n_heads = 4", 760, 5, 8, 4),
        _mh_case("float32, n = 4, d_model = 4, n_heads = 2", 770, 4, 4, 2, dtype=np.float32),
        _mh_case("large embeddings, scaled scores in the hundreds, n = 3, d_model = 4, "
                 "n_heads = 2", 780, 3, 4, 2, scale=12),
    ]


def _mh_harder() -> list[Case]:
    return [_mh_case("a batch of 2 sequences, n = 3, d_model = 4, n_heads = 2", 790, 3, 4, 2,
                     batch=(2,))]


def _mha(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray,
    n_heads: int, *, split: str = "blocks", merge: str = "transpose", scale: str = "d_head",
    order: str = "in-order", project: str = "W_O", weights_out: str = "all", stable: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head attention with one step done one way or another (the wrong variants)."""
    X = X.astype(np.float64)
    n, d_model = X.shape[-2], X.shape[-1]
    d_head = d_model // n_heads

    def heads_of(M: np.ndarray) -> np.ndarray:  # (..., n, d_model) -> (..., n_heads, n, d_head)
        if split == "reshape":  # no transpose: the rows get mixed up between heads
            return M.reshape(*M.shape[:-2], n_heads, n, d_head)
        if split == "strided":  # head h takes the columns h, h + n_heads, h + 2 n_heads, ...
            return np.swapaxes(M.reshape(*M.shape[:-1], d_head, n_heads), -1, -2).swapaxes(-2, -3)
        return np.swapaxes(M.reshape(*M.shape[:-1], n_heads, d_head), -2, -3)

    Q, K, V = (heads_of(X @ W) for W in (W_Q, W_K, W_V))
    width = {"d_head": d_head, "d_model": d_model, "none": 1}[scale]
    scores = Q @ T(K) / math.sqrt(width)
    weights = _stable(scores) if stable else np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    heads = weights @ V  # (..., n_heads, n, d_head)
    if order == "reversed":
        heads = heads[..., ::-1, :, :]
    if merge == "reshape":
        concat = heads.reshape(*heads.shape[:-3], n, d_model)
    else:
        concat = np.swapaxes(heads, -2, -3).reshape(*heads.shape[:-3], n, d_model)
    O = {"W_O": concat @ W_O, "none": concat, "W_O-T": concat @ T(W_O)}[project]
    if weights_out == "mean":
        weights = weights.mean(axis=-3)
    elif weights_out == "last":
        weights = weights[..., -1, :, :]
    elif weights_out == "sum":
        weights = weights.sum(axis=-3)
    return O, weights


def _mh(**how: Any) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def variant(X: Any, W_Q: Any, W_K: Any, W_V: Any, W_O: Any, n_heads: int) -> Any:
        return _mha(X, W_Q, W_K, W_V, W_O, n_heads, **how)

    return variant


_SPLIT = (
    "your heads are split by a reshape without a transpose: Q.reshape(n_heads, n, d_head) mixes "
    "the rows of different tokens into one head. Head h is the column block "
    "Q[:, h*d_head:(h+1)*d_head]: reshape to (n, n_heads, d_head), then transpose to "
    "(n_heads, n, d_head), or slice the columns in a loop over the heads."
)
_MERGE = (
    "your heads are concatenated by a reshape without a transpose: heads of shape "
    "(n_heads, n, d_head) reshaped to (n, d_model) mix up the rows of different tokens. Put the "
    "heads side by side for each token: transpose to (n, n_heads, d_head) first, then reshape, "
    "or np.concatenate(list_of_heads, axis=-1)."
)
_AVERAGED = (
    "your weights are combined over the heads into one (n, n) matrix. Return every head's "
    "weights, stacked in head order: shape (n_heads, n, n), weights[h] the α of head h."
)

MULTI_HEAD_SELF_ATTENTION = Checker(
    function="multi_head_self_attention",
    outputs=("O", "weights"),
    reference=attention.multi_head_self_attention,
    make_cases=_mh_cases,
    make_harder=_mh_harder,
    mistakes=(
        Mistake(
            "wrong-order",
            "outputs and weights are returned in the wrong order: return (O, weights).",
            lambda *args: _mha(*args)[::-1],
        ),
        Mistake("split-reshape-no-transpose", _SPLIT, _mh(split="reshape")),
        Mistake("split-reshape-no-transpose", _SPLIT, _mh(split="reshape", merge="reshape")),
        Mistake("concat-reshape-no-transpose", _MERGE, _mh(merge="reshape")),
        Mistake(
            "strided-split",
            "head h must use the block of columns h*d_head .. (h+1)*d_head - 1 of W_Q, W_K and "
            "W_V (contiguous blocks, in order); you took every n_heads-th column "
            "(a reshape to (n, d_head, n_heads)). Reshape to (n, n_heads, d_head) instead.",
            _mh(split="strided"),
        ),
        Mistake(
            "scaled-by-d_model",
            "you scaled by √d_model; each head scales by the width of its own queries and keys, "
            "√d_head with d_head = d_model / n_heads.",
            _mh(scale="d_model"),
        ),
        Mistake(
            "no-scaling",
            "no scaling: each head's scores are divided by √d_head before the softmax, "
            "softmax(Q_h K_hᵀ / √d_head), with d_head = d_model / n_heads.",
            _mh(scale="none"),
        ),
        Mistake(
            "W_O-missing",
            "the output projection is missing: after concatenating the heads, multiply by W_O, "
            "O = concat(head_0, ..., head_{n_heads-1}) W_O.",
            _mh(project="none"),
        ),
        Mistake(
            "W_O-transposed",
            "you multiplied by W_Oᵀ; the output projection is concat(heads) @ W_O, "
            "not transposed.",
            _mh(project="W_O-T"),
        ),
        Mistake(
            "heads-out-of-order",
            "your heads are concatenated out of order (last head first): concatenate them in "
            "head order, head 0 first, so that head h fills the columns h*d_head .. "
            "(h+1)*d_head - 1 before W_O.",
            _mh(order="reversed"),
        ),
        Mistake("weights-averaged", _AVERAGED, _mh(weights_out="mean")),
        Mistake("weights-averaged", _AVERAGED, _mh(weights_out="sum")),
        Mistake(
            "weights-one-head",
            "you returned the weights of one head only (the last one of your loop?): return "
            "every head's weights, stacked in head order, shape (n_heads, n, n) (np.stack).",
            _mh(weights_out="last"),
        ),
        Mistake(
            "unstable-softmax",
            "your softmax is not stable: with large scores np.exp overflows (inf / inf = NaN). "
            "Subtract the row maximum before np.exp.",
            _mh(stable=False),
        ),
    ),
    hint="with d_head = d_model / n_heads, head h uses the columns h*d_head .. (h+1)*d_head - 1 "
    "of Q = X W_Q, K = X W_K, V = X W_V: head_h = softmax(Q_h K_hᵀ / √d_head) V_h. Concatenate "
    "the heads in order, multiply by W_O, and return (O, weights) with weights of shape "
    "(n_heads, n, n).",
    nan_hint="your result contains NaN or inf: the softmax overflowed. Subtract the row "
    "maximum of each head's scaled scores before np.exp.",
)


def check_multi_head_self_attention(
    multi_head_self_attention: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads)`, which must
    return (O, weights) with weights of shape (n_heads, n, n)."""
    return MULTI_HEAD_SELF_ATTENTION.check(multi_head_self_attention, timeout=timeout,
                                           harder=harder)
