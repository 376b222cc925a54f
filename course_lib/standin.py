"""A stand-in for a value that cannot cross a boundary: its type's name and a short repr.

A learner's function may return an object that is not plain data (a `Liar` whose `__eq__`
always says True, an open file, a generator). It is never sent across a boundary (from the
checker's forked child, `checks/calling.py`; from the grader's sandbox, `grading/wire.py`) as
itself: only its type's name and a short repr travel, and `stand_in` makes, on the other side,
an inert object of a class with the same name, so that a checker can still say "your result
is a Liar, not a NumPy array" and no code of the learner's runs there.

This module imports nothing at all, on purpose: it is copied into the grader's sandbox next to
the runner, where course_lib may not be imported, and both sides load it.
"""

from __future__ import annotations

__all__ = ["StandIn", "stand_in"]


class StandIn:
    """An inert object that shows as the repr of the value it stands in for."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text

    __str__ = __repr__


def stand_in(type_name: str, text: str) -> StandIn:
    """A `StandIn` whose class has the original object's type name ("object" when that name is
    not an identifier), showing `text` (cut to 200 characters)."""
    name = type_name[:60] if type_name[:60].isidentifier() else "object"
    return type(name, (StandIn,), {})(str(text)[:200])
