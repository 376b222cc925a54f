"""Suite-wide guards: a full run must really run every notebook and every test module."""

from __future__ import annotations

import os
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
