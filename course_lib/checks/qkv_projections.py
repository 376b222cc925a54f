"""Checker of exercise 01, Q/K/V projections: `project_qkv(X, W_Q, W_K, W_V) -> (Q, K, V)`.

Lesson: notebooks/01_qkv_projections.ipynb. Exercise: exercises/01_qkv_projections.ipynb.
Tests: tests/test_checks_qkv_projections.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake, T
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = ["PROJECT_QKV", "check_project_qkv"]


def _case(name: str, seed: int, n: int, d_model: int, d_k: int, d_v: int, dtype: Any = float,
          batch: tuple[int, ...] = ()) -> Case:
    return Case(name, (
        ("X", random_normal(seed, *batch, n, d_model, dtype=dtype)),
        ("W_Q", random_normal(seed + 1, d_model, d_k, scale=0.5, dtype=dtype)),
        ("W_K", random_normal(seed + 2, d_model, d_k, scale=0.5, dtype=dtype)),
        ("W_V", random_normal(seed + 3, d_model, d_v, scale=0.5, dtype=dtype)),
    ))


def _cases() -> list[Case]:
    hand = Case("hand-worked, n = 3, d_model = d_k = d_v = 2", (
        ("X", np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])),
        ("W_Q", np.array([[1.0, 2.0], [0.0, 1.0]])),
        ("W_K", np.array([[0.0, 1.0], [1.0, 0.0]])),
        ("W_V", np.array([[2.0, 0.0], [1.0, 3.0]])),
    ))
    return [
        hand,
        _case("random, square: n = d_model = d_k = d_v = 3", 100, 3, 3, 3, 3),
        _case("random, n = 4, d_model = 3, d_k = 2, d_v = 5", 110, 4, 3, 2, 5),
        _case("random, n = 2, d_model = d_k = d_v = 4", 120, 2, 4, 4, 4),
        _case("float32, n = 5, d_model = 4, d_k = d_v = 3", 130, 5, 4, 3, 3, dtype=np.float32),
    ]


def _harder() -> list[Case]:
    return [_case("a batch of 2 sequences, n = 3, d_model = 4, d_k = 2, d_v = 3",
                  140, 3, 4, 2, 3, batch=(2,))]



def _wrong_matrices() -> list[Mistake]:
    """Every way of using the wrong weight matrix for one of Q, K, V (but K and V swapped,
    which has its own hint)."""
    mistakes = []
    for choice in itertools.product(range(3), repeat=3):
        if choice in ((0, 1, 2), (0, 2, 1)):
            continue
        mistakes.append(Mistake(
            "wrong-matrix",
            "one of your outputs uses the wrong weight matrix: Q = X W_Q, K = X W_K, "
            "V = X W_V (check for a copy-paste slip).",
            lambda X, *W, choice=choice: tuple(X @ W[c] for c in choice),
        ))
    return mistakes


PROJECT_QKV = Checker(
    function="project_qkv",
    outputs=("Q", "K", "V"),
    reference=attention.project_qkv,
    make_cases=_cases,
    make_harder=_harder,
    mistakes=(
        Mistake(
            "K-V-swapped",
            "K and V are swapped: return (Q, K, V) in this order, with K = X W_K (the keys) "
            "and V = X W_V (the values).",
            lambda X, W_Q, W_K, W_V: (X @ W_Q, X @ W_V, X @ W_K),
        ),
        Mistake(
            "outputs-transposed",
            "your outputs are transposed: in the course's row convention each token is a row, "
            "so Q = X W_Q has shape (n, d_k), one query per row. Do not transpose.",
            lambda X, W_Q, W_K, W_V: (T(X @ W_Q), T(X @ W_K), T(X @ W_V)),
        ),
        Mistake(
            "V-not-projected",
            "V is returned without projection: the values are V = X W_V, not X itself.",
            lambda X, W_Q, W_K, W_V: (X @ W_Q, X @ W_K, X),
        ),
        Mistake(
            "weights-transposed",
            "the weight matrices are transposed: W_Q has shape (d_model, d_k) and "
            "multiplies X from the right as it is, Q = X W_Q (no .T).",
            lambda X, W_Q, W_K, W_V: (X @ T(W_Q), X @ T(W_K), X @ T(W_V)),
        ),
        Mistake(
            "W-times-X",
            "the product is in the wrong order: with one token per row it is Q = X W_Q "
            "(X on the left), not W_Q X.",
            lambda X, W_Q, W_K, W_V: (W_Q @ X, W_K @ X, W_V @ X),
        ),
        *_wrong_matrices(),
    ),
    hint="Q = X W_Q, K = X W_K, V = X W_V: each a matrix product (X @ W) of X, shape "
    "(n, d_model), with a weight matrix of shape (d_model, d_k); return the tuple (Q, K, V).",
)


def check_project_qkv(
    project_qkv: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `project_qkv(X, W_Q, W_K, W_V)`, which must return (Q, K, V)."""
    return PROJECT_QKV.check(project_qkv, timeout=timeout, harder=harder)
