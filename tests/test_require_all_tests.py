"""CI's guard (tests/conftest.py): with COURSE_REQUIRE_ALL_TESTS=1 a skipped test fails the run.

A tiny suite in a temporary folder, with a copy of the course's conftest.py, is run by pytest in a
subprocess: once as a learner's `make test` runs it, once as `.ci/run` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SUITE = '''
import pytest


@pytest.fixture
def chromium():
    pytest.skip("needs Chromium: apt-get install chromium")


def test_runs():
    pass


@pytest.mark.skip(reason="needs the hub extra: pip install -e '.[dev,hub]'")
def test_marked_skip():
    pass


def test_skips_inside():
    pytest.skip("needs bubblewrap: apt-get install bubblewrap")


def test_skips_in_its_fixture(chromium):
    pass


@pytest.mark.xfail(reason="an expected failure, not a skip")
def test_expected_failure():
    raise AssertionError
'''
SKIPPED_MODULE = '''
import pytest

pytest.skip("needs torch: pip install torch", allow_module_level=True)


def test_never_collected():
    pass
'''
HOST_DEPENDENT = '''
import pytest


def test_needs_a_control_group():
    pytest.skip("no control groups can be created here")


@pytest.mark.may_skip_in_ci
def test_only_as_another_user():
    pytest.skip("runs as root here")


def test_runs():
    pass
'''
FAILING = '''
import pytest


def test_fails():
    raise AssertionError("a real failure")


def test_skips():
    pytest.skip("needs Chromium")
'''


def run_suite(folder: Path, files: dict[str, str], require_all: bool) -> tuple[int, str]:
    """Run pytest on `files` (name -> source) under the course's conftest; (exit code, output)."""
    folder.mkdir()
    shutil.copyfile(HERE / "conftest.py", folder / "conftest.py")
    # not the course's addopts (--nbval), but its marker
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    may_skip_in_ci: see conftest\n")
    for name, source in files.items():
        (folder / name).write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "COURSE_REQUIRE_ALL_TESTS"}
    if require_all:
        env["COURSE_REQUIRE_ALL_TESTS"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", "pytest.ini",
         *files], cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def files() -> dict[str, str]:
    return {"test_suite.py": SUITE, "test_skipped_module.py": SKIPPED_MODULE}


def test_without_the_variable_a_skip_is_a_skip(tmp_path: Path, files: dict[str, str]) -> None:
    code, output = run_suite(tmp_path / "suite", files, require_all=False)
    assert code == 0, output
    assert "1 passed, 4 skipped, 1 xfailed" in output, output
    assert "COURSE_REQUIRE_ALL_TESTS" not in output


def test_with_the_variable_every_skip_fails_the_run_and_is_listed(
    tmp_path: Path, files: dict[str, str]
) -> None:
    code, output = run_suite(tmp_path / "suite", files, require_all=True)
    assert code == pytest.ExitCode.TESTS_FAILED, output
    summary = output[output.index("FAILED: 4 skipped, but COURSE_REQUIRE_ALL_TESTS=1"):]
    for line in (
        "test_suite.py::test_marked_skip: needs the hub extra: pip install -e '.[dev,hub]'",
        "test_suite.py::test_skips_inside: needs bubblewrap: apt-get install bubblewrap",
        "test_suite.py::test_skips_in_its_fixture: needs Chromium: apt-get install chromium",
        "test_skipped_module.py: needs torch: pip install torch",
    ):
        assert line in summary, output
    assert "test_expected_failure" not in summary  # an xfail is not a skip


def test_a_host_dependent_skip_is_allowed_but_listed(tmp_path: Path) -> None:
    code, output = run_suite(tmp_path / "suite", {"test_host.py": HOST_DEPENDENT},
                             require_all=True)
    assert code == 0, output
    assert ("test_host.py::test_needs_a_control_group: no control groups can be created here"
            in output), output
    assert "test_host.py::test_only_as_another_user: runs as root here" in output, output
    assert "FAILED:" not in output


def test_a_failing_run_stays_failed_and_still_lists_its_skips(tmp_path: Path) -> None:
    code, output = run_suite(tmp_path / "suite", {"test_failing.py": FAILING}, require_all=True)
    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "test_failing.py::test_skips: needs Chromium" in output, output


def test_ci_sets_the_variable_before_it_runs_the_suite() -> None:
    ci = (HERE.parent / ".ci" / "run").read_text()
    assert "export COURSE_REQUIRE_ALL_TESTS=1" in ci
    assert ci.index("export COURSE_REQUIRE_ALL_TESTS=1") < ci.rindex("make test")
