"""The machinery every checker shares: cases, known mistakes, the judge and the diagnosis.

A checker is data (`Checker`): the name of the learner's function, a list of cases (named
inputs, built deterministically from fixed seeds), the reference that gives the expected
output, and the known mistakes, each a wrong variant of the function with the hint that
names it. Checking a learner's function:

1. call it on every case, smallest first, in one forked child process per check
   (`calling.Isolated`: copies of the inputs, a time limit the learner's code cannot defeat,
   exceptions captured, the peak memory on a case with a `memory_limit`; the grader can swap
   in a remote caller);
2. judge each outcome against the reference: type, then kind (a boolean mask where one is
   expected, numbers where numbers are, no precision below the inputs'), shape, NaN, values,
   modified inputs, peak memory when measured. The judge works on its own plain copies of the
   results (base-class `np.ndarray`) with its own references to the numpy functions it uses,
   so neither an ndarray subclass nor a numpy function patched in the notebook can sway it.
   The tolerance comes from the case's inputs only (`case_tolerance`), never from the dtype
   the learner chose to return;
3. on failure, diagnose: a result of the wrong kind is named first, with its own hint;
   otherwise compute the known wrong variants on the cases and pick the one the learner's
   outputs agree with (on the smallest failing case, and on the most cases overall); its
   hint names the mistake. Otherwise a generic hint.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT, ErrorInfo, Isolated, Outcome
from course_lib.checks.result import CheckResult

__all__ = ["Case", "Checker", "Mistake", "Caller", "case_tolerance", "random_normal",
           "softmax_rows"]

# The judge's own references to what it uses from numpy, taken when the checkers are imported:
# a notebook that rebinds np.allclose, np.isfinite or np.ndarray later cannot sway a verdict.
_ndarray, _float64 = np.ndarray, np.float64
_absolute, _isfinite, _isnan, _less_equal = np.absolute, np.isfinite, np.isnan, np.less_equal

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
class _Fit:
    """A known mistake's variant against the learner's outcome on one case: for each output,
    whether the two agree (`same`), and whether the variant is wrong there at all (`wrong`)."""

    same: tuple[bool, ...]
    wrong: bool

    @property
    def explains(self) -> bool:
        return all(self.same)


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
                   if not _same_inputs(case, old)]  # hand-worked cases do not change
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
            results: list[tuple[Case, Outcome, Verdict]] = []
            for case in cases:
                outcome = caller(case)
                if outcome.timed_out:
                    return CheckResult(
                        self.function, False, 0, len(cases),
                        f"stopped after {timeout:g} s on the case [{case.name}].",
                        case.describe(self.function),
                        "your function did not finish: is there a loop that never ends (a "
                        "`while` whose condition never changes, an index that is never "
                        "increased)?",
                        "timeout",
                    )
                if outcome.error is not None and outcome.error.type == "NotImplementedError":
                    return CheckResult(self.function, False, 0, len(cases), NOT_IMPLEMENTED,
                                       diagnosis="not-implemented")
                results.append((case, outcome, self.judge(case, outcome)))
            return self._report(results)
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

    def _report(self, results: Sequence[tuple[Case, Outcome, Verdict]]) -> CheckResult:
        """All passed, or the smallest failing case: expected, received, and the hint."""
        n_passed = sum(verdict.ok for _, _, verdict in results)
        failing = [(c, o, v) for c, o, v in results if not v.ok]
        if not failing:
            return CheckResult(
                self.function, True, n_passed, len(results),
                f"all {len(results)} cases passed.", diagnosis="passed",
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
        return CheckResult(
            self.function, False, n_passed, len(results),
            f"{n_passed} of {len(results)} cases passed.", "\n".join(details), hint, key,
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
            wrong_kind = _wrong_kind(self._label(name), got, want, case)
            if wrong_kind is not None:
                return wrong_kind
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if got.shape != want.shape:
                return Verdict(
                    False, "shape",
                    f"{self._label(name)} has shape {got.shape}; expected {want.shape}.",
                )
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if not _isfinite(got).all() and _isfinite(want).all():
                return Verdict(False, "nan", f"{self._label(name)} contains NaN or inf.")
        rtol, atol = case_tolerance(case)
        for name, got, want in zip(self.outputs, received, expected, strict=True):
            if not allclose(got, want, rtol, atol):
                largest = float(_absolute(got.astype(_float64) - want).max())
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
        """How a verdict names an output: "Your output `weights`" (a singular noun, whatever
        the output's name), or "Your result" for a function with one output."""
        return f"Your output `{name}`" if len(self.outputs) > 1 else "Your result"

    def _structure(self, value: Any) -> tuple[tuple[np.ndarray, ...] | None, str]:
        """The learner's value as a tuple of numeric arrays, or (None, what is wrong).

        The arrays are the judge's own: plain `np.ndarray` copies (never the learner's
        subclass, whose comparisons or attributes could be overridden)."""
        if value is None:
            return None, "Your function returned None: did you forget the `return` statement?"
        if len(self.outputs) == 1 and isinstance(value, tuple | list) and value and all(
            issubclass(type(item), _ndarray) for item in value
        ):
            fix = (
                f"return only {self.outputs[0]}, not a tuple" if isinstance(value, tuple)
                else "combine the pieces into one with np.stack(...) (or np.array(...))"
            )
            return None, (
                f"Your function returned {_kind(value)} of {len(value)} arrays; expected one "
                f"NumPy array: {fix}."
            )
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
        plain = []
        for name, item in zip(self.outputs, items, strict=True):
            if not issubclass(type(item), _ndarray):
                return None, (
                    f"{self._label(name)} is {_kind(item)}, not a NumPy array: "
                    "build it with numpy operations, or convert it with np.array(...)."
                )
            item = _ndarray.view(item, _ndarray).copy()  # base class, our own copy
            if item.dtype.kind not in "biuf":
                return None, (
                    f"{self._label(name)} is an array of dtype {item.dtype}; "
                    "it must hold real numbers."
                )
            plain.append(item)
        return tuple(plain), ""

    # -- diagnosis --------------------------------------------------------------------------

    def _diagnose(
        self,
        results: list[tuple[Case, Outcome, Verdict]],
        failing: Case,
        failing_outcome: Outcome,
        verdict: Verdict,
    ) -> tuple[str, str]:
        """The hint of the known mistake that best explains the learner's outputs.

        A result of the wrong kind is named before any mistake is ranked."""
        if verdict.kind in _KIND_HINTS:
            additive = any(_is_additive_mask(o.value) for _, o, _ in results if o.returned)
            key = "additive-mask" if verdict.kind == "not-boolean" and additive else verdict.kind
            return _KIND_HINTS[key].format(function=self.function), key
        best: tuple[int, int] | None = None
        chosen: Mistake | None = None
        fits = [self._fit(mistake, failing, failing_outcome) for mistake in self.mistakes]
        for order, (mistake, fit) in enumerate(zip(self.mistakes, fits, strict=True)):
            if not (fit.explains and fit.wrong):  # a variant right here explains no failure
                continue
            score = sum(self._fit(mistake, c, o).explains for c, o, _ in results)
            if best is None or (score, -order) > best:
                best, chosen = (score, -order), mistake
        if chosen is not None:
            return chosen.hint, chosen.key
        if verdict.kind == "values":
            partly = self._partly_explains(failing, failing_outcome, fits)
            if partly is not None:
                return partly
        if verdict.kind == "nan":
            if _has_blocked_row(failing):
                return BLOCKED_ROW_NAN, "nan-blocked-row"
            return self.nan_hint, "nan"
        missing = _missing_parameter(failing, failing_outcome.error)
        parameter = inspect.signature(self.reference).parameters.get(missing)
        if verdict.kind == "exception" and parameter and parameter.default is not parameter.empty:
            default = parameter.default  # an optional parameter the learner left out
            return (
                f"your function needs the parameter `{missing}={default!r}`: the checker calls "
                f"{self.function}(..., {missing}=...) on some cases. Add it to the signature "
                "(as in the exercise's template) and use it.",
                f"{missing}-parameter",
            )
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

    def _fit(self, mistake: Mistake, case: Case, outcome: Outcome) -> _Fit:
        """How the wrong variant's outcome on `case` compares with the learner's, output by
        output (a variant that raises fits a learner's function that raised the same)."""
        try:
            with np.errstate(all="ignore"):
                variant = case.call(mistake.compute)
        except Exception as error:  # noqa: BLE001 - the variant fails too: same exception?
            same = outcome.error is not None and outcome.error.type == type(error).__name__
            return _Fit((same,), True)
        received, _ = self._structure(outcome.value) if outcome.returned else (None, "")
        items = variant if isinstance(variant, tuple) else (variant,)
        if received is None or len(items) != len(received):
            return _Fit((False,), True)
        rtol, atol = case_tolerance(case)
        rtol, atol = 10 * rtol, 10 * atol
        return _Fit(
            tuple(_all_close([got], [item], rtol, atol) for got, item in zip(received, items,
                                                                             strict=True)),
            not _all_close(items, self.expected(case), rtol, atol),
        )

    def _partly_explains(self, case: Case, outcome: Outcome,
                         fits: Sequence[_Fit]) -> tuple[str, str] | None:
        """Two mistakes at once, in a function with several outputs: the known mistake whose
        variant (`fits`, on `case`) gives exactly some of the learner's wrong outputs (as
        `weights` computed without the scaling, while `O` is wrong in another way too). Its
        hint, naming what it explains and what is left; None when no mistake explains any."""
        received, _ = self._structure(outcome.value)
        expected = self.expected(case)
        if len(self.outputs) < 2 or received is None or len(received) != len(expected):
            return None
        rtol, atol = case_tolerance(case)
        wrong = [i for i, (got, want) in enumerate(zip(received, expected, strict=True))
                 if not allclose(got, want, 10 * rtol, 10 * atol)]
        best: tuple[Mistake, list[int]] | None = None
        for mistake, fit in zip(self.mistakes, fits, strict=True):
            if len(fit.same) != len(received):
                continue
            explained = [i for i in wrong if fit.same[i]]
            if explained and (best is None or len(explained) > len(best[1])):
                best = (mistake, explained)
        if best is None:
            return None
        mistake, explained = best
        rest = [self.outputs[i] for i in wrong if i not in explained]
        names = " and ".join(f"`{self.outputs[i]}`" for i in explained)
        hint = f"your {names} match a known mistake: {mistake.hint}"
        if rest:
            hint += (f" {' and '.join(f'`{name}`' for name in rest)} also has a mistake of its "
                     "own: check it again once this one is fixed.")
        return hint, f"{mistake.key}, partly"

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


def case_tolerance(case: Case) -> tuple[float, float]:
    """(rtol, atol) for judging a case, from its inputs only.

    Inputs in float16 are judged at float16's tolerance; in float32 or float64 at float32's,
    so that a result computed in float32 from float64 inputs is right. The dtype the learner
    returns never loosens it: a float16 result of such a case is a result of the wrong kind.
    """
    return tolerance(min(case.dtype.itemsize, 4))


def allclose(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """Close within rtol, and within atol relative to the largest finite expected value.

    NaN matches NaN and an infinity the same infinity. Plain arithmetic on float64 copies,
    with the judge's own numpy references (np.allclose itself may be patched by a notebook).
    """
    if got.shape != want.shape:
        return False
    got = _ndarray.view(got, _ndarray).astype(_float64)
    want = _ndarray.view(want, _ndarray).astype(_float64)
    finite = want[_isfinite(want)]
    scale = max(1.0, float(_absolute(finite).max())) if finite.size else 1.0
    with np.errstate(invalid="ignore"):
        close = _less_equal(_absolute(got - want), atol * scale + rtol * _absolute(want))
    return bool((close | (got == want) | (_isnan(got) & _isnan(want))).all())


def _all_close(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], rtol: float, atol: float
) -> bool:
    return len(a) == len(b) and all(
        isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and allclose(x, y, rtol, atol)
        for x, y in zip(a, b, strict=True)
    )


def _wrong_kind(label: str, got: np.ndarray, want: np.ndarray, case: Case) -> Verdict | None:
    """A Verdict when `got` is not the kind of array expected (its dtype), else None."""
    if want.dtype == np.bool_ and got.dtype != np.bool_:
        return Verdict(False, "not-boolean", f"{label} holds numbers (dtype {got.dtype}); "
                       "expected a boolean array (dtype bool).")
    if want.dtype.kind != "f":
        return None
    if got.dtype == np.bool_:
        return Verdict(False, "boolean-result", f"{label} is a boolean array (True/False); "
                       f"expected numbers (dtype {want.dtype}).")
    if got.dtype.kind in "iu":
        return Verdict(False, "integer-result", f"{label} holds whole numbers (dtype "
                       f"{got.dtype}); expected floats (dtype {want.dtype}).")
    if got.itemsize < min(case.dtype.itemsize, 4):
        return Verdict(False, "low-precision", f"{label} is {got.dtype}, which keeps about "
                       f"{_DIGITS.get(got.itemsize, 3)} significant digits; the inputs are "
                       f"{case.dtype}.")
    return None


_DIGITS = {2: 3, 4: 7, 8: 16}

_KIND_HINTS = {
    "not-boolean": (
        "your mask holds numbers, not booleans: the course's masks are boolean, True = may "
        "attend (and `~mask`, `np.where(mask, ...)` rely on it). Build it with dtype=bool, for "
        "example np.tril(np.ones((n, n), dtype=bool)). Numbers 0/1 with 1 = may attend convert "
        "with .astype(bool); an additive mask of 0 and −inf converts with mask == 0."
    ),
    "additive-mask": (
        "your mask holds 0 and −inf: an additive (float) mask, as PyTorch's "
        "nn.Transformer.generate_square_subsequent_mask makes. Such a mask is added to the "
        "scores: 0 = may attend, −inf = blocked. The course's masks are boolean, True = may "
        "attend, as in torch.nn.functional.scaled_dot_product_attention (whereas a boolean "
        "attn_mask or key_padding_mask of torch.nn.MultiheadAttention means the opposite, "
        "True = may NOT attend). Return a boolean mask, np.tril(np.ones((n, n), dtype=bool)); "
        "to convert an additive mask use mask == 0, not mask.astype(bool), which turns −inf "
        "into True and 0 into False: inverted."
    ),
    "boolean-result": (
        "{function} returns numbers, not True/False: did you return a comparison (==, <, >) "
        "or a mask instead of the values it selects?"
    ),
    "integer-result": (
        "your result was turned into whole numbers: keep floats (no .astype(int), "
        "np.round, np.floor or //). numpy keeps floats through @, / and np.exp."
    ),
    "low-precision": (
        "your result lost precision: float16 keeps only about 3 significant digits, too few "
        "to check. Compute and return in the inputs' precision, float32 or float64 (no "
        ".astype(np.float16))."
    ),
}
"""The hint for each kind of wrong result ({function}: the function checked)."""


def _is_additive_mask(value: Any) -> bool:
    """Whether `value` looks like an additive float mask: zeros and −inf (or ≤ −1e4)."""
    if not issubclass(type(value), _ndarray):
        return False
    array = _ndarray.view(value, _ndarray)
    if array.dtype.kind != "f" or array.size == 0:
        return False
    with np.errstate(invalid="ignore"):
        return bool(((array == 0) | (array <= -1e4)).all() and (array <= -1e4).any())


BLOCKED_ROW_NAN = (
    "your result has NaN on a case with a fully blocked row (a query that may attend to "
    "nothing). There, every score is −∞, so the row maximum is −∞ and scores − max is "
    "−∞ − (−∞) = NaN, which spreads through everything computed from that row. A fully "
    "blocked row must give weights 0 (and gradient 0): subtract the row maximum only where it "
    "is finite, and divide only where the row sum is above 0."
)


def _has_blocked_row(case: Case) -> bool:
    """Whether the case's mask (an argument named `mask`) blocks every position of some row."""
    mask = case.inputs.get("mask")
    return mask is not None and np.ndim(mask) >= 1 and not np.all(np.any(mask, axis=-1))


def _missing_parameter(case: Case, error: ErrorInfo | None) -> str:
    """The parameter the case passes that the learner's function does not take, or "": a
    keyword it does not know, or the first positional argument beyond those it takes."""
    if error is None or error.type != "TypeError":
        return ""
    too_many = re.search(r"takes (\d+) positional arguments? but \d+ were given", error.message)
    if too_many and int(too_many.group(1)) < len(case.args):
        return case.args[int(too_many.group(1))][0]
    return next((name for name in case.kwargs
                 if f"unexpected keyword argument '{name}'" in error.message), "")


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


_DRAW: list[int] = []  # the grader's seed while it draws fresh cases (fresh_draw)


@contextlib.contextmanager
def fresh_draw(seed: int) -> Iterator[None]:
    """Within it, `random_normal(s, ...)` draws from (s, seed) instead of s: the same cases'
    shapes, scales and dtypes with other numbers (the grader's fresh cases)."""
    _DRAW.append(seed)
    try:
        yield
    finally:
        _DRAW.pop()


def _same_inputs(a: Case, b: Case) -> bool:
    try:
        return all(
            np.array_equal(x, y) if isinstance(x, np.ndarray) else bool(x == y)
            for x, y in zip(a.inputs.values(), b.inputs.values(), strict=True)
        )
    except (TypeError, ValueError):
        return False


def random_normal(seed: int, *shape: int, scale: float = 1.0, dtype: Any = np.float64) -> Any:
    """A deterministic array of normal numbers for the cases (seeded, rounded to 0.1); inside
    `fresh_draw(g)`, drawn from the seed pair (seed, g)."""
    rng = np.random.default_rng([seed, _DRAW[-1]] if _DRAW else seed)
    return (np.round(rng.normal(size=shape) * scale, 1)).astype(dtype)


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """A valid weight matrix (rows sum to 1) from scores, for the cases of weighted_sum: the
    course's softmax, so a row of −∞ only gives zeros, not NaN."""
    return attention.softmax(x, axis=-1)

