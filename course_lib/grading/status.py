"""A submission's status, and the words the grader uses to say what happened in the sandbox.

`Status` is what the gradebook's status column starts with ("ran", "ran with errors",
"timeout", "memory", "crashed", "unreadable", from least to most severe); the column holds
the most severe kind among a submission's events, then each event's reason:
"timeout: cell 3 (`while True:`): ran longer than 15 s and was stopped; softmax ...".
Every sentence the sandbox's reading-back puts in a report is written here, so that the
wording of a reason lives in one place and says the real cause.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = ["Status", "Event", "CellTrouble", "status_line", "cell_timed_out", "cell_trouble",
           "interrupted", "not_reached", "exit_description", "unreadable", "could_not_run"]


class Status(Enum):
    """The kinds of status, from least to most severe; the value is the gradebook's text."""

    RAN = "ran"  # every cell ran without an error (stubs still listed: "softmax is not ...")
    RAN_WITH_ERRORS = "ran with errors"  # it ran, but a cell raised or a function is missing
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASHED = "crashed"
    UNREADABLE = "unreadable"

    @property
    def severity(self) -> int:
        """0 for RAN, and one more for each kind above it."""
        return list(Status).index(self)


Event = tuple[Status, str]
"""Something that decides a submission's status: its kind and its reason, in words."""


def status_line(events: Sequence[Event]) -> tuple[Status, str]:
    """The most severe kind among `events`, and the gradebook's status text:
    "ran" alone, or "<kind>: <reason>; <reason>"."""
    if not events:
        return Status.RAN, Status.RAN.value
    kind = max((kind for kind, _ in events), key=lambda k: k.severity)
    return kind, f"{kind.value}: " + "; ".join(text for _, text in events)


@dataclass(frozen=True)
class CellTrouble:
    """What went wrong in one code cell, in words (`text`). `status`: the kind it gives the
    submission when the cell was stopped or ended the process; None when it is said in the
    notes only: it raised an error (`raised`: the exception's type) or did something harmless
    (`raised` "")."""

    text: str
    status: Status | None = None
    raised: str = ""


_INTERNAL_PLACE = re.compile(r"\s*\((?:<[^>]*>|[^()]*\.py), line \d+\)$")
"""Where Python says a SyntaxError was: "(<ipython-input-2-b1350>, line 3)", the grader's own
file name, and a line number given again apart."""


def cell_timed_out(cell_timeout: float) -> CellTrouble:
    """A cell the runner stopped at its own time limit."""
    return CellTrouble(f"ran longer than {cell_timeout:g} s and was stopped", Status.TIMEOUT)


def cell_trouble(kind: str, message: str, line: str, memory_mb: int,
                 last: bool = False) -> CellTrouble:
    """A cell that raised `kind` (an exception's type name) with `message`, at `line`.
    sys.exit(0) (or sys.exit()) in the notebook's `last` code cell ends nothing that would have
    run: said in the notes, harmless."""
    message = _INTERNAL_PLACE.sub("", message[:200])
    if kind == "MemoryError":
        return CellTrouble(f"ran out of memory (limit {memory_mb} MB)", Status.MEMORY)
    if kind == "SystemExit" and last and message in ("", "0", "None"):
        return CellTrouble(f"called sys.exit({message}) at the end of the notebook (harmless "
                           "here)")
    if kind in ("SystemExit", "ProcessExit"):
        call = "sys.exit" if kind == "SystemExit" else "os._exit"
        return CellTrouble(f"called {call}({message}); ignored, the next cells were run",
                           Status.CRASHED)
    return CellTrouble(f"raised {kind}: {message}" + (f" ({line[:120]})" if line else ""),
                       raised=kind)


def interrupted(ending: str, out_of_memory: bool, timeout: float,
                memory_mb: int) -> tuple[Status, str]:
    """Why the runner's process stopped before it finished: `ending` is "deadline" (the whole
    run's `timeout`), "step-timeout" (a cell or a call overran its limit and was killed), or
    how it exited (`exit_description`)."""
    if ending == "deadline":
        return Status.TIMEOUT, f"stopped at the time limit of {timeout:g} s"
    if ending == "step-timeout":
        return Status.TIMEOUT, "did not stop at its time limit and was killed"
    if out_of_memory:
        return Status.MEMORY, f"ran out of memory (limit {memory_mb} MB)"
    return Status.CRASHED, f"ended the process ({ending})"


def not_reached(name: str, timeout: float, stopped: str, at_deadline: bool) -> str:
    """Why function `name` was never called: the clock, or how the process ended (`stopped`,
    "" when it did not end early)."""
    if at_deadline or not stopped:
        return f"the time limit of {timeout:g} s was reached before `{name}` could be called"
    return f"the notebook's process {stopped} before `{name}` could be called"


def exit_description(code: int) -> str:
    """A process's exit, from its return code ("exit status 3", "killed by signal SIGKILL")."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def unreadable(why: str) -> Event:
    """The sandbox sent something that does not follow the format: nothing it sent is used."""
    return Status.CRASHED, f"unreadable results ({why})"


def could_not_run(error: BaseException) -> Event:
    """The grader itself failed to run a submission (never the submission's doing)."""
    return Status.CRASHED, (f"the grader could not run it ({type(error).__name__}: "
                            f"{str(error)[:120]})")
