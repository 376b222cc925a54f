"""Writing the gradebook: gradebook.csv, gradebook.json and feedback/<submission>.md.

Every file is written atomically (a temporary file with a short name in the same folder, then
`os.replace`), so a reader never sees half a gradebook. Nothing in them depends on the time or
the order in which submissions finished, so grading the same folder again gives the same files.

Names come from learners, so each is made safe for where it goes: a feedback file name is made
of safe characters, at most about 100 bytes, and unique in the batch (even on a file system
that ignores case); in gradebook.csv a cell that a spreadsheet would evaluate as a formula
(starting with = + - @, a tab or a carriage return) is prefixed with an apostrophe, as the
OWASP guidance on CSV injection says; in the Markdown feedback, control characters and
backticks are escaped. gradebook.json holds the names as they are (JSON escapes them).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from course_lib.checks import CHECKS
from course_lib.grading.console import printable
from course_lib.grading.submissions import EXERCISES
from course_lib.grading.verdict import Graded

__all__ = ["columns", "write_gradebook", "feedback_markdown", "feedback_name", "feedback_names",
           "check_writable", "csv_read_back", "csv_safe"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM_BYTES = 96
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


def write_gradebook(out: Path, graded: Sequence[Graded], settings: dict[str, Any],
                    skipped: dict[str, str] | None = None,
                    facts: dict[str, dict[str, Any]] | None = None,
                    changed: Sequence[str] = ()) -> None:
    """Write the three kinds of files into `out` (feedback first, the CSV last).

    skipped: notebooks of other exercises than the one graded (submission -> exercise), listed
    in gradebook.json only. facts: more fields of a submission's entry in gradebook.json (the
    SHA-256 of the bytes graded, the released cells it lacks); changed: the submissions whose
    file changed while the batch ran (gradebook.json only)."""
    check_writable(out)
    names = feedback_names([g.submission for g in graded])
    seed = settings.get("seed")
    for g in graded:
        _write_atomic(out / "feedback" / names[g.submission], feedback_markdown(g, seed))
    header = columns(graded)
    document = {
        "settings": settings,
        "columns": header,
        "submissions": [{**_as_json(g, names[g.submission]), **(facts or {}).get(g.submission, {})}
                        for g in graded],
        "skipped": [{"submission": name, "exercise": exercise}
                    for name, exercise in sorted((skipped or {}).items())],
        "changed_during_grading": list(changed),
    }
    _write_atomic(out / "gradebook.json",
                  json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for g in graded:
        writer.writerow({key: csv_safe(value) for key, value in _row(g).items()})
    _write_atomic(out / "gradebook.csv", buffer.getvalue())


def feedback_name(submission: str) -> str:
    """The feedback file's name for one submission: "alice/03.ipynb" -> "alice__03.md".

    Only letters, digits, `.`, `_` and `-` (other characters become `_`), at most about 100
    bytes; when anything had to change, a short hash of the whole name keeps it distinct."""
    original = submission.removesuffix(".ipynb").replace("/", "__").replace("\\", "__")
    stem = _UNSAFE.sub("_", original).lstrip(".-") or "notebook"
    if stem != original or len(stem) > _MAX_STEM_BYTES:
        stem = f"{stem[:_MAX_STEM_BYTES]}-{_digest(submission)}"
    return f"{stem}.md"


def feedback_names(submissions: Sequence[str]) -> dict[str, str]:
    """Each submission's feedback file name, unique in the batch even where case is ignored
    ("alice/03.ipynb" and "alice__03.ipynb" do not share a report)."""
    names = {s: feedback_name(s) for s in submissions}
    for _ in range(3):
        counts: dict[str, int] = {}
        for name in names.values():
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        clashes = [s for s, name in names.items() if counts[name.lower()] > 1]
        if not clashes:
            return names
        for rank, s in enumerate(sorted(clashes)):
            stem = names[s].removesuffix(".md")[:_MAX_STEM_BYTES]
            names[s] = f"{stem}-{_digest(f'{rank}:{s}')}.md"
    raise ValueError("feedback file names could not be made unique")


def csv_safe(value: Any) -> Any:
    """A CSV cell that no spreadsheet evaluates: text starting with = + - @, a tab or a
    carriage return gets a leading apostrophe (OWASP, CSV injection); so does text that starts
    with an apostrophe, so that `csv_read_back` restores every value exactly."""
    if isinstance(value, str) and value.startswith((*_FORMULA_START, "'")):
        return "'" + value
    return value


def csv_read_back(text: str) -> str:
    """The value `csv_safe` was given, from the cell it wrote."""
    escaped = text.startswith("'") and text[1:].startswith((*_FORMULA_START, "'"))
    return text[1:] if escaped else text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def feedback_markdown(g: Graded, seed: int | None = None) -> str:
    """The report a learner reads: the score, then each function's check (on how many of the
    notebook's cases and of fresh ones), then notes, then what was graded."""
    exercise = f"exercise **{g.exercise}**" if g.exercise else "exercise not recognised"
    title = printable(g.submission).replace("`", "'")
    lines = [
        f"# Feedback on `{title}`",
        "",
        f"{exercise} · score **{g.score} / {g.max_score}** · status: {printable(g.status)}",
        "",
    ]
    if g.results:
        lines += ["| function | result |", "|---|---|"]
        for name, result in g.results.items():
            mark = "✓ passed" if result.passed else "✗ not passed"
            lines.append(f"| `{name}` | {mark} ({result.n_passed} of {result.n_cases} cases"
                         f"{_cases_graded(name, result.n_cases)}) |")
        lines.append("")
    for name, result in g.results.items():
        lines += [f"## `{name}` {'✓' if result.passed else '✗'}", "", "```text",
                  result.feedback.replace("```", "'''"), "```", ""]
    if g.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in g.notes), ""]
    drawn = f" drawn for this grading (seed {seed})" if seed is not None else ""
    lines += [
        "---",
        "",
        "Graded with the course's checkers, on each function's cases from the notebook's check "
        f"cells and on fresh cases of the same kind (the same shapes, other numbers){drawn}, "
        "which the notebook never showed: a function that passes its check cells may still "
        "fail a fresh case. Only your functions were graded: the notebook's own outputs are "
        "ignored.",
    ]
    return "\n".join(lines) + "\n"


def _cases_graded(name: str, n_cases: int) -> str:
    """": the notebook's 8 and 7 fresh ones" (nothing when no fresh case was graded)."""
    shown = len(CHECKS[name].cases()) if name in CHECKS else n_cases
    fresh = n_cases - shown
    return f": the notebook's {shown} and {fresh} fresh ones" if fresh > 0 else ""


def _row(g: Graded) -> dict[str, Any]:
    row: dict[str, Any] = {
        "submission": g.submission, "exercise": g.exercise, "score": g.score,
        "max_score": g.max_score, "status": g.status, "isolation": g.isolation,
    }
    row.update({name: int(result.passed) for name, result in g.results.items()})
    return row


def _as_json(g: Graded, feedback_file: str) -> dict[str, Any]:
    return {
        **_row(g),
        "feedback_file": f"feedback/{feedback_file}",
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
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".partial")
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
