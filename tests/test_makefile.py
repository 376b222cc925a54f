"""The README commands `make lab` and `make test` share one set-up that runs only when needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None,
                                reason="make is not installed (apt-get install make)")


def dry_run(*targets: str) -> str:
    """What make would run for `targets`, without running it (also from inside `make test`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "--no-print-directory", "-n", *targets], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    return result.stdout


def test_lab_opens_the_welcome_notebook_with_jupyterlab() -> None:
    command = dry_run("lab").splitlines()[-1]
    assert "jupyter lab" in command and command.endswith("notebooks/00_welcome.ipynb")
    assert ("--allow-root" in command) == (os.geteuid() == 0)  # JupyterLab refuses root without it


def test_test_runs_ruff_then_pytest() -> None:
    lines = [line for line in dry_run("test").splitlines() if ".venv/bin/python -m" in line]
    assert lines[-2:] == [
        ".venv/bin/python -m ruff check course_lib tests benchmarks",
        ".venv/bin/python -m pytest -rfEs",  # -rfEs: failures, errors, and skips with reasons
    ]


@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(),
                    reason=".venv was not built by make (pip install by hand): run `make setup` "
                    "once, or run the suite with `make test`")
def test_a_second_run_does_not_reinstall() -> None:
    assert "pip install" not in dry_run("test")
    # and a changed pyproject.toml would: make compares the two files' times
    assert "pip install" in dry_run("-W", "pyproject.toml", "test")
