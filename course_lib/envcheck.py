"""The environment check of lesson 00: is everything the course needs installed, and new enough?

    report = check_environment()
    report          # a table in JupyterLab, plain text in a terminal (print(report))
    report.ok       # True when nothing is missing or too old

Each line says in plain words what is missing or too old, what it is needed for, and how to
fix it. `check_environment(versions={...})` replaces the installed versions by given ones
(None = not installed), which is how the tests fake an old or a missing package.
"""

from __future__ import annotations

import html
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

__all__ = ["Requirement", "Check", "EnvironmentReport", "REQUIREMENTS", "check_environment"]


@dataclass(frozen=True)
class Requirement:
    """A package the course needs: its name, the oldest version that works, and what for."""

    name: str
    minimum: str
    purpose: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("python", "3.11", "running the course's code"),
    Requirement("numpy", "1.24", "all of the math"),
    Requirement("matplotlib", "3.7", "the figures"),
    Requirement("ipywidgets", "8.0", "the interactive explorers (their Python side)"),
    Requirement(
        "jupyterlab_widgets",
        "3.0",
        "the widget front end, which draws the explorers' sliders and menus in JupyterLab",
    ),
)


def _version_tuple(version: str) -> tuple[int, ...]:
    """'2.4.6' -> (2, 4, 6); '8.1.0rc1' -> (8, 1, 0): the leading number of each part."""
    parts = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def _at_least(found: str, minimum: str) -> bool:
    """Whether version `found` is `minimum` or newer (missing trailing parts count as 0)."""
    a, b = _version_tuple(found), _version_tuple(minimum)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) >= b + (0,) * (width - len(b))


@dataclass(frozen=True)
class Check:
    """The result for one requirement: `found` is the installed version, or None if missing."""

    requirement: Requirement
    found: str | None

    @property
    def ok(self) -> bool:
        """True when the package is installed and at least the minimum version."""
        return self.found is not None and _at_least(self.found, self.requirement.minimum)

    @property
    def message(self) -> str:
        """One sentence for the learner: fine, missing or too old, and how to fix it."""
        req = self.requirement
        if self.ok:
            return f"{req.name} {self.found}: fine (needs {req.minimum} or newer)."
        if req.name == "python":
            return (
                f"Python {self.found} is too old: the course needs {req.minimum} or newer. "
                "Install a newer Python and set up the course again (make setup)."
            )
        fix = f"pip install --upgrade '{req.name}>={req.minimum}'"
        if req.name == "jupyterlab_widgets":
            fix += ", then restart JupyterLab"
        if self.found is None:
            consequence = (
                "the explorers will show as a line of text instead of sliders and menus"
                if req.name == "jupyterlab_widgets"
                else f"it is needed for {req.purpose}"
            )
            return f"{req.name} is missing: {consequence}. Fix: {fix} (or run make setup)."
        return (
            f"{req.name} {self.found} is too old: the course needs {req.minimum} or newer "
            f"for {req.purpose}. Fix: {fix} (or run make setup)."
        )


@dataclass(frozen=True)
class EnvironmentReport:
    """All the checks; true (and `.ok`) exactly when every requirement is met."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is missing or too old."""
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """The messages of the failed checks (empty when all is well)."""
        return [check.message for check in self.checks if not check.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = (
            "Everything the course needs is installed."
            if self.ok
            else f"{len(self.problems)} problem(s) to fix before going on:"
        )
        lines = [f"Environment check: {verdict}"]
        lines += [f"  [{'ok' if c.ok else '!!'}] {c.message}" for c in self.checks]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td style='color:{'green' if c.ok else 'red'}'>{'✔' if c.ok else '✘'}</td>"
            f"<td><code>{html.escape(c.requirement.name)}</code></td>"
            f"<td>{html.escape(c.found or 'missing')}</td>"
            f"<td style='text-align:left'>{html.escape(c.message)}</td></tr>"
            for c in self.checks
        )
        head = (
            "<b style='color:green'>Everything the course needs is installed.</b>"
            if self.ok
            else f"<b style='color:red'>{len(self.problems)} problem(s) to fix:</b>"
        )
        return (
            f"<div>{head}<table><tr><th></th><th>package</th><th>found</th>"
            f"<th style='text-align:left'>verdict</th></tr>{rows}</table></div>"
        )


def _installed_version(name: str) -> str | None:
    """The installed version of a distribution (or of Python), None when it is not installed."""
    if name == "python":
        return platform.python_version()
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_environment(versions: Mapping[str, str | None] | None = None) -> EnvironmentReport:
    """Check every entry of `REQUIREMENTS` against the installed versions.

    `versions` overrides the lookup for the names it contains (a version string, or None for
    "not installed"); the tests use it to fake an old or missing package.
    """
    versions = {} if versions is None else dict(versions)
    checks = tuple(
        Check(req, versions[req.name] if req.name in versions else _installed_version(req.name))
        for req in REQUIREMENTS
    )
    return EnvironmentReport(checks)
