"""Checker of exercise 02, dot-product scores: `attention_scores(Q, K) -> A = Q Kᵀ`.

Lesson: notebooks/02_dot_product_scores.ipynb. Exercise: exercises/02_dot_product_scores.ipynb.
Tests: tests/test_checks_dot_product_scores.py.
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
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = ["ATTENTION_SCORES", "check_attention_scores"]


def _case(name: str, Q: Any, K: Any) -> Case:
    return Case(name, (("Q", np.asarray(Q)), ("K", np.asarray(K))))


def _random(name: str, seed: int, n: int, d_k: int, scale: float = 1.0, dtype: Any = float,
            batch: tuple[int, ...] = ()) -> Case:
    return _case(name, random_normal(seed, *batch, n, d_k, scale=scale, dtype=dtype),
                 random_normal(seed + 1, *batch, n, d_k, scale=scale, dtype=dtype))


def _cases() -> list[Case]:
    return [
        _case("hand-worked, n = d_k = 2", [[1.0, 2.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]]),
        _case("hand-worked, n = 3, d_k = 2",
              [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 2.0], [0.0, 1.0], [-1.0, 1.0]]),
        _random("random, n = 4, d_k = 3", 200, 4, 3),
        _random("random, square: n = d_k = 4", 210, 4, 4),
        _random("random, n = 2, d_k = 5", 220, 2, 5),
        _random("float32, n = 5, d_k = 3", 230, 5, 3, dtype=np.float32),
        _random("large entries, scores near ±1000", 240, 3, 4, scale=20),
    ]


def _harder() -> list[Case]:
    return [_random("a batch of 2 sequences, n = 3, d_k = 2", 250, 3, 2, batch=(2,))]



ATTENTION_SCORES = Checker(
    function="attention_scores",
    outputs=("A",),
    reference=attention.attention_scores,
    make_cases=_cases,
    make_harder=_harder,
    mistakes=(
        Mistake(
            "K-Q-transposed",
            "you computed K Qᵀ, the transpose of the scores; A = Q Kᵀ, so that a_ij = q_i · k_j "
            "(row i: the query of token i against every key).",
            lambda Q, K: K @ T(Q),
        ),
        Mistake(
            "missing-transpose",
            "missing transpose: Q @ K multiplies rows of Q with columns of K. Each score is a "
            "dot product of a query row with a key row: A = Q Kᵀ = Q @ K.T.",
            lambda Q, K: Q @ K,
        ),
        Mistake(
            "already-scaled",
            "scaling already applied: attention_scores returns the raw scores A = Q Kᵀ; the "
            "division by √d_k is the next step (scale_scores, exercise 03).",
            lambda Q, K: Q @ T(K) / math.sqrt(Q.shape[-1]),
        ),
        Mistake(
            "diagonal-only",
            "you computed only the diagonal q_i · k_i ((Q * K).sum(-1)): the scores compare "
            "every query with every key, an n × n matrix A = Q Kᵀ.",
            lambda Q, K: (Q * K).sum(-1),
        ),
        Mistake(
            "QT-K",
            "Qᵀ K is a d_k × d_k matrix (it mixes dimensions, not tokens); the scores are "
            "A = Q Kᵀ, an n × n matrix.",
            lambda Q, K: T(Q) @ K,
        ),
        Mistake(
            "elementwise",
            "Q * K multiplies element by element; the scores need the matrix product "
            "A = Q @ K.T.",
            lambda Q, K: Q * K,
        ),
        Mistake(
            "batch-T",
            "with a batch of sequences, K.T reverses all the axes; transpose only the last "
            "two: np.swapaxes(K, -1, -2).",
            lambda Q, K: Q @ K.T,
        ),
    ),
    hint="A = Q Kᵀ (Q @ K.T): a_ij = q_i · k_j, the dot product of query i with key j; "
    "shape (n, n).",
)


def check_attention_scores(
    attention_scores: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `attention_scores(Q, K)`, which must return A = Q Kᵀ."""
    return ATTENTION_SCORES.check(attention_scores, timeout=timeout, harder=harder)
