"""Grading a folder of submitted exercise notebooks, without trusting the submitted code.

    from course_lib.grading import grade
    graded = grade([Path("submissions")], Path("grades"), timeout=60, memory_mb=2048, jobs=2)

or `python -m course_lib grade submissions/ --out grades [--seed N]`. The grader refuses to run
submissions where nothing keeps one from the others and from the course (`isolation.refusal`
says why and what to do) unless told `accept_risk=True`. The pipeline, one module a step:

- submissions: find the notebooks (regular files only, no links, bounded reads, unique names),
  recognise each one's exercise from the notebook; staging: read each once into a private
  folder before any learner's code runs, and grade that copy;
- sandbox: prepare (the job), run (attempts under isolation.py's containment and limits:
  cgroups, reaper, cleanup), read back (messages.py: the runner's typed messages, one parser;
  wire.py: the bounded frames they travel in; BOUNDARY.md says why each field is safe);
  runner.py is what runs inside, with calling.py, wire.py, messages.py and standin.py, never
  the rest of course_lib;
- verdict: the course's checkers judge the plain results in this process, on the notebook's
  cases and on fresh ones drawn from the run's seed; status.py holds the statuses and every
  reason's words;
- text (every text made safe and bounded, in one place), gradebook (names safe for each
  format, written atomically), console (progress bar, summary table), lms (Canvas and Moodle
  files), updates (which submissions lack cells of the current release).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from course_lib.checks import CHECKS
from course_lib.grading.gradebook import check_writable, write_gradebook
from course_lib.grading.isolation import (
    ACCEPT_RISK_FLAG,
    Isolation,
    Limits,
    detect_isolation,
    refusal,
)
from course_lib.grading.reaper import Reaper
from course_lib.grading.sandbox import Job, SandboxReport, run_in_sandbox
from course_lib.grading.staging import Staging
from course_lib.grading.status import could_not_run
from course_lib.grading.submissions import (
    EXERCISES,
    Submission,
    find_submissions,
    read_submission,
    resolve_exercise,
)
from course_lib.grading.text import safe_graded
from course_lib.grading.updates import Release, lacking, read_release
from course_lib.grading.verdict import Graded, grade_report, ungraded

__all__ = ["grade", "grade_one", "new_seed", "skipped_submissions", "changed_originals",
           "lacking_updates",
           "Graded", "Limits", "Isolation", "detect_isolation", "refusal", "UncontainedError",
           "ACCEPT_RISK_FLAG", "EXERCISES"]


class UncontainedError(RuntimeError):
    """No isolation keeps a submission from the others and from the course here, and the risk
    was not accepted: nothing was run (the message says why and what to do)."""

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
    accept_risk: bool = False,
    release: Path | None = None,
) -> list[Graded]:
    """Grade every notebook under `paths` and write the gradebook into `out`.

    exercise: grade only this exercise ("03" or "3"); a notebook recognised as another
    exercise is skipped (not graded, not in gradebook.csv; listed in gradebook.json's
    "skipped", see `skipped_submissions`), so that its grades are never overwritten.
    isolation: "auto" (bubblewrap when it works here) or "none" (no bubblewrap: as root, each
    submission then runs as a user of its own where it can).
    accept_risk: run the submissions even where nothing keeps one from the other learners'
    files and from the course (a throw-away machine); otherwise that raises UncontainedError.
    release: the folder of the released student notebooks (the course's `exercises/`): each
    submission made from them that lacks some of their cells (an update nbgitpuller did not
    bring, see updates.py) is listed in gradebook.json (`lacks_release_cells`, and
    `lacking_updates(out)`) and told so in its feedback.
    seed: draws the fresh cases every function is graded on besides the notebook's own (the
    same shapes and difficulty, other numbers); a new one per run when None. The gradebook
    (gradebook.json's settings) records it: grading again with it gives the same gradebook.
    Raises UncontainedError, FileNotFoundError (a path does not exist), ValueError (unknown
    exercise) or OSError (`out` cannot be written) before running anything; never because of a
    submission: whatever one submission does, the run ends, the gradebook is written and no
    process or temporary folder of the run is left.
    """
    out = Path(out)
    wanted = resolve_exercise(exercise) if exercise else None
    sandbox = detect_isolation(isolation)
    if not sandbox.contained and not accept_risk:
        raise UncontainedError(refusal(sandbox))
    released = read_release(release) if release is not None else {}
    with Staging() as staging:
        return _grade_staged(paths, out, staging, Limits(timeout, memory_mb), sandbox, jobs,
                             wanted, progress, new_seed() if seed is None else seed, released,
                             None if release is None else Path(release).resolve())


def _grade_staged(paths: Iterable[Path], out: Path, staging: Staging, limits: Limits,
                  sandbox: Isolation, jobs: int, wanted: str | None,
                  progress: Progress | None, seed: int, released: Release,
                  release_dir: Path | None) -> list[Graded]:
    """`grade`, with every submission read from its private copy in `staging`; `released` the
    cells of the release read from `release_dir` (None: the check is skipped)."""
    submissions = [read_submission(staging.stage(s)) for s in find_submissions(paths)]
    skipped = [s for s in submissions if wanted and s.exercise and s.exercise != wanted]
    submissions = [s for s in submissions if not (wanted and s.exercise and s.exercise != wanted)]
    check_writable(out)
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
    changed = set(staging.changed())
    ordered = [_with_changed_note(g) if g.submission in changed else g
               for g in graded if g is not None]
    lacks = {s.name: lacking(s.exercise, s.cell_ids, released) for s in submissions}
    for g in ordered:
        if lacks[g.submission]:
            g.notes.append(f"your notebook lacks {len(lacks[g.submission])} cell(s) of the "
                           "current exercise (an update that did not reach it?), starting: "
                           f"{lacks[g.submission][0]}")
    settings = {"timeout": limits.timeout, "memory_mb": limits.memory_mb,
                "isolation": sandbox.description, "contained": sandbox.contained,
                "exercise": wanted or "any", "seed": seed,
                "release": None if release_dir is None else str(release_dir)}
    write_gradebook(out, ordered, settings,
                    skipped={s.name: s.exercise for s in skipped},
                    facts={g.submission: {"sha256": staging.sha256(g.submission),
                                          "lacks_release_cells": lacks[g.submission]}
                           for g in ordered},
                    changed=sorted(changed))
    return ordered


def _with_changed_note(graded: Graded) -> Graded:
    graded.notes.append("the submitted file changed while the batch was graded (not by this "
                        "grader): this grade is of the file as it was before any code ran "
                        "(its SHA-256 is in gradebook.json)")
    return graded


def lacking_updates(out: Path) -> dict[str, list[str]]:
    """The submissions of the last `grade(..., release=...)` into `out` that lack cells of the
    released notebooks, each with those cells' first lines (read from gradebook.json)."""
    document = json.loads((Path(out) / "gradebook.json").read_text(encoding="utf-8"))
    return {entry["submission"]: entry["lacks_release_cells"]
            for entry in document["submissions"] if entry.get("lacks_release_cells")}


def changed_originals(out: Path) -> list[str]:
    """The submissions whose file changed while the last `grade` into `out` ran (read from
    gradebook.json): possible only where the risk was accepted (`accept_risk`)."""
    document = json.loads((Path(out) / "gradebook.json").read_text(encoding="utf-8"))
    return list(document.get("changed_during_grading", []))


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
        return safe_graded(ungraded(submission, submission.problem, functions,
                                    isolation.label))
    job = Job(
        cells=submission.cells,
        functions={name: CHECKS[name].cases(seed=seed) for name in submission.functions},
    )
    try:
        report = run_in_sandbox(job, limits, isolation, reaper)
    except Exception as error:  # noqa: BLE001 - one submission never stops the batch
        report = SandboxReport(events=[could_not_run(error)])
    return safe_graded(grade_report(submission, report, limits, isolation.label, seed))
