"""Checkers of exercise 03, scaling and softmax: `scale_scores`, `softmax`, `attention_weights`.

Lesson: notebooks/03_scaling_and_softmax.ipynb. Exercise: exercises/03_scaling_and_softmax.ipynb.
Tests: tests/test_checks_scaling_and_softmax.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = [
    "SCALE_SCORES",
    "SOFTMAX",
    "ATTENTION_WEIGHTS",
    "check_scale_scores",
    "check_softmax",
    "check_attention_weights",
]

# -- scale_scores(A, d_k) ------------------------------------------------------------------------


def _scale_cases() -> list[Case]:
    def case(name: str, A: np.ndarray, d_k: int) -> Case:
        return Case(name, (("A", A), ("d_k", d_k)))

    return [
        case("hand-worked, n = 2, d_k = 4", np.array([[4.0, -2.0], [8.0, 0.0]]), 4),
        case("random, 3 × 3 scores, d_k = 16", random_normal(301, 3, 3, scale=4), 16),
        case("random, 3 × 4 scores, d_k = 8", random_normal(302, 3, 4, scale=4), 8),
        case("random, 5 × 5 scores, d_k = 2", random_normal(303, 5, 5, scale=2), 2),
        case("float32, 4 × 4 scores, d_k = 64",
             random_normal(304, 4, 4, scale=8, dtype=np.float32), 64),
    ]


def _scale_harder() -> list[Case]:
    return [
        Case("a batch of 2 score matrices, d_k = 9",
             (("A", random_normal(305, 2, 3, 3, scale=3)), ("d_k", 9))),
    ]


SCALE_SCORES = Checker(
    function="scale_scores",
    outputs=("Ã",),
    reference=attention.scale_scores,
    make_cases=_scale_cases,
    make_harder=_scale_harder,
    mistakes=(
        Mistake(
            "divide-by-d_k",
            "you divided by d_k; the scaled scores are A / √d_k, divided by the square root "
            "(np.sqrt(d_k)). The variance of q · k grows like d_k, so its spread (standard "
            "deviation) grows like √d_k.",
            lambda A, d_k: A / d_k,
        ),
        Mistake(
            "multiply",
            "you multiplied by √d_k; scaling divides the scores: A / √d_k, which brings their "
            "variance back near 1.",
            lambda A, d_k: A * math.sqrt(d_k),
        ),
        Mistake(
            "n-instead-of-d_k",
            "you used the number of tokens n (a dimension of A) instead of d_k: the scale is "
            "√d_k, the width of the queries and keys, given as the argument d_k.",
            lambda A, d_k: A / math.sqrt(A.shape[-1]),
        ),
        Mistake(
            "n-instead-of-d_k-rows",
            "you used the number of tokens n (a dimension of A) instead of d_k: the scale is "
            "√d_k, the width of the queries and keys, given as the argument d_k.",
            lambda A, d_k: A / math.sqrt(A.shape[0]),
        ),
        Mistake(
            "divide-by-d_k-squared",
            "you divided by d_k² or d_k twice; the scaled scores are A / √d_k.",
            lambda A, d_k: A / d_k**2,
        ),
    ),
    hint="the scaled scores are Ã = A / √d_k: divide every score by np.sqrt(d_k).",
)


def check_scale_scores(
    scale_scores: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `scale_scores(A, d_k)`, which must return Ã = A / √d_k."""
    return SCALE_SCORES.check(scale_scores, timeout=timeout, harder=harder)


# -- softmax(x, axis=-1) -------------------------------------------------------------------------


def _softmax_cases() -> list[Case]:
    def case(name: str, x: Any, **kwargs: Any) -> Case:
        return Case(name, (("x", np.asarray(x)),), kwargs)

    return [
        case("hand-worked, one row of scores", [1.0, 2.0, 3.0]),
        case("hand-worked, two rows", [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
        case("scores near ±1000", [[1000.0, 999.0, 998.0], [-1000.0, -999.0, -1001.0]]),
        case("large scores along axis=0", [[1000.0, -1000.0], [999.0, -998.0], [998.0, -999.0]],
             axis=0),
        case("float32 scores near ±100",
             np.array([[100.0, 98.0, 90.0], [-100.0, -95.0, -99.0]], dtype=np.float32)),
        case("random, 3 × 3", random_normal(310, 3, 3)),
        case("rows of very different magnitude",
             [[0.5, 1.5, -0.5], [800.0, 801.0, 799.0], [-750.0, -748.0, -752.0]]),
        case("random, 3 × 4, along axis=0", random_normal(311, 3, 4), axis=0),
        case("random, 2 × 5, axis=1 given explicitly", random_normal(312, 2, 5), axis=1),
        case("float32, 3 × 5", random_normal(313, 3, 5, scale=3, dtype=np.float32)),
        case("random, 4 × 6", random_normal(314, 4, 6, scale=2)),
    ]


def _softmax_harder() -> list[Case]:
    def case(name: str, x: Any, **kwargs: Any) -> Case:
        return Case(name, (("x", np.asarray(x)),), kwargs)

    return [
        case("blocked scores (−∞) in a row", [[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]]),
        case("3-D array, along axis=1", random_normal(315, 2, 3, 4), axis=1),
        case("3-D array, along axis=-2", random_normal(316, 2, 4, 3), axis=-2),
        case("3-D array, along axis=0", random_normal(317, 3, 2, 2, scale=300), axis=0),
        case("3-D array, last axis", random_normal(318, 2, 3, 5, scale=300)),
    ]


def _exp_over_sum(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _no_keepdims(x: np.ndarray, axis: int = -1, on_max: bool = True, on_sum: bool = True) -> Any:
    e = np.exp(x - x.max(axis=axis, keepdims=not on_max))
    return e / e.sum(axis=axis, keepdims=not on_sum)


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


_KEEPDIMS_HINT = (
    "a sum or maximum without keepdims=True: x.max(axis=axis) drops the axis, so it lines up "
    "with the wrong axis of x (wrong values on a square array, an error on others). Use "
    "x.max(axis=axis, keepdims=True) and e.sum(axis=axis, keepdims=True)."
)
_WHOLE_SUM_HINT = (
    "you divided by the sum of the whole array; each row is normalised on its own: "
    "e / e.sum(axis=axis, keepdims=True), so that row i of the weights sums to 1."
)

SOFTMAX = Checker(
    function="softmax",
    outputs=("softmax",),
    reference=attention.softmax,
    make_cases=_softmax_cases,
    make_harder=_softmax_harder,
    mistakes=(
        Mistake(
            "no-max-subtraction",
            "no max subtraction: np.exp overflows for large scores (exp(1000) = inf, and "
            "inf / inf = NaN) and underflows to 0 for very negative rows (0 / 0 = NaN). "
            "Subtract each row's maximum first, x - x.max(axis=axis, keepdims=True): it "
            "changes nothing mathematically.",
            lambda x, axis=-1: _exp_over_sum(x, axis),
        ),
        Mistake(
            "global-max",
            "you subtract a single maximum of the whole array: rows far below it underflow "
            "to all zeros (exp(-1750) = 0) and 0 / 0 = NaN. Subtract each row's own maximum: "
            "x.max(axis=axis, keepdims=True).",
            lambda x, axis=-1: _exp_over_sum(x - x.max(), axis),
        ),
        Mistake(
            "axis-ignored",
            "your softmax ignores `axis`: it always works along the last axis. Pass "
            "axis=axis to your max and sum.",
            lambda x, axis=-1: attention.softmax(x),
        ),
        Mistake(
            "whole-sum",
            _WHOLE_SUM_HINT,
            lambda x, axis=-1: (lambda e: e / e.sum())(np.exp(x - x.max(axis, keepdims=True))),
        ),
        Mistake(
            "whole-sum-global-max",
            _WHOLE_SUM_HINT,
            lambda x, axis=-1: (lambda e: e / e.sum())(np.exp(x - x.max())),
        ),
        Mistake("no-keepdims", _KEEPDIMS_HINT, _no_keepdims),
        Mistake(
            "no-keepdims-max", _KEEPDIMS_HINT,
            lambda x, axis=-1: _no_keepdims(x, axis, on_max=True, on_sum=False),
        ),
        Mistake(
            "no-keepdims-sum", _KEEPDIMS_HINT,
            lambda x, axis=-1: _no_keepdims(x, axis, on_max=False, on_sum=True),
        ),
        Mistake(
            "log-softmax",
            "you returned the log-softmax (x - max - log Σ exp): apply np.exp and divide by "
            "the sum; the weights must be positive and sum to 1.",
            _log_softmax,
        ),
        Mistake(
            "no-exp",
            "you normalised the scores without np.exp: softmax exponentiates first, "
            "exp(x - max) / Σ exp(x - max), so the result is positive.",
            lambda x, axis=-1: x / x.sum(axis=axis, keepdims=True),
        ),
    ),
    hint="compute e = np.exp(x - x.max(axis=axis, keepdims=True)), then "
    "e / e.sum(axis=axis, keepdims=True): every slice along `axis` must sum to 1.",
    nan_hint="your result contains NaN or inf: np.exp overflowed to inf (inf / inf = NaN) or "
    "a whole row underflowed to 0 (0 / 0 = NaN). Subtract each row's maximum before np.exp.",
)


def check_softmax(
    softmax: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `softmax(x, axis=-1)`: stable, along `axis`, input left unchanged.

    With `harder=True`, also arrays with more axes and blocked (−∞) scores.
    """
    return SOFTMAX.check(softmax, timeout=timeout, harder=harder)


# -- attention_weights(Q, K) ---------------------------------------------------------------------


def _weights_cases() -> list[Case]:
    def case(name: str, Q: Any, K: Any) -> Case:
        return Case(name, (("Q", np.asarray(Q)), ("K", np.asarray(K))))

    big_Q = np.array([[60.0, 0.0, 20.0, 0.0], [0.0, -60.0, 0.0, 20.0], [40.0, 40.0, -40.0, 0.0]])
    big_K = np.array([[40.0, 10.0, 0.0, 0.0], [-10.0, 40.0, 0.0, 0.0], [0.0, 0.0, 40.0, -20.0]])
    return [
        case("hand-worked, n = 2, d_k = 4",
             [[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 2.0, 0.0]],
             [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
        case("random, n = 3, d_k = 5", random_normal(320, 3, 5), random_normal(321, 3, 5)),
        case("random, n = 4, d_k = 4", random_normal(322, 4, 4), random_normal(323, 4, 4)),
        case("random, n = 5, d_k = 2", random_normal(324, 5, 2, scale=2),
             random_normal(325, 5, 2, scale=2)),
        case("float32, n = 4, d_k = 3", random_normal(326, 4, 3, dtype=np.float32),
             random_normal(327, 4, 3, dtype=np.float32)),
        case("scaled scores near ±1000", big_Q, big_K),
    ]


def _weights_harder() -> list[Case]:
    return [
        Case("a batch of 2 sequences, n = 3, d_k = 2",
             (("Q", random_normal(328, 2, 3, 2)), ("K", random_normal(329, 2, 3, 2)))),
    ]


def _scaled(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    return Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])


ATTENTION_WEIGHTS = Checker(
    function="attention_weights",
    outputs=("weights",),
    reference=attention.attention_weights,
    make_cases=_weights_cases,
    make_harder=_weights_harder,
    mistakes=(
        Mistake(
            "no-scaling",
            "no scaling: divide the scores by √d_k before the softmax, "
            "softmax(Q Kᵀ / √d_k), with d_k = Q.shape[-1].",
            lambda Q, K: attention.softmax(Q @ np.swapaxes(K, -1, -2)),
        ),
        Mistake(
            "wrong-axis",
            "softmax over the wrong axis: your columns sum to 1. Row i of the weights (the "
            "query of token i) must sum to 1: softmax along axis=-1.",
            lambda Q, K: attention.softmax(_scaled(Q, K), axis=-2),
        ),
        Mistake(
            "transposed",
            "your weights are transposed: α_ij is the weight of key j for query i, so rows are "
            "queries and row i sums to 1. Compute softmax(Q Kᵀ / √d_k) and do not transpose it.",
            lambda Q, K: np.swapaxes(attention.softmax(_scaled(Q, K)), -1, -2),
        ),
        Mistake(
            "K-Q-transposed",
            "you computed the scores as K Qᵀ; they are Q Kᵀ (a_ij = q_i · k_j: rows are "
            "queries, columns keys).",
            lambda Q, K: attention.softmax(_scaled(K, Q)),
        ),
        Mistake(
            "unstable-softmax",
            "your softmax is not stable: with large scores np.exp overflows (inf / inf = "
            "NaN). Subtract the row maximum before np.exp, as in your softmax above, or call it.",
            lambda Q, K: _exp_over_sum(_scaled(Q, K), -1),
        ),
        Mistake(
            "divide-by-d_k",
            "you divided the scores by d_k; the scale is √d_k: softmax(Q Kᵀ / √d_k).",
            lambda Q, K: attention.softmax(Q @ np.swapaxes(K, -1, -2) / Q.shape[-1]),
        ),
        Mistake(
            "n-instead-of-d_k",
            "you scaled by √n (the number of tokens); the scale is √d_k, the width of the "
            "queries and keys: d_k = Q.shape[-1].",
            lambda Q, K: attention.softmax(Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-2])),
        ),
    ),
    hint="α = softmax(Q Kᵀ / √d_k) along each row (axis=-1), with d_k = Q.shape[-1]: row i "
    "of the weights sums to 1.",
    nan_hint="your weights contain NaN or inf: the softmax overflowed. Subtract the row "
    "maximum of the scaled scores before np.exp.",
)


def check_attention_weights(
    attention_weights: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `attention_weights(Q, K)`, which must return softmax(Q Kᵀ / √d_k)."""
    return ATTENTION_WEIGHTS.check(attention_weights, timeout=timeout, harder=harder)
