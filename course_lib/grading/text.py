"""Every text the grader writes or shows is made safe here, in one place (`safe_graded`).

What a submission leads the grader to write comes from places the learner controls: messages
from the sandbox (an error's message, a cell's first line), the notebook's own JSON (its cells'
sources may hold escaped lone surrogates such as "\\ud800"), file names. Before a `Graded`
reaches the gradebook (UTF-8 JSON and CSV), the Markdown feedback, an LMS export or the
console, `safe_graded` makes each of its texts

- valid Unicode: a lone surrogate, which no UTF-8 writer accepts, and NUL, which some CSV
  readers refuse, become U+FFFD;
- bounded: at most `MAX_FIELD` characters (a check's feedback: `MAX_FEEDBACK`; a submission's
  name, a path: `MAX_NAME`), and at most `MAX_NOTES` notes, each cut text saying how much was
  cut. A CSV field then stays far below the 131,072 characters Python's csv reader accepts
  (the grader's own LMS export reads gradebook.csv with it).

Markdown and console escaping (backticks, control characters) stay with their writers
(gradebook.py, console.py); they work on texts already made safe here.
"""

from __future__ import annotations

import dataclasses
import re

from course_lib.grading.verdict import Graded

__all__ = ["MAX_FEEDBACK", "MAX_FIELD", "MAX_NAME", "MAX_NOTES", "safe", "safe_graded"]

MAX_FIELD = 2000
"""Characters of one field: a status, a note, a name, a hint."""
MAX_FEEDBACK = 8000
"""Characters of one check's feedback (its case, expected and received values)."""
MAX_NOTES = 50
MAX_NAME = 4200
"""Characters of a submission's name: a path (PATH_MAX is 4096 bytes), never cut below that, so
that two names stay two names."""
_UNSAFE = re.compile("[\ud800-\udfff\x00]")  # after json.loads, a surrogate is a lone one


def safe(text: str, limit: int | None = MAX_FIELD) -> str:
    """`text` as valid Unicode without NUL, at most `limit` characters (None: no limit)."""
    text = _UNSAFE.sub("\ufffd", str(text))
    if limit is not None and len(text) > limit:
        keep = limit - 60  # the message below is shorter than 60 characters
        text = text[:keep] + f"… ({len(text) - keep:,} more characters cut)"
    return text


def safe_graded(graded: Graded) -> Graded:
    """`graded` with every text made safe and bounded (see the module's docstring)."""
    results = {
        safe(name): dataclasses.replace(
            result, function=safe(result.function), summary=safe(result.summary),
            details=safe(result.details, MAX_FEEDBACK), hint=safe(result.hint),
            diagnosis=safe(result.diagnosis, 80), problem=safe(result.problem),
        )
        for name, result in graded.results.items()
    }
    notes = [safe(note) for note in graded.notes[:MAX_NOTES]]
    if len(graded.notes) > MAX_NOTES:
        notes.append(f"… and {len(graded.notes) - MAX_NOTES} more notes (not listed)")
    return dataclasses.replace(
        graded, submission=safe(graded.submission, MAX_NAME), exercise=safe(graded.exercise, 80),
        results=results, status=safe(graded.status), notes=notes,
        isolation=safe(graded.isolation),
    )
