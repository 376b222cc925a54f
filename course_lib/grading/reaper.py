"""The grader owns every process a submission starts, in every mode (`--no-isolation` too).

A process that calls `setsid`, forks twice and clears its environment leaves its session, its
process group and any marker in its environment; normally it is then adopted by init and
outlives the grading run. While grading, the grader is the *child subreaper* of everything it
starts (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux): an orphan is adopted by the grader instead.
The grader's only own children are the sandboxes it started, so any other child that appears
is an orphan of a submission, and `Reaper.sweep` kills it (and reaps it, so no zombie is left).

Inside bubblewrap the sandbox's own PID namespace already ends every process with it, and a
control group (cgroups.py) holds every process of a run wherever it goes; the subreaper is
what holds without either.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["Reaper", "kill_until_gone"]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


class Reaper:
    """`with Reaper() as reaper:` the grader adopts orphans; start sandboxes with
    `reaper.start(...)`, call `reaper.finished(process)` after each, `sweep()` at the end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[int] = set()
        self.before: set[int] = set()
        self.was_subreaper = False
        self.active = False  # sweeps only between __enter__ and __exit__

    def __enter__(self) -> Reaper:
        self.was_subreaper = _prctl_get() == 1
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        self.before = _children()
        self.active = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.sweep()
        self.active = False
        if not self.was_subreaper:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)

    def start(self, launch: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Start a sandbox (under the lock, so that a sweep never mistakes it for an orphan)."""
        with self.lock:
            process = launch()
            self.live.add(process.pid)
            return process

    def finished(self, process: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.live.discard(process.pid)
        self.sweep()

    def sweep(self) -> None:
        """Kill and reap every child of the grader that is neither a running sandbox nor was
        there before grading began: the orphans the submissions left behind."""
        if not self.active:
            return
        with self.lock:
            kill_until_gone(lambda: _children() - self.live - self.before, reap=True)


def kill_until_gone(find: Callable[[], set[int]], rounds: int = 200, reap: bool = False) -> None:
    """SIGKILL the processes `find()` lists, again until it lists none (a process may fork
    while we look); with `reap`, wait for them too (they are this process's children)."""
    for _ in range(rounds):
        found = find()
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)
        for pid in found if reap else ():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _children() -> set[int]:
    """The process IDs whose parent is this process (from /proc: every thread's children)."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the process groups and cgroups remain
        pass


def _prctl_get() -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
        return flag.value
    except (OSError, AttributeError):
        return 0
