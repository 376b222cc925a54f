"""Checkers of exercise 05, the backward pass through attention:
`softmax_backward(weights, d_weights, axis=-1)` and
`self_attention_backward(X, W_Q, W_K, W_V, dO, mask=None) -> (dX, dW_Q, dW_K, dW_V)`.

Lesson: notebooks/05_training.ipynb. Exercise: exercises/05_training.ipynb.
Tests: tests/test_checks_training.py.
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
from course_lib.checks.drawing import random_normal, softmax_rows
from course_lib.checks.result import CheckResult

__all__ = [
    "SOFTMAX_BACKWARD",
    "SELF_ATTENTION_BACKWARD",
    "check_softmax_backward",
    "check_self_attention_backward",
]



_ELEMENTWISE = (
    "the softmax's backward is not elementwise: α ⊙ dα misses the term − α Σ_j α_j dα_j. Every "
    "weight of a row depends on every score of the row (the Jacobian diag(α) − α αᵀ of lesson "
    "03), so d_scores = α ⊙ (dα − Σ_j α_j dα_j), with the sum along the softmax's axis "
    "(keepdims=True)."
)
_NO_ALPHA = (
    "the factor α in front is missing: d_scores = α ⊙ (dα − Σ_j α_j dα_j), so after "
    "subtracting the row sum from dα, multiply elementwise by the weights α."
)
_WRONG_AXIS = (
    "the sum Σ_j α_j dα_j runs over the wrong axis: it runs over the keys j of one row, the "
    "axis the softmax normalised (axis=-1 for the attention weights), with keepdims=True."
)
_NO_KEEPDIMS = (
    "the row sums lost their axis: (weights * d_weights).sum(axis=-1) has shape (n,), and "
    "subtracting it from an (n, n) array lines it up with the columns, not the rows. Keep the "
    "axis: .sum(axis=axis, keepdims=True)."
)
_AXIS_IGNORED = (
    "your softmax_backward ignores `axis`: it always sums along the last axis. Pass "
    "axis=axis to your sum (with keepdims=True)."
)
_DIAGONAL_ONLY = (
    "you kept only the diagonal of the softmax's Jacobian, ∂α_j/∂ã_j = α_j (1 − α_j), as if "
    "each weight depended on its own score only. Every weight of a row depends on every score "
    "of the row: ∂α_i/∂ã_j = −α_i α_j for j ≠ i. Those off-diagonal terms add up with the "
    "diagonal to d_scores = α ⊙ (dα − Σ_j α_j dα_j), one sum per row along the softmax's axis."
)
_NO_DIAGONAL = (
    "the diagonal term of the softmax's Jacobian diag(α) − α αᵀ is missing: you kept only "
    "− α αᵀ, which gives − α ⊙ Σ_j α_j dα_j. The diag(α) part adds α ⊙ dα: together, "
    "d_scores = α ⊙ (dα − Σ_j α_j dα_j)."
)
_SUM_WITHOUT_ALPHA = (
    "the sum inside is Σ_j α_j dα_j, each dα_j weighted by its weight α_j (it comes from the "
    "Jacobian's − α_i α_j), not the plain sum Σ_j dα_j: d_scores = α ⊙ (dα − Σ_j α_j dα_j), "
    "the sum along the softmax's axis, kept as an axis of length 1."
)
_FORMULA = (
    "d_scores = α ⊙ (dα − Σ_j α_j dα_j), the sum Σ_j α_j dα_j taken along `axis`, one sum "
    "per row, kept as an axis of length 1 so that it lines up with the rows."
)


# -- softmax_backward(weights, d_weights, axis=-1) ----------------------------------------------


def _sb_case(name: str, weights: Any, d_weights: Any, **kwargs: Any) -> Case:
    return Case(name, (("weights", np.asarray(weights)), ("d_weights", np.asarray(d_weights))),
                kwargs)


def _sb_random(name: str, seed: int, *shape: int, dtype: Any = float,
               axis: int | None = None) -> Case:
    """Weights softmaxed along `axis` (the last when None, and then not passed)."""
    scores = random_normal(seed, *shape, scale=1.5)
    weights = attention.softmax(scores, axis=-1 if axis is None else axis).astype(dtype)
    return _sb_case(name, weights, random_normal(seed + 1, *shape, dtype=dtype),
                    **({} if axis is None else {"axis": axis}))


def _sb_cases() -> list[Case]:
    causal = softmax_rows(np.where(attention.causal_mask(4), random_normal(620, 4, 4), -np.inf))
    return [
        _sb_case("hand-worked, one row: α = (0.5, 0.25, 0.25), dα = (1, 2, 3)",
                 [[0.5, 0.25, 0.25]], [[1.0, 2.0, 3.0]]),
        _sb_random("random, 3 × 3", 600, 3, 3),
        _sb_random("random, 2 × 4", 605, 2, 4),
        _sb_random("random, square 4 × 4", 610, 4, 4),
        _sb_case("causal weights (zeros above the diagonal)", causal, random_normal(621, 4, 4)),
        _sb_random("float32, 3 × 5", 630, 3, 5, dtype=np.float32),
        _sb_random("a batch of 2 weight matrices, 3 × 3", 640, 2, 3, 3),
        _sb_random("softmax along axis=0, 4 × 3", 650, 4, 3, axis=0),
    ]


def _sb_harder() -> list[Case]:
    return [
        _sb_random("a batch of 2 × 2 weight matrices, 3 × 4", 660, 2, 2, 3, 4),
        _sb_random("softmax along axis=1 of a 2 × 3 × 2 array", 670, 2, 3, 2, axis=1),
    ]


def _sb(weights: np.ndarray, d_weights: np.ndarray, axis: int = -1, *, sum_axis: int | None = None,
        alpha: bool = True, keepdims: bool = True, jacobian: str = "full",
        weighted_sum: bool = True) -> np.ndarray:
    """softmax_backward, right or with one known mistake (the keyword arguments):
    jacobian "elementwise" (α ⊙ dα), "diagonal" (its diagonal α(1 − α) only), "outer" (its
    − α αᵀ only); weighted_sum=False: Σ dα for Σ α dα."""
    if jacobian == "elementwise":
        return weights * d_weights
    if jacobian == "diagonal":
        return weights * (1 - weights) * d_weights
    terms = weights * d_weights if weighted_sum else d_weights
    s = np.sum(terms, axis=axis if sum_axis is None else sum_axis, keepdims=keepdims)
    if jacobian == "outer":
        return -weights * s
    return (weights if alpha else 1) * (d_weights - s)


SOFTMAX_BACKWARD = Checker(
    function="softmax_backward",
    outputs=("d_scores",),
    reference=attention.softmax_backward,
    make_cases=_sb_cases,
    make_harder=_sb_harder,
    mistakes=(
        Mistake("elementwise", _ELEMENTWISE, partial(_sb, jacobian="elementwise")),
        Mistake("diagonal-only", _DIAGONAL_ONLY, partial(_sb, jacobian="diagonal")),
        Mistake("no-diagonal-term", _NO_DIAGONAL, partial(_sb, jacobian="outer")),
        Mistake("no-alpha", _NO_ALPHA, partial(_sb, alpha=False)),
        Mistake("sum-without-alpha", _SUM_WITHOUT_ALPHA, partial(_sb, weighted_sum=False)),
        Mistake("wrong-axis", _WRONG_AXIS, partial(_sb, sum_axis=-2)),
        Mistake("wrong-axis", _WRONG_AXIS, partial(_sb, sum_axis=0)),
        Mistake("no-keepdims", _NO_KEEPDIMS, partial(_sb, keepdims=False)),
        Mistake("axis-ignored", _AXIS_IGNORED,
                lambda weights, d_weights, axis=-1: _sb(weights, d_weights)),
    ),
    hint=_FORMULA,
)


def check_softmax_backward(
    softmax_backward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `softmax_backward(weights, d_weights, axis=-1)`: α ⊙ (dα − Σ α dα)."""
    return SOFTMAX_BACKWARD.check(softmax_backward, timeout=timeout, harder=harder)


# -- self_attention_backward(X, W_Q, W_K, W_V, dO, mask=None) -----------------------------------


def _sab_case(name: str, seed: int, n: int, d_model: int, d_k: int, d_v: int,
              batch: tuple[int, ...] = (), dtype: Any = float, mask: Any = None) -> Case:
    args = (
        ("X", random_normal(seed, *batch, n, d_model, dtype=dtype)),
        ("W_Q", random_normal(seed + 1, d_model, d_k, dtype=dtype)),
        ("W_K", random_normal(seed + 2, d_model, d_k, dtype=dtype)),
        ("W_V", random_normal(seed + 3, d_model, d_v, dtype=dtype)),
        ("dO", random_normal(seed + 4, *batch, n, d_v, dtype=dtype)),
    )
    return Case(name, args, {} if mask is None else {"mask": np.asarray(mask, dtype=bool)})


def _sab_cases() -> list[Case]:
    hand = Case("hand-worked, n = 2, d_model = d_k = d_v = 1", (
        ("X", np.array([[1.0], [0.0]])),
        ("W_Q", np.array([[1.0]])),
        ("W_K", np.array([[1.0]])),
        ("W_V", np.array([[1.0]])),
        ("dO", np.array([[1.0], [0.0]])),
    ))
    blocked = np.ones((4, 4), dtype=bool)
    blocked[2] = False  # token 2 may attend to nothing
    blocked[:, 0] = False  # nobody may attend to token 0
    return [
        hand,
        _sab_case("random, n = 3, d_model = 4, d_k = 2, d_v = 3", 700, 3, 4, 2, 3),
        _sab_case("random, n = 4, d_model = 3, d_k = 4, d_v = 2", 710, 4, 3, 4, 2),
        _sab_case("float32, n = 3, d_model = 3, d_k = 3, d_v = 2", 720, 3, 3, 3, 2,
                  dtype=np.float32),
        _sab_case("causal mask, n = 4, d_model = 3, d_k = 2, d_v = 3", 730, 4, 3, 2, 3,
                  mask=attention.causal_mask(4)),
        _sab_case("a fully blocked row and a blocked column, n = 4, d_k = 3", 740, 4, 3, 3, 2,
                  mask=blocked),
        _sab_case("a batch of 2 sequences, n = 3, d_model = 3, d_k = 2, d_v = 2", 750, 3, 3, 2, 2,
                  batch=(2,)),
    ]


def _sab_harder() -> list[Case]:
    mask = np.random.default_rng(761).random((2, 3, 4, 4)) < 0.6
    return [_sab_case("a batch of 2 × 3 sequences with a mask per sequence", 760, 4, 3, 2, 3,
                      batch=(2, 3), mask=mask)]


def _sab(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, dO: np.ndarray,
         mask: np.ndarray | None = None, *, dV_transposed: bool = True, scale_dQ: bool = True,
         scale_dK: bool = True, dK_transposed: bool = True, paths: str = "QKV",
         use_mask: bool = True, blocked_score: float = -np.inf, batch: str = "sum",
         scale_power: int = 1,
         softmax_bw: Callable[..., np.ndarray] = attention.softmax_backward) -> Any:
    """self_attention_backward, right or with one known mistake (the keyword arguments)."""
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    scores = Q @ T(K) / math.sqrt(Q.shape[-1])
    if mask is not None and use_mask:  # −1e9 gives a fully blocked row 1/n each, not zeros
        scores = np.where(mask, scores, blocked_score)
    weights = attention.softmax(scores)
    scale = math.sqrt(Q.shape[-1]) ** -scale_power  # 1/√d_k; √d_k with scale_power=-1
    dV = (T(weights) if dV_transposed else weights) @ dO
    d_scores = softmax_bw(weights, dO @ T(V))
    dQ = d_scores @ K * (scale if scale_dQ else 1)
    dK = (T(d_scores) if dK_transposed else d_scores) @ Q * (scale if scale_dK else 1)
    grads = {"Q": (dQ, W_Q), "K": (dK, W_K), "V": (dV, W_V)}
    dX = sum(grads[p][0] @ grads[p][1].T for p in paths)
    per_sequence = [T(X) @ dM for dM in (dQ, dK, dV)]  # (..., d_model, d) each
    if X.ndim == 2 or batch == "stacked":
        return (dX, *per_sequence)
    if batch == "first":
        return (dX, *(dW.reshape(-1, *dW.shape[-2:])[0] for dW in per_sequence))
    reduce = {"sum": np.sum, "mean": np.mean}[batch]
    return (dX, *(reduce(dW, axis=tuple(range(X.ndim - 2))) for dW in per_sequence))


_PATHS_HINT = (
    "dX misses some of the paths into X: X feeds the queries, the keys and the values, so its "
    "gradient is the sum of three: dX = dQ W_Qᵀ + dK W_Kᵀ + dV W_Vᵀ."
)
_SCALE = (
    "the 1/√d_k of the forward pass is missing on the way back{where}: Ã = Q Kᵀ / √d_k, so "
    "dQ = dÃ K / √d_k and dK = dÃᵀ Q / √d_k, both."
)
_SCALE_BOTH = _SCALE.format(where=", in dQ and in dK (dW_Q and dW_K are √d_k times too large)")
_SCALE_DQ = _SCALE.format(where=", in dQ (your dW_Q is √d_k times too large; dW_K is right)")
_SCALE_DK = _SCALE.format(where=", in dK (your dW_K is √d_k times too large; dW_Q is right)")
_BATCH_HINT = (
    "the weight gradients are not summed over the batch: W_Q, W_K and W_V are shared by every "
    "sequence, so each of dW_Q, dW_K, dW_V is the sum over the sequences of Xᵀ dQ (Xᵀ dK, "
    "Xᵀ dV), one (d_model, d) matrix. Stack the rows of all the sequences first, "
    "`X.reshape(-1, X.shape[-1]).T @ dQ.reshape(-1, dQ.shape[-1])` (any number of batch "
    "axes), or with one batch axis `np.einsum('bnd,bnk->dk', X, dQ)`."
)

_SCALE_MULTIPLIED = (
    "you multiplied by √d_k on the way back; the forward pass divides, Ã = Q Kᵀ / √d_k, so "
    "the chain rule divides too: dQ = dÃ K / √d_k and dK = dÃᵀ Q / √d_k (your dW_Q and dW_K "
    "are d_k times too large)."
)
_BATCH_MEAN_HINT = (
    "your weight gradients are divided by the number of sequences (a mean over the batch): "
    "the loss L is whatever dO is the gradient of, and each sequence adds its own share "
    "Xᵀ dQ to ∂L/∂W_Q, so dW_Q, dW_K and dW_V are sums over the batch, not means. If the "
    "loss is a mean over the batch, that 1/B is already inside dO."
)
_SOFTMAX_SKIPPED = (
    "the softmax's backward is skipped: dα = dO Vᵀ is the gradient of the weights α, not of "
    "the scaled scores Ã they come from. Pass it back through the softmax first, "
    "dÃ = softmax_backward(α, dα) = α ⊙ (dα − Σ_j α_j dα_j) along each row, then "
    "dQ = dÃ K / √d_k and dK = dÃᵀ Q / √d_k."
)

SELF_ATTENTION_BACKWARD = Checker(
    function="self_attention_backward",
    outputs=("dX", "dW_Q", "dW_K", "dW_V"),
    reference=attention.self_attention_backward,
    make_cases=_sab_cases,
    make_harder=_sab_harder,
    mistakes=(
        Mistake("dV-not-transposed",
                "dV = α dO is not right: in O = α V each value v_j is used by every output "
                "o_i with weight α_ij, so dV = αᵀ dO (`np.swapaxes(weights, -1, -2) @ dO`).",
                partial(_sab, dV_transposed=False)),
        Mistake("no-scale", _SCALE_BOTH, partial(_sab, scale_dQ=False, scale_dK=False)),
        Mistake("scale-multiplied", _SCALE_MULTIPLIED, partial(_sab, scale_power=-1)),
        Mistake("no-scale-dQ", _SCALE_DQ, partial(_sab, scale_dQ=False)),
        Mistake("no-scale-dK", _SCALE_DK, partial(_sab, scale_dK=False)),
        Mistake("dK-not-transposed",
                "dK = dÃ Q is not right: ã_ij = q_i · k_j / √d_k, so key j collects the "
                "gradient of column j of the scores: dK = dÃᵀ Q / √d_k.",
                partial(_sab, dK_transposed=False)),
        *(Mistake("missing-path", _PATHS_HINT, partial(_sab, paths=paths))
          for paths in ("Q", "K", "V", "QK", "QV", "KV")),
        Mistake("mask-ignored",
                "the mask is ignored in your backward pass: recompute the weights with the "
                "mask (blocked scores become −∞, their weights 0), so that blocked positions "
                "get no gradient.",
                partial(_sab, use_mask=False)),
        Mistake("large-negative", LARGE_NEGATIVE_MASK, partial(_sab, blocked_score=-1e9)),
        Mistake("batch-not-summed", _BATCH_HINT, partial(_sab, batch="stacked")),
        Mistake("batch-mean", _BATCH_MEAN_HINT, partial(_sab, batch="mean")),
        Mistake("batch-not-summed", _BATCH_HINT, partial(_sab, batch="first")),
        Mistake("softmax-elementwise", _ELEMENTWISE,
                partial(_sab, softmax_bw=partial(_sb, jacobian="elementwise"))),
        Mistake("softmax-diagonal-only", _DIAGONAL_ONLY,
                partial(_sab, softmax_bw=partial(_sb, jacobian="diagonal"))),
        Mistake("softmax-no-diagonal-term", _NO_DIAGONAL,
                partial(_sab, softmax_bw=partial(_sb, jacobian="outer"))),
        Mistake("softmax-sum-without-alpha", _SUM_WITHOUT_ALPHA,
                partial(_sab, softmax_bw=partial(_sb, weighted_sum=False))),
        Mistake("softmax-backward-skipped", _SOFTMAX_SKIPPED,
                partial(_sab, softmax_bw=lambda weights, d_weights: d_weights)),
        Mistake("softmax-wrong-axis", _WRONG_AXIS,
                partial(_sab, softmax_bw=partial(_sb, sum_axis=-2))),
    ),
    hint="forward: Q, K, V = X W_*, α = softmax(Q Kᵀ / √d_k) with the mask; backward: "
    "dV = αᵀ dO, dα = dO Vᵀ, dÃ = softmax_backward(α, dα), dQ = dÃ K / √d_k, "
    "dK = dÃᵀ Q / √d_k, dX = dQ W_Qᵀ + dK W_Kᵀ + dV W_Vᵀ, dW_Q = Σ Xᵀ dQ (and so on), summed "
    "over the batch. With batch axes, transpose with `np.swapaxes(M, -1, -2)`, not .T.",
)


def check_self_attention_backward(
    self_attention_backward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `self_attention_backward(X, W_Q, W_K, W_V, dO, mask=None)`, which
    must return (dX, dW_Q, dW_K, dW_V)."""
    return SELF_ATTENTION_BACKWARD.check(self_attention_backward, timeout=timeout,
                                         harder=harder)
