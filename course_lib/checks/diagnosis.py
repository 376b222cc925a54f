"""Naming the likely mistake behind a failed check (the hint the learner reads).

A result of the wrong kind (numbers for a mask, a mask for numbers, whole numbers, float16) is
named first, with its own hint. Otherwise each known mistake's wrong variant is computed on
the cases and compared with what the learner returned:

- a candidate gives the learner's outputs on the smallest failing case, where it is wrong;
- it is dropped when a failing case contradicts it: a case where the learner returned finite
  numbers of the right shapes, wrong ("values"), comparable with the variant's (the same
  structure and shapes), and the two differ. Two mistakes can coincide on one case (on a
  single row, a sum over the wrong axis and the Jacobian's diagonal alone give the same
  numbers); a case that tells them apart must decide, not the smallest case. A case where
  the learner raised, returned NaN or another shape does not contradict: that may be a second
  mistake of its own (an exp that overflows, a batch axis not handled);
- a variant that raises explains a learner's exception only when the two are the same error:
  the same type and message, or the same type and the same array shapes named (see
  `same_error`), never the type alone; and a mistake whose variant raises on a case the
  learner got right is not the learner's (a rectangle's axes, say, in exercise 13);
- among the candidates left, the one that gives the learner's outputs on the most cases wins,
  then the one listed first.

Otherwise: a mistake that explains some of several outputs, NaN on a fully blocked row, a
parameter left out of the signature, an exception, a wrong type, or the checker's generic hint.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib.checks.calling import ErrorInfo, Outcome
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.judging import Judged
from course_lib.checks.tolerances import all_close, allclose, case_tolerance, ndarray

if TYPE_CHECKING:
    from course_lib.checks.core import Checker

__all__ = ["diagnose", "same_error", "mutation_hint", "BLOCKED_ROW_NAN", "LARGE_NEGATIVE_MASK",
           "KIND_HINTS", "ADDITIVE_MASK_HINT"]


@dataclass(frozen=True)
class Fit:
    """A known mistake's variant against the learner's outcome on one case: for each output,
    whether the two agree (`same`); whether the variant is wrong there at all (`wrong`);
    whether the two can be compared (`comparable`: both returned, with the same structure and
    shapes); and whether the variant raised (`raised`)."""

    same: tuple[bool, ...]
    wrong: bool
    comparable: bool = False
    raised: bool = False

    @property
    def explains(self) -> bool:
        return all(self.same)


def fit(checker: Checker, mistake: Mistake, case: Case, outcome: Outcome) -> Fit:
    """How the wrong variant's outcome on `case` compares with the learner's, output by
    output (a variant that raises fits a learner's function that raised the same error: the
    same type, and the same message or shapes, see `same_error`)."""
    try:
        with np.errstate(all="ignore"):
            variant = case.call(mistake.compute)
    except Exception as error:  # noqa: BLE001 - the variant fails too: the same error?
        return Fit((same_error(outcome.error, error),), True, raised=True)
    received = checker.structure(outcome.value)[0] if outcome.returned else None
    items = variant if isinstance(variant, tuple) else (variant,)
    if received is None or len(items) != len(received):
        return Fit((False,), True)
    rtol, atol = case_tolerance(case)
    rtol, atol = 10 * rtol, 10 * atol
    return Fit(
        tuple(all_close([got], [item], rtol, atol) for got, item in zip(received, items,
                                                                         strict=True)),
        not all_close(items, checker.expected(case), rtol, atol),
        all(np.shape(got) == np.shape(item) for got, item in zip(received, items,
                                                                 strict=True)),
    )


def same_error(learner: ErrorInfo | None, variant: BaseException) -> bool:
    """Whether the learner's error is the one the mistake's variant raises: the same type, and
    the same message (whitespace aside) or a message naming two or more array shapes, all of
    which the variant's message names too ("shapes (4,4) (1,3,3)" from numpy against the
    course's "mask of shape (4, 4) does not fit the scores of shape (1, 3, 3)"). The type alone
    says little: numpy raises a ValueError for any two shapes that do not line up, so a
    learner's unrelated crash (a batch axis not handled, say) would be blamed on the first
    mistake whose variant raises a ValueError on that case."""
    if learner is None or learner.type != type(variant).__name__:
        return False
    message = str(variant)
    if _words(learner.message) == _words(message):
        return True
    shapes = _shapes(learner.message)
    return len(shapes) >= 2 and shapes <= _shapes(message)


def _words(message: str) -> str:
    """An error message with its whitespace normalised (one space between words)."""
    return " ".join(message.split())


_SHAPE = re.compile(r"\((\d+(?:,\s*\d+)*),?\s*\)")
"""An array shape in an error message: "(4, 4)", "(1,3,3)", "(3,)"."""


def _shapes(message: str) -> set[tuple[int, ...]]:
    """The array shapes an error message names."""
    return {tuple(int(n) for n in re.findall(r"\d+", shape)) for shape in _SHAPE.findall(message)}


def diagnose(checker: Checker, judged: Sequence[Judged], first: Judged) -> tuple[str, str]:
    """(hint, key) of the likely mistake, given every case judged and the smallest failing
    one, `first` (see the module docstring for the order)."""
    case, outcome, verdict = first
    if verdict.kind == "not-boolean":
        blocked = _additive_mask_values(j.outcome.value for j in judged if j.outcome.returned)
        if blocked:
            return ADDITIVE_MASK_HINT.format(blocked=blocked), "additive-mask"
    if verdict.kind in KIND_HINTS:
        return KIND_HINTS[verdict.kind].format(function=checker.function), verdict.kind
    fits = [fit(checker, mistake, case, outcome) for mistake in checker.mistakes]
    chosen = _best_mistake(checker, judged, fits)
    if chosen is not None:
        return chosen.hint, chosen.key
    if verdict.kind == "values":
        partly = _partly_explains(checker, case, outcome, fits)
        if partly is not None:
            return partly
    if verdict.kind == "nan":
        if _has_blocked_row(case):
            return BLOCKED_ROW_NAN, "nan-blocked-row"
        return checker.nan_hint, "nan"
    missing = _missing_parameter(case, outcome.error)
    parameter = inspect.signature(checker.reference).parameters.get(missing)
    if verdict.kind == "exception" and parameter and parameter.default is not parameter.empty:
        default = parameter.default  # an optional parameter the learner left out
        return (
            f"your function needs the parameter `{missing}={default!r}`: the checker calls "
            f"{checker.function}(..., {missing}=...) on some cases. Add it to the signature "
            "(as in the exercise's template) and use it.",
            f"{missing}-parameter",
        )
    if verdict.kind == "exception":
        return (
            "read the error above, and print the shapes of your intermediate arrays to "
            f"find the step that goes wrong. Reminder: {checker.hint}",
            "exception",
        )
    if verdict.kind == "type":
        wanted = (
            f"a tuple ({', '.join(checker.outputs)}) of NumPy arrays"
            if len(checker.outputs) > 1
            else "a NumPy array"
        )
        return (
            f"{checker.function} must return {wanted}. numpy operations (@, np.exp, /, ...) "
            "give arrays; convert a list with np.array(...).",
            "type",
        )
    return checker.hint, verdict.kind


def _best_mistake(checker: Checker, judged: Sequence[Judged],
                  first_fits: Sequence[Fit]) -> Mistake | None:
    """The known mistake that explains the smallest failing case (where its variant is
    wrong), is contradicted by no failing case with comparable outputs nor by a case the
    learner got right where its variant raises, and explains the most cases; ties go to the
    mistake listed first."""
    best: tuple[int, int] | None = None
    chosen: Mistake | None = None
    for order, (mistake, first_fit) in enumerate(zip(checker.mistakes, first_fits,
                                                     strict=True)):
        if not (first_fit.explains and first_fit.wrong):  # right there: explains no failure
            continue
        fits = [fit(checker, mistake, j.case, j.outcome) for j in judged]
        if any(j.verdict.kind == "values" and f.comparable and not f.explains
               for j, f in zip(judged, fits, strict=True)):
            continue  # a failing case tells the learner's function from this mistake
        if any(j.verdict.ok and f.raised for j, f in zip(judged, fits, strict=True)):
            continue  # its variant raises where the learner's function is right
        score = (sum(f.explains for f in fits), -order)
        if best is None or score > best:
            best, chosen = score, mistake
    return chosen


def _partly_explains(checker: Checker, case: Case, outcome: Outcome,
                     fits: Sequence[Fit]) -> tuple[str, str] | None:
    """Two mistakes at once, in a function with several outputs: the known mistake whose
    variant (`fits`, on `case`) gives exactly some of the learner's wrong outputs (as
    `weights` computed without the scaling, while `O` is wrong in another way too). Its
    hint, naming what it explains and what is left; None when no mistake explains any."""
    received, _ = checker.structure(outcome.value)
    expected = checker.expected(case)
    outputs = checker.outputs
    if len(outputs) < 2 or received is None or len(received) != len(expected):
        return None
    rtol, atol = case_tolerance(case)
    wrong = [i for i, (got, want) in enumerate(zip(received, expected, strict=True))
             if not allclose(got, want, 10 * rtol, 10 * atol)]
    best: tuple[Mistake, list[int]] | None = None
    for mistake, mistake_fit in zip(checker.mistakes, fits, strict=True):
        if len(mistake_fit.same) != len(received):
            continue
        explained = [i for i in wrong if mistake_fit.same[i]]
        if explained and (best is None or len(explained) > len(best[1])):
            best = (mistake, explained)
    if best is None:
        return None
    mistake, explained = best
    rest = [outputs[i] for i in wrong if i not in explained]
    names = " and ".join(f"`{outputs[i]}`" for i in explained)
    hint = f"your {names} match a known mistake: {mistake.hint}"
    if len(rest) == 1:
        hint += (f" `{rest[0]}` also has a mistake of its own: check it again once this one "
                 "is fixed.")
    elif rest:
        hint += (f" {' and '.join(f'`{name}`' for name in rest)} also have mistakes of their "
                 "own: check them again once this one is fixed.")
    return hint, f"{mistake.key}, partly"


def mutation_hint(function: str, names: Sequence[str]) -> str:
    """The hint when `function` changed its inputs `names` in place."""
    listed = ", ".join(f"`{name}`" for name in names)
    x = names[0] if names else "x"
    return (
        f"{function} changed its input {listed} in place (for example with `-=`, "
        f"`/=`, `np.exp({x}, out={x})` or by assigning into it). A function must not modify its "
        "inputs: the caller still needs them. Work on a new array instead, for example "
        f"`new = {x} - ...` rather than `{x} -= ...`."
    )


ADDITIVE_MASK_HINT = (
    "your mask holds 0 and {blocked}: an additive (float) mask, as PyTorch's "
    "nn.Transformer.generate_square_subsequent_mask makes (with −inf). Such a mask is added to "
    "the scores: 0 = may attend, {blocked} = blocked. The course's masks are boolean, True = "
    "may attend, as in torch.nn.functional.scaled_dot_product_attention (whereas a boolean "
    "attn_mask or key_padding_mask of torch.nn.MultiheadAttention means the opposite, "
    "True = may NOT attend). Return a boolean mask, np.tril(np.ones((n, n), dtype=bool)); "
    "to convert an additive mask use mask == 0, not mask.astype(bool), which turns {blocked} "
    "into True and 0 into False: inverted."
)
"""The hint for an additive float mask ({blocked}: the learner's blocking value)."""

KIND_HINTS = {
    "not-boolean": (
        "your mask holds numbers, not booleans: the course's masks are boolean, True = may "
        "attend (and `~mask`, `np.where(mask, ...)` rely on it). Build it with dtype=bool, for "
        "example np.tril(np.ones((n, n), dtype=bool)). Numbers 0/1 with 1 = may attend convert "
        "with .astype(bool); an additive mask of 0 and −inf converts with mask == 0."
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


def _additive_mask_values(values: Any) -> str:
    """What blocks in the first value that looks like an additive float mask (zeros and
    −inf, or numbers ≤ −1e4), in words ("−inf", "−1e9"); "" when none does."""
    for value in values:
        if not issubclass(type(value), ndarray):
            continue
        array = ndarray.view(value, ndarray)
        if array.dtype.kind != "f" or array.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            blocked = array <= -1e4
            if not ((array == 0) | blocked).all() or not blocked.any():
                continue
        numbers = sorted({float(x) for x in array[blocked]})
        words = [_number(x) for x in numbers[:2]]
        if len(numbers) == 1:
            return words[0]
        return f"large negative numbers ({', '.join(words)}, ...)"
    return ""


def _number(x: float) -> str:
    """A large negative number as a learner would write it: −inf, −1e9, −3.403e38."""
    if np.isinf(x):
        return "−inf"
    return re.sub(r"e\+?0*(\d)", r"e\1", f"{x:.4g}").replace("-", "−")


BLOCKED_ROW_NAN = (
    "your result has NaN on a case with a fully blocked row (a query that may attend to "
    "nothing). There, every score is −∞, so the row maximum is −∞ and scores − max is "
    "−∞ − (−∞) = NaN, which spreads through everything computed from that row. A fully "
    "blocked row must give weights 0 (and gradient 0): subtract the row maximum only where it "
    "is finite, and divide only where the row sum is above 0."
)


LARGE_NEGATIVE_MASK = (
    "a large negative number such as -1e9 in place of −∞ (as many libraries do) is fine on "
    "every row that may attend to something: exp(−1e9 − max) is exactly 0, so those rows come "
    "out right. It differs only on a fully blocked row (a query that may attend to nothing): "
    "with `np.where(mask, scores, -1e9)` every score of that row is -1e9, the softmax sees "
    "equal scores and gives each position an equal weight 1/n, as if the query attended to "
    "all the blocked tokens. The course's convention gives such a row weights 0 (nothing to "
    "attend to, nothing received, no gradient): block with −∞, "
    "`np.where(mask, scores, -np.inf)`, and use a softmax that gives a row of −∞ zeros (the "
    "course's does; see lesson 08)."
)
"""The hint for a mask applied with −1e9 (shared by the checkers that take a mask)."""


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
