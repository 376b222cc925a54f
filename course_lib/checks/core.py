"""A checker: the data of one exercise's function, and the pipeline that checks it.

A checker is data (`Checker`): the name of the learner's function, a list of cases (named
inputs, built deterministically from fixed seeds), the reference that gives the expected
output, and the known mistakes, each a wrong variant of the function with the hint that
names it. Checking a learner's function:

1. call it on every case, smallest first, in one forked child process per check
   (`calling.Isolated`: copies of the inputs, a time limit the learner's code cannot defeat,
   exceptions captured, the peak memory on a case with a `memory_limit`; the grader can swap
   in a remote caller);
2. judge each outcome against the reference (`judging`), with the tolerance of the case's
   inputs (`tolerances`);
3. on failure, report the smallest failing case (each input in one line when listing every
   value would push the verdict and the hint out of view: `formatting.show_case`; the result
   keeps the case, `CheckResult.case` and `.inputs`) and diagnose (`diagnosis`): a result of the
   wrong kind first, then the known mistake whose variant gives the learner's outputs, on the
   failing cases that tell the mistakes apart; otherwise a generic hint.

The pieces live in modules named for what they hold: `cases` (Case, Mistake), `drawing`
(the cases' random numbers), `tolerances`, `judging`, `diagnosis`, `formatting`. This module
re-exports the names the checker modules, the grader and the tests import from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from course_lib.checks.calling import DEFAULT_TIMEOUT, Isolated, Outcome
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.diagnosis import BLOCKED_ROW_NAN, diagnose, mutation_hint
from course_lib.checks.drawing import fresh_draw, random_normal, same_inputs, softmax_rows
from course_lib.checks.formatting import describe_value, format_array, kind_of, show_case
from course_lib.checks.judging import Judged, Verdict, judge, structure
from course_lib.checks.result import CheckResult
from course_lib.checks.tolerances import allclose, case_tolerance, tolerance

__all__ = ["Case", "Checker", "Mistake", "Caller", "case_tolerance", "random_normal",
           "softmax_rows", "tolerance", "allclose", "fresh_draw", "format_array",
           "BLOCKED_ROW_NAN", "Verdict", "Judged"]

Caller = Callable[[Case], Outcome]
"""Calls the learner's function on one case's inputs (locally, or in a sandbox)."""

NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError` with your code."


UNSEEN_CASES = (" A grade also runs fresh cases of the same kind (the same shapes, other "
                "numbers) that this notebook does not show.")


@dataclass
class Checker:
    """Everything needed to check one function of an exercise (see the module docstring).

    function    the learner's function, e.g. "softmax"
    outputs     names of the returned values: ("Q", "K", "V") for a tuple, ("A",) for one array
    reference   the correct function (from course_lib.attention)
    make_cases  builds the cases (deterministic); `make_harder` the optional harder ones
    mistakes    known wrong variants, most specific first
    hint        the generic hint when no known mistake matches
    nan_hint    the hint when the output has NaN or inf where it should not
    memory_hint the hint when the right values took more memory than a case allows
    """

    function: str
    outputs: tuple[str, ...]
    reference: Callable[..., Any]
    make_cases: Callable[[], list[Case]]
    mistakes: tuple[Mistake, ...]
    hint: str
    nan_hint: str = (
        "your result contains NaN or inf where it should be finite: look for an exp that "
        "overflows or a division by zero."
    )
    make_harder: Callable[[], list[Case]] | None = None
    memory_hint: str = (
        "your function holds more memory at once than this case allows: avoid building "
        "large intermediate arrays."
    )

    # -- data -------------------------------------------------------------------------------

    @cached_property
    def _cases(self) -> list[Case]:
        return sorted(self.make_cases(), key=lambda case: case.size)

    @cached_property
    def _harder(self) -> list[Case]:
        return sorted(self.make_harder() if self.make_harder else [], key=lambda c: c.size)

    def cases(self, harder: bool = False, seed: int | None = None) -> list[Case]:
        """The cases, smallest first; with `harder`, the optional harder ones after them;
        with `seed` (the grader's, per grading run), fresh cases after them: the same
        shapes and difficulty, drawn from `seed` (see `random_normal`), never shown in the
        notebooks."""
        fixed = self._cases + (self._harder if harder else [])
        return fixed if seed is None else fixed + self._fresh(seed, harder)

    def _fresh(self, seed: int, harder: bool) -> list[Case]:
        key = (seed, harder)  # kept: `expected` caches by id, so these must stay alive
        if key not in self._fresh_cases:
            with fresh_draw(seed):
                drawn = self.make_cases() + (
                    self.make_harder() if harder and self.make_harder else [])
            fixed = self.make_cases() + (self.make_harder() if harder and self.make_harder else [])
            new = [case for case, old in zip(drawn, fixed, strict=True)
                   if not same_inputs(case, old)]  # hand-worked cases do not change
            self._fresh_cases[key] = sorted(new, key=lambda case: case.size)
        return self._fresh_cases[key]

    @cached_property
    def _fresh_cases(self) -> dict[tuple[int, bool], list[Case]]:
        return {}

    @cached_property
    def _expected(self) -> dict[int, tuple[np.ndarray, ...]]:
        return {}

    def expected(self, case: Case) -> tuple[np.ndarray, ...]:
        """The reference output for `case`, as a tuple of arrays (one per output name)."""
        key = id(case)
        if key not in self._expected:
            value = case.call(self.reference)
            self._expected[key] = value if isinstance(value, tuple) else (value,)
        return self._expected[key]

    # -- checking ---------------------------------------------------------------------------

    def _failed(self, n_cases: int, summary: str, hint: str, diagnosis: str,
                details: str = "", n_passed: int = 0, case: Case | None = None,
                problem: str = "") -> CheckResult:
        return CheckResult(function=self.function, passed=False, n_passed=n_passed,
                           n_cases=n_cases, summary=summary, details=details, hint=hint,
                           diagnosis=diagnosis, problem=problem, failing_case=case)

    def check(
        self, fn: Any, *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
    ) -> CheckResult:
        """Check the learner's function `fn` locally. Never raises because of `fn`."""
        if not callable(fn):
            return self._failed(
                len(self.cases(harder)),
                summary=f"expected your function itself, got {kind_of(fn)}.",
                hint=f"write check_{self.function}({self.function}), without calling "
                f"{self.function}: the checker calls it on its own cases.",
                diagnosis="type",
            )

        with Isolated(fn) as learner:  # one child process for all the cases of this check

            def caller(case: Case) -> Outcome:
                return learner.call(
                    case.args, case.kwargs, timeout,
                    measure_memory=case.memory_limit is not None,
                )

            return self.run(caller, harder=harder, timeout=timeout)

    def run(
        self, caller: Caller, *, harder: bool = False, timeout: float = DEFAULT_TIMEOUT,
        seed: int | None = None,
    ) -> CheckResult:
        """Check through `caller` (local or remote), as a pipeline: call the function on every
        case (stopping at a time-out or at "not implemented"), judge each outcome, then report
        the smallest failing case with its diagnosis. The fresh cases of `seed` too, when given.
        Never raises: a fault of the checker itself comes back as a failed result."""
        try:
            cases = self.cases(harder, seed)
            judged: list[Judged] = []
            for case in cases:
                outcome = caller(case)
                if outcome.timed_out:
                    return self._failed(
                        len(cases),
                        summary=f"stopped after {timeout:g} s on the case [{case.name}].",
                        details=show_case(case, self.function),
                        hint="your function did not finish: is there a loop that never ends (a "
                        "`while` whose condition never changes, an index that is never "
                        "increased)?",
                        diagnosis="timeout",
                        case=case,
                    )
                if outcome.error is not None and outcome.error.type == "NotImplementedError":
                    return self._failed(len(cases), summary=NOT_IMPLEMENTED, hint="",
                                        diagnosis="not-implemented")
                judged.append(Judged(case, outcome, self.judge(case, outcome)))
            return self._report(judged, graded=seed is not None)
        except Exception as error:  # noqa: BLE001 - a checker must never raise
            return self._failed(
                len(self.cases(harder)),
                summary=f"the checker could not judge your function ({type(error).__name__}: "
                f"{error}).",
                hint="make sure your function returns the values described above.",
                diagnosis="checker-error",
            )

    def _report(self, judged: Sequence[Judged], graded: bool = False) -> CheckResult:
        """All passed, or the smallest failing case: expected, received, and the hint.
        `graded`: the fresh cases of a grading run are among `judged`."""
        n_passed = sum(j.verdict.ok for j in judged)
        failing = [j for j in judged if not j.verdict.ok]
        if not failing:
            summary = f"all {len(judged)} cases passed." + ("" if graded else UNSEEN_CASES)
            return CheckResult(function=self.function, passed=True, n_passed=n_passed,
                               n_cases=len(judged), summary=summary, diagnosis="passed")
        first = failing[0]  # the cases are sorted, smallest first
        case, outcome, verdict = first
        details = [
            "Smallest failing case:",
            show_case(case, self.function),
            verdict.problem,
        ]
        if outcome.returned and verdict.kind not in ("mutation", "memory"):
            details += ["Expected:", self._format(self.expected(case))]
            details += ["Received:", self._format_received(outcome.value)]
        if verdict.kind == "mutation":
            hint, key = mutation_hint(self.function, outcome.mutated), "mutation"
        elif verdict.kind == "memory":
            hint, key = self.memory_hint, "memory"
        else:
            hint, key = diagnose(self, judged, first)
        return self._failed(len(judged), summary=f"{n_passed} of {len(judged)} cases passed.",
                            details="\n".join(details), hint=hint, diagnosis=key,
                            n_passed=n_passed, case=case, problem=verdict.problem)

    # -- judging ----------------------------------------------------------------------------

    def judge(self, case: Case, outcome: Outcome) -> Verdict:
        """Compare one outcome with the reference on `case` (see `judging.judge`)."""
        return judge(case, outcome, self.expected(case), self.outputs)

    def structure(self, value: Any) -> tuple[tuple[np.ndarray, ...] | None, str]:
        """The learner's value as a tuple of plain arrays, or (None, what is wrong)."""
        return structure(value, self.outputs)

    # -- formatting -------------------------------------------------------------------------

    def _format(self, items: Sequence[np.ndarray]) -> str:
        if len(self.outputs) == 1:
            return format_array(items[0])
        return "\n".join(
            f"  {name} =\n{format_array(item)}"
            for name, item in zip(self.outputs, items, strict=True)
        )

    def _format_received(self, value: Any) -> str:
        received, _ = self.structure(value)
        if received is not None:
            return self._format(received)
        if isinstance(value, tuple | list) and len(self.outputs) > 1:
            return "\n".join(f"  [{i}] {describe_value(item)}" for i, item in enumerate(value))
        return f"    {describe_value(value)}"
