"""The sandbox: one submission's code in its own process, limited and isolated from outside.

`run_in_sandbox(job, limits, isolation, reaper)` is a pipeline, read top to bottom:

1. prepare: a private temporary folder with a copy of the runner (runner.py, calling.py,
   wire.py) and an empty working folder; the job (cells, cases) as one frame of wire.py;
2. run: start the runner (under bubblewrap when available) in a fresh control group, give it
   the job on its stdin, read its messages from a pipe while enforcing the limits from
   outside; when it is killed or ends during a cell or a call, start again without that step
   while time remains; every process it started is ended after each attempt;
3. read back: what the learner's functions returned on each case, as plain data
   (`SandboxReport`); anything malformed on the pipe marks the submission
   `crashed: unreadable results` and nothing it sent is used;
4. clean up: the temporary folder goes, whatever the submission left in it (cleanup.py,
   however deep; it never raises, so it never decides a grade);

and the judging (judge.py) happens in the grader's process (`grading.grade_one` reads as the
whole pipeline: prepare the job, run it here, judge). What crosses the boundary, and why
each field is safe, is documented in BOUNDARY.md next to this module.

Enforced from here, never from inside the learner's process:

- wall-clock: the whole run gets `limits.timeout` seconds; a cell or a case that overruns its
  own limit by the grader's clock is killed after a grace period (the runner's own alarm is
  only a courtesy the learner could defeat);
- memory and processes: the run's control group (cgroups.py: `memory` and `pids`, the whole
  process tree together), and RLIMIT_AS per process in every mode;
- isolation (bubblewrap): the sandbox sees only the Python runtime it runs (read-only), the
  shared libraries and programs it needs (read-only), its own copy of the runner and its
  working folder, and a private /tmp and /dev/shm (multiprocessing's pools work); no network,
  its own process tree (every process in it dies with it). Without bubblewrap: the limits
  only, and `Isolation.name == "none"`; without bubblewrap and without a user of its own the
  grader refuses to run submissions unless told to accept the risk (`refusal`);
- a user of its own: a grader running as root runs each sandbox as an unprivileged user that
  no account and no other process has (`setpriv`, from util-linux), with no capabilities, so
  the kernel's per-user process limit (RLIMIT_NPROC) counts that submission's processes alone:
  the process limit where no control group can be made;
- every process it started ends: the control group is killed, and the grader is the child
  subreaper of everything (reaper.py), in every mode.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.checks import calling
from course_lib.checks.calling import ErrorInfo, Outcome
from course_lib.checks.core import Case
from course_lib.grading import cgroups, wire
from course_lib.grading.cleanup import remove_tree
from course_lib.grading.reaper import Reaper

__all__ = ["ACCEPT_RISK_FLAG", "Limits", "Isolation", "Job", "SandboxReport", "detect_isolation",
           "refusal", "run_in_sandbox"]

_HERE = Path(__file__).resolve().parent
_MAX_ATTEMPTS = 6
_FILE_SIZE_LIMIT = 256 * 2**20
_MAX_STREAM_BYTES = 128 * 2**20
_SANDBOX_USERS = range(61184, 65520)
"""User ids for sandboxes run by root: systemd's range for users made on the fly (mapped even
in a container that maps only the first 65536 ids); one not in use is drawn for each run."""
_USERS_TAKEN: set[int] = set()  # by this grader's runs now (--jobs runs them side by side)
_USERS_LOCK = threading.Lock()
KERNEL_MARGIN = 4 * 2**20
"""Bytes the kernel may count during a measured call beyond what the function allocates (pages
the interpreter touches, copied on write); a full n × n array of the memory case is 8 MiB even
in float16, and 32 MiB in float64."""


@dataclass(frozen=True)
class Limits:
    """timeout: seconds for a whole submission; memory_mb: its memory (all its processes)."""

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
    limits: str = ""  # the kernel's per-submission limits in force, "" when none
    unprivileged: bool = False  # root runs each sandbox as an unprivileged user of its own
    why_uncontained: str = ""  # why neither bwrap nor a user of its own can be had ("" if one can)

    @property
    def isolated(self) -> bool:
        return self.name != "none"

    @property
    def contained(self) -> bool:
        """Whether a submission is kept from the other learners' files and from the course's:
        by bubblewrap's view, or by running as a user of its own (see BOUNDARY.md)."""
        return self.isolated or self.unprivileged

    @property
    def label(self) -> str:
        """For the gradebook's isolation column: the sandbox, then the limits in force."""
        sandbox = self.name if self.isolated else "none (no isolation)"
        if self.unprivileged:
            sandbox += ", unprivileged user"
        elif os.geteuid() == 0:
            sandbox += ", as root"
        limits = self.limits or _fallback_limits(self.unprivileged)
        return f"{sandbox}; {limits}"


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
    unreadable: str = ""  # why the sandbox's messages could not be read ("" when they could)


ACCEPT_RISK_FLAG = "--i-accept-that-submissions-can-read-and-change-this-machine"
"""The command line's flag that grades without containment (a throw-away machine only)."""


@functools.cache
def detect_isolation(prefer: str = "auto") -> Isolation:
    """bubblewrap when it works here (and `prefer` is not "none"), else no isolation; as root,
    each sandbox as an unprivileged user of its own when the runtime starts as one; and the
    control groups this machine allows, in every mode. Each way is tried by starting the
    runner's Python (importing numpy) exactly so. Without bubblewrap and without a user of its
    own, `Isolation.contained` is False and `refusal(isolation)` says why and what to do."""
    groups = cgroups.detect()
    limits = f"per submission: {groups.description}" if groups else ""
    bwrap = shutil.which("bwrap") if prefer != "none" else None
    setpriv = shutil.which("setpriv")
    as_root = os.geteuid() == 0 and setpriv is not None
    for unprivileged in ((True, False) if as_root else (False,)):
        if bwrap and _starts([bwrap, *_bwrap_view(unprivileged)], unprivileged):
            user = ", as an unprivileged user of its own" if unprivileged else ""
            return Isolation(
                "bwrap",
                "bwrap: sees only the Python runtime (read-only), its own folder and a private "
                f"/tmp; no network, own process tree{user}" + (f"; {limits}" if limits else ""),
                limits, unprivileged,
            )
    unprivileged = as_root and _starts([], unprivileged=True)
    why = "bubblewrap (bwrap) is not installed" if not shutil.which("bwrap") else (
        "bubblewrap cannot run here")
    if prefer == "none":
        why = "isolation turned off"
    user = "; as an unprivileged user of its own" if unprivileged else ""
    if os.geteuid() == 0 and not unprivileged:
        user = ("; AS ROOT: a submission can read and change every file of this machine "
                "(install bubblewrap, or grade as another user)")
    elif not unprivileged:
        user = (f"; as your user ({_user_name()}): a submission can read and change every file "
                "you can")
    uncontained = "" if unprivileged else _why_no_own_user(setpriv)
    return Isolation(
        "none", f"no isolation: {why}; only the time and memory limits apply{user}"
        + (f" ({limits})" if limits else ""), limits, unprivileged,
        f"{why}, and {uncontained}" if uncontained else "",
    )


def _why_no_own_user(setpriv: str | None) -> str:
    """Why each submission cannot run as an unprivileged user of its own here."""
    if os.geteuid() != 0:
        return (f"the grader runs as {_user_name()}, not as root, so it cannot run each "
                "submission as a user of its own")
    if setpriv is None:
        return "setpriv (util-linux), which runs each submission as a user of its own, is missing"
    return (f"the Python runtime ({sys.base_prefix}) cannot start as another user (it is in a "
            "folder only root may read)")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"user {os.geteuid()}"


def refusal(isolation: Isolation) -> str:
    """One paragraph for an instructor: why the grader will not run submissions here, and what
    to do ("" when it may: the isolation keeps each submission to itself)."""
    if isolation.contained:
        return ""
    who = "root" if os.geteuid() == 0 else f"your user ({_user_name()})"
    return (
        "The grader refuses to run the submissions: no isolation that keeps a submission from "
        f"the other learners' notebooks and from the course can be had here ("
        f"{isolation.why_uncontained or 'no bubblewrap and no user of its own'}). Each "
        f"submission would run as {who}: it could read every solution of the course and "
        "change every other learner's notebook, the gradebook and this machine. What to do: "
        "install bubblewrap (`apt-get install bubblewrap`; then each submission sees only "
        "the Python runtime and its own folder); or grade as root with a Python runtime other "
        "users can read (a virtual environment under /opt or /srv, not under /root), so that "
        "each submission runs as an unprivileged user of its own; or, on a throw-away machine "
        "that holds nothing else, pass "
        f"{ACCEPT_RISK_FLAG} (grade(..., accept_risk=True))."
    )


_STARTS = ("import sys; sys.path.append(sys.argv[1]); import numpy, IPython.core.interactiveshell"
           "; assert sys.base_prefix == sys.argv[2], sys.base_prefix")
"""What the runner's Python must do where it runs: import what the runner imports, from the
grader's own runtime (a Python that cannot read its own folder falls back to another one's)."""


def _starts(prefix: list[str], unprivileged: bool) -> bool:
    """Whether the runner's Python starts this way, as the grader's runtime."""
    uid = _free_uid() if unprivileged else None
    command = [*prefix, *(_as_user(uid) if uid is not None else []), sys.executable, "-I", "-S",
               "-c", _STARTS, _site_packages(), sys.base_prefix]
    try:
        return subprocess.run(command, capture_output=True, timeout=30,
                              cwd="/").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        _release_uid(uid)


def run_in_sandbox(job: Job, limits: Limits, isolation: Isolation,
                   reaper: Reaper | None = None) -> SandboxReport:
    """Prepare, run, read back. Always returns, never raises for the learner's code, and
    always removes its temporary folder."""
    run = _prepare(job, limits, isolation, reaper or Reaper())
    try:
        _run(run)
        return _read_back(run)
    finally:
        remove_tree(run.root)  # never raises: what it leaves never changes the grade
        _release_uid(run.uid)


# -- 1. prepare --------------------------------------------------------------------------------


@dataclass
class _Run:
    job: Job
    limits: Limits
    isolation: Isolation
    reaper: Reaper
    root: Path
    uid: int | None = None  # the sandbox's own user, when root runs it (else the grader's)
    report: SandboxReport = field(default_factory=SandboxReport)
    skip_cells: set[int] = field(default_factory=set)
    done: set[str] = field(default_factory=set)  # functions finished (or given up)
    measured: set[tuple[str, int]] = field(default_factory=set)  # inputs sent (once per run)
    deadline: float = 0.0
    stopped: str = ""  # why the last attempt ended early, for functions never reached

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def work(self) -> Path:
        return self.root / "work"


def _prepare(job: Job, limits: Limits, isolation: Isolation, reaper: Reaper) -> _Run:
    root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    run = _Run(job, limits, isolation, reaper, root, deadline=time.monotonic() + limits.timeout,
               uid=_free_uid() if isolation.unprivileged else None)
    run.lib.mkdir()
    for source in (_HERE / "runner.py", _HERE / "wire.py", Path(calling.__file__)):
        shutil.copyfile(source, run.lib / source.name)
        os.chmod(run.lib / source.name, 0o644)
    for folder in (root, run.lib):  # readable by the sandbox's user; `work` is made its own
        os.chmod(folder, 0o755)
    return run


def _inputs(case: Case, arrays: list[np.ndarray]) -> dict[str, Any]:
    return {"args": [[arg, wire.encode(value, arrays)] for arg, value in case.args],
            "kwargs": [[k, wire.encode(v, arrays)] for k, v in case.kwargs.items()]}


def _job_frame(run: _Run) -> bytes:
    """The job. A case whose memory is measured travels without its inputs: they are sent with
    its "go", once the measurement has started (`_start_measuring`), so that the learner's code
    cannot compute its answer beforehand, outside the measured window."""
    arrays: list[np.ndarray] = []
    functions = [
        {
            "name": name,
            "cases": [
                {"measure_memory": True} if case.memory_limit is not None
                else {**_inputs(case, arrays), "measure_memory": False}
                for case in cases
            ],
        }
        for name, cases in run.job.functions.items()
    ]
    return wire.frame({
        "cells": [{"index": index, "source": source} for index, source in run.job.cells],
        "functions": functions,
        "skip_cells": sorted(run.skip_cells),
        "skip_functions": sorted(run.done),
        "cell_timeout": run.limits.cell_timeout,
        "case_timeout": run.limits.case_timeout,
    }, arrays)


# -- 2. run ------------------------------------------------------------------------------------


def _run(run: _Run) -> None:
    """Attempts until the runner finishes, or no attempt can get further."""
    for _ in range(_MAX_ATTEMPTS):
        attempt = _Attempt(run)
        attempt.execute()
        if attempt.finished or run.report.unreadable:
            return
        if not _interrupted(run, attempt) or run.deadline - time.monotonic() < 0.5:
            return


class _Attempt:
    """One start of the runner: its process, its pipe, what it said, how it ended."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.step: dict[str, Any] | None = None  # the cell or call running now
        self.step_seen = time.monotonic()
        self.finished = False
        self.ending = ""
        self.oom = False
        self.group: cgroups.Group | None = None
        self.go = -1  # a byte on it lets a measured case start
        self.baseline: int | None = None  # the group's memory when the measured case started
        self.go_pending = memoryview(b"")  # the measured case's inputs, written as it reads
        self.reader = wire.FrameReader(_MAX_STREAM_BYTES)
        cases = sum(len(c) for c in run.job.functions.values())
        self.budget = 8 * (len(run.job.cells) + cases + len(run.job.functions)) + 64

    def execute(self) -> None:
        run = self.run
        remove_tree(run.work)  # what the last attempt left (however deep)
        run.work.mkdir(mode=0o700)
        if run.uid is not None:
            os.chown(run.work, run.uid, run.uid)
        self.group = group = _group(run.limits)
        results, results_writer = os.pipe()
        go_reader, self.go = os.pipe()
        os.set_blocking(self.go, False)
        process = None
        try:
            process = run.reaper.start(lambda: subprocess.Popen(
                _command(run, results_writer, go_reader), cwd=run.work,
                env=_environment(run), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
                pass_fds=(results_writer, go_reader),
                preexec_fn=functools.partial(_child_setup, run.limits.memory_mb * 2**20, group,
                                             _process_cap(run.uid, group)),
            ))
            for descriptor in (results_writer, go_reader):
                os.close(descriptor)
            results_writer = go_reader = -1
            os.set_blocking(results, False)
            self._watch(process, results)
        finally:
            for descriptor in (results_writer, go_reader):
                if descriptor >= 0:
                    os.close(descriptor)
            if process is not None:
                _end(process, group)
                run.reaper.finished(process)
            self._drain(results)
            os.close(results)
            os.close(self.go)
            if group is not None:
                self.oom = group.out_of_memory()
                group.remove()
        if not self.ending and not self.finished and process is not None:
            self.ending = _describe_exit(process.returncode)

    def _watch(self, process: subprocess.Popen[bytes], results: int) -> None:
        """Feed the job, read the messages, enforce the time limits (the grader's clock)."""
        pending = memoryview(_job_frame(self.run))
        stdin = process.stdin.fileno() if process.stdin else -1
        if stdin >= 0:
            os.set_blocking(stdin, False)
        while True:
            writers = [stdin] if pending else []
            readable, writable, _ = select.select([results], writers, [], 0.02)
            if self.go_pending:
                self.send_go()
            if stdin in writable:
                try:
                    pending = pending[os.write(stdin, pending[:65536]):]
                except BlockingIOError:
                    pass
                except OSError:
                    pending = memoryview(b"")
                if not pending and process.stdin:
                    process.stdin.close()
            if readable and not self._receive(results):  # the end of the stream
                try:
                    process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                return
            if self.run.report.unreadable:
                self.ending = "unreadable"
                return
            now = time.monotonic()
            limit = _step_limit(self.run.limits, self.step)
            if now >= self.run.deadline:
                self.ending = "deadline"
            elif limit is not None and now - self.step_seen > limit + self.run.limits.grace:
                self.ending = "step-timeout"
            if self.ending or (process.poll() is not None and not readable):
                return

    def send_go(self) -> None:
        """Write what the runner can take now of the measured case's inputs."""
        while self.go_pending:
            try:
                self.go_pending = self.go_pending[os.write(self.go, self.go_pending[:65536]):]
            except BlockingIOError:
                return
            except OSError:
                self.go_pending = memoryview(b"")

    def _drain(self, results: int) -> None:
        """Read what the ended sandbox left in the pipe (at most a few reads)."""
        for _ in range(16):
            if self.run.report.unreadable or not select.select([results], [], [], 0)[0]:
                return
            if not self._receive(results):
                return

    def _receive(self, results: int) -> bool:
        """Read what is there; False at the end of the stream."""
        try:
            chunk = os.read(results, 2**20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        try:
            messages = self.reader.feed(chunk)
            self.budget -= len(messages)
            if self.budget < 0:
                raise wire.WireError("far more messages than the job can produce")
            for header, arrays in messages:
                _absorb(self, header, arrays)
        except (wire.WireError, KeyError, TypeError, ValueError, RecursionError) as error:
            self.run.report.unreadable = str(error)[:200] or type(error).__name__
        return True


def _group(limits: Limits) -> cgroups.Group | None:
    controllers = cgroups.detect()
    if controllers is None:
        return None
    try:
        return cgroups.Group(controllers, limits.memory_mb * 2**20)
    except OSError:
        return None


def _fallback_limits(unprivileged: bool) -> str:
    """The limits in force without a control group."""
    if unprivileged:
        return (f"rlimits only (address space per process; {cgroups.MAX_PROCESSES} processes "
                "per submission: each runs as its own user)")
    if os.geteuid() == 0:
        return ("rlimits only (address space per process; no process limit: root, and no "
                "control group)")
    return ("rlimits only (address space per process; processes of this user limited to "
            f"those running now + {2 * cgroups.MAX_PROCESSES})")


def _process_cap(uid: int | None, group: cgroups.Group | None) -> int | None:
    """RLIMIT_NPROC for the sandbox, which counts every process of its (real) user: for a user
    of its own, MAX_PROCESSES; else, without a control group and as a user other than root
    (root is not limited), what that user runs now plus MAX_PROCESSES per sandbox."""
    if uid is not None:
        return cgroups.MAX_PROCESSES
    if group is not None or os.geteuid() == 0:
        return None
    return _processes_of_users().get(os.getuid(), 0) + 2 * cgroups.MAX_PROCESSES


def _processes_of_users() -> dict[int, int]:
    """How many processes each user id runs now (from /proc)."""
    counts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                uid = entry.stat().st_uid
                counts[uid] = counts.get(uid, 0) + 1
        except OSError:
            continue
    return counts


def _free_uid() -> int:
    """A user id (and group id) in _SANDBOX_USERS that no account, group, process or other run
    of this grader has; taken until `_release_uid`."""
    running = _processes_of_users()
    for uid in random.sample(_SANDBOX_USERS, 64):
        if uid in running or _has_account(uid):
            continue
        with _USERS_LOCK:
            if uid not in _USERS_TAKEN:
                _USERS_TAKEN.add(uid)
                return uid
    raise RuntimeError("no free user id for the sandbox")


def _release_uid(uid: int | None) -> None:
    with _USERS_LOCK:
        _USERS_TAKEN.discard(uid)


def _has_account(uid: int) -> bool:
    """Whether a user or a group of the system has this id."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            continue
    return False


def _as_user(uid: int) -> list[str]:
    """The command prefix that runs what follows as `uid` (and its group), with no other groups,
    no capabilities and no way to gain privileges (setpriv, from util-linux)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def _child_setup(memory_bytes: int, group: cgroups.Group | None,
                 process_cap: int | None = None) -> None:
    """In the child, before it runs anything: its group and the limits every process it
    starts inherits."""
    if group is not None:
        group.join()
    if process_cap is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (process_cap, process_cap))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file: an error, not a kill


def _end(process: subprocess.Popen[bytes], group: cgroups.Group | None) -> None:
    """End the sandbox: its process group, its control group, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group is not None:
        group.kill()
    process.wait()


def _command(run: _Run, results_fd: int, go_fd: int) -> list[str]:
    python = [sys.executable, "-I", "-S", str(run.lib / "runner.py"), _site_packages(),
              str(results_fd), str(go_fd)]
    if run.uid is not None:
        python = _as_user(run.uid) + python
    if not run.isolation.isolated:
        return python
    folders = _binds([("--ro-bind", str(run.lib)), ("--bind", str(run.work))],
                     run.isolation.unprivileged)
    return ["bwrap", *_bwrap_view(run.isolation.unprivileged), *folders,
            "--chdir", str(run.work), *python]


def _environment(run: _Run) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(run.work), "TMPDIR": "/tmp" if run.isolation.isolated else str(run.work),
        "IPYTHONDIR": str(run.work / ".ipython"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _step_limit(limits: Limits, step: dict[str, Any] | None) -> float | None:
    if step is None:
        return None
    return limits.cell_timeout if step["e"] == "cell" else limits.case_timeout


def _interrupted(run: _Run, attempt: _Attempt) -> bool:
    """The process ended (or was killed) during a step: record it, skip it next time.
    Returns whether another attempt may get further."""
    step, ending = attempt.step, attempt.ending
    if ending == "deadline":
        why, kind = f"stopped at the time limit of {run.limits.timeout:g} s", "timeout"
    elif ending == "step-timeout":
        why, kind = "did not stop at its time limit and was killed", "timeout"
    elif attempt.oom:
        why, kind = f"ran out of memory (limit {run.limits.memory_mb} MB)", "memory"
    else:
        why, kind = f"ended the process ({ending})", "crashed"
    run.stopped = why
    _fail_unfinished_measured_cases(run)
    if step is None:
        run.report.events.append((kind, f"the notebook's process {why}"))
        return False
    if step["e"] == "cell":
        index = int(step["i"])
        run.skip_cells.add(index)
        run.report.cells[index] = (kind, why)
        return True
    name, index = str(step["f"]), int(step["i"])
    run.done.add(name)
    if kind == "timeout":
        outcome = Outcome(timed_out=True)
    elif kind == "memory":
        outcome = Outcome(error=ErrorInfo("MemoryError", f"your function {why}"))
    else:
        outcome = Outcome(error=ErrorInfo("ProcessEnded", f"your function {why}"))
    run.report.outcomes.setdefault(name, {})[index] = outcome
    return True


def _fail_unfinished_measured_cases(run: _Run) -> None:
    """A measured case whose inputs were sent but whose result never came fails, and its
    function is not called again: its inputs are sent once per run, so that no attempt can
    prepare its answer for the next one (outside the measured window)."""
    for name, index in sorted(run.measured):
        if index not in run.report.outcomes.get(name, {}):
            run.report.outcomes.setdefault(name, {})[index] = Outcome(error=ErrorInfo(
                "ProcessEnded", "the notebook's process ended after this case's inputs were "
                "sent and before its result"))
            run.done.add(name)


# -- 3. read back ------------------------------------------------------------------------------


def _absorb(attempt: _Attempt, event: dict[str, Any], arrays: list[np.ndarray]) -> None:
    """One message from the sandbox, every field checked (KeyError, TypeError, ValueError or
    WireError when malformed)."""
    run, report = attempt.run, attempt.run.report
    kind = _text(event, "e")
    if kind == "cell":
        attempt.step, attempt.step_seen = {"e": "cell", "i": _cell(run, event)}, time.monotonic()
    elif kind == "cell-end":
        index, error = _cell(run, event), _error(event.get("error"))
        attempt.step = None
        if _flag(event, "timed_out"):
            report.cells[index] = ("timeout", f"ran longer than {run.limits.cell_timeout:g} s "
                                   "and was stopped")
        elif error is not None:
            report.cells[index] = _cell_error(error, run.limits.memory_mb,
                                              last=index == _last_code_cell(run))
    elif kind == "call":
        name, index = _case(run, event)
        attempt.step, attempt.step_seen = {"e": "call", "f": name, "i": index}, time.monotonic()
        if run.job.functions[name][index].memory_limit is not None:
            _start_measuring(attempt, (name, index))
    elif kind == "result":
        name, index = _case(run, event)
        step = attempt.step or {}
        if (step.get("e"), step.get("f"), step.get("i")) != ("call", name, index):
            raise wire.WireError("a result for a case that was not running")
        elapsed = time.monotonic() - attempt.step_seen
        outcome = _outcome(run, event, arrays, elapsed)
        if run.job.functions[name][index].memory_limit is not None:
            outcome.peak_memory = _measured_peak(attempt, outcome.peak_memory)
        report.outcomes.setdefault(name, {})[index] = outcome
        attempt.step = None
    elif kind in ("missing", "function-end"):
        name = _function(run, event)
        if kind == "missing":
            report.missing[name] = _text(event, "kind")[:60]
        attempt.step = None
        run.done.add(name)
    elif kind == "blocked":
        step = attempt.step or {}
        entry = (_text(event, "module")[:80], str(step["f"]) if step.get("e") == "call" else "")
        if entry not in report.blocked:
            report.blocked.append(entry)
    elif kind == "done":
        attempt.finished = True
    else:
        raise wire.WireError(f"an unknown message {kind[:20]!r}")


def _start_measuring(attempt: _Attempt, case: tuple[str, int]) -> None:
    """Note what the submission holds now (the kernel's count), then let the case start by
    sending its inputs (the "go"; written as the runner reads, never blocking the grader).
    Once per case and run: a forged early `call` only leaves the real one waiting (and timed
    out), in this attempt and the next ones."""
    run = attempt.run
    if case in run.measured:
        return
    run.measured.add(case)
    attempt.baseline = None
    if attempt.group is not None:
        try:
            attempt.baseline = attempt.group.start_measuring()
        except (OSError, ValueError):
            attempt.baseline = None
    name, index = case
    arrays: list[np.ndarray] = []
    inputs = _inputs(run.job.functions[name][index], arrays)
    attempt.go_pending = memoryview(wire.frame(inputs, arrays))
    attempt.send_go()


def _measured_peak(attempt: _Attempt, reported: int | None) -> int | None:
    """The case's peak memory: the larger of what the learner's process reported (tracemalloc,
    fine-grained but forgeable) and what the kernel counted for the whole submission during
    the call, less a margin for the interpreter's own pages (coarse, not forgeable)."""
    if attempt.group is None or attempt.baseline is None:
        return reported
    try:
        kernel = attempt.group.peak() - attempt.baseline - KERNEL_MARGIN
    except (OSError, ValueError):
        return reported
    return max(reported or 0, kernel)


def _outcome(run: _Run, event: dict[str, Any], arrays: list[np.ndarray],
             elapsed: float) -> Outcome:
    """A case's outcome; whether it ran too long is decided by the grader's clock."""
    name, index = _case(run, event)
    case = run.job.functions[name][index]
    mutated = event.get("mutated")
    if not isinstance(mutated, list) or not set(mutated) <= set(case.inputs):
        raise wire.WireError("a list of modified inputs that are not the case's inputs")
    peak = event.get("peak_memory")
    if peak is not None and (type(peak) is not int or peak < 0):
        raise wire.WireError("a peak memory that is not a number of bytes")
    error = _error(event.get("error"))
    timed_out = _flag(event, "timed_out") or elapsed > run.limits.case_timeout + run.limits.grace
    value = wire.decode(event["value"], arrays) if event.get("value") is not None else None
    return Outcome(
        value=value if error is None and not timed_out else None,
        error=ErrorInfo(*error) if error else None, timed_out=timed_out,
        mutated=tuple(mutated), peak_memory=peak,
    )


def _read_back(run: _Run) -> SandboxReport:
    report = run.report
    if report.unreadable:
        return SandboxReport(events=[("crashed", f"unreadable results ({report.unreadable})")],
                             unreadable=report.unreadable)
    deadline = time.monotonic() >= run.deadline - 0.5
    for name in run.job.functions:
        if name not in run.done:  # the reason is the real one: the clock, or how it ended
            report.not_reached[name] = (
                f"the time limit of {run.limits.timeout:g} s was reached before "
                f"`{name}` could be called" if deadline or not run.stopped else
                f"the notebook's process {run.stopped} before `{name}` could be called"
            )
    return report


def _text(event: dict[str, Any], key: str) -> str:
    value = event[key]
    if not isinstance(value, str):
        raise wire.WireError(f"{key!r} is not text")
    return value


def _flag(event: dict[str, Any], key: str) -> bool:
    value = event.get(key, False)
    if not isinstance(value, bool):
        raise wire.WireError(f"{key!r} is not true or false")
    return value


def _cell(run: _Run, event: dict[str, Any]) -> int:
    index = event["i"]
    if type(index) is not int or index not in {i for i, _ in run.job.cells}:
        raise wire.WireError("a cell that is not in the notebook")
    return index


def _function(run: _Run, event: dict[str, Any]) -> str:
    name = _text(event, "f")
    if name not in run.job.functions:
        raise wire.WireError("a function that is not graded")
    return name


def _case(run: _Run, event: dict[str, Any]) -> tuple[str, int]:
    name, index = _function(run, event), event["i"]
    if type(index) is not int or not 0 <= index < len(run.job.functions[name]):
        raise wire.WireError("a case that does not exist")
    return name, index


def _error(error: Any) -> tuple[str, str, str] | None:
    if error is None:
        return None
    if not isinstance(error, dict):
        raise wire.WireError("an error that is not a record")
    return (_text(error, "type")[:80], _text(error, "message")[:300],
            str(error.get("line", ""))[:200])


_INTERNAL_PLACE = re.compile(r"\s*\((?:<[^>]*>|[^()]*\.py), line \d+\)$")
"""Where Python says a SyntaxError was: "(<ipython-input-2-b1350>, line 3)", the grader's own
file name, and a line number given again apart."""


def _last_code_cell(run: _Run) -> int:
    return max((index for index, source in run.job.cells if source.strip()), default=-1)


def _cell_error(error: tuple[str, str, str], memory_mb: int,
                last: bool = False) -> tuple[str, str]:
    """(kind, text) of a cell's error; kind "note" is said in the feedback only: sys.exit(0)
    (or sys.exit()) in the notebook's last code cell ends nothing that would have run."""
    kind, message, line = error
    message = _INTERNAL_PLACE.sub("", message[:200])
    if kind == "MemoryError":
        return "memory", f"ran out of memory (limit {memory_mb} MB)"
    if kind == "SystemExit" and last and message in ("", "0", "None"):
        return "note", f"called sys.exit({message}) at the end of the notebook (harmless here)"
    if kind in ("SystemExit", "ProcessExit"):
        call = "sys.exit" if kind == "SystemExit" else "os._exit"
        return "crashed", f"called {call}({message}); ignored, the next cells were run"
    return "error", f"raised {kind}: {message}" + (f" ({line[:120]})" if line else "")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# -- what the sandbox can see ------------------------------------------------------------------


@functools.cache
def _site_packages() -> str:
    return str(Path(np.__file__).resolve().parent.parent)


_PROBE = (
    "import sys; sys.path.append(sys.argv[1]); import numpy, ctypes, ssl, sqlite3, lzma, bz2, "
    "zlib, hashlib, decimal, uuid, pyexpat, IPython.core.interactiveshell; "
    "print('\\n'.join({l.split(maxsplit=5)[5] for l in open('/proc/self/maps') "
    "if len(l.split(maxsplit=5)) == 6 and '.so' in l}))"
)


@functools.cache
def _runtime_paths() -> tuple[str, ...]:
    """What the runner needs, read-only: the Python runtime and its packages, the folders of
    the shared libraries it loads (found by a probe that imports them), the programs `!`
    commands run, and the dynamic loader's cache."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(sys.executable).parent, Path(_site_packages()), Path("/usr/bin")}
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, _site_packages()],
                               capture_output=True, text=True, timeout=60)
        libraries = [Path(line) for line in probe.stdout.splitlines() if line.startswith("/")]
    except (OSError, subprocess.SubprocessError):
        libraries = []
    prefixes = [p for p in paths if p != Path("/usr/bin")]
    for library in libraries:
        if not any(library.is_relative_to(p) for p in prefixes):
            paths.add(library.parent)
    for extra in ("/usr/lib64", "/etc/ld.so.cache"):
        if Path(extra).exists():
            paths.add(Path(extra))
    ordered = sorted(str(p) for p in paths if p.exists())
    return tuple(p for p in ordered if not any(p != q and p.startswith(q + "/") for q in ordered))


@functools.cache
def _bwrap_view(unprivileged: bool = False) -> tuple[str, ...]:
    """bubblewrap's arguments for the sandbox's view of the file system (before the run's own
    folders): nothing but the runtime, read-only, on an empty root.

    Every namespace is new. For a sandbox that switches to a user of its own (root's), all but
    the user namespace: as root, bubblewrap's user namespace would hold root alone, and no
    other user could be switched to; the sandbox's /tmp is then open to that user."""
    if unprivileged:
        view = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--perms", "1777"]
    else:
        view = ["--unshare-all"]
    view += ["--tmpfs", "/tmp", "--die-with-parent", "--new-session",
             "--dev", "/dev", "--proc", "/proc",
             "--perms", "1777", "--tmpfs", "/dev/shm"]  # multiprocessing's locks live there
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):  # merged /usr: the usual links, to what is bound below
            view += ["--symlink", os.readlink(top), top]
    view += _binds([("--ro-bind", path) for path in _runtime_paths()], unprivileged)
    return tuple(view)


def _binds(binds: Sequence[tuple[str, str]], unprivileged: bool) -> list[str]:
    """bubblewrap's arguments that mount each (option, path) at the same path. For a sandbox
    with a user of its own, the folders above each path are made first, open to anyone:
    bubblewrap would copy the host's modes, and that user could not pass /root's 0700."""
    args: list[str] = []
    made = {"/", "/tmp", "/dev", "/proc", "/bin", "/sbin", "/lib", "/lib64"}
    for option, path in binds:
        for parent in reversed(Path(path).parents):
            if unprivileged and str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += [option, path, path]
    return args
