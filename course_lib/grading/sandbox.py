"""The sandbox: one submission's code in its own process, limited and isolated from outside.

`run_in_sandbox(job, limits, isolation)` runs runner.py (with calling.py and wire.py copied
next to it) in a fresh temporary directory and returns what the learner's functions returned
on each case, as plain data. Enforced from here, never from inside the learner's process:

- wall-clock: the whole run gets `limits.timeout` seconds; a cell or a case that overruns its
  own limit (the runner's alarm, which the learner could defeat) is killed from outside after
  a grace period, and the run is restarted without it while time remains;
- memory: RLIMIT_AS, set in the child before it starts (inherited by all its processes);
- isolation (bubblewrap): a read-only view of the file system except the temporary directory,
  the course package and the solutions hidden, no network, its own process tree (every process
  in it dies with it). Without bubblewrap: the limits only, and `Isolation.name == "none"`;
- every process it started ends: the process group is killed, then any process that still
  carries this run's marker in its environment (one that left the group).
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import course_lib
from course_lib.checks import calling
from course_lib.checks.calling import ErrorInfo, Outcome
from course_lib.checks.core import Case
from course_lib.grading import wire

__all__ = ["Limits", "Isolation", "Job", "SandboxReport", "detect_isolation", "run_in_sandbox"]

_HERE = Path(__file__).resolve().parent
_MAX_ATTEMPTS = 6
_MAX_PROGRESS_BYTES = 2**20
_FILE_SIZE_LIMIT = 256 * 2**20


@dataclass(frozen=True)
class Limits:
    """timeout: seconds for a whole submission; memory_mb: address space of its process."""

    timeout: float = 60.0
    memory_mb: int = 2048

    @property
    def cell_timeout(self) -> float:
        """Seconds one code cell may run before it is stopped (and skipped)."""
        return round(max(1.0, self.timeout / 4), 2)

    @property
    def case_timeout(self) -> float:
        """Seconds a learner's function may run on one case."""
        return round(min(10.0, max(0.5, self.timeout / 6)), 2)

    @property
    def grace(self) -> float:
        """Extra seconds before an overrunning step is killed from outside."""
        return 1.0


@dataclass(frozen=True)
class Isolation:
    name: str  # "bwrap" or "none"
    description: str

    @property
    def isolated(self) -> bool:
        return self.name != "none"

    @property
    def label(self) -> str:
        """For the gradebook's isolation column: "bwrap" or "none (no isolation)"."""
        return self.name if self.isolated else "none (no isolation)"


@dataclass(frozen=True)
class Job:
    """The code cells (index, source) to run and each function's cases, smallest first."""

    cells: Sequence[tuple[int, str]]
    functions: dict[str, Sequence[Case]]


@dataclass
class SandboxReport:
    """What happened in the sandbox, as plain data (nothing here is trusted to be true)."""

    outcomes: dict[str, dict[int, Outcome]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # function -> what was there
    not_reached: dict[str, str] = field(default_factory=dict)  # function -> why
    cells: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (kind, text)
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (module, function or "")
    events: list[tuple[str, str]] = field(default_factory=list)  # (status kind, reason)


@functools.cache
def detect_isolation(prefer: str = "auto") -> Isolation:
    """bubblewrap when it works here (and `prefer` is not "none"), else no isolation."""
    bwrap = shutil.which("bwrap")
    if prefer != "none" and bwrap:
        probe = [bwrap, *_BWRAP_BASE, "true"]
        try:
            ok = subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return Isolation(
                "bwrap",
                "bwrap: read-only file system except its temporary directory, no network, "
                "own process tree",
            )
    why = "bubblewrap (bwrap) is not installed" if not bwrap else "bubblewrap cannot run here"
    if prefer == "none":
        why = "isolation turned off"
    return Isolation(
        "none", f"no isolation: {why}; only the time and memory limits apply"
    )


_BWRAP_BASE = (
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
    "--unshare-all", "--die-with-parent", "--new-session",
)


def run_in_sandbox(job: Job, limits: Limits, isolation: Isolation) -> SandboxReport:
    """Run the job in a fresh temporary directory; always returns, never raises for the
    learner's code."""
    root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        return _Run(job, limits, isolation, root).run()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _Run:
    def __init__(self, job: Job, limits: Limits, isolation: Isolation, root: Path) -> None:
        self.job, self.limits, self.isolation, self.root = job, limits, isolation, root
        self.lib, self.jobdir, self.work, self.out = (
            root / "lib", root / "job", root / "work", root / "out"
        )
        for folder in (self.lib, self.jobdir, self.work):
            folder.mkdir()
        for source in (_HERE / "runner.py", _HERE / "wire.py", Path(calling.__file__)):
            shutil.copyfile(source, self.lib / source.name)
        self.report = SandboxReport()
        self.skip_cells: set[int] = set()
        self.done: set[str] = set()
        self.deadline = time.monotonic() + limits.timeout
        self.step: dict[str, Any] | None = None  # the cell or call running now
        self.step_seen, self.finished = 0.0, False

    def run(self) -> SandboxReport:
        for _ in range(_MAX_ATTEMPTS):
            finished, step, ending = self._attempt()
            if finished:
                return self.report
            retry = self._interrupted(step, ending)
            if not retry or self.deadline - time.monotonic() < 0.5:
                break
        for name in self.job.functions:
            if name not in self.done:
                self.report.not_reached[name] = (
                    f"the time limit of {self.limits.timeout:g} s was reached before "
                    f"`{name}` could be called"
                )
        return self.report

    # -- one attempt ------------------------------------------------------------------------

    def _write_job(self) -> None:
        arrays: list[np.ndarray] = []
        functions = [
            {
                "name": name,
                "cases": [
                    {
                        "args": [[arg, wire.encode(value, arrays)] for arg, value in case.args],
                        "kwargs": [[k, wire.encode(v, arrays)] for k, v in case.kwargs.items()],
                        "measure_memory": case.memory_limit is not None,
                    }
                    for case in cases
                ],
            }
            for name, cases in self.job.functions.items()
        ]
        meta = {
            "cells": [{"index": index, "source": source} for index, source in self.job.cells],
            "functions": functions,
            "skip_cells": sorted(self.skip_cells),
            "skip_functions": sorted(self.done),
            "cell_timeout": self.limits.cell_timeout,
            "case_timeout": self.limits.case_timeout,
        }
        wire.save(str(self.jobdir / "job.npz"), meta, arrays)

    def _attempt(self) -> tuple[bool, dict[str, Any] | None, str]:
        """Run the sandbox once: (finished, the step it was in when it ended, how it ended)."""
        self._write_job()
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir()
        marker = uuid.uuid4().hex
        process = subprocess.Popen(
            self._command(),
            cwd=self.work,
            env=self._environment(marker),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=functools.partial(_set_limits, self.limits.memory_mb * 2**20),
        )
        progress = _Progress(self.out / "progress.jsonl")
        self.step, self.step_seen, self.finished = None, time.monotonic(), False
        ending = ""
        try:
            while True:
                code = process.poll()
                for event in progress.read():
                    self._absorb(event)
                if code is not None:
                    break
                now = time.monotonic()
                limit = self._step_limit(self.step)
                if now >= self.deadline:
                    ending = "deadline"
                elif limit is not None and now - self.step_seen > limit + self.limits.grace:
                    ending = "step-timeout"
                if ending:
                    break
                time.sleep(0.02)
        finally:
            _kill_all(process, marker)
        for event in progress.read():
            self._absorb(event)
        if not ending and not self.finished:
            ending = _describe_exit(process.returncode)
        return self.finished, self.step, ending

    def _step_limit(self, step: dict[str, Any] | None) -> float | None:
        if step is None:
            return None
        return self.limits.cell_timeout if step["e"] == "cell" else self.limits.case_timeout

    def _command(self) -> list[str]:
        python = [sys.executable, "-I", "-S", str(self.lib / "runner.py"),
                  str(self.jobdir), str(self.out), _numpy_path()]
        if not self.isolation.isolated:
            return python
        command = ["bwrap", *_BWRAP_BASE]
        for needed in _paths_under_tmp():  # the fresh /tmp above would hide them
            command += ["--ro-bind", str(needed), str(needed)]
        for hidden in _hidden_paths():
            command += ["--tmpfs", str(hidden)]
        command += ["--ro-bind", str(self.lib), str(self.lib),
                    "--ro-bind", str(self.jobdir), str(self.jobdir),
                    "--bind", str(self.work), str(self.work),
                    "--bind", str(self.out), str(self.out),
                    "--chdir", str(self.work)]
        return command + python

    def _environment(self, marker: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.work),
            "TMPDIR": str(self.work), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg", _MARKER: marker,
        }

    # -- reading what happened --------------------------------------------------------------

    def _absorb(self, event: dict[str, Any]) -> None:
        kind, report, step = event.get("e"), self.report, self.step
        if kind in ("cell", "call"):
            self.step, self.step_seen = event, time.monotonic()
        elif kind in ("cell-end", "function-end", "missing"):
            self.step = None
        elif kind == "done":
            self.finished = True
        if kind == "cell-end":
            index, error = int(event["i"]), event.get("error")
            if event.get("timed_out"):
                report.cells[index] = ("timeout", f"ran longer than "
                                       f"{self.limits.cell_timeout:g} s and was stopped")
            elif isinstance(error, dict):
                report.cells[index] = _cell_error(error, self.limits.memory_mb)
        elif kind == "missing":
            name = str(event["f"])
            if name in self.job.functions:
                report.missing[name] = str(event.get("kind", ""))[:60]
                self.done.add(name)
        elif kind == "function-end":
            name = str(event["f"])
            if name in self.job.functions:
                self._collect(name)
                self.done.add(name)
        elif kind == "blocked":
            function = str(step["f"]) if step and step.get("e") == "call" else ""
            entry = (str(event.get("module", ""))[:80], function)
            if entry not in report.blocked:
                report.blocked.append(entry)

    def _collect(self, name: str) -> None:
        outcomes = self.report.outcomes.setdefault(name, {})
        for index in range(len(self.job.functions[name])):
            path = self.out / "results" / name / f"{index}.npz"
            if path.exists() and index not in outcomes:
                outcomes[index] = _read_outcome(path)

    def _interrupted(self, step: dict[str, Any] | None, ending: str) -> bool:
        """The process ended (or was killed) during `step`: record it, skip it next time.
        Returns whether another attempt may get further."""
        if ending == "deadline":
            why = f"stopped at the time limit of {self.limits.timeout:g} s"
            kind = "timeout"
        elif ending == "step-timeout":
            why, kind = "did not stop at its time limit and was killed", "timeout"
        else:
            why, kind = f"ended the process ({ending})", "crashed"
        if step is None:
            self.report.events.append((kind, f"the notebook's process {why}"))
            return False
        if step["e"] == "cell":
            index = int(step["i"])
            self.skip_cells.add(index)
            self.report.cells[index] = (kind, why)
            return True
        name, index = str(step["f"]), int(step["i"])
        self._collect(name)
        self.done.add(name)
        if kind == "timeout":
            outcome = Outcome(timed_out=True)
        else:
            outcome = Outcome(error=ErrorInfo("ProcessEnded", f"your function {why}"))
        self.report.outcomes.setdefault(name, {})[index] = outcome
        return True


# -- helpers ----------------------------------------------------------------------------------

_MARKER = "COURSE_GRADER_RUN"


class _Progress:
    """Reads the runner's progress.jsonl as it grows (bounded; bad lines are ignored)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def read(self) -> list[dict[str, Any]]:
        import json

        if self.offset >= _MAX_PROGRESS_BYTES:
            return []
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                chunk = file.read(_MAX_PROGRESS_BYTES - self.offset)
        except OSError:
            return []
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


def _read_outcome(path: Path) -> Outcome:
    try:
        meta, arrays = wire.load(str(path))
        error = meta.get("error")
        return Outcome(
            value=wire.decode(meta["value"], arrays) if meta.get("value") else None,
            error=ErrorInfo(str(error["type"])[:80], str(error["message"])[:300],
                            str(error.get("line", ""))[:200]) if error else None,
            timed_out=bool(meta.get("timed_out")),
            mutated=tuple(str(name) for name in meta.get("mutated", ())),
            peak_memory=int(meta["peak_memory"]) if meta.get("peak_memory") is not None
            else None,
        )
    except Exception as error:  # noqa: BLE001 - a damaged file is the learner's doing
        return Outcome(error=ErrorInfo("UnreadableResult", f"the result could not be read "
                                       f"({type(error).__name__})"))


def _cell_error(error: dict[str, Any], memory_mb: int) -> tuple[str, str]:
    kind, message = str(error.get("type", "")), str(error.get("message", ""))[:200]
    if kind == "MemoryError":
        return "memory", f"ran out of memory (limit {memory_mb} MB)"
    if kind in ("SystemExit", "ProcessExit"):
        call = "sys.exit" if kind == "SystemExit" else "os._exit"
        return "crashed", f"called {call}({message}); ignored, the next cells were run"
    line = str(error.get("line", ""))[:120]
    return "error", f"raised {kind}: {message}" + (f" ({line})" if line else "")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _set_limits(memory_bytes: int) -> None:
    """In the child, before it runs anything: the limits every process it starts inherits."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file: an error, not a kill


def _kill_all(process: subprocess.Popen[bytes], marker: str) -> None:
    """End the sandbox's process group, then every process that still carries `marker`."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    needle = f"{_MARKER}={marker}".encode()
    for _ in range(3):  # a process may fork while we look: look again
        found = False
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found = True
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.05)


@functools.cache
def _numpy_path() -> str:
    return str(Path(np.__file__).resolve().parent.parent)


@functools.cache
def _paths_under_tmp() -> tuple[Path, ...]:
    """Python's environment and numpy, when they live under /tmp (a checkout in /tmp, say)."""
    tmp = Path("/tmp").resolve()
    paths = {Path(sys.prefix).resolve(), Path(sys.executable).parent, Path(_numpy_path())}
    return tuple(sorted(p for p in paths if p.is_relative_to(tmp) or p.is_relative_to("/tmp")))


@functools.cache
def _hidden_paths() -> tuple[Path, ...]:
    """The course package and the exercise solutions: not even readable in the sandbox."""
    package = Path(course_lib.__file__).resolve().parent
    needed = [Path(sys.executable).resolve(), Path(_numpy_path()), Path(tempfile.gettempdir())]
    hidden = []
    for path in (package, package.parent / "exercises" / "solutions"):
        if path.is_dir() and not any(p.is_relative_to(path) for p in needed):
            hidden.append(path)
    return tuple(hidden)
