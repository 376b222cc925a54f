"""Drawing the numbers of the cases: deterministic from fixed seeds, fresh for the grader."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.cases import Case

__all__ = ["random_normal", "fresh_draw", "same_inputs", "softmax_rows"]

_DRAW: list[int] = []  # the grader's seed while it draws fresh cases (fresh_draw)


@contextlib.contextmanager
def fresh_draw(seed: int) -> Iterator[None]:
    """Within it, `random_normal(s, ...)` draws from (s, seed) instead of s: the same cases'
    shapes, scales and dtypes with other numbers (the grader's fresh cases)."""
    _DRAW.append(seed)
    try:
        yield
    finally:
        _DRAW.pop()


def random_normal(seed: int, *shape: int, scale: float = 1.0, dtype: Any = np.float64) -> Any:
    """A deterministic array of normal numbers for the cases (seeded, rounded to 0.1); inside
    `fresh_draw(g)`, drawn from the seed pair (seed, g)."""
    rng = np.random.default_rng([seed, _DRAW[-1]] if _DRAW else seed)
    return (np.round(rng.normal(size=shape) * scale, 1)).astype(dtype)


def same_inputs(a: Case, b: Case) -> bool:
    """Whether two cases have equal inputs (a hand-worked case is not redrawn)."""
    try:
        return all(
            np.array_equal(x, y) if isinstance(x, np.ndarray) else bool(x == y)
            for x, y in zip(a.inputs.values(), b.inputs.values(), strict=True)
        )
    except (TypeError, ValueError):
        return False


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """A valid weight matrix (rows sum to 1) from scores, for the cases of weighted_sum: the
    course's softmax, so a row of −∞ only gives zeros, not NaN."""
    return attention.softmax(x, axis=-1)
