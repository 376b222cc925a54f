"""Lessons 07 and 11 pass while another program keeps a core busy (issue 20, §3).

A learner's machine is rarely idle (a browser, a second kernel, CI's neighbour). Lesson 07
measures speed-ups, lesson 11 the cost per generated token; a measurement is a fact of the
machine at that moment, which the lesson prints and explains, and never a reason for a cell to
fail. So the lessons run under nbval, exactly as in
`make test`, while a second Python process spins on one core for the whole run; the spinner
reports the CPU time it got, and the test checks that it really kept a core busy.

Run alone: `.venv/bin/python -m pytest -m kernels tests/test_busy_core.py` (about a minute).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbval_runs import run_nbval

pytestmark = pytest.mark.kernels

# The notebooks that measure time on this machine (repository paths).
TIMING_NOTEBOOKS = ["notebooks/07_parallelism.ipynb",  # speed-ups against cores
                    "notebooks/11_generation_and_kv_cache.ipynb"]  # cost per generated token
# A process that keeps one core busy until it is told to stop (SIGTERM), then prints the CPU
# time it used.
SPINNER = """\
import signal, sys, time
def stop(*_):
    print(time.process_time(), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("spinning", flush=True)
while True:
    pass
"""
# The spinner must have had at least this share of a core over the run to count as "busy"; on
# an idle machine it gets a whole core. A loose bound: the shared machine's other load varies.
MIN_BUSY_SHARE = 0.1


def test_lesson_07_passes_while_a_core_is_busy(tmp_path: Path) -> None:
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline().strip() == "spinning"
        started = time.monotonic()
        run = run_nbval(TIMING_NOTEBOOKS, {}, tmp_path, probe=False)
        wall = time.monotonic() - started
    finally:
        spinner.terminate()
        try:
            out, _ = spinner.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spinner.kill()
            out, _ = spinner.communicate()
    busy = float(out.split()[-1]) if out.split() else 0.0
    print(f"lesson 07 with a core busy: {run.seconds:.0f} s; the spinner used {busy:.0f} s of "
          f"CPU in {wall:.0f} s")
    assert busy >= MIN_BUSY_SHARE * wall, (
        f"the spinner got only {busy:.1f} s of CPU in {wall:.1f} s: the core was not kept busy")
    assert run.returncode == 0, run.report()
