"""The verdict, decided in the grader's process from the sandbox's plain results.

For each function of the exercise the course's own `Checker` judges the outcomes that came
back from the sandbox (`Checker.run` with a caller that looks them up), so the comparison with
the reference and the hints are exactly those the learner saw in the notebook. The status
of a submission says what went wrong around the functions: cells that ran too long, ran out
of memory or ended the process, functions that are missing or use the course's own code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from course_lib.checks import CHECKS, CheckResult
from course_lib.checks.calling import ErrorInfo, Outcome
from course_lib.checks.core import Case
from course_lib.grading.collect import Submission
from course_lib.grading.sandbox import Limits, SandboxReport
from course_lib.release import BEGIN_SOLUTION

__all__ = ["Graded", "judge", "ungraded", "STATUS_KINDS"]

STATUS_KINDS = ("ran", "ran with errors", "timeout", "memory", "crashed", "unreadable")
"""From least to most severe; a submission's status is its most severe event. "ran": every
cell ran without an error (with the functions still stubs listed: "ran: softmax is not
implemented yet"); "ran with errors": it ran, but a cell raised an error or a function is
missing; the others say why it did not run to the end."""

_SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")


@dataclass
class Graded:
    """One submission's grade: a CheckResult per function, the status, notes for feedback."""

    submission: str
    exercise: str
    results: dict[str, CheckResult]
    status: str = "ran"  # "ran", or "<kind>: <reason>; <reason>"
    notes: list[str] = field(default_factory=list)
    isolation: str = ""

    @property
    def score(self) -> int:
        return sum(result.passed for result in self.results.values())

    @property
    def max_score(self) -> int:
        return len(self.results)

    @property
    def status_kind(self) -> str:
        return self.status.split(":", 1)[0]


def ungraded(submission: Submission, problem: str, functions: tuple[str, ...],
             isolation: str) -> Graded:
    """A submission that could not be run: every function scores 0, status `unreadable`."""
    results = {
        name: CheckResult(name, False, 0, len(CHECKS[name].cases()),
                          f"not graded: the notebook {problem}.", diagnosis="unreadable")
        for name in functions
    }
    return Graded(submission.name, submission.exercise, results,
                  f"unreadable: the notebook {problem}",
                  isolation=isolation)


def judge(submission: Submission, report: SandboxReport, limits: Limits,
          isolation: str, seed: int | None = None) -> Graded:
    """Judge what the sandbox reported for `submission` with the course's checkers."""
    events: list[tuple[str, str]] = []
    notes: list[str] = []
    for index, (kind, text) in sorted(report.cells.items()):
        line = f"{_cell(submission, index)}: {text}"
        if kind in ("error", "note"):  # a note changes no status (sandbox._cell_error)
            notes.append(line)
        else:
            events.append((kind, line))
    top_level = sorted({m for m, function in report.blocked if not function})
    reference = [m for m in top_level if not m.startswith("course_lib.checks")]
    notes += [f"the notebook imports {m}, which is not available when grading (the checks run "
              "outside your notebook)" for m in top_level if m not in reference]
    results: dict[str, CheckResult] = {}
    for name in submission.functions:
        result, event = _judge_function(name, report, limits, seed)
        if result.diagnosis == "missing":
            result = _unrunnable_cell(name, submission, report, result)
            if result.diagnosis == "cell-not-run":
                event = ("ran with errors", f"{name} is not defined (its cell could not run)")
        blocked = sorted({m for m, function in report.blocked if function == name})
        if blocked and not result.passed:
            event = ("ran with errors", f"{name} uses {', '.join(blocked)}, which is not "
                     "available when grading")
            result = dataclasses.replace(
                result, diagnosis="uses-course-code",
                hint=f"your function uses {', '.join(blocked)}, the course's own code, which is "
                "not available when your notebook is graded: write the function yourself.",
            )
        elif reference and not result.passed:
            kind, text = event or ("ran with errors", f"{name} fails")
            event = (kind, f"{text} (the notebook imports {', '.join(reference)}, which is not "
                     "available when grading)")
        results[name] = result
        if event is not None:
            events.append(event)
    events += report.events
    if any(BEGIN_SOLUTION in code for _, code in submission.cells):
        events.append(("ran", f"the notebook has the master's {BEGIN_SOLUTION} markers: "
                       "a copy of the solutions?"))
    errors = sum(kind == "error" for kind, _ in report.cells.values())
    if errors and not events:
        many = "s" if errors > 1 else ""
        events.append(("ran with errors", f"{errors} cell{many} raised an error (see the notes)"))
    return Graded(submission.name, submission.exercise, results, _status(events), notes,
                  isolation)


def _judge_function(
    name: str, report: SandboxReport, limits: Limits, seed: int | None = None
) -> tuple[CheckResult, tuple[str, str] | None]:
    checker = CHECKS[name]
    cases = checker.cases(seed=seed)
    if name in report.missing:
        found = report.missing[name]
        what = "" if found == "NoneType" else f" (`{name}` is a {found}, not a function)"
        return CheckResult(
            name, False, 0, len(cases),
            f"not found: the notebook does not define the function `{name}`{what}.",
            hint=f"define it with `def {name}(...):` in the notebook, with exactly this name.",
            diagnosis="missing",
        ), ("ran with errors", f"{name} is not defined")
    if name in report.not_reached:
        reason = report.not_reached[name]
        return CheckResult(name, False, 0, len(cases), f"not graded: {reason}.",
                           diagnosis="not-graded"), ("timeout", reason)
    outcomes = report.outcomes.get(name, {})
    positions = {id(case): i for i, case in enumerate(cases)}

    def caller(case: Case) -> Outcome:
        return outcomes.get(positions[id(case)]) or Outcome(
            error=ErrorInfo("NotRun", "this case was not run")
        )

    result = checker.run(caller, timeout=limits.case_timeout, seed=seed)
    return result, _function_event(name, outcomes.values(), result, limits)


def _unrunnable_cell(name: str, submission: Submission, report: SandboxReport,
                     result: CheckResult) -> CheckResult:
    """`result` of a missing function, saying so when the cell defining it never ran its `def`:
    a SyntaxError, an error raised above the `def`, or a cell that was stopped (time, memory,
    the process ended) and so skipped when the notebook was run again. The learner fixes that
    cell, not the function's name."""
    defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", re.MULTILINE)
    for index, code in submission.cells:
        kind, text = report.cells.get(index, ("", ""))
        if not kind or not defines.search(code):
            continue
        cell = _cell(submission, index)
        error = text.removeprefix("raised ").split(":", 1)[0]
        if kind == "error" and error in _SYNTAX_ERRORS:
            hint = (f"fix the {error} in {cell} (at the line given), run the cell again, then "
                    "its check.")
        elif kind == "error":
            hint = (f"{cell} raised {error} before `def {name}` ran: fix it, or put the `def` in "
                    "a cell of its own; run the cell again, then its check.")
        else:
            hint = (f"{cell} was stopped, so its `def {name}` was not kept: put the `def` in a "
                    "cell of its own, and what runs long (or ends the process) in another.")
        return dataclasses.replace(
            result, summary=f"not run: {cell}, which defines `{name}`, could not run: it "
            f"{text}.", hint=hint, diagnosis="cell-not-run",
        )
    return result


def _cell(submission: Submission, index: int) -> str:
    """A cell as a learner finds it: its number among all the notebook's cells (markdown
    included, from 1) and how it starts."""
    source = dict(submission.cells).get(index, "")
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    first = first.replace("`", "'")
    if len(first) > 40:
        first = first[:39] + "…"
    return f"cell {index + 1} (`{first}`)" if first else f"cell {index + 1}"


def _function_event(name: str, outcomes: Iterable[Outcome], result: CheckResult,
                    limits: Limits) -> tuple[str, str] | None:
    if result.diagnosis == "not-implemented":  # the released stub: an untouched notebook
        return "ran", f"{name} is not implemented yet"
    if result.diagnosis == "timeout":
        return "timeout", f"{name} did not finish a case in {limits.case_timeout:g} s"
    errors = [outcome.error.type for outcome in outcomes if outcome.error is not None]
    if "MemoryError" in errors:
        return "memory", f"{name} ran out of memory (limit {limits.memory_mb} MB)"
    if "ProcessEnded" in errors:
        return "crashed", f"{name} ended the process"
    if "SystemExit" in errors or "ProcessExit" in errors:
        return "crashed", f"{name} tried to end the process (sys.exit or os._exit)"
    return None


def _status(events: list[tuple[str, str]]) -> str:
    if not events:
        return "ran"
    kind = max((kind for kind, _ in events), key=STATUS_KINDS.index)
    return f"{kind}: " + "; ".join(text for _, text in events)
