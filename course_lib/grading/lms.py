"""Grades for a learning management system: a roster, and Canvas's and Moodle's CSV import formats.

    roster = read_roster(Path("roster.csv"))
    rows = read_gradebook(Path("grades/gradebook.csv"))
    table = reconcile(rows, roster)        # one line per roster learner, and what did not match
    write_lms(Path("grades/canvas.csv"), table, "canvas")

or `python -m course_lib grade submissions/ --roster roster.csv --lms canvas`. The input is the
grader's plain gradebook (its rows: `submission`, `exercise`, `score`, `max_score`), which stays
as it is; this module only reads it.

The roster is a CSV file (UTF-8, a byte-order mark from a spreadsheet is fine) with a header and
the columns

    learner      the hub name, which is also the submission's folder (`submissions/<learner>/`)
    student_id   the institution's id of the student (Canvas: SIS User ID; Moodle: ID number)
    name         the name as the LMS shows it (commas and any letters are fine)
    email        the e-mail address (Moodle can match learners by it)

and optionally `section`, `canvas_id` (Canvas's own numeric user id) and `sis_login_id`.
Canvas matches a row to a student by `ID`, `SIS User ID` or `SIS Login ID`: in a Canvas course
without a link to a student information system the SIS ids are empty there, so fill
`canvas_id` (the `ID` column of Canvas's own gradebook export). Learners are matched to
submissions by folder, so the roster needs one folder per learner (`submissions/<learner>/`,
as `collect` makes them).

The identity columns the LMS matches learners on (Canvas: `ID`, `SIS User ID`, `SIS Login ID`;
Moodle: `ID number`, `Email address`) are written exactly as the roster has them, or they would
no longer match: an id such as `-4471` stays `-4471`. Only free text (names, sections) gets the
spreadsheet's formula escape (a leading apostrophe before = + - @, as in gradebook.csv). A roster
id that a spreadsheet could read as a formula is listed in `Reconciliation.problems()`: import
the file into the LMS directly, without opening it in a spreadsheet first.

Nothing is dropped silently: a submission whose learner is not on the roster, a roster learner
with no submission, two roster lines with the same learner or student id (neither is exported:
a grade must never reach the wrong person), a notebook whose exercise was not recognised, and a
learner with several submissions of one exercise (the best score is exported) are all listed in
`Reconciliation.problems()`.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from course_lib.grading.gradebook import csv_read_back, csv_safe
from course_lib.grading.submissions import EXERCISES

__all__ = [
    "LMS_FORMATS", "Learner", "Reconciliation", "RosterError", "canvas_csv", "exercise_title",
    "formula_like_ids", "learner_of", "moodle_csv", "read_gradebook", "read_roster", "reconcile",
    "roster_duplicates", "write_lms",
]

REQUIRED = ("learner", "student_id", "name", "email")
OPTIONAL = ("section", "canvas_id", "sis_login_id")

CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_POSSIBLE = "    Points Possible"
MOODLE_IDENTITY = ("ID number", "Email address", "Full name")


class RosterError(ValueError):
    """The roster cannot be read (missing file, not CSV, a required column missing, no rows)."""


@dataclass(frozen=True)
class Learner:
    """One roster line."""

    learner: str
    student_id: str
    name: str
    email: str
    section: str = ""
    canvas_id: str = ""
    sis_login_id: str = ""
    line: int = 0  # in the roster file, for messages


@dataclass
class Reconciliation:
    """The gradebook matched to the roster: what goes to the LMS and what did not match.

    scores: roster learner -> exercise -> best score; maxima: exercise -> maximum score.
    """

    learners: list[Learner]
    exercises: list[str]
    maxima: dict[str, float]
    scores: dict[str, dict[str, float]]
    not_on_roster: dict[str, list[str]] = field(default_factory=dict)  # learner -> submissions
    no_submission: list[Learner] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    several: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    formula_ids: list[str] = field(default_factory=list)  # written verbatim, said here

    def problems(self, duplicates: bool = True) -> list[str]:
        """One sentence per mismatch, for the instructor (empty when everything matched);
        duplicates=False leaves out the roster's duplicates (`roster_duplicates` lists them)."""
        lines = [*self.duplicates] if duplicates else []
        lines += [f"not on the roster (not exported): {learner} "
                  f"({', '.join(subs)})" for learner, subs in self.not_on_roster.items()]
        for entry in self.no_submission:
            handed_in = [name for name in self.unrecognised
                         if learner_of(name).casefold() == entry.learner.casefold()]
            what = "no submission" if not handed_in else (
                f"no gradable submission (handed in, but not recognised: {', '.join(handed_in)})")
            lines.append(f"{what} (exported with empty scores): {entry.learner} "
                         f"({entry.name}, {entry.student_id})")
        lines += [f"exercise not recognised (not exported): {name}" for name in self.unrecognised]
        lines += [f"several submissions of exercise {exercise} by {learner} (the best score is "
                  f"exported): {', '.join(subs)}" for (learner, exercise), subs in
                  self.several.items()]
        return lines + self.formula_ids


def read_roster(path: Path) -> list[Learner]:
    """The roster's learners, in file order. Raises RosterError with the reason."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RosterError(f"cannot read the roster {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise RosterError(f"the roster {path} has no column {', '.join(missing)} (its header: "
                          f"{', '.join(header) or 'none'}; needed: {', '.join(REQUIRED)})")
    reader.fieldnames = header
    learners = []
    for row in reader:
        values = {key: (row.get(key) or "").strip() for key in (*REQUIRED, *OPTIONAL)}
        if not any(values.values()):
            continue  # a blank line
        if not values["learner"]:
            raise RosterError(f"the roster {path}, line {reader.line_num}: no learner name")
        learners.append(Learner(**values, line=reader.line_num))
    if not learners:
        raise RosterError(f"the roster {path} lists no learners")
    return learners


def read_gradebook(path: Path) -> list[dict[str, str]]:
    """The rows of the grader's gradebook.csv, as dictionaries of text."""
    with open(path, encoding="utf-8", newline="") as file:  # cells as csv_safe wrote them
        return [{key: csv_read_back(value or "") for key, value in row.items()}
                for row in csv.DictReader(file)]


def learner_of(submission: str) -> str:
    """The learner of a gradebook row: its submission's folder ("alice/03.ipynb" -> "alice"),
    or the notebook's name when it is not in a folder ("alice.ipynb" -> "alice")."""
    path = PurePosixPath(submission.replace("\\", "/"))
    return path.parts[0] if len(path.parts) > 1 else path.stem


def exercise_title(exercise: str) -> str:
    """The LMS column of an exercise: "03_scaling_and_softmax" -> "Exercise 03: scaling and
    softmax"."""
    number, _, name = exercise.partition("_")
    return f"Exercise {number}: {name.replace('_', ' ')}"


def reconcile(rows: Iterable[Mapping[str, str]], roster: Sequence[Learner]) -> Reconciliation:
    """Match gradebook rows to roster learners (names compared without case, as JupyterHub
    lower-cases hub names); see the module's docstring for what is reported."""
    rows = list(rows)
    exercises = [e for e in EXERCISES if any(row.get("exercise") == e for row in rows)]
    maxima = {e: max(float(row["max_score"]) for row in rows if row.get("exercise") == e)
              for e in exercises}
    table = Reconciliation([], exercises, maxima, {})
    by_name = _groups(roster)[0]
    table.duplicates = roster_duplicates(roster)
    excluded = _duplicated(roster)
    submissions: dict[tuple[str, str], list[Mapping[str, str]]] = {}
    for row in rows:
        learner = learner_of(row["submission"])
        if row.get("exercise") not in EXERCISES:
            table.unrecognised.append(row["submission"])
        elif learner.casefold() not in by_name:
            table.not_on_roster.setdefault(learner, []).append(row["submission"])
        else:
            submissions.setdefault((learner.casefold(), row["exercise"]), []).append(row)
    table.formula_ids = formula_like_ids(roster)
    for entry in roster:
        key = entry.learner.casefold()
        if key in excluded:
            continue
        own = {e: submissions.get((key, e), []) for e in exercises}
        table.learners.append(entry)
        table.scores[entry.learner] = {
            e: max(float(row["score"]) for row in found) for e, found in own.items() if found
        }
        if not table.scores[entry.learner]:
            table.no_submission.append(entry)
        for exercise, found in own.items():
            if len(found) > 1:
                table.several[(entry.learner, exercise)] = [row["submission"] for row in found]
    return table


def _groups(roster: Sequence[Learner]) -> tuple[dict[str, list[Learner]],
                                                 dict[str, list[Learner]]]:
    """The roster's lines by learner (without case) and by student id."""
    by_name: dict[str, list[Learner]] = {}
    by_id: dict[str, list[Learner]] = {}
    for entry in roster:
        by_name.setdefault(entry.learner.casefold(), []).append(entry)
        if entry.student_id:
            by_id.setdefault(entry.student_id, []).append(entry)
    return by_name, by_id


def _duplicated(roster: Sequence[Learner]) -> set[str]:
    """The learners (without case) on a line that shares its learner or student id."""
    return {e.learner.casefold() for groups in _groups(roster) for entries in groups.values()
            if len(entries) > 1 for e in entries}


def roster_duplicates(roster: Sequence[Learner]) -> list[str]:
    """One sentence per learner name or student id found on several roster lines (none of
    those lines is exported): check these before grading."""
    problems = []
    for kind, groups in zip(("learner", "student id"), _groups(roster), strict=True):
        for key, entries in groups.items():
            if len(entries) > 1:
                lines = ", ".join(f"line {e.line} ({e.learner})" for e in entries)
                problems.append(f"duplicate {kind} {key!r} on the roster, {lines}: "
                                "none of them is exported; fix the roster")
    return problems


IDENTITY_FIELDS = {"student_id": "student_id (Canvas SIS User ID, Moodle ID number)",
                   "canvas_id": "canvas_id (Canvas ID)",
                   "sis_login_id": "sis_login_id (Canvas SIS Login ID)",
                   "email": "email (Moodle Email address)"}


def formula_like_ids(roster: Sequence[Learner]) -> list[str]:
    """One sentence per roster id a spreadsheet could read as a formula (it starts with = + -
    @, a tab or a carriage return). Such ids are written to the LMS file as they are, so that
    they match their learner: import the file directly, never through a spreadsheet."""
    return [
        f"{entry.learner}'s {label} {getattr(entry, key)!r} starts like a formula: it is "
        "written as it is, so that the LMS matches it; import the file into the LMS directly "
        "(a spreadsheet that opens it may change this id)"
        for entry in roster for key, label in IDENTITY_FIELDS.items()
        if csv_safe(getattr(entry, key)) != getattr(entry, key)
        and not getattr(entry, key).startswith("'")
    ]


def canvas_csv(table: Reconciliation) -> str:
    """The gradebook in Canvas's import format: one row per learner, one column per exercise.

    Columns as Canvas documents them ("How do I import grades in the Gradebook?", Instructure
    Community, Instructor Guide:
    https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807):
    Student (name), ID (Canvas user id), SIS User ID, SIS Login ID, Section, then one column per
    assignment; a column whose name is not an existing assignment creates one. The second row is
    Canvas's own "Points Possible" row (as in its gradebook export), giving each exercise's
    maximum. Scores are plain numbers of points; an empty cell leaves the grade unchanged.
    Standard CSV quoting (a name with a comma is quoted), UTF-8.
    """
    header = [*CANVAS_IDENTITY, *map(exercise_title, table.exercises)]
    points = [CANVAS_POINTS_POSSIBLE, "", "", "", "", *(_number(table.maxima[e])
                                                          for e in table.exercises)]
    body = [[csv_safe(entry.name), entry.canvas_id, entry.student_id, entry.sis_login_id,
             csv_safe(entry.section), *_scores(table, entry)] for entry in table.learners]
    return _csv([header, points, *body])


def moodle_csv(table: Reconciliation) -> str:
    """The gradebook for Moodle's CSV grade import: one row per learner, one column per exercise.

    Moodle's import ("Grade import", MoodleDocs: https://docs.moodle.org/en/Grade_import) reads
    a CSV file with a header row and lets the teacher map one column to the user ("Map from"
    Email address to "useremail", or ID number to "useridnumber") and each other column onto a
    grade item of the course. So the instructor first creates one grade item per exercise with
    the maximum its column states ("Exercise 03: scaling and softmax (out of 3)": maximum
    grade 3), then maps each column onto its item (MoodleDocs: add columns in Moodle before
    importing; an item Moodle creates from a column gets Moodle's default maximum, not the
    exercise's). The identity columns use the names of Moodle's own grade export ("ID number",
    "Email address"). Scores are plain numbers; UTF-8, comma-separated.
    """
    header = [*MOODLE_IDENTITY,
              *(f"{exercise_title(e)} (out of {_number(table.maxima[e])})"
                for e in table.exercises)]
    body = [[entry.student_id, entry.email, csv_safe(entry.name), *_scores(table, entry)]
            for entry in table.learners]
    return _csv([header, *body])


LMS_FORMATS = {"canvas": canvas_csv, "moodle": moodle_csv}


def write_lms(path: Path, table: Reconciliation, lms: str) -> Path:
    """Write `table` in the format `lms` ("canvas" or "moodle") to `path`, atomically."""
    text = LMS_FORMATS[lms](table)
    descriptor, partial = tempfile.mkstemp(dir=Path(path).parent, suffix=".partial")
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
        file.write(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    return Path(path)


def _scores(table: Reconciliation, entry: Learner) -> list[str]:
    own = table.scores.get(entry.learner, {})
    return [_number(own[e]) if e in own else "" for e in table.exercises]


def _number(value: float) -> str:
    return f"{value:g}"


def _csv(rows: Sequence[Sequence[str]]) -> str:
    """The rows as CSV, cells as given: the callers escape free text (names, sections) and
    leave identities as they are; headers and scores are the grader's own text."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()
