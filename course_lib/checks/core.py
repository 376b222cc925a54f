"""The machinery every checker shares: cases, known mistakes, the judge and the diagnosis.

A checker is data (`Checker`): the name of the learner's function, a list of cases (named
inputs, built deterministically from fixed seeds), the reference that gives the expected
output, and the known mistakes, each a wrong variant of the function with the hint that
names it. Checking a learner's function:

1. call it on every case, smallest first (`calling.call_learner`: copies of the inputs, a
   time limit, exceptions captured, and the peak memory on a case with a `memory_limit`;
   the grader can swap in a remote caller);
2. judge each outcome against the reference (type, shape, NaN, values, modified inputs,
   peak memory when measured), with a tolerance that fits the case's dtype;
3. on failure, diagnose: compute the known wrong variants on the cases and pick the one the
   learner's outputs agree with (on the smallest failing case, and on the most cases
   overall); its hint names the mistake. Otherwise a generic hint.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from course_lib.checks.calling import DEFAULT_TIMEOUT, ErrorInfo, Outcome, call_learner
from course_lib.checks.result import CheckResult

__all__ = ["Case", "Checker", "Mistake", "Caller", "random_normal", "softmax_rows"]

Caller = Callable[["Case"], Outcome]
"""Calls the learner's function on one case's inputs (locally, or in a sandbox)."""

NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError` with your code."


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
        names = [name for name, _ in self.args]
        names += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        lines = [f"  {function}({', '.join(names)})  [{self.name}]"]
        for name, value in self.args:
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


@dataclass(frozen=True)
class Verdict:
    ok: bool
    kind: str = "passed"  # see CheckResult.diagnosis
    problem: str = ""  # what is wrong on this case, one or two lines


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

    def cases(self, harder: bool = False) -> list[Case]:
        """The cases, smallest first; with `harder`, the optional harder ones after them."""
        return self._cases + (self._harder if harder else [])

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

    def check(
        self, fn: Any, *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
    ) -> CheckResult:
        """Check the learner's function `fn` locally. Never raises because of `fn`."""
        if not callable(fn):
            return CheckResult(
                self.function,
                False,
                0,
                len(self.cases(harder)),
                f"expected your function itself, got {_kind(fn)}.",
                hint=f"write check_{self.function}({self.function}), without calling "
                f"{self.function}: the checker calls it on its own cases.",
                diagnosis="type",
            )

        def caller(case: Case) -> Outcome:
            return call_learner(
                fn, case.args, case.kwargs, timeout,
                measure_memory=case.memory_limit is not None,
            )

        return self.run(caller, harder=harder, timeout=timeout)

    def run(
        self, caller: Caller, *, harder: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> CheckResult:
        """Check through `caller` (local or remote): call, judge, diagnose."""
        try:
            return self._run(caller, harder, timeout)
        except Exception as error:  # noqa: BLE001 - a checker must never raise
            return CheckResult(
                self.function,
                False,
                0,
                len(self.cases(harder)),
                f"the checker could not judge your function ({type(error).__name__}: "
                f"{error}).",
                hint="make sure your function returns the values described above.",
                diagnosis="checker-error",
            )

    def _run(self, caller: Caller, harder: bool, timeout: float) -> CheckResult:
        cases = self.cases(harder)
        results: list[tuple[Case, Outcome, Verdict]] = []
        for case in cases:
            outcome = caller(case)
            if outcome.timed_out:
                return self._result(
                    cases, 0, f"stopped after {timeout:g} s on the case [{case.name}].",
                    case.describe(self.function),
                    "your function did not finish: is there a loop that never ends (a "
                    "`while` whose condition never changes, an index that is never "
                    "increased)?",
                    "timeout",
                )
            if outcome.error is not None and outcome.error.type == "NotImplementedError":
                return self._result(cases, 0, NOT_IMPLEMENTED, "", "", "not-implemented")
            results.append((case, outcome, self.judge(case, outcome)))

        n_passed = sum(verdict.ok for _, _, verdict in results)
        failing = [(c, o, v) for c, o, v in results if not v.ok]
        if not failing:
            return CheckResult(
                self.function, True, n_passed, len(cases),
                f"all {len(cases)} cases passed.", diagnosis="passed",
            )
        case, outcome, verdict = failing[0]  # the cases are sorted, smallest first
        details = [
            "Smallest failing case:",
            case.describe(self.function),
            verdict.problem,
        ]
        if outcome.returned and verdict.kind not in ("mutation", "memory"):
            details += ["Expected:", self._format(self.expected(case))]
            details += ["Received:", self._format_received(outcome.value)]
        if verdict.kind == "mutation":
            hint, key = self._mutation_hint(outcome.mutated), "mutation"
        elif verdict.kind == "memory":
            hint, key = self.memory_hint, "memory"
        else:
            hint, key = self._diagnose(results, case, outcome, verdict)
        summary = f"{n_passed} of {len(cases)} cases passed."
        return self._result(cases, n_passed, summary, "\n".join(details), hint, key)

    def _result(
        self, cases: Sequence[Case], n_passed: int, summary: str, details: str, hint: str,
        diagnosis: str,
    ) -> CheckResult:
        return CheckResult(
            self.function, False, n_passed, len(cases), summary, details, hint, diagnosis
        )

    # -- judging one case -------------------------------------------------------------------

    def judge(self, case: Case, outcome: Outcome) -> Verdict:
        """Compare one outcome with the reference on `case`."""
        if outcome.timed_out:
            return Verdict(False, "timeout", "Your function did not finish in time.")
        if outcome.error is not None:
            return Verdict(False, "exception", _describe_error(outcome.error))
        if outcome.mutated:
            names = ", ".join(f"`{name}`" for name in outcome.mutated)
            return Verdict(False, "mutation", f"Your function modified its input {names}.")
        expected = self.expected(case)
        received, problem = self._structure(outcome.value)
        if received is None:
            return Verdict(False, "type", problem)
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if got.shape != want.shape:
                return Verdict(
                    False, "shape",
                    f"{self._label(name)} has shape {got.shape}; expected {want.shape}.",
                )
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if not np.all(np.isfinite(got)) and np.all(np.isfinite(want)):
                return Verdict(False, "nan", f"{self._label(name)} contains NaN or inf.")
        # a float32 result from float64 inputs is accepted, at float32 precision
        rtol, atol = tolerance(_precision(case, received))
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if not allclose(got, want, rtol, atol):
                largest = float(np.max(np.abs(got.astype(np.float64) - want)))
                return Verdict(
                    False, "values",
                    f"{self._label(name)} has wrong values (largest difference {largest:.3g}).",
                )
        limit, peak = case.memory_limit, outcome.peak_memory
        if limit is not None and peak is not None and peak > limit:
            # the limit, not the measured peak, goes into the text: it must be the same each run
            return Verdict(
                False, "memory",
                f"Your values are right, but at its peak your function held more than "
                f"{limit / 2**20:g} MiB of memory at once, the most this case allows.",
            )
        return Verdict(True)

    def _label(self, name: str) -> str:
        return f"Your {name}" if len(self.outputs) > 1 else "Your result"

    def _structure(self, value: Any) -> tuple[tuple[np.ndarray, ...] | None, str]:
        """The learner's value as a tuple of numeric arrays, or (None, what is wrong)."""
        if value is None:
            return None, "Your function returned None: did you forget the `return` statement?"
        if len(self.outputs) > 1:
            wanted = f"a tuple ({', '.join(self.outputs)})"
            if not isinstance(value, tuple | list):
                return None, f"Your function returned {_kind(value)}; expected {wanted}."
            if len(value) != len(self.outputs):
                return None, (
                    f"Your function returned {len(value)} values; expected {wanted} of "
                    f"{len(self.outputs)}."
                )
            items = tuple(value)
        else:
            items = (value,)
        for name, item in zip(self.outputs, items, strict=True):
            if not isinstance(item, np.ndarray):
                return None, (
                    f"{self._label(name)} is {_kind(item)}, not a NumPy array: "
                    "build it with numpy operations, or convert it with np.array(...)."
                )
            if item.dtype.kind not in "biuf":
                return None, (
                    f"{self._label(name)} is an array of dtype {item.dtype}; "
                    "it must hold real numbers."
                )
        return items, ""

    # -- diagnosis --------------------------------------------------------------------------

    def _diagnose(
        self,
        results: list[tuple[Case, Outcome, Verdict]],
        failing: Case,
        failing_outcome: Outcome,
        verdict: Verdict,
    ) -> tuple[str, str]:
        """The hint of the known mistake that best explains the learner's outputs."""
        best: tuple[int, int] | None = None
        chosen: Mistake | None = None
        for order, mistake in enumerate(self.mistakes):
            if not self._explains(mistake, failing, failing_outcome, require_wrong=True):
                continue
            score = sum(self._explains(mistake, c, o) for c, o, _ in results)
            if best is None or (score, -order) > best:
                best, chosen = (score, -order), mistake
        if chosen is not None:
            return chosen.hint, chosen.key
        if verdict.kind == "nan":
            return self.nan_hint, "nan"
        if verdict.kind == "exception":
            return (
                "read the error above, and print the shapes of your intermediate arrays to "
                f"find the step that goes wrong. Reminder: {self.hint}",
                "exception",
            )
        if verdict.kind == "type":
            wanted = (
                f"a tuple ({', '.join(self.outputs)}) of NumPy arrays"
                if len(self.outputs) > 1
                else "a NumPy array"
            )
            return (
                f"{self.function} must return {wanted}. numpy operations (@, np.exp, /, ...) "
                "give arrays; convert a list with np.array(...).",
                "type",
            )
        return self.hint, verdict.kind

    def _explains(
        self, mistake: Mistake, case: Case, outcome: Outcome, require_wrong: bool = False
    ) -> bool:
        """Whether the learner's outcome on `case` agrees with the wrong variant's."""
        try:
            with np.errstate(all="ignore"):
                variant = case.call(mistake.compute)
        except Exception as error:  # noqa: BLE001 - the variant fails too: same exception?
            return outcome.error is not None and outcome.error.type == type(error).__name__
        if not outcome.returned:
            return False
        variant_items = variant if isinstance(variant, tuple) else (variant,)
        received, _ = self._structure(outcome.value)
        if received is None or len(variant_items) != len(received):
            return False
        rtol, atol = tolerance(_precision(case, received))
        rtol, atol = 10 * rtol, 10 * atol
        if require_wrong and _all_close(variant_items, self.expected(case), rtol, atol):
            return False  # the variant is right on this case: it cannot explain a failure
        return _all_close(received, variant_items, rtol, atol)

    def _mutation_hint(self, names: Sequence[str]) -> str:
        listed = ", ".join(f"`{name}`" for name in names)
        return (
            f"{self.function} changed its input {listed} in place (for example with `-=`, "
            "`/=`, `np.exp(x, out=x)` or by assigning into it). A function must not modify its "
            "inputs: the caller still needs them. Work on a new array instead, for example "
            "`z = x - x.max(...)` rather than `x -= x.max(...)`."
        )

    # -- formatting -------------------------------------------------------------------------

    def _format(self, items: Sequence[np.ndarray]) -> str:
        if len(self.outputs) == 1:
            return format_array(items[0])
        return "\n".join(
            f"  {name} =\n{format_array(item)}"
            for name, item in zip(self.outputs, items, strict=True)
        )

    def _format_received(self, value: Any) -> str:
        received, _ = self._structure(value)
        if received is not None:
            return self._format(received)
        if isinstance(value, tuple | list) and len(self.outputs) > 1:
            return "\n".join(f"  [{i}] {_short(item)}" for i, item in enumerate(value))
        return f"    {_short(value)}"


# -- helpers shared by the checker modules ---------------------------------------------------


def tolerance(precision: np.dtype | int) -> tuple[float, float]:
    """(rtol, atol) for results computed in this float dtype (or number of bytes)."""
    itemsize = precision if isinstance(precision, int) else np.dtype(precision).itemsize
    if itemsize <= 2:
        return 5e-3, 5e-3
    if itemsize <= 4:
        return 2e-4, 1e-5
    return 1e-7, 1e-9


def allclose(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """Close within rtol, and within atol relative to the largest finite expected value."""
    if got.shape != want.shape:
        return False
    got = got.astype(np.float64)
    want = want.astype(np.float64)
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    return bool(np.allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True))


def _all_close(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], rtol: float, atol: float
) -> bool:
    return len(a) == len(b) and all(
        isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and allclose(x, y, rtol, atol)
        for x, y in zip(a, b, strict=True)
    )


def _precision(case: Case, received: Sequence[np.ndarray]) -> int:
    """Bytes per number of the least precise float among the inputs and the results."""
    return min([case.dtype.itemsize, *(a.itemsize for a in received if a.dtype.kind == "f")])


def format_array(array: np.ndarray) -> str:
    """An array in a few digits, indented by four spaces."""
    text = np.array2string(
        np.asarray(array), precision=4, suppress_small=True, max_line_width=88, threshold=200
    )
    return "\n".join("    " + line for line in text.splitlines())


def _describe_error(error: ErrorInfo) -> str:
    where = f"\n  at {error.line}" if error.line else ""
    return f"Your function raised {error.type}: {error.message}{where}"


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a NumPy array of shape {value.shape}"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


_short_repr = reprlib.Repr()
_short_repr.maxlist = _short_repr.maxtuple = 6
_short_repr.maxlevel = 3
_short_repr.maxstring = 60
_short_repr.maxother = 60


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    try:
        text = _short_repr.repr(value)
    except Exception:  # noqa: BLE001 - a learner's object with a broken repr
        text = "?"
    return f"{_kind(value)}: {text}"


def random_normal(seed: int, *shape: int, scale: float = 1.0, dtype: Any = np.float64) -> Any:
    """A deterministic array of normal numbers for the cases (seeded, rounded to 0.1)."""
    rng = np.random.default_rng(seed)
    return (np.round(rng.normal(size=shape) * scale, 1)).astype(dtype)


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """A valid weight matrix (rows sum to 1) from scores, for the cases of weighted_sum."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

