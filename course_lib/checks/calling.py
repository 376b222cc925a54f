"""Calling a learner's function safely: the one place where learner code runs.

`call_learner(fn, args, kwargs, timeout)` calls `fn` on private copies of its inputs and
always returns an `Outcome` (plain data: the returned value, or the exception's type, message
and line, or "timed out"; plus the names of the inputs it modified). It never raises because
of the learner's code. With `measure_memory=True` the Outcome also carries the call's peak
memory in bytes (numpy arrays and Python objects allocated during the call, by `tracemalloc`).

This module imports only the standard library and numpy, on purpose: the grader runs it
inside a sandbox next to a learner's functions, where neither the reference implementation
nor the checkers may be imported. Keep it that way (it can be loaded as a standalone file).
"""

from __future__ import annotations

import copy
import linecache
import os
import signal
import sysconfig
import threading
import traceback
import tracemalloc
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_TIMEOUT", "ErrorInfo", "Outcome", "call_learner"]

DEFAULT_TIMEOUT = 10.0
"""Seconds a learner's function may run on one case before it is stopped."""


@dataclass(frozen=True)
class ErrorInfo:
    """An exception raised by the learner's code, as plain data."""

    type: str  # "ValueError"
    message: str  # str(exception)
    line: str = ""  # "line 4: return e / e.sum()" (the learner's line, when known)


@dataclass
class Outcome:
    """What happened when the learner's function was called on one case."""

    value: Any = None
    error: ErrorInfo | None = None
    timed_out: bool = False
    mutated: tuple[str, ...] = field(default_factory=tuple)
    peak_memory: int | None = None  # bytes held at once during the call, when measured

    @property
    def returned(self) -> bool:
        """True when the function returned (no exception, no time-out)."""
        return self.error is None and not self.timed_out


class _TimeOut(BaseException):
    """Raised inside the learner's code by the alarm. A BaseException, so that a learner's
    `except Exception:` cannot swallow it."""


def call_learner(
    fn: Callable[..., Any],
    args: Sequence[tuple[str, Any]],
    kwargs: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    measure_memory: bool = False,
) -> Outcome:
    """Call `fn(*args, **kwargs)` on copies of the inputs, with a time limit.

    `args` are (name, value) pairs passed positionally; the names are used to report which
    input the function modified. numpy warnings (overflow, invalid value) are silenced: the
    judge reports their consequences (inf, NaN) in the course's words instead. With
    `measure_memory`, `Outcome.peak_memory` is the most memory the call held at once, beyond
    what was allocated before it (the copies of the inputs are not counted).
    """
    kwargs = dict(kwargs or {})
    named = list(args) + list(kwargs.items())
    originals = {name: value for name, value in named}
    copies = {name: copy.deepcopy(value) for name, value in named}
    call_args = [copies[name] for name, _ in args]
    call_kwargs = {name: copies[name] for name in kwargs}

    def target() -> Any:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*call_args, **call_kwargs)

    if measure_memory:
        outcome = _measure_peak(lambda: _run_with_timeout(target, timeout))
    else:
        outcome = _run_with_timeout(target, timeout)
    outcome.mutated = tuple(
        name for name in originals if not _same(originals[name], copies[name])
    )
    return outcome


def _measure_peak(run: Callable[[], Outcome]) -> Outcome:
    """`run()` with tracemalloc on: its Outcome, with the peak bytes allocated during it.

    If tracemalloc is already tracing (a lesson measuring memory, a profiler), it is left
    running and only its peak is reset; otherwise it is started here and stopped afterwards.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        outcome = run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    outcome.peak_memory = max(0, peak - before)
    return outcome


def _run_with_timeout(target: Callable[[], Any], timeout: float) -> Outcome:
    can_signal = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if can_signal:
        return _run_with_alarm(target, timeout)
    return _run_in_thread(target, timeout)


def _run_with_alarm(target: Callable[[], Any], timeout: float) -> Outcome:
    def on_alarm(signum: int, frame: Any) -> None:
        raise _TimeOut

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                value = target()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _TimeOut:
            return Outcome(timed_out=True)
        except BaseException as error:  # noqa: BLE001 - everything the learner raises
            if isinstance(error, KeyboardInterrupt):
                raise
            return Outcome(error=_error_info(error))
        return Outcome(value=value)
    finally:
        signal.signal(signal.SIGALRM, previous)


def _run_in_thread(target: Callable[[], Any], timeout: float) -> Outcome:
    """Fallback away from the main thread or without SIGALRM (Windows): a daemon thread.

    An endless loop cannot be stopped this way; it is abandoned and keeps running in the
    background, but the check itself returns after `timeout` seconds.
    """
    box: dict[str, Outcome] = {}

    def run() -> None:
        try:
            box["outcome"] = Outcome(value=target())
        except BaseException as error:  # noqa: BLE001
            box["outcome"] = Outcome(error=_error_info(error))

    thread = threading.Thread(target=run, daemon=True, name="learner-call")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Outcome(timed_out=True)
    return box["outcome"]


_NOT_LEARNER = tuple(
    os.path.normcase(os.path.abspath(path)) + os.sep
    for path in (
        os.path.dirname(np.__file__),
        os.path.dirname(__file__),
        sysconfig.get_paths()["stdlib"],
    )
)


def _error_info(error: BaseException) -> ErrorInfo:
    """The exception's type and message, and the learner's line where it happened."""
    line = ""
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        filename = os.path.normcase(os.path.abspath(frame.f_code.co_filename))
        if filename.startswith(_NOT_LEARNER):
            continue
        source = _source_line(frame.f_code.co_filename, lineno, frame.f_globals)
        line = f"line {lineno}: {source}" if source else f"line {lineno}"
    message = str(error).strip()
    if len(message) > 300:
        message = message[:297] + "..."
    return ErrorInfo(type=type(error).__name__, message=message, line=line)


def _source_line(filename: str, lineno: int, module_globals: dict[str, Any]) -> str:
    return linecache.getline(filename, lineno, module_globals).strip()


def _same(before: Any, after: Any) -> bool:
    """Whether an input is unchanged (arrays: same shape, dtype and values, NaN = NaN)."""
    try:
        if isinstance(before, np.ndarray):
            return (
                isinstance(after, np.ndarray)
                and before.shape == after.shape
                and before.dtype == after.dtype
                and bool(np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
            )
        if isinstance(before, list | tuple):
            return (
                type(before) is type(after)
                and len(before) == len(after)
                and all(_same(b, a) for b, a in zip(before, after, strict=True))
            )
        return bool(before == after)
    except Exception:  # noqa: BLE001 - an input we cannot compare counts as modified
        return False

