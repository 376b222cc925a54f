"""Checkers of exercise 04, the weighted sum of values: `weighted_sum(weights, V)` and
`self_attention(X, W_Q, W_K, W_V) -> (O, weights)`.

Lesson: notebooks/04_weighted_sum.ipynb. Exercise: exercises/04_weighted_sum.ipynb.
Tests: tests/test_checks_weighted_sum.py.
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
from course_lib.checks.drawing import random_normal, softmax_rows
from course_lib.checks.result import CheckResult

__all__ = ["WEIGHTED_SUM", "SELF_ATTENTION", "check_weighted_sum", "check_self_attention"]



def _every_row(row: np.ndarray, n: int) -> np.ndarray:
    """`row` (..., 1, d_v) repeated for each of n queries."""
    return np.broadcast_to(row, (*row.shape[:-2], n, row.shape[-1])).copy()


_TRANSPOSED = (
    "your weights are transposed: α_ij is the weight of value j in output i, and row i of the "
    "weights sums to 1. O = α V (weights @ V), with α as it is."
)
_UNWEIGHTED = (
    "every output row is the same plain sum or mean of the values: the weights are missing. "
    "Each output is its own weighted sum, o_i = Σ_j α_ij v_j, that is O = weights @ V."
)

# -- weighted_sum(weights, V) --------------------------------------------------------------------


def _ws_case(name: str, weights: Any, V: Any) -> Case:
    return Case(name, (("weights", np.asarray(weights)), ("V", np.asarray(V))))


def _ws_random(name: str, seed: int, n: int, d_v: int, dtype: Any = float,
               batch: tuple[int, ...] = ()) -> Case:
    weights = softmax_rows(random_normal(seed, *batch, n, n, scale=1.5)).astype(dtype)
    return _ws_case(name, weights, random_normal(seed + 1, *batch, n, d_v, dtype=dtype))


def _ws_cases() -> list[Case]:
    return [
        _ws_case("hand-worked: a one-hot row and an equal split",
                 [[1.0, 0.0], [0.5, 0.5]], [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]),
        _ws_case("one-hot rows: each output copies one value",
                 [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                 [[1.0, -1.0], [2.0, 0.5], [-3.0, 4.0]]),
        _ws_random("random, n = 3, d_v = 5", 400, 3, 5),
        _ws_random("random, square: n = d_v = 4", 410, 4, 4),
        _ws_random("random, n = 5, d_v = 2", 420, 5, 2),
        _ws_random("float32, n = 4, d_v = 3", 430, 4, 3, dtype=np.float32),
    ]


def _ws_harder() -> list[Case]:
    return [_ws_random("a batch of 2 sequences, n = 3, d_v = 2", 440, 3, 2, batch=(2,))]


WEIGHTED_SUM = Checker(
    function="weighted_sum",
    outputs=("O",),
    reference=attention.weighted_sum,
    make_cases=_ws_cases,
    make_harder=_ws_harder,
    mistakes=(
        Mistake("weights-transposed", _TRANSPOSED, lambda w, V: T(w) @ V),
        Mistake("unweighted", _UNWEIGHTED,
                lambda w, V: _every_row(V.sum(axis=-2, keepdims=True), w.shape[-2])),
        Mistake("averaged", _UNWEIGHTED,
                lambda w, V: _every_row(V.mean(axis=-2, keepdims=True), w.shape[-2])),
        Mistake(
            "elementwise",
            "weights * V multiplies element by element; O = α V is a matrix product: "
            "weights @ V.",
            lambda w, V: w * V,
        ),
        Mistake(
            "wrong-order",
            "the product is in the wrong order: O = α V, the weights on the left "
            "(weights @ V).",
            lambda w, V: V @ w,
        ),
        Mistake(
            "wrong-order-VT",
            "the product is in the wrong order: O = α V, the weights on the left "
            "(weights @ V), and no transpose of V.",
            lambda w, V: T(V) @ w,
        ),
        Mistake(
            "batch-T",
            "with a batch of sequences, .T reverses all the axes; transpose only the last "
            "two (np.swapaxes(a, -1, -2)), or better, do not transpose: O = weights @ V.",
            lambda w, V: (V.T @ w.T).T,
        ),
    ),
    hint="O = α V (weights @ V): o_i = Σ_j α_ij v_j, output i is the average of the values "
    "weighted by row i of the weights; shape (n, d_v).",
)


def check_weighted_sum(
    weighted_sum: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `weighted_sum(weights, V)`, which must return O = α V."""
    return WEIGHTED_SUM.check(weighted_sum, timeout=timeout, harder=harder)


# -- self_attention(X, W_Q, W_K, W_V) -> (O, weights) --------------------------------------------


def _sa_case(name: str, seed: int, n: int, d_model: int, d_k: int, d_v: int, scale: float = 1.0,
             dtype: Any = float, batch: tuple[int, ...] = ()) -> Case:
    return Case(name, (
        ("X", random_normal(seed, *batch, n, d_model, scale=scale, dtype=dtype)),
        ("W_Q", random_normal(seed + 1, d_model, d_k, dtype=dtype)),
        ("W_K", random_normal(seed + 2, d_model, d_k, dtype=dtype)),
        ("W_V", random_normal(seed + 3, d_model, d_v, dtype=dtype)),
    ))


def _sa_cases() -> list[Case]:
    hand = Case("hand-worked, n = 2, d_model = 3, d_k = d_v = 2", (
        ("X", np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])),
        ("W_Q", np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])),
        ("W_K", np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])),
        ("W_V", np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])),
    ))
    return [
        hand,
        _sa_case("random, n = 3, d_model = 4, d_k = 2, d_v = 3", 500, 3, 4, 2, 3),
        _sa_case("random, square: n = d_model = d_k = d_v = 4", 510, 4, 4, 4, 4),
        _sa_case("random, n = 5, d_model = 6, d_k = d_v = 3", 520, 5, 6, 3, 3),
        _sa_case("float32, n = 4, d_model = 5, d_k = 3, d_v = 2", 530, 4, 5, 3, 2,
                 dtype=np.float32),
        _sa_case("large embeddings, scaled scores near ±1000", 540, 3, 4, 4, 2, scale=12),
    ]


def _sa_harder() -> list[Case]:
    return [_sa_case("a batch of 2 sequences, n = 3, d_model = 4, d_k = 2, d_v = 3",
                     550, 3, 4, 2, 3, batch=(2,))]


def _attend(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, scale: float | None = None, axis: int = -1,
    stable: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(O, weights) for the given Q, K, V, with a choice of scale, softmax axis, stability."""
    scaled = Q @ T(K) / math.sqrt(Q.shape[-1] if scale is None else scale)
    if stable:
        weights = attention.softmax(scaled, axis=axis)
    else:
        e = np.exp(scaled)
        weights = e / e.sum(axis=axis, keepdims=True)
    return weights @ V, weights


def _variant(
    how: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[Any, Any]],
) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """A wrong self_attention from `how(X, Q, K, V) -> (O, weights)`."""

    def variant(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray) -> Any:
        return how(X, X @ W_Q, X @ W_K, X @ W_V)

    return variant


def _with_wrong_keys(W_name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def variant(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray) -> Any:
        W = {"W_Q": W_Q, "W_V": W_V}[W_name]
        return _attend(X @ W_Q, X @ W, X @ W_V)

    return variant


def _transposed_variants() -> list[Mistake]:
    def make(o_t: bool, w_t: bool) -> Callable[..., Any]:
        def how(X: Any, Q: Any, K: Any, V: Any) -> tuple[Any, Any]:
            _, weights = _attend(Q, K, V)
            wt = T(weights)
            return (wt if o_t else weights) @ V, (wt if w_t else weights)

        return _variant(how)

    return [Mistake("weights-transposed", _TRANSPOSED, make(o_t, w_t))
            for o_t, w_t in ((True, False), (True, True), (False, True))]


def _mean_rows(how: str) -> Callable[..., Any]:
    def wrong(X: Any, Q: Any, K: Any, V: Any) -> tuple[Any, Any]:
        _, weights = _attend(Q, K, V)
        row = V.sum(axis=-2, keepdims=True) if how == "sum" else V.mean(axis=-2, keepdims=True)
        return _every_row(row, Q.shape[-2]), weights

    return _variant(wrong)


SELF_ATTENTION = Checker(
    function="self_attention",
    outputs=("O", "weights"),
    reference=attention.self_attention,
    make_cases=_sa_cases,
    make_harder=_sa_harder,
    mistakes=(
        Mistake(
            "wrong-order",
            "outputs and weights are returned in the wrong order: return (O, weights).",
            _variant(lambda X, Q, K, V: _attend(Q, K, V)[::-1]),
        ),
        *_transposed_variants(),
        Mistake("unweighted", _UNWEIGHTED, _mean_rows("sum")),
        Mistake("averaged", _UNWEIGHTED, _mean_rows("mean")),
        Mistake(
            "keys-wrong-matrix",
            "the keys are computed with the wrong matrix: K = X W_K (not W_Q or W_V).",
            _with_wrong_keys("W_Q"),
        ),
        Mistake(
            "keys-wrong-matrix",
            "the keys are computed with the wrong matrix: K = X W_K (not W_Q or W_V).",
            _with_wrong_keys("W_V"),
        ),
        Mistake(
            "scaled-by-d_model",
            "you scaled by √d_model; the scale is √d_k, the width of the queries and keys "
            "(d_k = Q.shape[-1] = W_Q.shape[1]), not of the embeddings.",
            _variant(lambda X, Q, K, V: _attend(Q, K, V, scale=X.shape[-1])),
        ),
        Mistake(
            "no-scaling",
            "no scaling: divide the scores by √d_k before the softmax, "
            "softmax(Q Kᵀ / √d_k).",
            _variant(lambda X, Q, K, V: _attend(Q, K, V, scale=1.0)),
        ),
        Mistake(
            "wrong-axis",
            "softmax over the wrong axis: row i of the weights (the query of token i) must sum "
            "to 1, so the softmax runs along axis=-1.",
            _variant(lambda X, Q, K, V: _attend(Q, K, V, axis=-2)),
        ),
        Mistake(
            "K-Q-transposed",
            "you computed the scores as K Qᵀ; they are Q Kᵀ (a_ij = q_i · k_j).",
            _variant(lambda X, Q, K, V: _attend(K, Q, V)),
        ),
        Mistake(
            "V-not-projected",
            "the values are not projected: O = α V with V = X W_V, not α X.",
            _variant(lambda X, Q, K, V: _attend(Q, K, X)),
        ),
        Mistake(
            "unstable-softmax",
            "your softmax is not stable: with large scores np.exp overflows (inf / inf = "
            "NaN). Subtract the row maximum before np.exp.",
            _variant(lambda X, Q, K, V: _attend(Q, K, V, stable=False)),
        ),
    ),
    hint="Q, K, V = X W_Q, X W_K, X W_V; weights = softmax(Q Kᵀ / √d_k) along each row; "
    "O = weights @ V; return (O, weights).",
    nan_hint="your result contains NaN or inf: the softmax overflowed. Subtract the row "
    "maximum of the scaled scores before np.exp.",
)


def check_self_attention(
    self_attention: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `self_attention(X, W_Q, W_K, W_V)`, which must return (O, weights)."""
    return SELF_ATTENTION.check(self_attention, timeout=timeout, harder=harder)
