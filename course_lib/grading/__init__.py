"""Grading a folder of submitted exercise notebooks, without trusting the submitted code.

    from course_lib.grading import grade
    graded = grade([Path("submissions")], Path("grades"), timeout=60, memory_mb=2048, jobs=2)

or `python -m course_lib grade submissions/ --out grades [--seed N]`. Each notebook's exercise
is recognised from the notebook (collect: regular files only, no links, bounded reads, unique
names), its cells run in an IPython shell as in JupyterLab inside its own limited, isolated
process tree (sandbox: prepare, run, read back; it runs runner.py with calling.py and wire.py,
never course_lib), the course's checkers judge the plain results in this process on the
notebook's cases and on fresh ones drawn from the run's seed (judge), and the gradebook and one
feedback report per learner are written atomically, with names safe for each format
(gradebook). The terminal shows a progress bar and a summary table (console).

Modules: collect, sandbox, cgroups (per-submission memory and process limits from the kernel),
reaper (the grader adopts and ends every orphan), runner (inside the sandbox), wire (the bounded
format of what crosses the sandbox's boundary; BOUNDARY.md says why each field is safe), judge,
gradebook, console.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from course_lib.checks import CHECKS
from course_lib.grading.collect import (
    EXERCISES,
    Submission,
    find_submissions,
    read_submission,
    resolve_exercise,
)
from course_lib.grading.gradebook import check_writable, write_gradebook
from course_lib.grading.judge import Graded, judge, ungraded
from course_lib.grading.reaper import Reaper
from course_lib.grading.sandbox import (
    Isolation,
    Job,
    Limits,
    SandboxReport,
    detect_isolation,
    run_in_sandbox,
)

__all__ = ["grade", "grade_one", "new_seed", "skipped_submissions", "Graded", "Limits",
           "Isolation", "detect_isolation", "EXERCISES"]

Progress = Callable[[int, int, Graded], None]


def new_seed() -> int:
    """A fresh seed for a grading run's cases (print it: `--seed` reproduces the run)."""
    return secrets.randbelow(2**31)


def grade(
    paths: Iterable[Path],
    out: Path = Path("grades"),
    *,
    timeout: float = 60.0,
    memory_mb: int = 2048,
    jobs: int = 1,
    exercise: str | None = None,
    isolation: str = "auto",
    progress: Progress | None = None,
    seed: int | None = None,
) -> list[Graded]:
    """Grade every notebook under `paths` and write the gradebook into `out`.

    exercise: grade only this exercise ("03" or "3"); a notebook recognised as another
    exercise is skipped (not graded, not in gradebook.csv; listed in gradebook.json's
    "skipped", see `skipped_submissions`), so that its grades are never overwritten.
    isolation: "auto" (bubblewrap when it works here) or "none".
    seed: draws the fresh cases every function is graded on besides the notebook's own (the
    same shapes and difficulty, other numbers); a new one per run when None. The gradebook
    (gradebook.json's settings) records it: grading again with it gives the same gradebook.
    Raises FileNotFoundError (a path does not exist), ValueError (unknown exercise) or
    OSError (`out` cannot be written) before grading anything; never because of a submission:
    whatever one submission does, the run ends, the gradebook is written and no process or
    temporary folder of the run is left.
    """
    out = Path(out)
    wanted = resolve_exercise(exercise) if exercise else None
    submissions = [read_submission(s) for s in find_submissions(paths)]
    skipped = [s for s in submissions if wanted and s.exercise and s.exercise != wanted]
    submissions = [s for s in submissions if not (wanted and s.exercise and s.exercise != wanted)]
    check_writable(out)
    limits = Limits(timeout, memory_mb)
    sandbox = detect_isolation(isolation)
    seed = new_seed() if seed is None else seed
    for checker in CHECKS.values():  # build the cases and expected values once, up front
        for case in checker.cases(seed=seed):
            checker.expected(case)
    graded: list[Graded | None] = [None] * len(submissions)
    with Reaper() as reaper, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_one, s, limits, sandbox, wanted, reaper, seed): i
                   for i, s in enumerate(submissions)}
        for done, future in enumerate(as_completed(futures), start=1):
            graded[futures[future]] = result = future.result()
            if progress is not None:
                progress(done, len(futures), result)
    ordered = [g for g in graded if g is not None]
    settings = {"timeout": timeout, "memory_mb": memory_mb, "isolation": sandbox.description,
                "exercise": wanted or "any", "seed": seed}
    write_gradebook(out, ordered, settings,
                    skipped={s.name: s.exercise for s in skipped})
    return ordered


def skipped_submissions(out: Path) -> dict[str, str]:
    """The notebooks the last `grade(..., exercise=...)` into `out` skipped, each with its
    exercise: {"alice/01.ipynb": "01_qkv_projections"} (read from gradebook.json)."""
    document = json.loads((Path(out) / "gradebook.json").read_text(encoding="utf-8"))
    return {entry["submission"]: entry["exercise"] for entry in document.get("skipped", [])}


def grade_one(
    submission: Submission, limits: Limits, isolation: Isolation, wanted: str | None = None,
    reaper: Reaper | None = None, seed: int | None = None,
) -> Graded:
    """Grade one submission (already read): prepare its job, run it in the sandbox, read back
    what it returned, judge it. Never raises because of its content."""
    if submission.problem:
        functions = EXERCISES.get(wanted or submission.exercise, ())
        return ungraded(submission, submission.problem, functions, isolation.label)
    job = Job(
        cells=submission.cells,
        functions={name: CHECKS[name].cases(seed=seed) for name in submission.functions},
    )
    try:
        report = run_in_sandbox(job, limits, isolation, reaper)
    except Exception as error:  # noqa: BLE001 - one submission never stops the batch
        report = SandboxReport(events=[("crashed", f"the grader could not run it "
                                        f"({type(error).__name__}: {str(error)[:120]})")])
    return judge(submission, report, limits, isolation.label, seed)
