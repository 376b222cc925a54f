"""Finding and reading submissions, and recognising their exercise from the notebook itself.

A learner renames files, so the exercise comes from the notebook: its
`metadata.course.exercise` (written by `release`), or else from its code (the exercise whose
functions it defines or checks). The functions to grade always come from `EXERCISES`, never
from the notebook, so that editing the metadata cannot change what is graded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXERCISES", "Submission", "find_submissions", "read_submission", "resolve_exercise"]

EXERCISES: dict[str, tuple[str, ...]] = {
    "01_qkv_projections": ("project_qkv",),
    "02_dot_product_scores": ("attention_scores",),
    "03_scaling_and_softmax": ("scale_scores", "softmax", "attention_weights"),
    "04_weighted_sum": ("weighted_sum", "self_attention"),
    "06_rnn_vs_attention": ("rnn_forward",),
    "07_parallelism": ("blockwise_attention",),
    "08_masks_heads_and_applications": (
        "causal_mask", "masked_attention_weights", "multi_head_self_attention",
    ),
}
"""Each exercise and the functions it grades, in the order of the notebook."""

RENUMBERED: dict[str, str] = {
    "05_rnn_vs_attention": "06_rnn_vs_attention",
    "06_parallelism": "07_parallelism",
    "07_masks_heads_and_applications": "08_masks_heads_and_applications",
}
"""Exercises released under an earlier number (before lesson 05 on training was added)."""

MAX_NOTEBOOK_BYTES = 20 * 2**20
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(|\bcheck_(\w+)\s*\(", re.MULTILINE)


@dataclass
class Submission:
    """One learner's notebook. `problem` (after "the notebook") is set when it cannot be graded."""

    name: str  # unique, as given in the gradebook: "alice/03.ipynb"
    path: Path
    exercise: str = ""
    cells: list[tuple[int, str]] = field(default_factory=list)  # (index, code)
    problem: str = ""

    @property
    def functions(self) -> tuple[str, ...]:
        return EXERCISES.get(self.exercise, ())


def resolve_exercise(selection: str) -> str:
    """The exercise named by "03", "03_scaling_and_softmax" or "scaling_and_softmax"."""
    matches = [name for name in EXERCISES if name.startswith(selection) or name[3:] == selection]
    if len(matches) != 1:
        raise ValueError(f"unknown exercise {selection!r}; one of: {', '.join(EXERCISES)}")
    return matches[0]


def find_submissions(paths: Iterable[Path]) -> list[Submission]:
    """The notebooks under `paths` (files or folders), sorted, each with a unique name.

    Raises FileNotFoundError for a path that does not exist."""
    found: list[tuple[str, Path]] = []
    for path in map(Path, paths):
        if path.is_dir():
            for file in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in file.parts and file.is_file():
                    found.append((file.relative_to(path).as_posix(), file))
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    taken: set[str] = set()
    submissions = []
    for name, file in found:  # a name given twice: the later one is named by its full path
        unique = name if name not in taken else file.as_posix()
        taken.add(unique)
        submissions.append(Submission(unique, file))
    return sorted(submissions, key=lambda s: s.name)


def read_submission(submission: Submission) -> Submission:
    """Fill in the exercise and the code cells, or the problem that prevents grading."""
    try:
        raw = submission.path.read_bytes()[: MAX_NOTEBOOK_BYTES + 1]
    except OSError as error:
        submission.problem = f"cannot be read ({error.strerror or error})"
        return submission
    if len(raw) > MAX_NOTEBOOK_BYTES:
        submission.problem = f"is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        return submission
    try:
        notebook = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        submission.problem = f"is not a valid notebook (invalid JSON: {_first_line(error)})"
        return submission
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        submission.problem = "is not a valid notebook (no list of cells)"
        return submission
    submission.cells = _code_cells(notebook["cells"])
    submission.exercise = _recognise(notebook.get("metadata"), submission.cells)
    if not submission.exercise:
        submission.problem = (
            "is not an exercise notebook of this course (no metadata.course and none of the "
            "exercises' functions)"
        )
    elif not any(code.strip() for _, code in submission.cells):
        submission.problem = "is empty (no code)"
    return submission


def _code_cells(cells: Sequence[Any]) -> list[tuple[int, str]]:
    code = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if isinstance(source, str):
            code.append((index, _without_magics(source)))
    return code


def _without_magics(source: str) -> str:
    """IPython-only lines (%magic, !shell) do not run in plain Python: made comments."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line
        for line in source.split("\n")
    )


def _recognise(metadata: Any, cells: Sequence[tuple[int, str]]) -> str:
    course = metadata.get("course") if isinstance(metadata, dict) else None
    exercise = course.get("exercise") if isinstance(course, dict) else None
    exercise = RENUMBERED.get(exercise, exercise) if isinstance(exercise, str) else None
    if exercise in EXERCISES:
        return exercise
    named = {m.group(1) or m.group(2) for _, code in cells for m in _DEF.finditer(code)}
    counts = {exercise: len(named & set(functions)) for exercise, functions in EXERCISES.items()}
    best = max(counts.values())
    winners = [exercise for exercise, count in counts.items() if count == best]
    return winners[0] if best > 0 and len(winners) == 1 else ""


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__
