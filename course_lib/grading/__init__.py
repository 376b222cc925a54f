"""Grading a folder of submitted exercise notebooks, without trusting the submitted code.

    from course_lib.grading import grade
    graded = grade([Path("submissions")], Path("grades"), timeout=60, memory_mb=2048, jobs=2)

or `python -m course_lib grade submissions/ --out grades`. Each notebook's exercise is
recognised from the notebook (collect), its code runs in its own limited, isolated process
(sandbox, which runs runner.py with calling.py and wire.py, and never course_lib), the course's
checkers judge the plain results in this process (judge), and the gradebook and one feedback
report per learner are written atomically (gradebook). The terminal shows a progress bar and a
summary table (console).

Modules: collect, sandbox, runner (inside the sandbox), wire (the format of what crosses the
sandbox's boundary), judge, gradebook, console.
"""

from __future__ import annotations

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
from course_lib.grading.sandbox import Isolation, Job, Limits, detect_isolation, run_in_sandbox

__all__ = ["grade", "grade_one", "Graded", "Limits", "Isolation", "detect_isolation",
           "EXERCISES"]

Progress = Callable[[int, int, Graded], None]


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
) -> list[Graded]:
    """Grade every notebook under `paths` and write the gradebook into `out`.

    exercise: grade only this exercise ("03"); a notebook of another one is `unreadable`.
    isolation: "auto" (bubblewrap when it works here) or "none".
    Raises FileNotFoundError (a path does not exist), ValueError (unknown exercise) or
    OSError (`out` cannot be written) before grading anything; never because of a submission.
    """
    out = Path(out)
    wanted = resolve_exercise(exercise) if exercise else None
    submissions = [read_submission(s) for s in find_submissions(paths)]
    check_writable(out)
    limits = Limits(timeout, memory_mb)
    sandbox = detect_isolation(isolation)
    for checker in CHECKS.values():  # build the cases and expected values once, up front
        for case in checker.cases():
            checker.expected(case)
    graded: dict[str, Graded] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grade_one, s, limits, sandbox, wanted) for s in submissions]
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            graded[result.submission] = result
            if progress is not None:
                progress(done, len(futures), result)
    ordered = [graded[s.name] for s in submissions]
    settings = {"timeout": timeout, "memory_mb": memory_mb, "isolation": sandbox.description,
                "exercise": wanted or "any"}
    write_gradebook(out, ordered, settings)
    return ordered


def grade_one(
    submission: Submission, limits: Limits, isolation: Isolation, wanted: str | None = None
) -> Graded:
    """Grade one submission (already read); never raises because of its content."""
    if wanted and submission.exercise and submission.exercise != wanted:
        problem = (f"is exercise {submission.exercise}, not the exercise being graded "
                   f"({wanted})")
        graded = ungraded(submission, problem, EXERCISES[wanted], isolation.label)
        graded.exercise = submission.exercise
        return graded
    if submission.problem:
        functions = EXERCISES.get(wanted or submission.exercise, ())
        return ungraded(submission, submission.problem, functions, isolation.label)
    job = Job(
        cells=submission.cells,
        functions={name: CHECKS[name].cases() for name in submission.functions},
    )
    report = run_in_sandbox(job, limits, isolation)
    return judge(submission, report, limits, isolation.label)
