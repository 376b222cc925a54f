"""Writing the gradebook: gradebook.csv, gradebook.json and feedback/<submission>.md.

Every file is written atomically (a temporary file in the same folder, then `os.replace`), so
a reader never sees half a gradebook. Nothing in them depends on the time or the order in which
submissions finished, so grading the same folder again gives the same files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course_lib.grading.collect import EXERCISES
from course_lib.grading.judge import Graded

__all__ = ["columns", "write_gradebook", "feedback_markdown", "feedback_name", "check_writable"]


def columns(graded: Sequence[Graded]) -> list[str]:
    """submission, exercise, one column per graded function, score, max_score, status,
    isolation."""
    present = {name for g in graded for name in g.results}
    functions = [f for names in EXERCISES.values() for f in names if f in present]
    return ["submission", "exercise", *functions, "score", "max_score", "status", "isolation"]


def check_writable(out: Path) -> None:
    """Create `out` and make sure files can be written there (raises OSError otherwise)."""
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
        pass


def write_gradebook(out: Path, graded: Sequence[Graded], settings: dict[str, Any]) -> None:
    """Write the three kinds of files into `out` (feedback first, the CSV last)."""
    check_writable(out)
    for g in graded:
        _write_atomic(out / "feedback" / feedback_name(g.submission), feedback_markdown(g))
    header = columns(graded)
    document = {
        "settings": settings,
        "columns": header,
        "submissions": [_as_json(g) for g in graded],
    }
    _write_atomic(out / "gradebook.json",
                  json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for g in graded:
        writer.writerow(_row(g))
    _write_atomic(out / "gradebook.csv", buffer.getvalue())


def feedback_name(submission: str) -> str:
    """feedback/<name>.md for a submission "alice/03.ipynb" -> "alice__03.md"."""
    stem = submission.removesuffix(".ipynb").replace("/", "__").replace("\\", "__")
    return f"{stem}.md"


def feedback_markdown(g: Graded) -> str:
    """The report a learner reads: the score, then each function's check, then notes."""
    exercise = f"exercise **{g.exercise}**" if g.exercise else "exercise not recognised"
    lines = [
        f"# Feedback on `{g.submission}`",
        "",
        f"{exercise} · score **{g.score} / {g.max_score}** · status: {g.status}",
        "",
    ]
    if g.results:
        lines += ["| function | result |", "|---|---|"]
        for name, result in g.results.items():
            mark = "✓ passed" if result.passed else "✗ not passed"
            lines.append(f"| `{name}` | {mark} ({result.n_passed} of {result.n_cases} cases) |")
        lines.append("")
    for name, result in g.results.items():
        lines += [f"## `{name}` {'✓' if result.passed else '✗'}", "", "```text",
                  result.feedback.replace("```", "'''"), "```", ""]
    if g.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in g.notes), ""]
    lines += [
        "---",
        "",
        "Graded with the course's checkers, on the same cases as the notebook's check cells. "
        "Only your functions were graded: the notebook's own outputs are ignored.",
    ]
    return "\n".join(lines) + "\n"


def _row(g: Graded) -> dict[str, Any]:
    row: dict[str, Any] = {
        "submission": g.submission, "exercise": g.exercise, "score": g.score,
        "max_score": g.max_score, "status": g.status, "isolation": g.isolation,
    }
    row.update({name: int(result.passed) for name, result in g.results.items()})
    return row


def _as_json(g: Graded) -> dict[str, Any]:
    return {
        **_row(g),
        "feedback_file": f"feedback/{feedback_name(g.submission)}",
        "checks": {
            name: {
                "passed": result.passed,
                "n_passed": result.n_passed,
                "n_cases": result.n_cases,
                "diagnosis": result.diagnosis,
                "feedback": result.feedback,
            }
            for name, result in g.results.items()
        },
        "notes": g.notes,
    }


def _write_atomic(path: Path, text: str) -> None:
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                           suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
