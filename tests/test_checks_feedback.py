"""Feedback a learner can read: a long failing case does not bury the verdict and the hint, an
unrelated crash is not blamed on a known mistake, and the hints' English is right."""

from __future__ import annotations

import html

import numpy as np
import pytest

from course_lib import attention
from course_lib.checks import (
    CHECKS,
    Case,
    Checker,
    Mistake,
    check_softmax,
    check_transformer_block,
)
from course_lib.checks.calling import ErrorInfo
from course_lib.checks.diagnosis import same_error
from course_lib.checks.formatting import LONG_LISTING
from course_lib.checks.transformer_block import block_reference

# exercises 01-04: a few small arrays, whose values the learner debugs with
FIRST_EXERCISES = ("project_qkv", "attention_scores", "scale_scores", "softmax",
                   "attention_weights", "weighted_sum", "self_attention")


def block_one_percent_off(*args, **kwargs):
    return block_reference(*args, **kwargs) * 1.01


def test_a_long_case_shows_one_line_per_input_and_keeps_the_hint_in_view():
    result = check_transformer_block(block_one_percent_off)
    lines = result.feedback.splitlines()
    assert len(lines) <= LONG_LISTING, result.feedback  # 74 lines in full
    assert lines[-1].startswith("Hint: H = X + MHA(LN_1(X))"), result.feedback
    assert "  X         (3 × 4, float64): from -2.8 to 2.3" in lines, result.feedback
    assert "  ln1_gamma (4, float64) = [1.4 0.9 1.2 0.5]" in lines, result.feedback
    assert "  n_heads   = 1" in lines, result.feedback
    assert "[[ 2.3 -0.5 -0.3 -0.4]" not in result.details  # X's values: in result.case
    assert "print(result.case)" in result.details
    assert "result = check_transformer_block(transformer_block)" in result.details
    assert "transformer_block(**result.inputs)" in result.details
    again = block_one_percent_off(**result.inputs)  # what the message tells the learner to run
    assert again.shape == result.inputs["X"].shape


def test_the_full_case_and_copies_of_its_inputs_are_on_the_result():
    result = check_transformer_block(block_one_percent_off)
    case = CHECKS["transformer_block"].cases()[0]
    assert result.case == case.describe("transformer_block")
    assert "    [[ 2.3 -0.5 -0.3 -0.4]" in result.case
    inputs = result.inputs
    assert list(inputs) == [name for name, _ in case.args]
    np.testing.assert_array_equal(inputs["X"], case.inputs["X"])
    inputs["X"][...] = 0  # the learner's copy: the checker's case stays as it was
    assert result.inputs["X"].any() and case.inputs["X"].any()
    assert check_transformer_block(block_reference)


@pytest.mark.parametrize("function", FIRST_EXERCISES)
def test_a_short_case_keeps_showing_every_value(function):
    checker = CHECKS[function]

    def off(*args, **kwargs):
        value = checker.reference(*args, **kwargs)
        return tuple(v * 1.01 + 0.1 for v in value) if isinstance(value, tuple) else value + 0.1

    result = checker.check(off)
    assert not result
    assert result.case == checker.cases()[0].describe(function)
    assert result.case in result.details, result.feedback
    assert "print(result.case)" not in result.details


def test_softmax_shows_its_values_as_before():
    result = check_softmax(lambda x, axis=-1: np.full(x.shape, 1 / x.shape[axis]))
    assert "  softmax(x)  [hand-worked, one row of scores]\n  x (3, float64) =\n    [1. 2. 3.]" \
        in result.details, result.feedback


def test_the_threshold_keeps_exercises_01_to_04_in_full_and_condenses_the_block():
    """The numbers behind LONG_LISTING: every case of exercises 01-04 is listed in full (at
    most 28 lines), transformer_block's smallest case is not (50 lines)."""
    for function in FIRST_EXERCISES:
        for case in CHECKS[function].cases(harder=True):
            assert len(case.describe(function).splitlines()) <= LONG_LISTING, (function, case)
    block = CHECKS["transformer_block"].cases()[0]
    assert len(block.describe("transformer_block").splitlines()) > LONG_LISTING


def test_the_notebook_shows_what_is_wrong_beside_the_hint_not_folded_away():
    result = check_softmax(lambda x, axis=-1: attention.softmax(x, axis=axis) * 1.01)
    assert result.problem == "Your result has wrong values (largest difference 0.00665)."
    page = result._repr_html_()
    folded = page.index("<details>")
    assert 0 <= page.index(result.problem) < page.index("<b>Hint:</b>") < folded
    assert "Smallest failing case:" not in page, "the fold's own heading says it once"
    assert "Expected:" in page[folded:] and result.problem in result.feedback
    crash = check_softmax(lambda x, axis=-1: x.no_such_method())
    assert crash.problem.startswith("Your function raised AttributeError")
    assert html.escape(crash.problem.splitlines()[0]) in crash._repr_html_().split("<details>")[0]


def test_a_keyword_array_is_listed_by_name_like_the_others():
    case = next(c for c in CHECKS["self_attention_backward"].cases(harder=True)
                if isinstance(c.kwargs.get("mask"), np.ndarray))
    text = case.describe("self_attention_backward")
    assert "(X, W_Q, W_K, W_V, dO, mask=mask)" in text.splitlines()[0], text
    assert "array(" not in text and "  mask (4 × 4, bool) =" in text, text


def test_a_passed_check_has_no_case():
    result = check_softmax(attention.softmax)
    assert result and result.case == "" and result.inputs == {}


# -- an exception is blamed on a known mistake only when it is that mistake's error --------------


def block_with_an_unrelated_crash(X, *args):
    return np.ones(3) + np.ones(X.shape[-1])  # a ValueError unlike any known mistake's


def test_an_unrelated_value_error_is_not_blamed_on_a_mistake_that_raises_one():
    """The mask-size variants raise a ValueError on every case: the type alone named them."""
    result = check_transformer_block(block_with_an_unrelated_crash)
    assert result.diagnosis == "exception", result.feedback
    assert result.hint.startswith("read the error above"), result.hint


def test_the_same_error_means_the_same_type_and_message_or_shapes():
    variant = ValueError("mask of shape (4, 4) does not fit the scores of shape (1, 3, 3): its "
                         "last two axes must be (n_q, n_k) = (3, 3) or broadcast to it.")
    error = ErrorInfo
    assert same_error(error("ValueError", str(variant)), variant)
    assert same_error(error("ValueError", "operands could not be broadcast together with "
                            "shapes (4,4) (1,3,3) ()"), variant)  # numpy's words, same shapes
    assert not same_error(error("TypeError", str(variant)), variant)
    assert not same_error(error("ValueError", "operands could not be broadcast together"),
                          variant)
    assert not same_error(error("ValueError", "operands could not be broadcast together with "
                                "shapes (3,) (4,)"), variant)
    assert not same_error(None, variant)


def _doubling_checker(mistake: Mistake, outputs=("y",), reference=None) -> Checker:
    """A small checker of `double(x)`: a 1-D case, then a 2-D one."""
    return Checker(
        function="double", outputs=outputs,
        reference=reference or (lambda x: 2 * x),
        make_cases=lambda: [Case("a row", (("x", np.array([1.0, 2.0, 3.0])),)),
                            Case("a matrix", (("x", np.arange(6.0).reshape(2, 3)),))],
        mistakes=(mistake,), hint="return 2 x.",
    )


def _raises_shapes(x):
    raise ValueError(f"shapes {x.shape} and {x.shape[::-1]} do not line up")


def test_a_mistake_that_raises_where_the_learner_was_right_is_not_blamed():
    """The learner raises the variant's very error on the matrix, but is right on the row,
    where the variant raises too: that is not this mistake (exercise 13's rectangles)."""
    checker = _doubling_checker(Mistake("raises", "the known mistake", _raises_shapes))

    def right_on_rows(x):
        return 2 * x if x.ndim == 1 else _raises_shapes(x)

    assert checker.check(right_on_rows).diagnosis == "exception"
    assert checker.check(_raises_shapes).diagnosis == "raises"  # the mistake itself: named


# -- the hints' English ------------------------------------------------------------------------


def test_two_outputs_left_wrong_have_mistakes_of_their_own():
    checker = _doubling_checker(
        Mistake("first-off", "the first is off by one.", lambda x: (x + 1, 3 * x, 4 * x)),
        outputs=("a", "b", "c"), reference=lambda x: (x, 3 * x, 4 * x))
    result = checker.check(lambda x: (x + 1, 3 * x + 5, 4 * x + 5))
    assert result.diagnosis == "first-off, partly", result.feedback
    assert "`b` and `c` also have mistakes of their own: check them again" in result.hint
    result = checker.check(lambda x: (x + 1, 3 * x + 5, 4 * x))
    assert "`b` also has a mistake of its own: check it again" in result.hint, result.hint
