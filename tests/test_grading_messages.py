"""The sandbox reads as a pipeline (issue 22 §5): typed messages with one parser, statuses as an
enum whose text is the gradebook's, one bound for the runner's stream, and one stand-in for a
value that cannot cross a boundary (issue 21 §5)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from course_lib.checks import calling
from course_lib.grading import messages, sandbox, status, wire
from course_lib.grading.messages import (
    CallReturned,
    CallStarted,
    CellEnded,
    CellStarted,
    Encoded,
    ErrorInfo,
    Expected,
    Finished,
    FunctionEnded,
    FunctionMissing,
    ImportBlocked,
)
from course_lib.grading.status import Status
from course_lib.standin import StandIn

EXPECTED = Expected(cells=frozenset({0, 2, 5}),
                    cases={"softmax": [frozenset({"x"}), frozenset({"x", "axis"})]})


def _through_the_pipe(message: messages.Message) -> messages.Message:
    """`message` as the runner sends it and the grader reads it back."""
    header, arrays = messages.to_wire(message)
    [(header, arrays)] = wire.FrameReader().feed(wire.frame(header, arrays))
    return messages.parse(header, arrays, EXPECTED)


def test_every_message_crosses_the_pipe_unchanged() -> None:
    plain = [
        CellStarted(2), CellEnded(2), CellEnded(5, timed_out=True),
        CellEnded(0, error=ErrorInfo("SyntaxError", "invalid syntax", "line 3")),
        CallStarted("softmax", 1), FunctionMissing("softmax", "NoneType"),
        FunctionEnded("softmax"), ImportBlocked("course_lib.attention"), Finished(),
        CallReturned("softmax", 0, error=ErrorInfo("ValueError", "no"), mutated=("x",)),
        CallReturned("softmax", 1, timed_out=True, peak_memory=123),
    ]
    for message in plain:
        assert _through_the_pipe(message) == message
    value = (np.arange(6.0).reshape(2, 3), [1, "text"], object())
    back = _through_the_pipe(CallReturned("softmax", 0, Encoded.of(value)))
    assert isinstance(back, CallReturned) and back.case == 0
    assert np.array_equal(back.value[0], value[0]) and back.value[1] == [1, "text"]
    assert isinstance(back.value[2], StandIn) and type(back.value[2]).__name__ == "object"


@pytest.mark.parametrize("header", [
    {"message": "no-such-message"},
    {},
    {"message": 3},
    {"message": "cell-started", "cell": 1},  # not a code cell of the notebook
    {"message": "cell-started", "cell": True},
    {"message": "cell-ended", "cell": 0, "timed_out": "yes"},
    {"message": "cell-ended", "cell": 0, "error": "boom"},
    {"message": "cell-ended", "cell": 0, "error": {"type": 1, "message": ""}},
    {"message": "call-started", "function": "attention", "case": 0},  # not graded
    {"message": "call-started", "function": "softmax", "case": 2},  # no such case
    {"message": "call-returned", "function": "softmax", "case": 0, "mutated": ["axis"]},
    {"message": "call-returned", "function": "softmax", "case": 0, "mutated": "x"},
    {"message": "call-returned", "function": "softmax", "case": 0, "mutated": [],
     "peak_memory": -1},
    {"message": "call-returned", "function": "softmax", "case": 0, "mutated": [],
     "value": {"t": "array", "i": 0}},  # an array that was not sent
    {"message": "function-missing", "function": "softmax", "found": None},
    {"message": "import-blocked", "module": ["course_lib"]},
])
def test_the_parser_refuses_what_the_runner_cannot_have_sent(header: dict) -> None:
    with pytest.raises((wire.WireError, KeyError, TypeError, ValueError)):
        messages.parse(header, [], EXPECTED)


def test_only_the_parser_reads_the_wire_names() -> None:
    """The sandbox reads messages through their classes: no wire key, no one-letter key."""
    source = Path(sandbox.__file__).read_text()
    assert not re.search(r"""\[["'][a-z]["']\]|\.get\(["'][a-z]["']""", source)
    assert "messages.parse(" in source and "match message:" in source
    runner = (Path(sandbox.__file__).parent / "runner.py").read_text()
    assert not re.search(r"""["']e["']\s*:""", runner)


def test_statuses_keep_the_gradebooks_words_and_order() -> None:
    assert [s.value for s in Status] == [
        "ran", "ran with errors", "timeout", "memory", "crashed", "unreadable"]
    assert status.status_line([]) == (Status.RAN, "ran")
    assert status.status_line([(Status.RAN, "a is not implemented yet"),
                               (Status.CRASHED, "cell 2: called sys.exit(1)"),
                               (Status.TIMEOUT, "b did not finish")]) == (
        Status.CRASHED,
        "crashed: a is not implemented yet; cell 2: called sys.exit(1); b did not finish")
    for folder in ("course_lib/grading",):  # the words are typed once, in status.py
        for path in sorted((Path(__file__).parents[1] / folder).glob("*.py")):
            if path.name != "status.py":
                assert '"ran with errors"' not in path.read_text(), path


def test_arrays_of_every_shape_cross_unchanged_a_0_d_one_too() -> None:
    """A learner's loss returned as a 0-d array (np.float64(1.5) sent as an array) keeps its
    shape (): np.ascontiguousarray alone would send it as shape (1,), and a correct
    causal_lm_loss would be graded wrong."""
    sent = [np.array(1.5), np.arange(6.0).reshape(2, 3), np.zeros((0, 4)),
            np.asfortranarray(np.arange(6.0).reshape(2, 3))]
    [(_, received)] = wire.FrameReader().feed(wire.frame({"kind": "test"}, sent))
    for before, after in zip(sent, received, strict=True):
        assert after.shape == before.shape and np.array_equal(after, before)


def test_one_bound_for_the_runners_stream() -> None:
    assert wire.FrameReader().limit == wire.MAX_STREAM_BYTES
    assert "MAX_STREAM_BYTES" not in vars(sandbox) and "_MAX_STREAM_BYTES" not in vars(sandbox)
    boundary = (Path(sandbox.__file__).parent / "BOUNDARY.md").read_text()
    assert f"At most {wire.MAX_STREAM_BYTES // 2**20} MiB" in boundary


class Liar:
    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "Liar()"


def test_one_stand_in_on_both_sides_of_every_boundary() -> None:
    """The checker's forked child and the grader's sandbox send an object that is not plain
    data the same way: its type's name and repr, as a `standin.StandIn` of that name."""
    if not calling.can_isolate():  # pragma: no cover - no fork here
        pytest.skip("no forked child on this platform")
    child = calling.call_learner(lambda: Liar(), [], {}, 5.0, isolate=True)
    sandboxed = wire.decode(wire.encode(Liar(), []), [])
    for value in (child.value, sandboxed):
        assert isinstance(value, StandIn) and type(value).__name__ == "Liar"
        assert repr(value) == "Liar()" and type(value).__eq__ is object.__eq__  # inert
