"""Shared by the checkers' catalogue tests (tests/test_checks_*.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from course_lib.checks import CHECKS, CheckResult


def name_of(param: object) -> str:
    """A parametrized solution's test id: the function's name (`softmax_keepdims`, ...)."""
    return getattr(param, "__name__", "")


def assert_rejected(check: Callable[..., CheckResult], fn: Any, key: str, hint: str,
                    **options: Any) -> None:
    """`check(fn)` fails, diagnosed as `key`, with `hint` in its feedback."""
    result = check(fn, **options)
    assert not result
    assert result.diagnosis == key, result.feedback
    assert hint in result.feedback, result.feedback


def assert_each_mistake_recognised(function: str) -> None:
    """Each known mistake of `function`'s checker, run as the learner's code, is diagnosed as
    itself (no other mistake's hint shadows it); with the harder cases when the mistake only
    shows there (a loop over the batch axis is right on a single sequence)."""
    checker = CHECKS[function]
    for mistake in checker.mistakes:
        result = checker.check(mistake.compute)
        if result.passed:
            result = checker.check(mistake.compute, harder=True)
        assert result.diagnosis == mistake.key, (mistake.key, result.feedback)
