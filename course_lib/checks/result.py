"""The result of a check: `.passed`, `.feedback`, truthy exactly when passed.

It renders as a compact coloured box in JupyterLab (`_repr_html_`) and as plain text
elsewhere (`__str__`, `__repr__`). Both renderings are deterministic (no timings, no
addresses), because nbval compares a check cell's output with the committed one.
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from course_lib.checks.cases import Case

__all__ = ["CheckResult"]


@dataclass(frozen=True)
class CheckResult:
    """What a checker found.

    function   the learner's function that was checked, e.g. "softmax"
    passed     True when every case passed
    n_passed   how many of the n_cases cases passed
    summary    one line: "all 9 cases passed", "not implemented yet: ...", ...
    details    the smallest failing case: its inputs (each in one line when a full listing
               would be long), the expected and the received values
    hint       the likely mistake, in the course's words ("" when passed)
    diagnosis  a short key for tools and tests: "passed", "not-implemented", "timeout",
               "mutation", "exception", "type", "shape", "nan", "values", "memory"; a result
               of the wrong kind: "not-boolean", "additive-mask", "boolean-result",
               "integer-result", "low-precision"; an optional parameter left out of the
               signature: "<name>-parameter" ("axis-parameter"); NaN on a fully blocked row:
               "nan-blocked-row"; or the key of the recognised mistake (e.g.
               "no-max-subtraction")
    problem    what is wrong on the smallest failing case, one or two lines ("Your result has
               wrong values (largest difference 0.0593).", the exception raised, ...; also in
               `details`): the notebook shows it beside the hint, outside the folded case
    failing_case  the smallest failing case itself (None when passed, not implemented yet,
               or not judged); its arrays are the checker's own: read them through `inputs`,
               and `case` lists them in full
    """

    function: str
    passed: bool
    n_passed: int
    n_cases: int
    summary: str
    details: str = ""
    hint: str = ""
    diagnosis: str = ""
    problem: str = ""
    failing_case: Case | None = field(default=None, repr=False, compare=False)

    @property
    def case(self) -> str:
        """The smallest failing case in full: the call and every input's values ("" when
        none failed). `details` shows each input in one line when this would be long."""
        return "" if self.failing_case is None else self.failing_case.describe(self.function)

    @property
    def inputs(self) -> dict[str, Any]:
        """The smallest failing case's inputs by name, as copies (yours to change): call
        your function on them to debug it. Empty when none failed."""
        return {} if self.failing_case is None else copy.deepcopy(self.failing_case.inputs)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def feedback(self) -> str:
        """The text a learner reads: the summary, the failing case, the hint."""
        mark = "✓" if self.passed else "✗"
        parts = [f"{mark} {self.function}: {self.summary}"]
        if self.details:
            parts.append(self.details)
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.feedback

    def __repr__(self) -> str:
        return self.feedback

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.feedback)

    def _repr_html_(self) -> str:
        colour, background, mark = (
            ("#1a7f37", "#e9f7ee", "✓") if self.passed else ("#c62828", "#fdecea", "✗")
        )
        parts = [
            f'<div style="border-left:4px solid {colour};background:{background};'
            'padding:6px 10px;margin:4px 0;border-radius:3px;font-family:sans-serif;'
            'color:#222;line-height:1.4">',
            f'<b style="color:{colour}">{mark}</b> <code>{html.escape(self.function)}</code>: '
            f"{html.escape(self.summary)}",
        ]
        if self.problem:
            parts.append(f'<pre style="margin:4px 0;font-size:90%;white-space:pre-wrap">'
                         f"{html.escape(self.problem)}</pre>")
        if self.hint:
            parts.append(f"<div><b>Hint:</b> {html.escape(self.hint)}</div>")
        if self.details:
            details = self.details.removeprefix("Smallest failing case:\n")
            parts.append(
                '<details><summary style="cursor:pointer">the smallest failing case: its '
                "inputs, and the expected and received values</summary>"
                f'<pre style="margin:4px 0;font-size:90%">{html.escape(details)}</pre>'
                "</details>"
            )
        parts.append("</div>")
        return "".join(parts)
