"""How the checkers show arrays, values and errors to the learner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib.checks.calling import ErrorInfo, brief_repr

if TYPE_CHECKING:
    from course_lib.checks.cases import Case

__all__ = ["format_array", "kind_of", "describe_value", "describe_error", "LONG_LISTING",
           "show_case", "brief_array", "brief_listing"]

LONG_LISTING = 30
"""The most lines a failing case's inputs may take in full; a longer listing shows each input
in one line (`brief_listing`), so that the verdict and the hint below it stay in view.
Counted on the checkers' cases: the smallest case of exercises 01-04 takes 3 to 16 lines and
their largest 28, so they always show every value; the other exercises' smallest cases take
2 to 25 lines, transformer_block's 50 (its inputs are 13 arrays); a batch case of the later
exercises can take 35 to 104."""

_ONE_LINE = 60
"""The most characters of an array's values shown in a brief listing's line."""


def format_array(array: np.ndarray) -> str:
    """An array in a few digits, indented by four spaces."""
    text = np.array2string(
        np.asarray(array), precision=4, suppress_small=True, max_line_width=88, threshold=200
    )
    return "\n".join("    " + line for line in text.splitlines())


def kind_of(value: Any) -> str:
    """What `value` is, with its article: "None", "a NumPy array of shape (2, 3)", "a list"."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a NumPy array of shape {value.shape}"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def describe_value(value: Any) -> str:
    """A received value that is not a NumPy array of numbers, in one line: its kind and a
    brief repr (an array: its shape and dtype)."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    return f"{kind_of(value)}: {brief_repr(value)}"


def describe_error(error: ErrorInfo) -> str:
    """The learner's exception, as a verdict's problem: its type, message and line."""
    where = f"\n  at {error.line}" if error.line else ""
    return f"Your function raised {error.type}: {error.message}{where}"


def show_case(case: Case, function: str) -> str:
    """The failing case as the learner sees it: in full (the call and every input's values,
    `Case.describe`), or one line per input when that would take more than `LONG_LISTING`
    lines."""
    full = case.describe(function)
    n_lines = len(full.splitlines())
    return full if n_lines <= LONG_LISTING else brief_listing(case, function, n_lines)


def brief_array(array: np.ndarray) -> str:
    """An array in one line: its shape and dtype, then its values when they fit in a short
    line ("(4, float64) = [1.4 0.9 1.2 0.5]"), else what they span ("(3 × 4, float64): from
    −2.8 to 2.3"; a boolean array: how many are True)."""
    shape = " × ".join(str(s) for s in array.shape) or "scalar"
    head = f"({shape}, {array.dtype})"
    values = np.array2string(array, precision=4, suppress_small=True,
                             max_line_width=10**6, threshold=200)
    if "\n" not in values and len(values) <= _ONE_LINE:
        return f"{head} = {values}"
    if array.size == 0:
        return f"{head}: empty"
    if array.dtype == np.bool_:
        return f"{head}: {int(np.count_nonzero(array))} of {array.size} True"
    if array.dtype.kind not in "iuf":
        return head
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.ravel()
    span = (f"from {_short(finite.min())} to {_short(finite.max())}" if finite.size
            else "no finite value")
    if finite.size < array.size:
        span += ", and NaN or inf"
    return f"{head}: {span}"


def _short(x: Any) -> str:
    """A number in at most 4 significant digits."""
    return f"{x:.4g}" if isinstance(x, float | np.floating) else str(x)


def brief_listing(case: Case, function: str, n_lines: int) -> str:
    """The call and one line per input (`brief_array`), then where to find every value: the
    result's `case` (the full listing, `n_lines` lines) and `inputs` (see `CheckResult`)."""
    arrays = [(name, value) for name, value in case.args]
    arrays += [(key, value) for key, value in case.kwargs.items()
               if isinstance(value, np.ndarray)]
    names = [name for name, _ in case.args]
    names += [f"{key}={key if isinstance(value, np.ndarray) else repr(value)}"
              for key, value in case.kwargs.items()]
    width = max(len(name) for name, _ in arrays) if arrays else 0
    lines = [f"  {function}({', '.join(names)})  [{case.name}]"]
    for name, value in arrays:
        shown = (brief_array(value) if isinstance(value, np.ndarray)
                 else f"= {brief_repr(value)}")
        lines.append(f"  {name:<{width}} {shown}")
    lines += [
        f"  (one line per input: their values take {n_lines} lines. To see them, run",
        f"   result = check_{function}({function}); print(result.case)",
        f"   and run the case again on copies of its inputs: {function}(**result.inputs))",
    ]
    return "\n".join(lines)
