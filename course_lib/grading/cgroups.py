"""Per-submission limits from the kernel: a control group for each sandbox run.

A process's own limits (RLIMIT_AS) hold per process: three children of 600 MB each hold
1.8 GB together, and a submission may fork without end. A control group holds every process a
submission starts, however it was started, and the kernel limits the group as a whole:

- cgroup v2: `memory.max` (and `memory.swap.max` = 0) and `pids.max`, in a group created under
  the grader's own group, when the `memory` and `pids` controllers can be enabled there;
- cgroup v1: the `memory` controller's `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`
  when swap is accounted) and the `pids` controller's `pids.max`, each in a group created under
  the grader's own group of that controller.

`detect()` finds what this machine allows (none, when the groups cannot be created: then the
grader says so in the gradebook's `isolation` column). A `Group` is created per run; the
sandbox's first process joins it before it starts anything (`Group.join`, in the child), and
afterwards the grader kills every process still in it and removes it. The kernel's own
accounting also tells whether the group ran out of memory (`Group.out_of_memory`) and the most
it held at once during a call (`Group.start_measuring`, `Group.peak`), which the learner's
process cannot fake.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from course_lib.grading.reaper import kill_until_gone

__all__ = ["Controllers", "Group", "detect", "MAX_PROCESSES"]

MAX_PROCESSES = 64
"""Processes and threads one submission may have at once (its sandbox's own included)."""


@dataclass(frozen=True)
class Controllers:
    """Where this grader may create groups: the parent folder for memory, and for pids."""

    version: int  # 1 or 2
    memory: Path
    pids: Path

    @property
    def description(self) -> str:
        """The limits in plain words, then the kernel's files that hold them."""
        memory = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return (f"memory of all its processes together and at most {MAX_PROCESSES} processes, "
                f"by cgroup v{self.version} ({memory}, pids.max)")


@functools.cache
def detect() -> Controllers | None:
    """The control groups this process may create, or None (checked by creating one)."""
    for candidate in (_v2(), _v1()):
        if candidate is not None and _can_create(candidate):
            return candidate
    return None


class Group:
    """One sandbox run's control group (v1: one folder per controller; v2: one folder)."""

    def __init__(self, controllers: Controllers, memory_bytes: int,
                 max_processes: int = MAX_PROCESSES) -> None:
        name = f"course-grade-{uuid.uuid4().hex[:12]}"
        self.controllers = controllers
        self.folders = [controllers.memory / name]
        if controllers.pids != controllers.memory:
            self.folders.append(controllers.pids / name)
        for folder in self.folders:
            folder.mkdir()
        memory, pids = self.folders[0], self.folders[-1]
        if controllers.version == 2:
            _write(memory / "memory.max", memory_bytes)
            _write(memory / "memory.swap.max", 0, optional=True)
        else:
            _write(memory / "memory.limit_in_bytes", memory_bytes)
            _write(memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
        _write(pids / "pids.max", max_processes)
        self.procs = [str(folder / "cgroup.procs") for folder in self.folders]
        self.peak_fd: int | None = None

    def join(self) -> None:
        """Move the calling process into the group (run in the child, before exec)."""
        pid = str(os.getpid()).encode()
        for procs in self.procs:
            descriptor = os.open(procs, os.O_WRONLY)
            try:
                os.write(descriptor, pid)
            finally:
                os.close(descriptor)

    def processes(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs:
            try:
                found.update(int(line) for line in Path(procs).read_text().split())
            except (OSError, ValueError):
                continue
        return found

    def kill(self) -> None:
        """SIGKILL every process in the group, until none is left (a fork bomb included:
        `pids.max` bounds how many there can be)."""
        kill_file = self.folders[0] / "cgroup.kill"
        if self.controllers.version == 2 and kill_file.exists():
            _write(kill_file, 1, optional=True)
        kill_until_gone(self.processes)

    def out_of_memory(self) -> bool:
        """Whether the kernel had to refuse or reclaim memory at the group's limit."""
        folder = self.folders[0]
        if self.controllers.version == 2:
            events = _read(folder / "memory.events")
            return any(line.split()[:1] in (["oom"], ["oom_kill"]) and line.split()[1] != "0"
                       for line in events.splitlines() if len(line.split()) == 2)
        control = dict(line.split() for line in _read(folder / "memory.oom_control").splitlines()
                       if len(line.split()) == 2)
        if "oom_kill" in control:
            return control["oom_kill"] != "0"
        return _read(folder / "memory.failcnt").strip() not in ("", "0")

    def start_measuring(self) -> int:
        """Reset the group's memory peak to what it holds now; returns that (bytes)."""
        memory = self.folders[0]
        if self.controllers.version == 2:
            if self.peak_fd is None:
                self.peak_fd = os.open(memory / "memory.peak", os.O_RDWR)
            os.write(self.peak_fd, b"reset")  # per descriptor (Linux 6.12 and later)
            return int(_read(memory / "memory.current") or 0)
        _write(memory / "memory.max_usage_in_bytes", 0)  # v1: reset to the current usage
        return int(_read(memory / "memory.usage_in_bytes") or 0)

    def peak(self) -> int:
        """The most memory the group held at once since `start_measuring` (bytes)."""
        if self.peak_fd is not None:
            return int(os.pread(self.peak_fd, 64, 0) or 0)
        return int(_read(self.folders[0] / "memory.max_usage_in_bytes") or 0)

    def remove(self) -> None:
        if self.peak_fd is not None:
            os.close(self.peak_fd)
            self.peak_fd = None
        self.kill()
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # the last processes are still leaving
                    time.sleep(0.01)


# -- detection ---------------------------------------------------------------------------------


def _mounts() -> list[tuple[str, Path, set[str]]]:
    """(file system type, mount point, super options) of the cgroup mounts."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], Path(fields[4]), set(tail[2].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's group path, from /proc/self/cgroup."""
    groups = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                groups[controller] = parts[2]
    return groups


def _v2() -> Controllers | None:
    own = _own_groups().get("")
    for kind, mount, _ in _mounts():
        if kind != "cgroup2" or own is None:
            continue
        parent = mount / own.lstrip("/")
        available = set(_read(parent / "cgroup.controllers").split())
        if not {"memory", "pids"} <= available:
            continue
        enabled = set(_read(parent / "cgroup.subtree_control").split())
        if not {"memory", "pids"} <= enabled:
            try:  # fails when the group holds processes itself (unless it is the root)
                _write(parent / "cgroup.subtree_control", "+memory +pids")
            except OSError:
                continue
        return Controllers(2, parent, parent)
    return None


def _v1() -> Controllers | None:
    own = _own_groups()
    places: dict[str, Path] = {}
    for kind, mount, options in _mounts():
        for controller in ("memory", "pids"):
            if kind == "cgroup" and controller in options and controller in own:
                places[controller] = mount / own[controller].lstrip("/")
    if len(places) < 2:
        return None
    return Controllers(1, places["memory"], places["pids"])


def _can_create(controllers: Controllers) -> bool:
    try:
        Group(controllers, 2**30).remove()
    except OSError:
        return False
    return True


def _write(path: Path, value: object, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
