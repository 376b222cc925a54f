"""Finding and reading submissions, and recognising their exercise from the notebook itself.

A learner renames files, so the exercise comes from the notebook: its
`metadata.course.exercise` (written by `release`), or else from its code (the exercise whose
functions it defines or checks). The functions to grade always come from `EXERCISES`, never
from the notebook, so that editing the metadata cannot change what is graded.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.grading.updates import cell_ids

__all__ = ["EXERCISES", "MAX_NOTEBOOK_BYTES", "Submission", "find_submissions", "read_bounded",
           "read_submission", "resolve_exercise"]

EXERCISES: dict[str, tuple[str, ...]] = {
    "01_qkv_projections": ("project_qkv",),
    "02_dot_product_scores": ("attention_scores",),
    "03_scaling_and_softmax": ("scale_scores", "softmax", "attention_weights"),
    "04_weighted_sum": ("weighted_sum", "self_attention"),
    "05_training": ("softmax_backward", "self_attention_backward"),
    "06_rnn_vs_attention": ("rnn_forward", "rnn_backward"),
    "07_parallelism": ("attention_rows", "blockwise_attention"),
    "08_masks_heads_and_applications": (
        "causal_mask", "masked_attention_weights", "multi_head_self_attention",
    ),
    "09_transformer_block": ("layer_norm", "layer_norm_backward", "transformer_block"),
    "10_tiny_gpt": ("make_inputs_and_targets", "causal_lm_loss"),
    "11_generation_and_kv_cache": ("next_token_probabilities", "attend_with_cache"),
    "13_cross_attention": ("cross_attention", "cross_attention_backward"),
}
"""Each exercise and the functions it grades, in the order of the notebook."""

RENUMBERED: dict[str, str] = {
    "05_rnn_vs_attention": "06_rnn_vs_attention",
    "06_parallelism": "07_parallelism",
    "07_masks_heads_and_applications": "08_masks_heads_and_applications",
}
"""Exercises released under an earlier number (before lesson 05 on training was added)."""

MAX_NOTEBOOK_BYTES = 20 * 2**20
_DEF = re.compile(
    r"^\s*(?:def\s+(\w+)\s*\(|(\w+)\s*(?::[^=\n]*)?=(?!=))|\bcheck_(\w+)\s*\(", re.MULTILINE
)


@dataclass
class Submission:
    """One learner's notebook. `problem` (after "the notebook") is set when it cannot be graded."""

    name: str  # unique, as given in the gradebook: "alice/03.ipynb"
    path: Path
    exercise: str = ""
    cells: list[tuple[int, str]] = field(default_factory=list)  # (index, code)
    problem: str = ""
    cell_ids: tuple[str, ...] = ()  # every cell's id, in order (updates.lacking reads them)

    @property
    def functions(self) -> tuple[str, ...]:
        return EXERCISES.get(self.exercise, ())


def resolve_exercise(selection: str) -> str:
    """The exercise named by "03", "3", "03_scaling_and_softmax" or "scaling_and_softmax"
    (a name released under an earlier number, such as "05_rnn_vs_attention", is renamed).
    Raises ValueError for an unknown or ambiguous selection."""
    given = selection.strip()
    selection = RENUMBERED.get(given, given)
    if selection.isdigit():
        selection = f"{int(selection):02d}_"
    matches = [name for name in EXERCISES if name.startswith(selection) or name[3:] == selection]
    if len(matches) != 1:
        raise ValueError(f"unknown exercise {given!r}; one of: {', '.join(EXERCISES)}")
    return matches[0]


def find_submissions(paths: Iterable[Path]) -> list[Submission]:
    """The notebooks under `paths` (files or folders), sorted, each with a unique name.

    Links are never followed and nothing outside the given paths is read: a notebook that is
    a symbolic link, or not a regular file (a FIFO, a device), is listed with its problem and
    never opened. A file given twice (directly and inside a folder) is graded once.
    Raises FileNotFoundError for a path that does not exist."""
    found: list[tuple[str, Path, str]] = []
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():
            for folder, folders, files in os.walk(path, followlinks=False):
                folders[:] = sorted(f for f in folders if f != ".ipynb_checkpoints")
                entries = sorted(files) + [f for f in folders if f.endswith(".ipynb")]
                for name in entries:
                    if name.endswith(".ipynb"):
                        file = Path(folder) / name
                        found.append((file.relative_to(path).as_posix(), file, _refused(file)))
        elif os.path.lexists(path):
            found.append((path.name, path, _refused(path)))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return _unique(found)


def _refused(path: Path) -> str:
    """Why `path` is not read (a link, not a regular file), or ""."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link (links are not followed: submit the notebook itself)"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return ""


def _unique(found: list[tuple[str, Path, str]]) -> list[Submission]:
    """One Submission per file, each name unique: a name given twice becomes the path as given,
    then the absolute path, then gets a number."""
    seen_files: set[tuple[int, int]] = set()
    taken: set[str] = set()
    submissions = []
    for name, file, problem in found:
        try:
            info = os.lstat(file)
        except OSError:
            info = None
        if info is not None and not problem:
            if (info.st_dev, info.st_ino) in seen_files:
                continue
            seen_files.add((info.st_dev, info.st_ino))
        candidates = [_text(c) for c in (name, file.as_posix(), os.path.abspath(file))]
        unique = next((c for c in candidates if c not in taken), None)
        number = 2
        while unique is None or unique in taken:
            unique, number = f"{_text(name)} ({number})", number + 1
        taken.add(unique)
        submissions.append(Submission(unique, file, problem=problem))
    return sorted(submissions, key=lambda s: s.name)


def _text(name: str) -> str:
    """A file name as valid text (bytes that are not UTF-8 shown as \\xNN)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_submission(submission: Submission) -> Submission:
    """Fill in the exercise and the code cells, or the problem that prevents grading.

    Reads at most MAX_NOTEBOOK_BYTES + 1 bytes, from a regular file opened without following
    links (a file swapped for a link or a FIFO after it was found is refused too)."""
    if submission.problem:
        return submission
    try:
        raw = read_bounded(submission.path, MAX_NOTEBOOK_BYTES + 1)
    except _NotRegularError:
        submission.problem = "is not a regular file"
        return submission
    except _TooLargeError:
        submission.problem = f"is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        return submission
    except OSError as error:
        if error.errno == errno.ELOOP:
            submission.problem = _refused(submission.path) or "is a symbolic link"
        else:
            submission.problem = f"cannot be read ({error.strerror or error})"
        return submission
    if len(raw) > MAX_NOTEBOOK_BYTES:
        submission.problem = f"is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        return submission
    try:
        notebook = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        submission.problem = f"is not a valid notebook (invalid JSON: {_first_line(error)})"
        return submission
    if isinstance(notebook, dict) and notebook.get("nbformat") == 3:
        notebook = _from_nbformat_3(notebook)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        submission.problem = "is not a valid notebook (no list of cells)"
        return submission
    submission.cells = _code_cells(notebook["cells"])
    submission.cell_ids = cell_ids(notebook["cells"])
    submission.exercise = _recognise(notebook.get("metadata"), submission.cells)
    if not submission.exercise:
        submission.problem = (
            "is not an exercise notebook of this course (no metadata.course and none of the "
            "exercises' functions)"
        )
    elif not any(code.strip() for _, code in submission.cells):
        submission.problem = "is empty (no code)"
    return submission


def _from_nbformat_3(notebook: dict[str, Any]) -> Any:
    """A notebook of format 3 (cells in "worksheets", code in "input"), converted by nbformat
    to format 4 as Jupyter itself does when it opens one; None when it cannot be."""
    import nbformat

    try:
        return nbformat.convert(nbformat.from_dict(notebook), 4)
    except Exception:  # noqa: BLE001 - a malformed old notebook is refused, not a crash
        return None


class _NotRegularError(OSError):
    pass


class _TooLargeError(OSError):
    pass


def read_bounded(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a regular file, never following a link, never blocking."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegularError(path)
        if info.st_size >= limit:  # a sparse 4 GB file is not read: its size says enough
            raise _TooLargeError(path)
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(descriptor, min(2**20, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _code_cells(cells: Sequence[Any]) -> list[tuple[int, str]]:
    """(index, source) of each code cell, as written: IPython runs them in the sandbox."""
    code = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if isinstance(source, str):
            code.append((index, source))
    return code


def _recognise(metadata: Any, cells: Sequence[tuple[int, str]]) -> str:
    course = metadata.get("course") if isinstance(metadata, dict) else None
    exercise = course.get("exercise") if isinstance(course, dict) else None
    exercise = RENUMBERED.get(exercise, exercise) if isinstance(exercise, str) else None
    if exercise in EXERCISES:
        return exercise
    named = {m.group(1) or m.group(2) or m.group(3) for _, code in cells
             for m in _DEF.finditer(code)}
    counts = {exercise: len(named & set(functions)) for exercise, functions in EXERCISES.items()}
    best = max(counts.values())
    winners = [exercise for exercise, count in counts.items() if count == best]
    return winners[0] if best > 0 and len(winners) == 1 else ""


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__
