"""Calling a learner's function safely: the one place where learner code runs.

`call_learner(fn, args, kwargs, timeout)` calls `fn` on private copies of its inputs and
always returns an `Outcome` (plain data: the returned value, or the exception's type, message
and line, or "timed out"; plus the names of the inputs it modified). It never raises because
of the learner's code. With `measure_memory=True` the Outcome also carries the call's peak
memory in bytes (numpy arrays and Python objects allocated during the call, by `tracemalloc`).

Where the call runs:

- `isolate=True`: in a forked child process, where `os.fork` exists and is safe (Linux).
  `Isolated(fn)` keeps one child for many calls: a checker forks once per check, not once per
  case, and again only after a call that timed out or ended the child. The child calls the
  function, measures its memory, compares the inputs with their originals, and pipes the
  Outcome back with the returned value made plain (arrays become base-class `np.ndarray`
  copies; an object of another kind travels as its type name and a short repr, and comes
  back as a stand-in of the same type name): no learner code runs in the caller. The caller
  waits at most `timeout` seconds, then kills the child: whatever the learner's code catches
  (a bare `except:`, `except BaseException`, in a loop), the call comes back as timed out
  within the time limit plus the time to kill (milliseconds). The learner's code cannot change
  the caller's state (globals, the checker's objects) nor end the caller's process (an
  `os._exit` or a crash ends only the child and comes back as a `ProcessEnded` error). What
  it prints still reaches the same output: the caller's stdout and stderr are flushed before
  the fork and the child's after each call. Where there is no fork (Windows; macOS, whose
  system libraries are not safe to use in a forked child), the call runs in a daemon thread
  instead: the check still returns after `timeout` seconds; the thread is asked to stop (an
  exception raised in it) and, if the learner's code swallows that too, left running.
- `isolate=False`, the default: in this process. On the main thread an alarm (SIGALRM) raises
  an exception in the learner's code after `timeout` seconds; a learner's bare `except:` can
  swallow it, so use this only where the process is watched from outside (the grader's
  sandbox kills a step that overruns its limit by more than a grace period) or where the
  call's side effects must stay (the grader runs a notebook's cells this way). Away from the
  main thread or without SIGALRM: the daemon thread, as above.

This module imports only the standard library, numpy and `course_lib/standin.py` (which
imports nothing), on purpose: the grader runs it inside a sandbox next to a learner's
functions, where neither the reference implementation nor the checkers may be imported. Keep
it that way (it can be loaded as a standalone file next to a copy of standin.py).
"""

from __future__ import annotations

import copy
import ctypes
import gc
import io
import linecache
import os
import pickle
import reprlib
import select
import signal
import sys
import sysconfig
import threading
import time
import traceback
import tracemalloc
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

if __package__:  # in course_lib
    from ..standin import stand_in
else:  # a standalone file in the grader's sandbox, next to a copy of standin.py
    from standin import stand_in  # type: ignore[no-redef]

__all__ = [
    "DEFAULT_TIMEOUT", "ErrorInfo", "Isolated", "Outcome", "call_learner", "can_isolate",
    "brief_repr",
]

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


def can_isolate() -> bool:
    """Whether `call_learner(..., isolate=True)` runs the call in a forked child process."""
    return hasattr(os, "fork") and sys.platform != "darwin"


def call_learner(
    fn: Callable[..., Any],
    args: Sequence[tuple[str, Any]],
    kwargs: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    measure_memory: bool = False,
    isolate: bool = False,
) -> Outcome:
    """Call `fn(*args, **kwargs)` on copies of the inputs, with a time limit.

    `args` are (name, value) pairs passed positionally; the names are used to report which
    input the function modified. numpy warnings (overflow, invalid value) are silenced: the
    judge reports their consequences (inf, NaN) in the course's words instead. With
    `measure_memory`, `Outcome.peak_memory` is the most memory the call held at once, beyond
    what was allocated before it (the copies of the inputs are not counted). With `isolate`,
    the call runs in a forked child process that is killed at the time limit (see the module
    docstring).
    """
    if isolate:
        with Isolated(fn) as learner:
            return learner.call(args, kwargs, timeout, measure_memory=measure_memory)
    return _call_on_copies(
        fn, args, kwargs, lambda target: _run_with_timeout(target, timeout), measure_memory
    )


def _call_on_copies(
    fn: Callable[..., Any],
    args: Sequence[tuple[str, Any]],
    kwargs: Mapping[str, Any] | None,
    run: Callable[[Callable[[], Any]], Outcome],
    measure_memory: bool,
) -> Outcome:
    """`run(target)`, where target calls `fn` on copies of the inputs; then which changed."""
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

    outcome = _measure_peak(lambda: run(target)) if measure_memory else run(target)
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


def _call(target: Callable[[], Any]) -> Outcome:
    """`target()` with no time limit (the caller's process sets it): its value or error."""
    try:
        return Outcome(value=target())
    except BaseException as error:  # noqa: BLE001 - everything the learner raises
        return Outcome(error=_error_info(error))


# -- in a child process -----------------------------------------------------------------------


class Isolated:
    """Calls one learner function case after case in a forked child process (see the module
    docstring): one fork for many calls, a new one after a call that timed out or ended it.

        with Isolated(fn) as learner:
            outcome = learner.call(args, kwargs, timeout, measure_memory=False)
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.pid: int | None = None
        self.to_child = self.from_child = -1

    def __enter__(self) -> Isolated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        args: Sequence[tuple[str, Any]],
        kwargs: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        measure_memory: bool = False,
    ) -> Outcome:
        """Like `call_learner(self.fn, ...)`, in the child; never raises for the learner.

        Without a safe fork (see `can_isolate`), in a daemon thread instead."""
        if not can_isolate():
            return _call_on_copies(self.fn, args, kwargs,
                                   lambda target: _run_in_thread(target, timeout), measure_memory)
        deadline = time.monotonic() + timeout
        if self.pid is None:
            self._start()
        request = pickle.dumps((list(args), dict(kwargs or {}), measure_memory),
                               protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _send(self.to_child, request)
            data = _receive(self.from_child, deadline)
        except (OSError, EOFError):  # the child ended: an earlier call left it broken
            data = b""
        if data is None:
            self.close()
            return Outcome(timed_out=True)
        try:
            return _Unpickler(io.BytesIO(data)).load()
        except Exception:  # noqa: BLE001 - nothing (or garbage) came back: the child ended
            return Outcome(error=ErrorInfo("ProcessEnded", self.close()))

    def close(self) -> str:
        """End the child (if any); returns how it ended, in the course's words."""
        if self.pid is None:
            return ""
        for fd in (self.to_child, self.from_child):
            os.close(fd)
        _kill(self.pid)
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return _how_it_ended(status)

    def _start(self) -> None:
        _flush_output()  # or the child would print again what the parent has not flushed yet
        requests, self.to_child = os.pipe()
        self.from_child, replies = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process
            pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            gc.freeze()  # the collector leaves the inherited objects alone: fewer pages copied
            try:
                os.close(self.to_child)
                os.close(self.from_child)
                self._serve(requests, replies)
            except BaseException:  # noqa: BLE001 - the parent reports "ProcessEnded"
                code = 1
            finally:
                os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
        os.close(requests)
        os.close(replies)
        self.pid = pid

    def _serve(self, requests: int, replies: int) -> None:
        """In the child: answer each request (the inputs of one call) with a plain Outcome."""
        while (request := _receive(requests, None)) is not None:
            args, kwargs, measure_memory = pickle.loads(request)
            outcome = _call_on_copies(self.fn, args, kwargs, _call, measure_memory)
            outcome.value = _plain(outcome.value)
            try:
                reply = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:  # noqa: BLE001 - a plain value always pickles; still
                reply = pickle.dumps(Outcome(error=_error_info(error)))
            _flush_output()
            _send(replies, reply)


def _send(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, deadline: float | None) -> bytes | None:
    """One message from `fd`: None when the deadline passes, or (without one) at the end."""
    buffer, size = bytearray(), None
    while size is None or len(buffer) < 8 + size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not select.select([fd], [], [], remaining)[0]:
                continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            if deadline is None:
                return None
            raise EOFError("the other end closed the pipe")
        buffer += chunk
        if size is None and len(buffer) >= 8:
            size = int.from_bytes(buffer[:8], "big")
    return bytes(buffer[8:8 + size])


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"your function ended the process that ran it ({name})"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return f"your function ended the process that ran it (exit code {code}), with os._exit?"


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream
            pass


_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_BRIEF = reprlib.Repr()
_BRIEF.maxlist = _BRIEF.maxtuple = 6
_BRIEF.maxlevel = 3
_BRIEF.maxother = _BRIEF.maxstring = 60


def brief_repr(value: Any) -> str:
    """`repr(value)` cut to about 60 characters (and 6 items), or "?" when it raises."""
    try:
        return _BRIEF.repr(value)
    except Exception:  # noqa: BLE001 - a learner's object with a broken repr
        return "?"


def _plain(value: Any, depth: int = 0) -> Any:
    """`value` as plain data that unpickles without running any of the learner's code.

    Arrays (subclasses too) become base-class ndarray copies; tuples and lists keep their
    items; numpy and Python scalars stay; anything else becomes (type name, short repr).
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if issubclass(kind, np.ndarray):
        array = np.ndarray.view(value, np.ndarray)
        if array.dtype.hasobject or array.dtype.fields is not None:
            return np.full(array.shape, None, dtype=object)  # the judge names the dtype
        return array.copy()
    if issubclass(kind, np.generic) and kind.__module__ == "numpy":
        return value
    if issubclass(kind, tuple | list) and depth < 8:
        items = [_plain(item, depth + 1) for item in list(value)]
        return tuple(items) if issubclass(kind, tuple) else items
    return _Foreign(kind.__name__, brief_repr(value))


@dataclass(frozen=True)
class _Foreign:
    """How a non-plain object travels from the child: its type name and short repr."""

    type_name: str
    text: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (stand_in, (self.type_name, self.text))


class _Unpickler(pickle.Unpickler):
    """Reads only what `_child` writes: this module's records, numpy arrays, plain builtins."""

    _BUILTINS = frozenset({"complex", "set", "frozenset", "bytearray", "slice", "range"})

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name in ("Outcome", "ErrorInfo"):
            return globals()[name]
        if module == stand_in.__module__ and name == stand_in.__name__:
            return stand_in
        if module.split(".")[0] == "numpy" and name in (
            "_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"
        ):
            return super().find_class(module, name)
        if module in ("builtins", "copyreg") and (
            name in self._BUILTINS or name in ("_reconstructor", "object")
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


# -- in this process --------------------------------------------------------------------------


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
    """The call in a daemon thread; the check returns after `timeout` seconds whatever it does.

    A thread cannot be killed: at the time limit it is asked to stop (a `_TimeOut` raised in
    it); if the learner's code swallows that, the thread is abandoned and keeps running in the
    background.
    """
    box: dict[str, Outcome] = {}

    def run() -> None:
        outcome = _call(target)
        if outcome.error is None or outcome.error.type != "_TimeOut":
            box["outcome"] = outcome

    thread = threading.Thread(target=run, daemon=True, name="learner-call")
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or "outcome" not in box:
        _raise_in(thread)
        return Outcome(timed_out=True)
    return box["outcome"]


def _raise_in(thread: threading.Thread) -> None:
    """Ask a running thread to stop: raise `_TimeOut` in it at its next Python instruction."""
    if thread.ident is None or not thread.is_alive():
        return
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(_TimeOut)
        )
    except Exception:  # noqa: BLE001 - no ctypes.pythonapi here (PyPy, WebAssembly)
        pass


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
    try:
        message = str(error).strip()
    except Exception:  # noqa: BLE001 - a learner's exception with a broken __str__
        message = "?"
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
