"""How close is right: the tolerance of a case, and the judge's own comparison.

The tolerance comes from a case's inputs only (`case_tolerance`), never from the dtype the
learner chose to return. `allclose` works on plain float64 copies with the judge's own
references to the numpy functions it uses, taken when the checkers are imported: a notebook
that rebinds np.allclose, np.isfinite or np.ndarray later cannot sway a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from course_lib.checks.cases import Case

__all__ = ["tolerance", "case_tolerance", "allclose", "all_close"]

ndarray, float64 = np.ndarray, np.float64
absolute, isfinite, isnan, less_equal = np.absolute, np.isfinite, np.isnan, np.less_equal


def tolerance(precision: np.dtype | int) -> tuple[float, float]:
    """(rtol, atol) for results computed in this float dtype (or number of bytes)."""
    itemsize = precision if isinstance(precision, int) else np.dtype(precision).itemsize
    if itemsize <= 2:
        return 5e-3, 5e-3
    if itemsize <= 4:
        return 2e-4, 1e-5
    return 1e-7, 1e-9


def case_tolerance(case: Case) -> tuple[float, float]:
    """(rtol, atol) for judging a case, from its inputs only.

    Inputs in float16 are judged at float16's tolerance; in float32 or float64 at float32's,
    so that a result computed in float32 from float64 inputs is right. The dtype the learner
    returns never loosens it: a float16 result of such a case is a result of the wrong kind.
    """
    return tolerance(min(case.dtype.itemsize, 4))


def allclose(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """Close within rtol, and within atol relative to the largest finite expected value.

    NaN matches NaN and an infinity the same infinity. Plain arithmetic on float64 copies,
    with the judge's own numpy references (np.allclose itself may be patched by a notebook).
    """
    if got.shape != want.shape:
        return False
    got = ndarray.view(got, ndarray).astype(float64)
    want = ndarray.view(want, ndarray).astype(float64)
    finite = want[isfinite(want)]
    scale = max(1.0, float(absolute(finite).max())) if finite.size else 1.0
    with np.errstate(invalid="ignore"):
        close = less_equal(absolute(got - want), atol * scale + rtol * absolute(want))
    return bool((close | (got == want) | (isnan(got) & isnan(want))).all())


def all_close(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], rtol: float, atol: float
) -> bool:
    """Whether two sequences of arrays have the same length and are close item by item."""
    return len(a) == len(b) and all(
        isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and allclose(x, y, rtol, atol)
        for x, y in zip(a, b, strict=True)
    )
