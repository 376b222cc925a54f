"""What the runner sends back from the sandbox: one class per message, and one parser.

The runner (inside the sandbox) builds these messages and sends each as one frame of wire.py
(`to_wire`: a JSON header naming the message and its fields, plus the arrays of a returned
value). The grader turns each frame back into a message with `parse`, which checks every
field against the job (a cell of the notebook, a graded function, a case that exists, the
case's own inputs, text, true or false, a number of bytes) and raises `wire.WireError` on
anything else: nothing the sandbox sends is trusted (BOUNDARY.md says why each field is safe).

    CellStarted      a code cell starts            CellEnded     it ended (timed out, error)
    CallStarted      a function is called on a case  CallReturned  its outcome
    FunctionMissing  the notebook does not define it FunctionEnded all its cases were called
    ImportBlocked    the notebook imported course_lib (not available when grading)
    Finished         every step of the job ran

This module imports only the standard library, numpy, wire.py and calling.py (for ErrorInfo),
on purpose: it is copied next to the sandbox's runner, which must not import course_lib.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

if __package__:  # in course_lib
    from ..checks.calling import ErrorInfo
    from . import wire
else:  # a standalone file in the sandbox, next to copies of calling.py and wire.py
    import wire  # type: ignore[no-redef]
    from calling import ErrorInfo  # type: ignore[no-redef]

__all__ = ["CellStarted", "CellEnded", "CallStarted", "CallReturned", "FunctionMissing",
           "FunctionEnded", "ImportBlocked", "Finished", "Message", "Encoded", "Expected",
           "to_wire", "parse"]


@dataclass(frozen=True)
class CellStarted:
    cell: int  # the cell's index in the notebook


@dataclass(frozen=True)
class CellEnded:
    cell: int
    timed_out: bool = False  # stopped by the runner's own alarm
    error: ErrorInfo | None = None  # what it raised (an exit too: SystemExit, ProcessExit)


@dataclass(frozen=True)
class CallStarted:
    function: str
    case: int  # the case's index in the job's list for this function


@dataclass(frozen=True)
class CallReturned:
    """A case's outcome. `value`: what the function returned, on the runner's side already
    encoded where it was made (`Encoded`), on the grader's side decoded (plain numbers,
    arrays, stand-ins)."""

    function: str
    case: int
    value: Any = None
    error: ErrorInfo | None = None
    timed_out: bool = False
    mutated: tuple[str, ...] = ()  # the inputs it modified
    peak_memory: int | None = None  # bytes, for a case whose memory is measured


@dataclass(frozen=True)
class FunctionMissing:
    function: str
    found: str  # the type's name of what the notebook has under that name ("NoneType": none)


@dataclass(frozen=True)
class FunctionEnded:
    function: str


@dataclass(frozen=True)
class ImportBlocked:
    module: str  # "course_lib.attention"


@dataclass(frozen=True)
class Finished:
    pass


Message = (CellStarted | CellEnded | CallStarted | CallReturned | FunctionMissing
           | FunctionEnded | ImportBlocked | Finished)

_NAMES: dict[type, str] = {
    CellStarted: "cell-started", CellEnded: "cell-ended", CallStarted: "call-started",
    CallReturned: "call-returned", FunctionMissing: "function-missing",
    FunctionEnded: "function-ended", ImportBlocked: "import-blocked", Finished: "finished",
}


@dataclass(frozen=True)
class Encoded:
    """A value in wire form (wire.encode's tree and its arrays)."""

    tree: Any
    arrays: list[np.ndarray]

    @classmethod
    def of(cls, value: Any) -> Encoded:
        arrays: list[np.ndarray] = []
        return cls(wire.encode(value, arrays), arrays)


# -- the runner's side ----------------------------------------------------------------------------


def to_wire(message: Message) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The frame's header (the message's name and fields) and arrays for `message`."""
    header: dict[str, Any] = {"message": _NAMES[type(message)]}
    arrays: list[np.ndarray] = []
    for item in dataclasses.fields(message):
        value = getattr(message, item.name)
        if isinstance(value, Encoded):
            value, arrays = value.tree, value.arrays
        elif isinstance(value, ErrorInfo):
            value = {"type": value.type, "message": value.message, "line": value.line}
        elif isinstance(value, tuple):
            value = list(value)
        header[item.name] = value
    return header, arrays


# -- the grader's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a message may name: the notebook's code cells, and for each graded function the
    input names of each of its cases (in the job's order)."""

    cells: frozenset[int]
    cases: Mapping[str, Sequence[frozenset[str]]]


class _Fields:
    """One header's fields, each read with its check (WireError when it fails)."""

    def __init__(self, header: dict[str, Any], expected: Expected) -> None:
        self.header, self.expected = header, expected

    def text(self, key: str, limit: int) -> str:
        value = self.header.get(key)
        if not isinstance(value, str):
            raise wire.WireError(f"{key!r} is not text")
        return value[:limit]

    def flag(self, key: str) -> bool:
        value = self.header.get(key, False)
        if not isinstance(value, bool):
            raise wire.WireError(f"{key!r} is not true or false")
        return value

    def cell(self) -> int:
        index = self.header.get("cell")
        if type(index) is not int or index not in self.expected.cells:
            raise wire.WireError("a cell that is not in the notebook")
        return index

    def function(self) -> str:
        name = self.text("function", 200)
        if name not in self.expected.cases:
            raise wire.WireError("a function that is not graded")
        return name

    def case(self) -> tuple[str, int]:
        name, index = self.function(), self.header.get("case")
        if type(index) is not int or not 0 <= index < len(self.expected.cases[name]):
            raise wire.WireError("a case that does not exist")
        return name, index

    def error(self) -> ErrorInfo | None:
        error = self.header.get("error")
        if error is None:
            return None
        if not isinstance(error, dict):
            raise wire.WireError("an error that is not a record")
        inner = _Fields(error, self.expected)
        line = error.get("line", "")
        return ErrorInfo(inner.text("type", 80), inner.text("message", 300), str(line)[:200])


def _call_returned(fields: _Fields, arrays: list[np.ndarray]) -> CallReturned:
    name, index = fields.case()
    mutated = fields.header.get("mutated")
    if not isinstance(mutated, list) or not set(mutated) <= fields.expected.cases[name][index]:
        raise wire.WireError("a list of modified inputs that are not the case's inputs")
    peak = fields.header.get("peak_memory")
    if peak is not None and (type(peak) is not int or peak < 0):
        raise wire.WireError("a peak memory that is not a number of bytes")
    tree = fields.header.get("value")
    return CallReturned(name, index, None if tree is None else wire.decode(tree, arrays),
                        fields.error(), fields.flag("timed_out"), tuple(mutated), peak)


_PARSERS: dict[str, Callable[[_Fields, list[np.ndarray]], Message]] = {
    "cell-started": lambda f, _: CellStarted(f.cell()),
    "cell-ended": lambda f, _: CellEnded(f.cell(), f.flag("timed_out"), f.error()),
    "call-started": lambda f, _: CallStarted(*f.case()),
    "call-returned": _call_returned,
    "function-missing": lambda f, _: FunctionMissing(f.function(), f.text("found", 60)),
    "function-ended": lambda f, _: FunctionEnded(f.function()),
    "import-blocked": lambda f, _: ImportBlocked(f.text("module", 80)),
    "finished": lambda f, _: Finished(),
}


def parse(header: dict[str, Any], arrays: list[np.ndarray], expected: Expected) -> Message:
    """The message one frame holds, every field checked against `expected`; WireError (or
    KeyError, TypeError, ValueError from a malformed value) when it is not one the runner
    can have sent for this job."""
    kind = header.get("message")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise wire.WireError(f"an unknown message {str(kind)[:20]!r}")
    return parser(_Fields(header, expected), arrays)
