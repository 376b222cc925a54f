"""The verdict on a submission, decided in the grader's process from the sandbox's plain results.

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
from course_lib.checks.cases import Case
from course_lib.grading.isolation import Limits
from course_lib.grading.sandbox import SandboxReport
from course_lib.grading.status import Event, Status, status_line
from course_lib.grading.submissions import Submission
from course_lib.release import BEGIN_SOLUTION

__all__ = ["Graded", "grade_report", "ungraded"]

_SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")


@dataclass
class Graded:
    """One submission's grade: a CheckResult per function, the status, notes for feedback."""

    submission: str
    exercise: str
    results: dict[str, CheckResult]
    status: str = "ran"  # the gradebook's text: "ran", or "<kind>: <reason>; <reason>"
    notes: list[str] = field(default_factory=list)
    isolation: str = ""
    kind: Status = Status.RAN  # the status's kind: its most severe event (status.py)

    @property
    def score(self) -> int:
        return sum(result.passed for result in self.results.values())

    @property
    def max_score(self) -> int:
        return len(self.results)

    @property
    def status_kind(self) -> str:
        """The status's kind in words, as the gradebook's status column starts."""
        return self.kind.value


def ungraded(submission: Submission, problem: str, functions: tuple[str, ...],
             isolation: str) -> Graded:
    """A submission that could not be run: every function scores 0, status `unreadable`."""
    results = {
        name: CheckResult(name, False, 0, len(CHECKS[name].cases()),
                          f"not graded: the notebook {problem}.", diagnosis="unreadable")
        for name in functions
    }
    kind, status = status_line([(Status.UNREADABLE, f"the notebook {problem}")])
    return Graded(submission.name, submission.exercise, results, status, isolation=isolation,
                  kind=kind)


def grade_report(submission: Submission, report: SandboxReport, limits: Limits,
                 isolation: str, seed: int | None = None) -> Graded:
    """Judge what the sandbox reported for `submission` with the course's checkers."""
    events: list[Event] = []
    notes: list[str] = []
    for index, trouble in sorted(report.cells.items()):
        line = f"{_cell(submission, index)}: {trouble.text}"
        if trouble.status is None:  # an error, or a harmless remark: said in the notes
            notes.append(line)
        else:
            events.append((trouble.status, line))
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
                event = (Status.RAN_WITH_ERRORS,
                         f"{name} is not defined (its cell could not run)")
        blocked = sorted({m for m, function in report.blocked if function == name})
        if blocked and not result.passed:
            event = (Status.RAN_WITH_ERRORS, f"{name} uses {', '.join(blocked)}, which is "
                     "not available when grading")
            result = dataclasses.replace(
                result, diagnosis="uses-course-code",
                hint=f"your function uses {', '.join(blocked)}, the course's own code, which is "
                "not available when your notebook is graded: write the function yourself.",
            )
        elif reference and not result.passed:
            kind, text = event or (Status.RAN_WITH_ERRORS, f"{name} fails")
            event = (kind, f"{text} (the notebook imports {', '.join(reference)}, which is not "
                     "available when grading)")
        results[name] = result
        if event is not None:
            events.append(event)
    events += report.events
    if any(BEGIN_SOLUTION in code for _, code in submission.cells):
        events.append((Status.RAN, f"the notebook has the master's {BEGIN_SOLUTION} markers: "
                       "a copy of the solutions?"))
    errors = sum(bool(t.raised) and t.status is None for t in report.cells.values())
    if errors and not events:
        many = "s" if errors > 1 else ""
        events.append((Status.RAN_WITH_ERRORS,
                       f"{errors} cell{many} raised an error (see the notes)"))
    kind, status = status_line(events)
    return Graded(submission.name, submission.exercise, results, status, notes, isolation,
                  kind)


def _judge_function(
    name: str, report: SandboxReport, limits: Limits, seed: int | None = None
) -> tuple[CheckResult, Event | None]:
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
        ), (Status.RAN_WITH_ERRORS, f"{name} is not defined")
    if name in report.not_reached:
        reason = report.not_reached[name]
        return CheckResult(name, False, 0, len(cases), f"not graded: {reason}.",
                           diagnosis="not-graded"), (Status.TIMEOUT, reason)
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
        trouble = report.cells.get(index)
        if trouble is None or not defines.search(code):
            continue
        cell, error = _cell(submission, index), trouble.raised
        raised = trouble.status is None and bool(error)
        if raised and error in _SYNTAX_ERRORS:
            hint = (f"fix the {error} in {cell} (at the line given), run the cell again, then "
                    "its check.")
        elif raised:
            hint = (f"{cell} raised {error} before `def {name}` ran: fix it, or put the `def` in "
                    "a cell of its own; run the cell again, then its check.")
        else:
            hint = (f"{cell} was stopped, so its `def {name}` was not kept: put the `def` in a "
                    "cell of its own, and what runs long (or ends the process) in another.")
        return dataclasses.replace(
            result, summary=f"not run: {cell}, which defines `{name}`, could not run: it "
            f"{trouble.text}.", hint=hint, diagnosis="cell-not-run",
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
                    limits: Limits) -> Event | None:
    if result.diagnosis == "not-implemented":  # the released stub: an untouched notebook
        return Status.RAN, f"{name} is not implemented yet"
    if result.diagnosis == "timeout":
        return Status.TIMEOUT, f"{name} did not finish a case in {limits.case_timeout:g} s"
    errors = [outcome.error.type for outcome in outcomes if outcome.error is not None]
    if "MemoryError" in errors:
        return Status.MEMORY, f"{name} ran out of memory (limit {limits.memory_mb} MB)"
    if "ProcessEnded" in errors:
        return Status.CRASHED, f"{name} ended the process"
    if "SystemExit" in errors or "ProcessExit" in errors:
        return Status.CRASHED, f"{name} tried to end the process (sys.exit or os._exit)"
    return None
