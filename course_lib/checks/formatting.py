"""How the checkers show arrays, values and errors to the learner."""

from __future__ import annotations

from typing import Any

import numpy as np

from course_lib.checks.calling import ErrorInfo, brief_repr

__all__ = ["format_array", "kind_of", "describe_value", "describe_error"]


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
