"""The sandbox: one submission's code in its own process, limited and isolated from outside.

`run_in_sandbox(job, limits, isolation, reaper)` is a pipeline, read top to bottom:

1. prepare: a private temporary folder with a copy of the sandbox's side (`SANDBOX_FILES`:
   runner.py and what it imports) and an empty working folder; the job (cells, cases) as one
   frame of wire.py;
2. run: start the runner under the isolation this machine allows (isolation.py) in a fresh
   control group, give it the job on its stdin, read its messages from a pipe while
   enforcing the limits from outside; when it is killed or ends during a cell or a call, start
   again without that step while time remains; every process it started is ended after each
   attempt;
3. read back: each frame becomes a typed message (messages.py: one parser checks every field
   against the job), applied to the report by one `match` (`_apply`); anything malformed
   marks the submission `crashed: unreadable results` and nothing it sent is used; the result
   is what the learner's functions returned on each case, as plain data (`SandboxReport`);
4. clean up: the temporary folder goes, whatever the submission left in it (cleanup.py,
   however deep; it never raises, so it never decides a grade);

and the judging (verdict.py) happens in the grader's process (`grading.grade_one` reads as the
whole pipeline: prepare the job, run it here, judge). What crosses the boundary, and why
each field is safe, is documented in BOUNDARY.md next to this module; what each isolation
mode guarantees, there too.

Enforced from here, never from inside the learner's process: the wall clock (the whole run
gets `limits.timeout` seconds; a cell or a case that overruns its own limit by the grader's
clock is killed after a grace period: the runner's own alarm is only a courtesy the learner
could defeat); memory and processes (the run's control group, the rlimits: isolation.py); the
end of every process it started (the control group is killed, and the grader is the child
subreaper of everything: reaper.py).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from course_lib import standin
from course_lib.checks import calling
from course_lib.checks.calling import ErrorInfo, Outcome
from course_lib.checks.cases import Case
from course_lib.grading import cgroups, messages, status, wire
from course_lib.grading.cleanup import remove_tree
from course_lib.grading.isolation import (
    Isolation,
    Limits,
    command,
    end,
    environment,
    free_uid,
    new_group,
    preexec,
    release_uid,
)
from course_lib.grading.messages import (
    CallReturned,
    CallStarted,
    CellEnded,
    CellStarted,
    Finished,
    FunctionEnded,
    FunctionMissing,
    ImportBlocked,
    Message,
)
from course_lib.grading.reaper import Reaper
from course_lib.grading.status import CellTrouble, Event, Status

__all__ = ["Job", "SandboxReport", "run_in_sandbox", "SANDBOX_FILES", "KERNEL_MARGIN"]

_HERE = Path(__file__).resolve().parent
SANDBOX_FILES = (_HERE / "runner.py", _HERE / "messages.py", _HERE / "wire.py",
                 Path(calling.__file__), Path(standin.__file__))
"""The code that runs inside the sandbox, copied there: it imports none of course_lib."""
_MAX_ATTEMPTS = 6
KERNEL_MARGIN = 4 * 2**20
"""Bytes the kernel may count during a measured call beyond what the function allocates (pages
the interpreter touches, copied on write); a full n × n array of the memory case is 8 MiB even
in float16, and 32 MiB in float64."""


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
    cells: dict[int, CellTrouble] = field(default_factory=dict)  # by the cell's index
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (module, function or "")
    events: list[Event] = field(default_factory=list)  # what ended the notebook's process
    unreadable: str = ""  # why the sandbox's messages could not be read ("" when they could)


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
        release_uid(run.uid)


# -- 1. prepare --------------------------------------------------------------------------------


@dataclass
class _Run:
    job: Job
    limits: Limits
    isolation: Isolation
    reaper: Reaper
    root: Path
    expected: messages.Expected
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
    expected = messages.Expected(
        cells=frozenset(index for index, _ in job.cells),
        cases={name: [frozenset(case.inputs) for case in cases]
               for name, cases in job.functions.items()},
    )
    run = _Run(job, limits, isolation, reaper, root, expected,
               deadline=time.monotonic() + limits.timeout,
               uid=free_uid() if isolation.unprivileged else None)
    run.lib.mkdir()
    for source in SANDBOX_FILES:
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
        self.step: CellStarted | CallStarted | None = None  # the cell or call running now
        self.step_seen = time.monotonic()
        self.finished = False
        self.ending = ""
        self.oom = False
        self.group: cgroups.Group | None = None
        self.go = -1  # a byte on it lets a measured case start
        self.baseline: int | None = None  # the group's memory when the measured case started
        self.go_pending = memoryview(b"")  # the measured case's inputs, written as it reads
        self.reader = wire.FrameReader(wire.MAX_STREAM_BYTES)
        cases = sum(len(c) for c in run.job.functions.values())
        self.budget = 8 * (len(run.job.cells) + cases + len(run.job.functions)) + 64

    def execute(self) -> None:
        run = self.run
        remove_tree(run.work)  # what the last attempt left (however deep)
        run.work.mkdir(mode=0o700)
        if run.uid is not None:
            os.chown(run.work, run.uid, run.uid)
        self.group = group = new_group(run.limits)
        results, results_writer = os.pipe()
        go_reader, self.go = os.pipe()
        os.set_blocking(self.go, False)
        process = None
        try:
            process = run.reaper.start(lambda: subprocess.Popen(
                command(run.isolation, run.uid, run.lib, run.work,
                        [str(results_writer), str(go_reader)]),
                cwd=run.work, env=environment(run.isolation, run.work), stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                pass_fds=(results_writer, go_reader),
                preexec_fn=preexec(run.limits, run.uid, group),
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
                end(process, group)
                run.reaper.finished(process)
            self._drain(results)
            os.close(results)
            os.close(self.go)
            if group is not None:
                self.oom = group.out_of_memory()
                group.remove()
        if not self.ending and not self.finished and process is not None:
            self.ending = status.exit_description(process.returncode)

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
            frames = self.reader.feed(chunk)
            self.budget -= len(frames)
            if self.budget < 0:
                raise wire.WireError("far more messages than the job can produce")
            for header, arrays in frames:
                _apply(self, messages.parse(header, arrays, self.run.expected))
        except (wire.WireError, KeyError, TypeError, ValueError, RecursionError) as error:
            self.run.report.unreadable = str(error)[:200] or type(error).__name__
        return True



def _step_limit(limits: Limits, step: CellStarted | CallStarted | None) -> float | None:
    match step:
        case CellStarted():
            return limits.cell_timeout
        case CallStarted():
            return limits.case_timeout
    return None


def _interrupted(run: _Run, attempt: _Attempt) -> bool:
    """The process ended (or was killed) during a step: record it, skip it next time.
    Returns whether another attempt may get further."""
    kind, why = status.interrupted(attempt.ending, attempt.oom, run.limits.timeout,
                                   run.limits.memory_mb)
    run.stopped = why
    _fail_unfinished_measured_cases(run)
    match attempt.step:
        case None:
            run.report.events.append((kind, f"the notebook's process {why}"))
            return False
        case CellStarted(cell=index):
            run.skip_cells.add(index)
            run.report.cells[index] = CellTrouble(why, kind)
        case CallStarted(function=name, case=index):
            run.done.add(name)
            if kind is Status.TIMEOUT:
                outcome = Outcome(timed_out=True)
            else:
                error = "MemoryError" if kind is Status.MEMORY else "ProcessEnded"
                outcome = Outcome(error=ErrorInfo(error, f"your function {why}"))
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


def _apply(attempt: _Attempt, message: Message) -> None:
    """One message from the sandbox (already checked by `messages.parse`) into the report."""
    run, report = attempt.run, attempt.run.report
    match message:
        case CellStarted():
            attempt.step, attempt.step_seen = message, time.monotonic()
        case CellEnded(cell=index, timed_out=True):
            attempt.step = None
            report.cells[index] = status.cell_timed_out(run.limits.cell_timeout)
        case CellEnded(cell=index, error=ErrorInfo() as error):
            attempt.step = None
            report.cells[index] = status.cell_trouble(
                error.type, error.message, error.line, run.limits.memory_mb,
                last=index == _last_code_cell(run))
        case CellEnded():
            attempt.step = None
        case CallStarted(function=name, case=index):
            attempt.step, attempt.step_seen = message, time.monotonic()
            if run.job.functions[name][index].memory_limit is not None:
                _start_measuring(attempt, (name, index))
        case CallReturned(function=name, case=index):
            if attempt.step != CallStarted(name, index):
                raise wire.WireError("a result for a case that was not running")
            outcome = _outcome(run, message, time.monotonic() - attempt.step_seen)
            if run.job.functions[name][index].memory_limit is not None:
                outcome.peak_memory = _measured_peak(attempt, outcome.peak_memory)
            report.outcomes.setdefault(name, {})[index] = outcome
            attempt.step = None
        case FunctionMissing(function=name, found=found):
            report.missing[name] = found
            attempt.step = None
            run.done.add(name)
        case FunctionEnded(function=name):
            attempt.step = None
            run.done.add(name)
        case ImportBlocked(module=module):
            calling_now = attempt.step.function if isinstance(attempt.step, CallStarted) else ""
            if (module, calling_now) not in report.blocked:
                report.blocked.append((module, calling_now))
        case Finished():
            attempt.finished = True


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


def _outcome(run: _Run, returned: CallReturned, elapsed: float) -> Outcome:
    """A case's outcome; whether it ran too long is decided by the grader's clock."""
    timed_out = returned.timed_out or elapsed > run.limits.case_timeout + run.limits.grace
    return Outcome(
        value=returned.value if returned.error is None and not timed_out else None,
        error=returned.error, timed_out=timed_out, mutated=returned.mutated,
        peak_memory=returned.peak_memory,
    )


def _read_back(run: _Run) -> SandboxReport:
    report = run.report
    if report.unreadable:
        return SandboxReport(events=[status.unreadable(report.unreadable)],
                             unreadable=report.unreadable)
    at_deadline = time.monotonic() >= run.deadline - 0.5
    for name in run.job.functions:
        if name not in run.done:  # the reason is the real one: the clock, or how it ended
            report.not_reached[name] = status.not_reached(name, run.limits.timeout,
                                                          run.stopped, at_deadline)
    return report


def _last_code_cell(run: _Run) -> int:
    return max((index for index, source in run.job.cells if source.strip()), default=-1)
