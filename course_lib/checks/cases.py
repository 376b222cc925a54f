"""What a checker is made of: its cases (named inputs) and its known mistakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_lib.checks.formatting import format_array

__all__ = ["Case", "Mistake", "T"]


@dataclass(frozen=True)
class Case:
    """One input for the learner's function: named positional arguments and keywords.

    memory_limit: the most bytes the function may hold at once on this case (its peak is
    then measured by the caller); None, the default, for no limit and no measurement.
    """

    name: str
    args: tuple[tuple[str, Any], ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    memory_limit: int | None = None

    @property
    def inputs(self) -> dict[str, Any]:
        return dict(self.args) | dict(self.kwargs)

    @property
    def size(self) -> int:
        """Total number of numbers in the inputs (to find the smallest failing case)."""
        return sum(int(np.size(value)) for value in self.inputs.values())

    @property
    def dtype(self) -> np.dtype:
        """The lowest float precision among the inputs (float64 when none is a float)."""
        floats = [
            value.dtype
            for value in self.inputs.values()
            if isinstance(value, np.ndarray) and value.dtype.kind == "f"
        ]
        return min(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float64)

    def call(self, fn: Callable[..., Any]) -> Any:
        """Call `fn` on the inputs directly (for the reference and the wrong variants)."""
        return fn(*(value for _, value in self.args), **self.kwargs)

    def describe(self, function: str) -> str:
        """The call and the inputs, as shown to the learner."""
        arrays = {key: value for key, value in self.kwargs.items()
                  if isinstance(value, np.ndarray)}  # listed below, as the positional ones
        names = [name for name, _ in self.args]
        names += [f"{key}={key if key in arrays else repr(value)}"
                  for key, value in self.kwargs.items()]
        lines = [f"  {function}({', '.join(names)})  [{self.name}]"]
        for name, value in [*self.args, *arrays.items()]:
            if isinstance(value, np.ndarray):
                shape = " × ".join(str(s) for s in value.shape) or "scalar"
                lines.append(f"  {name} ({shape}, {value.dtype}) =")
                lines.append(format_array(value))
            else:
                lines.append(f"  {name} = {value!r}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Mistake:
    """A known wrong way to write the function: its output, and the hint that names it."""

    key: str
    hint: str
    compute: Callable[..., Any]  # same arguments as the learner's function


def T(M: np.ndarray) -> np.ndarray:
    """Mᵀ over the last two axes (batch axes stay): for the references and wrong variants."""
    return np.swapaxes(M, -1, -2)
