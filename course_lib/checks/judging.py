"""Judging one outcome of the learner's function against the reference on one case.

The checks run in order: the call ended (time, exception), the inputs are untouched, the value
has the expected structure (a tuple of the outputs, each a NumPy array of real numbers), then
per output its kind (a boolean mask where one is expected, numbers where numbers are, no
precision below the inputs'), its shape, NaN, its values, and last the peak memory when the
case measures it. The judge works on its own plain copies of the results (base-class
`np.ndarray`), so an ndarray subclass cannot sway it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from course_lib.checks.calling import Outcome
from course_lib.checks.cases import Case
from course_lib.checks.formatting import describe_error, kind_of
from course_lib.checks.tolerances import (
    absolute,
    allclose,
    case_tolerance,
    float64,
    isfinite,
    ndarray,
)

__all__ = ["Verdict", "Judged", "judge", "structure", "label"]


@dataclass(frozen=True)
class Verdict:
    """The judge's word on one case: ok, else the kind of fault and what is wrong."""

    ok: bool
    kind: str = "passed"  # see CheckResult.diagnosis
    problem: str = ""  # what is wrong on this case, one or two lines


class Judged(NamedTuple):
    """One case, what the learner's function did on it, and the verdict."""

    case: Case
    outcome: Outcome
    verdict: Verdict


def label(name: str, outputs: Sequence[str]) -> str:
    """How a verdict names an output: "Your output `weights`" (a singular noun, whatever
    the output's name), or "Your result" for a function with one output."""
    return f"Your output `{name}`" if len(outputs) > 1 else "Your result"


def structure(value: Any, outputs: Sequence[str]) -> tuple[tuple[np.ndarray, ...] | None, str]:
    """The learner's value as a tuple of numeric arrays, one per name of `outputs`, or
    (None, what is wrong).

    The arrays are the judge's own: plain `np.ndarray` copies (never the learner's
    subclass, whose comparisons or attributes could be overridden)."""
    if value is None:
        return None, "Your function returned None: did you forget the `return` statement?"
    if len(outputs) == 1 and isinstance(value, tuple | list) and value and all(
        issubclass(type(item), ndarray) for item in value
    ):
        fix = (
            f"return only {outputs[0]}, not a tuple" if isinstance(value, tuple)
            else "combine the pieces into one with np.stack(...) (or np.array(...))"
        )
        return None, (
            f"Your function returned {kind_of(value)} of {len(value)} arrays; expected one "
            f"NumPy array: {fix}."
        )
    if len(outputs) > 1:
        wanted = f"a tuple ({', '.join(outputs)})"
        if not isinstance(value, tuple | list):
            return None, f"Your function returned {kind_of(value)}; expected {wanted}."
        if len(value) != len(outputs):
            return None, (
                f"Your function returned {len(value)} values; expected {wanted} of "
                f"{len(outputs)}."
            )
        items = tuple(value)
    else:
        items = (value,)
    plain = []
    for name, item in zip(outputs, items, strict=True):
        if not issubclass(type(item), ndarray):
            return None, (
                f"{label(name, outputs)} is {kind_of(item)}, not a NumPy array: "
                "build it with numpy operations, or convert it with np.array(...)."
            )
        item = ndarray.view(item, ndarray).copy()  # base class, our own copy
        if item.dtype.kind not in "biuf":
            return None, (
                f"{label(name, outputs)} is an array of dtype {item.dtype}; "
                "it must hold real numbers."
            )
        plain.append(item)
    return tuple(plain), ""


def judge(case: Case, outcome: Outcome, expected: Sequence[np.ndarray],
          outputs: Sequence[str]) -> Verdict:
    """Compare one outcome with the reference's `expected` outputs on `case`."""
    if outcome.timed_out:
        return Verdict(False, "timeout", "Your function did not finish in time.")
    if outcome.error is not None:
        return Verdict(False, "exception", describe_error(outcome.error))
    if outcome.mutated:
        names = ", ".join(f"`{name}`" for name in outcome.mutated)
        return Verdict(False, "mutation", f"Your function modified its input {names}.")
    received, problem = structure(outcome.value, outputs)
    if received is None:
        return Verdict(False, "type", problem)
    triples = list(zip([label(name, outputs) for name in outputs], received, expected,
                       strict=True))
    for name, got, want in triples:
        wrong_kind = _wrong_kind(name, got, want, case)
        if wrong_kind is not None:
            return wrong_kind
    for name, got, want in triples:
        if got.shape != want.shape:
            return Verdict(False, "shape", f"{name} has shape {got.shape}; expected {want.shape}.")
    for name, got, want in triples:
        if not isfinite(got).all() and isfinite(want).all():
            return Verdict(False, "nan", f"{name} contains NaN or inf.")
    rtol, atol = case_tolerance(case)
    for name, got, want in triples:
        if not allclose(got, want, rtol, atol):
            largest = float(absolute(got.astype(float64) - want).max())
            return Verdict(False, "values",
                           f"{name} has wrong values (largest difference {largest:.3g}).")
    limit, peak = case.memory_limit, outcome.peak_memory
    if limit is not None and peak is not None and peak > limit:
        # the limit, not the measured peak, goes into the text: it must be the same each run
        return Verdict(
            False, "memory",
            f"Your values are right, but at its peak your function held more than "
            f"{limit / 2**20:g} MiB of memory at once, the most this case allows.",
        )
    return Verdict(True)


_DIGITS = {2: 3, 4: 7, 8: 16}


def _wrong_kind(name: str, got: np.ndarray, want: np.ndarray, case: Case) -> Verdict | None:
    """A Verdict when `got` is not the kind of array expected (its dtype), else None."""
    if want.dtype == np.bool_ and got.dtype != np.bool_:
        return Verdict(False, "not-boolean", f"{name} holds numbers (dtype {got.dtype}); "
                       "expected a boolean array (dtype bool).")
    if want.dtype.kind != "f":
        return None
    if got.dtype == np.bool_:
        return Verdict(False, "boolean-result", f"{name} is a boolean array (True/False); "
                       f"expected numbers (dtype {want.dtype}).")
    if got.dtype.kind in "iu":
        return Verdict(False, "integer-result", f"{name} holds whole numbers (dtype "
                       f"{got.dtype}); expected floats (dtype {want.dtype}).")
    if got.itemsize < min(case.dtype.itemsize, 4):
        return Verdict(False, "low-precision", f"{name} is {got.dtype}, which keeps about "
                       f"{_DIGITS.get(got.itemsize, 3)} significant digits; the inputs are "
                       f"{case.dtype}.")
    return None
