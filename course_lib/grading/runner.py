"""Runs inside the sandbox: execute a submission's code cells, call its functions on the cases.

    python -I -S runner.py SITE_PACKAGES FD GO    (the job on stdin, the results on FD)

The job (one frame of wire.py on stdin) holds the code cells, the functions to call and their
cases' inputs (plain numbers), the time limits and what to skip. The runner

1. blocks `course_lib`: `import course_lib.checks` gives a stub whose `check_*` functions do
   nothing (the notebook's check cells still run), any other part of course_lib (the
   reference implementation) raises ModuleNotFoundError, and each attempt is reported;
2. executes the code cells in order in one IPython shell, as JupyterLab's kernel would (cell
   and line magics, `!` commands, continuation lines: IPython's own input transformation),
   each with a time limit (a cell that raises, exits or runs too long is reported and the next
   one runs);
3. calls each function on its cases through `calling.call_learner` (copies of the inputs, time
   limit, exceptions as data) and sends each case's outcome back as a frame. A case whose
   memory is measured comes without its inputs: the runner waits for them on descriptor GO,
   where the grader sends them once it has noted the memory the whole submission holds (the
   kernel's accounting, which nothing here can fake), so that no code of the notebook can see
   them before the measurement starts.

Every message goes to file descriptor FD, a pipe the grader reads with bounded frames, so that
the grader, which enforces the hard limits from outside, knows which step a killed process was
in. Nothing here decides a grade, and nothing sent from here is trusted by the grader.

Each message is one of the classes of messages.py, sent as one frame of wire.py.

Imports only the standard library, numpy, IPython and its neighbours copied into the sandbox
(messages.py, calling.py, wire.py, standin.py): never course_lib.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import posix
import signal
import sys
import types
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
_real_exit = posix._exit


class ProcessExit(BaseException):
    """Raised instead of ending the process when the learner's code calls os._exit."""


class CellTimeOut(BaseException):
    """Raised in a cell by the runner's alarm (the grader also kills a cell from outside)."""


class _Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """course_lib inside the sandbox: a stub for the checks, nothing else."""

    def __init__(self, report: Any, messages: Any) -> None:
        self.report, self.messages = report, messages

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name.split(".")[0] != "course_lib":
            return None
        if name in ("course_lib", "course_lib.checks"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        self.report(self.messages.ImportBlocked(name))
        raise ModuleNotFoundError(
            f"No module named {name!r}: the course's own code is not available when your "
            "notebook is graded", name=name,
        )

    def create_module(self, spec: Any) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        if spec.name == "course_lib.checks":
            module.__getattr__ = _stub_check  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _stub_check(name: str) -> Any:
    if name.startswith("check_"):
        return lambda *args, **kwargs: None
    raise AttributeError(name)


def _exit(*args: Any, **kwargs: Any) -> None:
    raise ProcessExit(*args)


def main(site_packages: str, results_fd: int, go_fd: int) -> None:
    sys.path.append(site_packages)  # without its .pth files: no course_lib there
    import calling
    import messages
    import numpy as np  # noqa: F401 - imported before the learner's code can touch sys.path
    import wire

    # bound here, before the learner's code runs: patching the modules cannot reach these
    send, decode, read_frame, to_wire = wire.send, wire.decode, _read_frame, messages.to_wire
    call_learner, encoded = calling.call_learner, messages.Encoded.of
    m = types.SimpleNamespace(ErrorInfo=messages.ErrorInfo,
                              **{name: getattr(messages, name) for name in messages.__all__})

    def report(message: Any) -> None:
        send(results_fd, *to_wire(message))

    job, inputs = _read_job(wire)
    shell = _shell()
    sys.path.insert(0, "")  # as in a kernel: modules the notebook writes (%%writefile) import
    sys.meta_path.insert(0, _Blocker(report, m))
    for name in [module for module in sys.modules if module.split(".")[0] == "course_lib"]:
        del sys.modules[name]
    os._exit = posix._exit = _exit  # type: ignore[assignment]

    for cell in job["cells"]:
        if cell["index"] in job["skip_cells"]:
            continue
        report(m.CellStarted(cell["index"]))
        timed_out, error = _run_cell(shell, cell["source"], job["cell_timeout"], m.ErrorInfo)
        report(m.CellEnded(cell["index"], timed_out, error))

    for function in job["functions"]:
        name = function["name"]
        if name in job["skip_functions"]:
            continue
        fn = shell.user_ns.get(name)
        if not callable(fn):
            report(m.FunctionMissing(name, type(fn).__name__))
            continue
        for i, case in enumerate(function["cases"]):
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

            def call(*a: Any, fn: Any = fn, **k: Any) -> Any:
                return encoded(fn(*a, **k))  # inside the call's time limit

            report(m.CallStarted(name, i))
            given, arrays = case, inputs
            if case["measure_memory"]:  # the grader noted the memory in use, then sent them
                given, arrays = read_frame(wire, go_fd, wire.MAX_HEADER_BYTES)
            args = [(arg, decode(tree, arrays)) for arg, tree in given["args"]]
            kwargs = {arg: decode(tree, arrays) for arg, tree in given["kwargs"]}
            outcome = call_learner(
                call, args, kwargs, job["case_timeout"],
                measure_memory=case["measure_memory"],
            )
            report(m.CallReturned(
                name, i, outcome.value if outcome.returned else None, outcome.error,
                outcome.timed_out, tuple(outcome.mutated), outcome.peak_memory,
            ))
            if outcome.timed_out:
                break  # the checker stops at the first case that times out
        report(m.FunctionEnded(name))
    report(m.Finished())


def _read_job(wire: Any) -> tuple[dict[str, Any], list[Any]]:
    return _read_frame(wire, 0, wire.MAX_JOB_HEADER_BYTES, wire.MAX_JOB_BYTES)


def _read_frame(wire: Any, fd: int, header_limit: int,
                limit: int | None = None) -> tuple[dict[str, Any], list[Any]]:
    """One frame from `fd` (the job on stdin, a measured case's inputs on GO)."""
    reader = wire.FrameReader(limit or wire.MAX_STREAM_BYTES, header_limit=header_limit)
    while True:
        chunk = os.read(fd, 2**20)
        if not chunk:
            raise SystemExit("the job was not received")
        messages = reader.feed(chunk)
        if messages:
            return messages[0]


def _shell() -> Any:
    """An IPython shell as a kernel has one (no history file, plain tracebacks)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class KernelLikeShell(InteractiveShell):
        def enable_gui(self, gui: Any = None) -> None:
            """No GUI event loop: `%matplotlib inline` draws with Agg, as in a kernel."""

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Plain"
    return KernelLikeShell.instance(config=config)


def _run_cell(shell: Any, source: str, timeout: float,
              error_info: Any) -> tuple[bool, Any]:
    """Run one cell as JupyterLab would; (timed out, the error it raised as plain data)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise CellTimeOut

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = shell.run_cell(source, store_history=True)
        error = result.error_before_exec or result.error_in_exec
    except CellTimeOut as stopped:  # the alarm fired in IPython's own code around the cell
        error = stopped
    except BaseException as other:  # noqa: BLE001 - an exit or error that escaped the shell
        error = other
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if isinstance(error, CellTimeOut):
        return True, None
    return False, _error(error, error_info) if error is not None else None


def _error(error: BaseException, error_info: Any) -> Any:
    """A cell's exception as calling.ErrorInfo (plain data)."""
    line = getattr(error, "lineno", None)
    message = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    return error_info(type(error).__name__, str(message)[:300],
                      f"line {line}" if isinstance(line, int) else "")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    sys.stdout.flush()
    _real_exit(0)  # skips the learner's atexit handlers and threads
