"""The environment check, with faked versions."""

from __future__ import annotations

import platform

import pytest

from course_lib.envcheck import REQUIREMENTS, check_environment

GOOD = {
    "python": "3.12.1",
    "numpy": "2.1.0",
    "matplotlib": "3.9.2",
    "ipywidgets": "8.1.5",
    "jupyterlab_widgets": "3.0.13",
}


def fake(**changes: str | None) -> dict[str, str | None]:
    return {**GOOD, **changes}


def test_everything_in_place() -> None:
    report = check_environment(GOOD)
    assert report.ok and bool(report) and report.problems == []
    assert "Everything the course needs is installed" in str(report)
    for name in GOOD:
        assert name in str(report) and name in report._repr_html_()


def test_missing_package_is_named_with_a_fix() -> None:
    report = check_environment(fake(numpy=None))
    assert not report.ok and not report
    [problem] = report.problems
    assert "numpy is missing" in problem and "pip install" in problem
    assert "1 problem" in str(report) and "[!!]" in str(report)


def test_too_old_package_gives_the_minimum() -> None:
    [problem] = check_environment(fake(matplotlib="3.5.1")).problems
    assert "matplotlib 3.5.1 is too old" in problem and "3.7 or newer" in problem


def test_missing_widget_front_end_explains_the_symptom() -> None:
    [problem] = check_environment(fake(jupyterlab_widgets=None)).problems
    assert "jupyterlab_widgets is missing" in problem
    assert "instead of sliders" in problem and "restart JupyterLab" in problem


def test_old_python() -> None:
    [problem] = check_environment(fake(python="3.9.18")).problems
    assert "Python 3.9.18 is too old" in problem


@pytest.mark.parametrize(
    ("version", "ok"),
    [("8.0", True), ("8", True), ("8.0.0rc1", True), ("10.0", True), ("7.9.9", False)],
)
def test_version_comparison(version: str, ok: bool) -> None:
    assert check_environment(fake(ipywidgets=version)).ok is ok


def test_several_problems_are_all_reported() -> None:
    report = check_environment(fake(numpy="1.20", ipywidgets=None))
    assert len(report.problems) == 2
    assert report._repr_html_().count("✘") == 2


def test_real_environment_is_looked_up() -> None:
    report = check_environment()
    assert [c.requirement.name for c in report.checks] == [r.name for r in REQUIREMENTS]
    assert report.checks[0].found == platform.python_version()
    assert report.ok  # the test environment has everything the course needs
