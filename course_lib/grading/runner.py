"""Runs inside the sandbox: execute a submission's code cells, call its functions on the cases.

    python -I -S runner.py JOB_DIR OUT_DIR NUMPY_DIR

JOB_DIR/job.npz (read-only) holds the code cells, the functions to call and their cases'
inputs (plain numbers, see wire.py), the time limits and what to skip. The runner

1. blocks `course_lib`: `import course_lib.checks` gives a stub whose `check_*` functions do
   nothing (the notebook's check cells still run), any other part of course_lib (the
   reference implementation) raises ModuleNotFoundError, and each attempt is reported;
2. executes the code cells in order in one namespace, each with a time limit (a cell that
   raises, exits or runs too long is reported and the next one runs);
3. calls each function on its cases through `calling.call_learner` (copies of the inputs, time
   limit, exceptions as data) and writes each case's outcome to OUT_DIR/results/F/i.npz.

OUT_DIR/progress.jsonl says what is running, so that the grader, which enforces the hard
limits from outside, knows which step a killed process was in. Nothing here decides a grade.

Imports only the standard library, numpy and its two neighbours copied into the sandbox
(calling.py and wire.py): never course_lib.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import json
import linecache
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


class _Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """course_lib inside the sandbox: a stub for the checks, nothing else."""

    def __init__(self, report: Any) -> None:
        self.report = report

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name.split(".")[0] != "course_lib":
            return None
        if name in ("course_lib", "course_lib.checks"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        self.report({"e": "blocked", "module": name})
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


def main(job_dir: str, out_dir: str, numpy_dir: str) -> None:
    sys.path.append(numpy_dir)  # site-packages without its .pth files: no course_lib there
    import calling
    import numpy as np  # noqa: F401 - imported before the learner's code can touch sys.path
    import wire

    progress = open(os.path.join(out_dir, "progress.jsonl"), "a", buffering=1)  # noqa: SIM115
    dumps, write = json.dumps, progress.write

    def report(event: dict[str, Any]) -> None:
        write(dumps(event) + "\n")

    job, inputs = wire.load(os.path.join(job_dir, "job.npz"))
    sys.meta_path.insert(0, _Blocker(report))
    for name in [m for m in sys.modules if m.split(".")[0] == "course_lib"]:
        del sys.modules[name]
    os._exit = posix._exit = _exit  # type: ignore[assignment]

    namespace: dict[str, Any] = {
        "__name__": "__main__", "__builtins__": builtins, "display": lambda *a, **k: None,
    }
    for cell in job["cells"]:
        if cell["index"] in job["skip_cells"]:
            continue
        report({"e": "cell", "i": cell["index"]})
        filename = f"/notebook/cell-{cell['index']}"
        source = cell["source"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        try:
            code = compile(source, filename, "exec")
        except BaseException as error:  # noqa: BLE001 - a syntax error in the learner's cell
            report({"e": "cell-end", "i": cell["index"], "error": _error(error)})
            continue
        outcome = calling.call_learner(lambda code=code: exec(code, namespace), (),
                                       timeout=job["cell_timeout"])
        report({"e": "cell-end", "i": cell["index"], "timed_out": outcome.timed_out,
                "error": _outcome_error(outcome)})

    for function in job["functions"]:
        name = function["name"]
        if name in job["skip_functions"]:
            continue
        fn = namespace.get(name)
        if not callable(fn):
            report({"e": "missing", "f": name, "kind": type(fn).__name__})
            continue
        folder = os.path.join(out_dir, "results", name)
        os.makedirs(folder, exist_ok=True)
        for i, case in enumerate(function["cases"]):
            report({"e": "call", "f": name, "i": i})
            args = [(arg, wire.decode(tree, inputs)) for arg, tree in case["args"]]
            kwargs = {arg: wire.decode(tree, inputs) for arg, tree in case["kwargs"]}
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

            def call(*a: Any, fn: Any = fn, **k: Any) -> Any:
                arrays: list[Any] = []
                return wire.encode(fn(*a, **k), arrays), arrays

            outcome = calling.call_learner(
                call, args, kwargs, job["case_timeout"],
                measure_memory=case["measure_memory"],
            )
            tree, arrays = outcome.value if outcome.returned else (None, [])
            meta = {
                "value": tree, "error": _outcome_error(outcome),
                "timed_out": outcome.timed_out, "mutated": list(outcome.mutated),
                "peak_memory": outcome.peak_memory,
            }
            wire.save(os.path.join(folder, f"{i}.npz"), meta, arrays)
            if outcome.timed_out:
                break  # the checker stops at the first case that times out
        report({"e": "function-end", "f": name})
    report({"e": "done"})


def _outcome_error(outcome: Any) -> dict[str, str] | None:
    error = outcome.error
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "line": error.line}


def _error(error: BaseException) -> dict[str, str]:
    line = getattr(error, "lineno", None)
    return {"type": type(error).__name__, "message": str(error)[:300],
            "line": f"line {line}" if line else ""}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
    sys.stdout.flush()
    _real_exit(0)  # skips the learner's atexit handlers and threads
