"""The least-squares fits every lesson's slope and decay rate come from."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from course_lib import fitting


def test_fit_power_law_recovers_a_known_law() -> None:
    x = np.array([16, 32, 64, 128, 256])
    assert fitting.fit_power_law(x, 3.0 * x**2.5) == pytest.approx((2.5, 3.0))
    k, _ = fitting.fit_power_law(x, 5e-4 * x * (1 + 0.05 * np.sin(x)))  # a noisy straight line
    assert k == pytest.approx(1.0, abs=0.05)


def test_fit_power_law_in_float32_and_on_lists() -> None:
    x = np.array([1.0, 10.0, 100.0], dtype=np.float32)
    k, c = fitting.fit_power_law(x, (7.0 / x).astype(np.float32))
    assert (k, c) == pytest.approx((-1.0, 7.0), rel=1e-5)
    assert isinstance(k, float) and isinstance(c, float)
    assert fitting.fit_power_law([1, 2, 4], [3, 6, 12]) == pytest.approx((1.0, 3.0))


def test_fit_exponential_recovers_a_known_decay() -> None:
    t = np.arange(1.0, 21.0)
    assert fitting.fit_exponential(t, 2.0 * np.exp(-0.4 * t)) == pytest.approx((-0.4, 2.0))
    rate, c = fitting.fit_exponential(t, np.full(t.size, 0.1))  # flat: no decay
    assert rate == pytest.approx(0.0, abs=1e-12) and c == pytest.approx(0.1)
    # x may be 0 or negative for an exponential, never for a power law
    assert fitting.fit_exponential([-1.0, 0.0, 1.0], [np.e**-1, 1.0, np.e])[0] == pytest.approx(1)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "one value per point"),
        ([1.0], [1.0], "two different x"),
        ([2.0, 2.0], [1.0, 3.0], "two different x"),
        ([1.0, 2.0], [1.0, np.nan], "finite"),
        ([1.0, 2.0], [1.0, 0.0], "positive"),
        ([0.0, 2.0], [1.0, 2.0], "positive"),
    ],
)
def test_fit_power_law_refuses_points_it_cannot_fit(x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fitting.fit_power_law(x, y)


def test_fit_exponential_refuses_non_positive_y() -> None:
    with pytest.raises(ValueError, match="y must be positive"):
        fitting.fit_exponential([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(TypeError, match="numbers"):
        fitting.fit_exponential(["a", "b"], [1.0, 2.0])


def test_fitting_sits_in_the_math_layer() -> None:
    """numpy and the math modules only, so experiments and figures can both use it."""
    allowed = {"__future__", "numpy", "course_lib.shapes"}
    tree = ast.parse(Path(fitting.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= allowed, imported - allowed
