"""Shared by the checkers' catalogue tests (tests/test_checks_*.py)."""

from __future__ import annotations


def name_of(param: object) -> str:
    """A parametrized solution's test id: the function's name (`softmax_keepdims`, ...)."""
    return getattr(param, "__name__", "")
