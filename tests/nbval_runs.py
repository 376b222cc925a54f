"""Helpers for the tests that run notebooks under nbval in another environment.

tests/test_blas_kernels.py (other BLAS kernels, numpy's CPU dispatch turned down) and
tests/test_busy_core.py (a core kept busy) run notebooks exactly as `make test` does, in a pytest
subprocess with the suite's own options (pyproject.toml's addopts: nbval, strict, the same
sanitizers), changing only the environment the kernels start in. One subprocess per
environment runs every notebook of that environment, so each costs one pytest start.

A probe notebook, written to a temporary folder and run first in the same subprocess, records
what the kernel really got (its OpenBLAS core type, numpy's dispatched CPU features, the
variables), so a test can check that the environment took effect and cannot pass vacuously.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
# Variables that change what a kernel computes with; removed from the inherited environment so
# that each run sets exactly its own.
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES")
PROBE_FILE = "COURSE_KERNEL_PROBE"

PROBE_SOURCE = f"""\
import json, os
import numpy
from threadpoolctl import threadpool_info
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:  # numpy 1.x
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
record = {{
    "openblas": [i.get("architecture") for i in threadpool_info()
                 if i.get("internal_api") == "openblas"],
    "dispatch": {{name: bool(__cpu_features__.get(name)) for name in __cpu_dispatch__}},
    "cpu": {{name: bool(__cpu_features__.get(name)) for name in ("SSE3", "AVX", "AVX2", "FMA3")}},
    "environment": {{name: os.environ.get(name) for name in {KERNEL_VARIABLES!r}}},
}}
with open(os.environ[{PROBE_FILE!r}], "w") as file:
    json.dump(record, file)
"""


@dataclass
class NbvalRun:
    """The outcome of one pytest subprocess over some notebooks."""

    returncode: int
    output: str
    seconds: float
    probe: dict | None  # what the kernel reported, when a probe ran

    @property
    def failed(self) -> list[str]:
        """The `FAILED ...` lines of pytest's short summary (one per failing cell)."""
        return [line for line in self.output.splitlines() if line.startswith(("FAILED", "ERROR"))]

    def failing_notebooks(self) -> list[str]:
        return sorted({line.split()[1].split("::")[0] for line in self.failed})

    def report(self, limit: int = 8_000) -> str:
        """What to show when the run failed: which notebooks and cells failed, then the first
        failures in full (the first is usually the cause of the others)."""
        start = self.output.find("= FAILURES =")
        details = self.output[max(start, 0):][:limit]
        return (f"exit code {self.returncode} after {self.seconds:.0f} s; failing notebooks: "
                f"{', '.join(self.failing_notebooks()) or 'none reported'}\n"
                + "\n".join(self.failed) + "\n\n" + details)


def write_probe(folder: Path) -> Path:
    """A one-cell notebook, without outputs, that writes the probe's record."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE_SOURCE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = folder / "kernel_probe.ipynb"
    nbformat.write(notebook, path)
    return path


def run_nbval(notebooks: list[str], environment: dict[str, str], tmp: Path, *,
              probe: bool = True, timeout: float = 1800) -> NbvalRun:
    """Run `notebooks` (paths relative to the repository) under nbval in one pytest subprocess.

    `environment` is added to this process's environment (minus KERNEL_VARIABLES); pytest reads
    its options from pyproject.toml, as `make test` does. With `probe`, a probe notebook runs
    first and its record is returned.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in KERNEL_VARIABLES and k != "COURSE_REQUIRE_ALL_TESTS"}
    env.update(environment)
    arguments = [str(ROOT / path) for path in notebooks]
    record = tmp / "probe.json"
    if probe:
        env[PROBE_FILE] = str(record)
        arguments.insert(0, str(write_probe(tmp / "probe")))
    command = [sys.executable, "-m", "pytest", "-c", str(PYPROJECT), "--rootdir", str(ROOT),
               "-q", "-rfE", "--color=no", *arguments]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    seconds = time.monotonic() - started
    found = json.loads(record.read_text()) if probe and record.exists() else None
    return NbvalRun(result.returncode, result.stdout + result.stderr, seconds, found)


def probe_record(environment: dict[str, str] | None = None) -> dict:
    """The probe's record from a plain Python subprocess (the same code, no notebook, about a
    second): with no `environment`, what a kernel gets with none of KERNEL_VARIABLES set."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
    env.update(environment or {})
    with tempfile.TemporaryDirectory() as folder:
        env[PROBE_FILE] = str(Path(folder) / "probe.json")
        subprocess.run([sys.executable, "-c", PROBE_SOURCE], env=env, check=True, timeout=120)
        return json.loads(Path(env[PROBE_FILE]).read_text())
