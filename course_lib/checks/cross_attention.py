"""Checkers of exercise 13, cross-attention:
`cross_attention(X_q, X_kv, W_Q, W_K, W_V, mask=None) -> (O, weights)` and
`cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None) -> (dX_q, dX_kv, dW_Q, dW_K,
dW_V)`.

Queries come from one sequence (X_q, n_q tokens: a decoder's), keys and values from another
(X_kv, n_k tokens: an encoder's outputs), so the weights are a rectangle (n_q, n_k). Most cases
have n_q ≠ n_k, so that the rectangle's two axes cannot be confused without a wrong shape; a
few are square, so that a mistake that only mixes up the axes also shows as wrong values. Some
cases pass a padding mask of the keys, (B, 1, n_k) as `attention.padding_mask` builds it, and one
a batch whose second source is all padding: every query of that sequence may attend to nothing.

The classic mistakes each have their own hint: keys and values taken from X_q (the decoder's
self-attention), the queries from X_kv, the causal mask applied, the mask applied along the
queries, the softmax over the queries (columns sum to 1), √d_k taken from another size (n_k,
d_model, d_v) or left out, K and V swapped, the weights zeroed after the softmax instead of
blocked before it, .T on a batch.

Every valid way passes: loops, einsum, the weights zeroed after the softmax and renormalised,
a list instead of a tuple. As in the checkers of exercises 05 and 08, a very large negative
number (−1e9) in place of −∞ is right on every row that may attend to something and a known
mistake only on a fully blocked row, which it gives equal weights instead of zeros (the
shared hint `LARGE_NEGATIVE_MASK`).

The backward pass is self-attention's (exercise 05) but for its last step: X_q feeds only the
queries and X_kv both the keys and the values, so dX_kv = dK W_Kᵀ + dV W_Vᵀ. Its mistakes: one
of those two paths forgotten, the key and value paths added to dX_q (self-attention's dX), dV or
dK not transposed, the scale or the softmax's backward left out, the mask ignored or −1e9, the
weights' gradients not summed over the batch, and (harder) an X_kv shared by a batch of target
sequences given one gradient per copy instead of their sum.

Reference: course_lib/attention.py (`cross_attention`, `cross_attention_backward`).
Lesson: notebooks/13_cross_attention.ipynb. Exercise: exercises/13_cross_attention.ipynb.
Tests: tests/test_checks_cross_attention.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake, T
from course_lib.checks.core import Checker
from course_lib.checks.diagnosis import LARGE_NEGATIVE_MASK
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = ["CROSS_ATTENTION", "CROSS_ATTENTION_BACKWARD", "check_cross_attention",
           "check_cross_attention_backward"]


# -- the cases ---------------------------------------------------------------------------------


def _case(name: str, seed: int, n_q: int, n_k: int, d_model: int, d_k: int, d_v: int, *,
          batch: tuple[int, ...] = (), kv_batch: tuple[int, ...] | None = None,
          scale: float = 1.0, dtype: Any = float, mask: Any = None) -> Case:
    """Random inputs of the given sizes (X_q (*batch, n_q, d_model), X_kv (*kv_batch, n_k,
    d_model)) and the mask, when given, as the keyword `mask`."""
    kv_batch = batch if kv_batch is None else kv_batch
    args = (
        ("X_q", random_normal(seed, *batch, n_q, d_model, scale=scale, dtype=dtype)),
        ("X_kv", random_normal(seed + 1, *kv_batch, n_k, d_model, scale=scale, dtype=dtype)),
        ("W_Q", random_normal(seed + 2, d_model, d_k, dtype=dtype)),
        ("W_K", random_normal(seed + 3, d_model, d_k, dtype=dtype)),
        ("W_V", random_normal(seed + 4, d_model, d_v, dtype=dtype)),
    )
    return Case(name, args, {} if mask is None else {"mask": np.asarray(mask, dtype=bool)})


def _padding(*lengths: int, n_k: int) -> np.ndarray:
    """The padding mask (B, 1, n_k) of a batch of sources with these numbers of real words."""
    return attention.padding_mask(np.arange(n_k) < np.array(lengths)[:, None])


def _pattern(seed: int, n_q: int, n_k: int) -> np.ndarray:
    """A boolean (n_q, n_k) mask with no pattern, at least one True in every row."""
    mask = np.random.default_rng(seed).random((n_q, n_k)) < 0.5
    mask[np.arange(n_q), np.arange(n_q) % n_k] = True
    return mask


def _cases() -> list[Case]:
    hand = Case("hand-worked, 2 queries, 3 keys, d_model = d_k = d_v = 2", (
        ("X_q", np.array([[1.0, 0.0], [0.0, 2.0]])),
        ("X_kv", np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])),
        ("W_Q", np.array([[1.0, 0.0], [0.0, 1.0]])),
        ("W_K", np.array([[1.0, 1.0], [0.0, 1.0]])),
        ("W_V", np.array([[1.0, 2.0], [0.0, 1.0]])),
    ))
    return [
        hand,
        _case("random, 3 queries, 5 keys, d_model = 6, d_k = 2, d_v = 4", 1300, 3, 5, 6, 2, 4),
        _case("random, 4 queries, 2 keys (more queries than keys), d_model = 5, d_k = d_v = 3",
              1310, 4, 2, 5, 3, 3),
        _case("square, 3 queries and 3 keys, d_model = 4, d_k = 2, d_v = 3", 1320, 3, 3, 4, 2, 3),
        _case("a mask (n_q, n_k) without pattern, 3 queries, 4 keys, d_model = 5, d_k = 2, "
              "d_v = 3", 1330, 3, 4, 5, 2, 3, mask=_pattern(1335, 3, 4)),
        _case("a batch of 2 sources, padded: the second has 3 real words of 5, padding mask "
              "(B, 1, n_k); 3 queries, d_model = 4, d_k = 2, d_v = 3", 1340, 3, 5, 4, 2, 3,
              batch=(2,), mask=_padding(5, 3, n_k=5)),
        _case("a batch of 2 sources, padded (4 and 2 real words of 4), padding mask (B, 1, n_k); "
              "square: 4 queries, 4 keys, d_model = 3, d_k = 2, d_v = 2", 1350, 4, 4, 3, 2, 2,
              batch=(2,), mask=_padding(4, 2, n_k=4)),
        _case("a batch whose second source is all padding (its queries may attend to nothing: "
              "fully blocked rows); 2 queries, 3 keys, d_model = 4, d_k = 2, d_v = 5", 1360,
              2, 3, 4, 2, 5, batch=(2,), mask=_padding(3, 0, n_k=3)),
        _case("float32, 3 queries, 4 keys, d_model = 5, d_k = 3, d_v = 2", 1370, 3, 4, 5, 3, 2,
              dtype=np.float32),
        _case("large embeddings: scaled scores above 1000 (exp overflows), 2 queries, 3 keys, "
              "d_model = 4, d_k = 4, d_v = 2", 1385, 2, 3, 4, 4, 2, scale=15),
    ]


def _harder() -> list[Case]:
    return [
        _case("a batch of 2 target sequences reading one source (X_kv without batch axis), "
              "3 queries, 4 keys, d_model = 4, d_k = 2, d_v = 3", 1390, 3, 4, 4, 2, 3,
              batch=(2,), kv_batch=()),
        _case("a batch of 2 × 2, padding mask (2, 2, 1, n_k), 2 queries, 3 keys, d_model = 3, "
              "d_k = d_v = 2", 1400, 2, 3, 3, 2, 2, batch=(2, 2),
              mask=_padding(3, 2, 1, 3, n_k=3).reshape(2, 2, 1, 3)),
    ]


# -- right and wrong ways to compute it --------------------------------------------------------


def _softmax(scores: np.ndarray, allowed: np.ndarray | None, style: str,
             axis: int = -1) -> np.ndarray:
    """softmax along `axis` with the positions where `allowed` is False blocked, as a learner
    may do it: "reference" (−∞, a fully blocked row gives zeros), "inf" (−∞ and a plain stable
    softmax: a fully blocked row is NaN), "large" (−1e9: a fully blocked row is uniform),
    "subtracted" (scores − 1e9 · not allowed), "after" (zeroed after the softmax, not
    renormalised), "unstable" (no max subtracted; a fully blocked row zeros)."""
    if allowed is None:
        allowed = np.ones(scores.shape, dtype=bool)
    if style == "reference":
        return attention.softmax(np.where(allowed, scores, -np.inf), axis=axis)
    if style == "after":
        return attention.softmax(scores, axis=axis) * allowed
    if style == "unstable":
        e = np.exp(np.where(allowed, scores, -np.inf))
        total = e.sum(axis=axis, keepdims=True)
        return e / np.where(total > 0, total, 1)
    if style == "subtracted":
        blocked = scores - 1e9 * ~np.asarray(allowed)
    else:
        blocked = np.where(allowed, scores, -np.inf if style == "inf" else -1e9)
    e = np.exp(blocked - blocked.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _cross(X_q: np.ndarray, X_kv: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray,
           W_V: np.ndarray, mask: np.ndarray | None = None, *, queries: str = "X_q",
           keys: str = "X_kv", swap_kv: bool = False, project_v: bool = True,
           d_k: str = "d_k", axis: int = -1, style: str = "reference", causal: bool = False,
           mask_on: str = "keys", transpose: str = "swapaxes", k_q: bool = False,
           order: str = "O, weights") -> tuple[np.ndarray, np.ndarray]:
    """cross_attention, right or with one known mistake (the keyword arguments)."""
    sources = {"X_q": X_q, "X_kv": X_kv}
    Q = sources[queries] @ W_Q
    K = sources[keys] @ (W_V if swap_kv else W_K)
    V = sources[keys] @ (W_K if swap_kv else W_V) if project_v else sources[keys]
    if k_q:
        Q, K = K, Q
    K_t = K.T if transpose == ".T" else T(K)
    size = {"d_k": Q.shape[-1], "n_k": K.shape[-2], "d_model": X_q.shape[-1],
            "d_v": W_V.shape[-1], "none": 1}[d_k]
    scores = Q @ K_t / math.sqrt(size)
    allowed = None if mask is None or style == "ignored" else np.asarray(mask)
    if allowed is not None and mask_on == "queries":
        allowed = T(allowed)
    if causal:
        triangle = np.tril(np.ones(scores.shape[-2:], dtype=bool))
        allowed = triangle if allowed is None else allowed & triangle
    weights = _softmax(scores, allowed, "reference" if style == "ignored" else style, axis)
    O = weights @ V
    return (weights, O) if order == "weights, O" else (O, weights)


_BLOCKING = ("inf", "large", "reference")


def _every_blocking(key: str, hint: str, **wrong: Any) -> list[Mistake]:
    """The mistake `key` under every way of blocking: −∞, −1e9, the course's softmax."""
    return [Mistake(key, hint, partial(_cross, style=style, **wrong)) for style in _BLOCKING]


# -- the hints ---------------------------------------------------------------------------------

_KV_FROM_QUERIES = (
    "your keys and values come from X_q: that is the decoder's self-attention, each target "
    "token looking at the target tokens. In cross-attention the queries come from X_q and the "
    "keys and values from the other sequence: K = X_kv W_K and V = X_kv W_V (n_k rows, one per "
    "source token), so the weights are a rectangle (n_q, n_k), one row per query and one "
    "column per source token."
)
_QUERIES_FROM_KV = (
    "your queries come from X_kv: the sequence that asks is X_q (the decoder's tokens), so "
    "Q = X_q W_Q, with n_q rows; the keys and values come from X_kv. Your output should have "
    "one row per query, (n_q, d_v), and the weights (n_q, n_k)."
)
_ROLES_SWAPPED = (
    "X_q and X_kv play each other's part: the queries come from X_q (Q = X_q W_Q) and the keys "
    "and values from X_kv (K = X_kv W_K, V = X_kv W_V). The weights are (n_q, n_k): one row "
    "per query, one column per source token."
)
_CAUSAL = (
    "your weights are causal: query i sees only the keys j <= i. The causal mask belongs to "
    "the decoder's self-attention, where token i must not see the target tokens after it. In "
    "cross-attention the keys are the source, which is known in full before the first target "
    "token is written: every query may attend to every source token. Use only the mask you are "
    "given (none when mask is None)."
)
_MASK_ON_QUERIES = (
    "your mask is applied along the queries (transposed): mask[..., i, j] says whether query i "
    "may attend to key j, and a padding mask of the source, (B, 1, n_k), blocks the padded "
    "keys (columns) for every query, by broadcasting as it is. Transposed, (B, n_k, 1), it "
    "blocks whole rows instead, the queries that sit at the padded positions, and leaves the "
    "padded keys attended (and it does not even broadcast when n_q ≠ n_k). Do not transpose "
    "it: np.where(mask, scores, -np.inf)."
)
_WRONG_AXIS = (
    "your softmax runs over the queries (axis -2): the columns of your weights sum to 1. Each "
    "query distributes its attention over the n_k source tokens, so each row sums to 1: "
    "softmax along the last axis, axis=-1 (keepdims=True for its max and sum)."
)
_SCALED_BY_N_K = (
    "you scaled by √n_k, the number of source tokens; the scale is √d_k, the width of the "
    "queries and keys (d_k = W_Q.shape[1] = Q.shape[-1]). The length of the source does not "
    "change the variance of one score q_i · k_j; its width d_k does."
)
_SCALED_BY_D_MODEL = (
    "you scaled by √d_model, the width of the embeddings X_q and X_kv; the scale is √d_k, the "
    "width of the queries and keys after the projection (d_k = W_Q.shape[1] = Q.shape[-1])."
)
_SCALED_BY_D_V = (
    "you scaled by √d_v, the width of the values (W_V.shape[1]); the scale is √d_k, the width "
    "of the queries and keys whose dot products are scaled (d_k = W_Q.shape[1] = Q.shape[-1]). "
    "d_v may differ from d_k."
)
_NO_SCALING = (
    "no scaling: divide the scores by √d_k before the mask and the softmax, "
    "softmax(Q Kᵀ / √d_k), with d_k = Q.shape[-1]."
)
_KV_SWAPPED = (
    "K and V are swapped: the keys, compared with the queries, are K = X_kv W_K (width d_k), "
    "and the values, averaged into the output, are V = X_kv W_V (width d_v)."
)
_ZEROED_AFTER = (
    "you zeroed the blocked weights after the softmax, so the remaining weights of a row no "
    "longer sum to 1 (the blocked keys took their share of the softmax). Block the scores "
    "before the softmax, np.where(mask, scores, -np.inf), or divide each row by its new sum "
    "(where that sum is above 0)."
)
_MASK_IGNORED = (
    "your weights ignore the mask: padded source tokens received attention. Blocked positions "
    "(mask False) must get weight 0: set their scaled scores to −∞ before the softmax, "
    "np.where(mask, scores, -np.inf), when mask is not None."
)
_DOT_T = (
    "on a batch, `.T` reverses every axis: K.T of shape (B, n_k, d_k) is (d_k, n_k, B), not a "
    "batch of Kᵀ. Swap only the last two axes: `np.swapaxes(K, -1, -2)` (or "
    "np.einsum('...qd,...kd->...qk', Q, K))."
)
_K_Q = (
    "you computed the scores as K Qᵀ, (n_k, n_q); they are Q Kᵀ, (n_q, n_k): "
    "a_ij = q_i · k_j, one row per query."
)
_V_NOT_PROJECTED = (
    "the values are not projected: O = α V with V = X_kv W_V, not α X_kv."
)
_ORDER = "outputs and weights are returned in the wrong order: return (O, weights)."
_UNSTABLE = (
    "your softmax is not stable: with large scores np.exp overflows (inf / inf = NaN). "
    "Subtract each row's maximum (of the masked scores) before np.exp."
)


CROSS_ATTENTION = Checker(
    function="cross_attention",
    outputs=("O", "weights"),
    reference=attention.cross_attention,
    make_cases=_cases,
    make_harder=_harder,
    mistakes=(
        Mistake("wrong-order", _ORDER, partial(_cross, order="weights, O")),
        *_every_blocking("kv-from-queries", _KV_FROM_QUERIES, keys="X_q"),
        *_every_blocking("queries-from-kv", _QUERIES_FROM_KV, queries="X_kv"),
        *_every_blocking("roles-swapped", _ROLES_SWAPPED, queries="X_kv", keys="X_q"),
        *_every_blocking("causal-mask", _CAUSAL, causal=True),
        *_every_blocking("mask-on-queries", _MASK_ON_QUERIES, mask_on="queries"),
        *_every_blocking("softmax-over-queries", _WRONG_AXIS, axis=-2),
        *_every_blocking("scaled-by-n_k", _SCALED_BY_N_K, d_k="n_k"),
        *_every_blocking("scaled-by-d_model", _SCALED_BY_D_MODEL, d_k="d_model"),
        *_every_blocking("scaled-by-d_v", _SCALED_BY_D_V, d_k="d_v"),
        *_every_blocking("no-scaling", _NO_SCALING, d_k="none"),
        *_every_blocking("K-V-swapped", _KV_SWAPPED, swap_kv=True),
        Mistake("zeroed-after-softmax", _ZEROED_AFTER, partial(_cross, style="after")),
        Mistake("mask-ignored", _MASK_IGNORED, partial(_cross, style="ignored")),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, partial(_cross, style="large")),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, partial(_cross, style="subtracted")),
        *_every_blocking("dot-T-on-a-batch", _DOT_T, transpose=".T"),
        *_every_blocking("K-Q-transposed", _K_Q, k_q=True),
        *_every_blocking("V-not-projected", _V_NOT_PROJECTED, project_v=False),
        Mistake("unstable-softmax", _UNSTABLE, partial(_cross, style="unstable")),
    ),
    hint="Q = X_q W_Q, K = X_kv W_K, V = X_kv W_V; weights = softmax(Q Kᵀ / √d_k) along each "
    "row (axis=-1), the blocked scores (mask False) set to −∞ first; O = weights @ V; return "
    "(O, weights), of shapes (..., n_q, d_v) and (..., n_q, n_k). With batch axes, transpose "
    "with np.swapaxes(K, -1, -2).",
    nan_hint="your result contains NaN or inf: the softmax overflowed (subtract each row's "
    "maximum before np.exp), or a row had all its scores blocked (check that True means "
    "\"may attend\").",
)


def check_cross_attention(
    cross_attention: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `cross_attention(X_q, X_kv, W_Q, W_K, W_V, mask=None)`, which must
    return (O, weights): Q = X_q W_Q, K = X_kv W_K, V = X_kv W_V,
    weights = softmax(Q Kᵀ / √d_k) over the keys with the mask applied before the softmax,
    O = weights V.

    With `harder=True`, also a batch of queries reading one unbatched X_kv, and two batch axes.
    """
    return CROSS_ATTENTION.check(cross_attention, timeout=timeout, harder=harder)


# -- cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None) ---------------------------


def _backward_case(name: str, seed: int, n_q: int, n_k: int, d_model: int, d_k: int, d_v: int,
                   **options: Any) -> Case:
    """The forward case of these sizes with dO (the shape of O) added after W_V."""
    case = _case(name, seed, n_q, n_k, d_model, d_k, d_v, **options)
    X_q = case.inputs["X_q"]
    batch = np.broadcast_shapes(X_q.shape[:-2], case.inputs["X_kv"].shape[:-2])
    dO = random_normal(seed + 5, *batch, n_q, d_v, dtype=X_q.dtype)
    return Case(name, (*case.args, ("dO", dO)), case.kwargs)


def _backward_cases() -> list[Case]:
    return [
        _backward_case("random, 2 queries, 3 keys, d_model = 2, d_k = d_v = 2", 1500,
                       2, 3, 2, 2, 2),
        _backward_case("random, 3 queries, 5 keys, d_model = 6, d_k = 2, d_v = 4", 1510,
                       3, 5, 6, 2, 4),
        _backward_case("random, 4 queries, 2 keys, d_model = 5, d_k = d_v = 3", 1520,
                       4, 2, 5, 3, 3),
        _backward_case("square, 3 queries and 3 keys, d_model = 4, d_k = 2, d_v = 3", 1530,
                       3, 3, 4, 2, 3),
        _backward_case("a batch of 2 padded sources (5 and 3 real words of 5), padding mask "
                       "(B, 1, n_k); 3 queries, d_model = 4, d_k = 2, d_v = 3", 1540,
                       3, 5, 4, 2, 3, batch=(2,), mask=_padding(5, 3, n_k=5)),
        _backward_case("a batch whose second source is all padding (fully blocked rows); "
                       "2 queries, 3 keys, d_model = 4, d_k = 2, d_v = 5", 1550,
                       2, 3, 4, 2, 5, batch=(2,), mask=_padding(3, 0, n_k=3)),
        _backward_case("float32, 3 queries, 4 keys, d_model = 5, d_k = 3, d_v = 2", 1560,
                       3, 4, 5, 3, 2, dtype=np.float32),
    ]


def _backward_harder() -> list[Case]:
    return [_backward_case("a batch of 2 target sequences reading one source (X_kv without "
                           "batch axis), 3 queries, 4 keys, d_model = 4, d_k = 2, d_v = 3",
                           1570, 3, 4, 4, 2, 3, batch=(2,), kv_batch=())]


def _sum_over_batch(X: np.ndarray, dM: np.ndarray) -> np.ndarray:
    """Σ over every batch axis of Xᵀ dM: (d_model, d)."""
    X = np.broadcast_to(X, (*dM.shape[:-1], X.shape[-1]))
    return X.reshape(-1, X.shape[-1]).T @ dM.reshape(-1, dM.shape[-1])


def _cab(X_q: np.ndarray, X_kv: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray,
         W_V: np.ndarray, dO: np.ndarray, mask: np.ndarray | None = None, *,
         kv_paths: str = "KV", q_paths: str = "Q", scale: bool = True,
         dV_transposed: bool = True, dK_transposed: bool = True, style: str = "reference",
         softmax_backward: bool = True, batch: str = "sum",
         sum_copies: bool = True) -> tuple[np.ndarray, ...]:
    """cross_attention_backward, right or with one known mistake (the keyword arguments)."""
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    s = 1 / math.sqrt(Q.shape[-1]) if scale else 1.0
    allowed = None if mask is None or style == "ignored" else np.asarray(mask)
    weights = _softmax(Q @ T(K) / math.sqrt(Q.shape[-1]), allowed,
                       "reference" if style == "ignored" else style)
    dV = (T(weights) if dV_transposed else weights) @ dO
    d_weights = dO @ T(V)
    d_scores = attention.softmax_backward(weights, d_weights) if softmax_backward else d_weights
    dQ = d_scores @ K * s
    dK = (T(d_scores) if dK_transposed else d_scores) @ Q * s
    grads = {"Q": dQ @ W_Q.T, "K": dK @ W_K.T, "V": dV @ W_V.T}
    dX_q = sum(grads[p] for p in q_paths)
    dX_kv = sum(grads[p] for p in kv_paths)
    if sum_copies and np.ndim(dX_kv) > X_kv.ndim:
        dX_kv = dX_kv.sum(axis=tuple(range(np.ndim(dX_kv) - X_kv.ndim)))
    if batch == "stacked" or X_q.ndim == 2:
        dWs = tuple(np.broadcast_to(X, (*dM.shape[:-1], X.shape[-1])).swapaxes(-1, -2) @ dM
                    for X, dM in ((X_q, dQ), (X_kv, dK), (X_kv, dV)))
    else:
        dWs = (_sum_over_batch(X_q, dQ), _sum_over_batch(X_kv, dK), _sum_over_batch(X_kv, dV))
    return (dX_q, dX_kv, *dWs)


_ONE_PATH = (
    "dX_kv misses one of its two paths: X_kv feeds both the keys and the values, so its "
    "gradient is the sum of both, dX_kv = dK W_Kᵀ + dV W_Vᵀ. (X_q feeds only the queries: "
    "dX_q = dQ W_Qᵀ.)"
)
_SELF_PATHS = (
    "your dX_q adds the paths of the keys and values, as self-attention's dX does; in "
    "cross-attention the keys and values come from X_kv, so their paths go into dX_kv: "
    "dX_q = dQ W_Qᵀ (n_q rows) and dX_kv = dK W_Kᵀ + dV W_Vᵀ (n_k rows)."
)
_BACKWARD_DV = (
    "dV = α dO is not right: in O = α V each value v_j is used by every output o_i with weight "
    "α_ij, so dV = αᵀ dO, (n_k, d_v): `np.swapaxes(weights, -1, -2) @ dO`."
)
_BACKWARD_DK = (
    "dK = dÃ Q is not right: ã_ij = q_i · k_j / √d_k, so key j collects the gradient of "
    "column j of the scores: dK = dÃᵀ Q / √d_k, (n_k, d_k)."
)
_BACKWARD_SCALE = (
    "the 1/√d_k of the forward pass is missing on the way back: Ã = Q Kᵀ / √d_k, so "
    "dQ = dÃ K / √d_k and dK = dÃᵀ Q / √d_k."
)
_BACKWARD_MASK = (
    "the mask is ignored in your backward pass: recompute the weights with the mask (blocked "
    "scores −∞, their weights 0), so that padded source tokens get no gradient."
)
_BACKWARD_SOFTMAX = (
    "the softmax's backward is skipped: dα = dO Vᵀ is the gradient of the weights, not of "
    "the scaled scores. Pass it through the softmax first, dÃ = α ⊙ (dα − Σ_j α_ij dα_ij) "
    "along each row, then dQ = dÃ K / √d_k and dK = dÃᵀ Q / √d_k."
)
_BACKWARD_BATCH = (
    "the weight gradients are not summed over the batch: W_Q, W_K and W_V are shared by every "
    "sequence, so dW_Q = Σ X_qᵀ dQ and dW_K, dW_V = Σ X_kvᵀ dK, Σ X_kvᵀ dV over the sequences, "
    "one (d_model, d) matrix each: `X_q.reshape(-1, d_model).T @ dQ.reshape(-1, d_k)`."
)
_BACKWARD_COPIES = (
    "your dX_kv has a batch axis that X_kv does not have: one source read by a batch of "
    "target sequences is used once per sequence, so its gradient is the sum of the copies' "
    "gradients, dX_kv.sum(axis=0) here; it has the shape of X_kv."
)

CROSS_ATTENTION_BACKWARD = Checker(
    function="cross_attention_backward",
    outputs=("dX_q", "dX_kv", "dW_Q", "dW_K", "dW_V"),
    reference=attention.cross_attention_backward,
    make_cases=_backward_cases,
    make_harder=_backward_harder,
    mistakes=(
        Mistake("one-path-into-X_kv", _ONE_PATH, partial(_cab, kv_paths="K")),
        Mistake("one-path-into-X_kv", _ONE_PATH, partial(_cab, kv_paths="V")),
        Mistake("self-attention-paths", _SELF_PATHS, partial(_cab, q_paths="QKV")),
        Mistake("dV-not-transposed", _BACKWARD_DV, partial(_cab, dV_transposed=False)),
        Mistake("dK-not-transposed", _BACKWARD_DK, partial(_cab, dK_transposed=False)),
        Mistake("no-scale", _BACKWARD_SCALE, partial(_cab, scale=False)),
        Mistake("softmax-backward-skipped", _BACKWARD_SOFTMAX,
                partial(_cab, softmax_backward=False)),
        Mistake("mask-ignored", _BACKWARD_MASK, partial(_cab, style="ignored")),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, partial(_cab, style="large")),
        Mistake("batch-not-summed", _BACKWARD_BATCH, partial(_cab, batch="stacked")),
        Mistake("copies-not-summed", _BACKWARD_COPIES, partial(_cab, sum_copies=False)),
    ),
    hint="forward again: Q = X_q W_Q, K = X_kv W_K, V = X_kv W_V, α = softmax(Q Kᵀ / √d_k) "
    "with the mask; backward: dV = αᵀ dO, dα = dO Vᵀ, dÃ = α ⊙ (dα − Σ_j α_ij dα_ij), "
    "dQ = dÃ K / √d_k, dK = dÃᵀ Q / √d_k; dX_q = dQ W_Qᵀ, dX_kv = dK W_Kᵀ + dV W_Vᵀ, "
    "dW_Q = Σ X_qᵀ dQ, dW_K = Σ X_kvᵀ dK, dW_V = Σ X_kvᵀ dV, summed over the batch.",
)


def check_cross_attention_backward(
    cross_attention_backward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None)`,
    which must return (dX_q, dX_kv, dW_Q, dW_K, dW_V): dX_q = dQ W_Qᵀ, dX_kv = dK W_Kᵀ +
    dV W_Vᵀ (two paths), the weights' gradients summed over the batch.

    With `harder=True`, also a batch of queries reading one unbatched X_kv (its gradient is
    the sum of its copies')."""
    return CROSS_ATTENTION_BACKWARD.check(cross_attention_backward, timeout=timeout,
                                          harder=harder)
