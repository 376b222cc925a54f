"""Suite-wide guards: a full run must really run every notebook and every test module, and CI
must run every test it is meant to run.

Tests that need something the README's set-up (`make test`: Python, make, the dev extra) does not
install skip there, with a reason that names what to install: Chromium (browser and hub tests),
the hub extra and configurable-http-proxy (hub tests), bubblewrap and root (the grader's
sandbox). `.ci/run` installs all of it and sets COURSE_REQUIRE_ALL_TESTS=1: then any skip fails
the run at its end, with the list of what was skipped and why, so a CI run that silently lost a
test (Chromium missing, an extra not installed) cannot pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# `make test` is reproducible: hypothesis draws the same examples on every run, so a case found
# once (and kept as an @example) can't make CI fail at random. `HYPOTHESIS_PROFILE=explore make
# test` draws new examples each run, to look for more.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_FOLDERS = ("notebooks", "exercises")

REQUIRE_ALL = "COURSE_REQUIRE_ALL_TESTS"
# Skips that depend on the host, not on anything .ci/run can install, are allowed in CI (and still
# listed at its end): a test marked `may_skip_in_ci` (one of two tests of which each host runs
# exactly one, say as root and as another user), and a skip whose reason holds one of these
# (a CI container may not be allowed to create control groups; the grader then limits memory
# without one, by design).
MAY_SKIP_MARK = "may_skip_in_ci"
MAY_SKIP_IN_CI = ("no control groups",)


def pytest_collection_finish(session: pytest.Session) -> None:
    """On a full run (no paths given), fail unless every notebook and test module was collected.

    pytest already exits non-zero when nothing is collected; this also catches a run that
    silently lost part of itself (nbval not enabled, a folder left out, a notebook skipped).
    """
    config = session.config
    if config.option.file_or_dir or config.option.keyword or config.option.markexpr:
        return  # a deliberate partial run: `pytest notebooks/03_scaling_and_softmax.ipynb`
    collected = {Path(str(item.path)).resolve() for item in session.items}
    expected = [
        path.resolve()
        for folder in NOTEBOOK_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.ipynb"))
        if ".ipynb_checkpoints" not in path.parts
    ] + sorted(path.resolve() for path in (ROOT / "tests").glob("test_*.py"))
    missing = [str(path.relative_to(ROOT)) for path in expected if path not in collected]
    if missing or not any(path.suffix == ".ipynb" for path in collected):
        raise pytest.UsageError(
            "the full suite did not collect everything it must run (is nbval enabled with "
            f"--nbval?); missing: {', '.join(missing) or 'every notebook'}"
        )


class RequireAllTests:
    """With COURSE_REQUIRE_ALL_TESTS=1 (set by .ci/run): a skipped test fails the run at its end.

    Every skip is collected: a test's, a fixture's (skip at set-up) and a whole module's (skip at
    collection); an expected failure (xfail) is not a skip. At the end the skips are listed with
    their reasons and the exit status becomes 1 (tests failed), unless each is allowed (marked
    `may_skip_in_ci`, or a reason in MAY_SKIP_IN_CI).
    """

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.allowed: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        allowed = MAY_SKIP_MARK in getattr(report, "keywords", {}) or any(
            text in reason for text in MAY_SKIP_IN_CI)
        (self.allowed if allowed else self.skipped).append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus in (pytest.ExitCode.OK,
                                                   pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001
        write = terminalreporter
        if self.allowed:
            write.write_sep("=", f"skipped, allowed with {REQUIRE_ALL}=1 (they depend on the host)")
            for nodeid, reason in self.allowed:
                write.write_line(f"{nodeid}: {reason}")
        if self.skipped:
            write.write_sep("=", f"FAILED: {len(self.skipped)} skipped, but {REQUIRE_ALL}=1 "
                            "requires every test to run", red=True, bold=True)
            for nodeid, reason in self.skipped:
                write.write_line(f"{nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(REQUIRE_ALL, "") not in ("", "0"):
        # registered as a plugin, not as this conftest's hooks: conftest hooks would not see the
        # reports of items outside tests/ (the notebooks)
        config.pluginmanager.register(RequireAllTests(), "course-require-all-tests")


# --- fixtures shared by test modules --------------------------------------------------------


@pytest.fixture
def path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """`path_with("bwrap")`: PATH holds only these programs (as a machine without the others);
    the grader's isolation is detected again, and again after the test (test_grading_modes,
    test_grading_failclosed)."""
    from course_lib.grading.isolation import detect_isolation

    def use(*programs: str) -> None:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        for program in programs:
            os.symlink(shutil.which(program), folder / program)
        monkeypatch.setenv("PATH", str(folder))
        detect_isolation.cache_clear()

    yield use
    detect_isolation.cache_clear()
