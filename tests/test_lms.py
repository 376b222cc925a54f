"""Grades for the LMS: the roster, its mismatches, and Canvas's and Moodle's CSV import layouts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import nbformat
import pytest

from course_lib.__main__ import main
from course_lib.grading.gradebook import csv_read_back, csv_safe
from course_lib.grading.lms import (
    Learner,
    RosterError,
    canvas_csv,
    exercise_title,
    learner_of,
    moodle_csv,
    read_gradebook,
    read_roster,
    reconcile,
)

ROSTER = """\ufefflearner,student_id,name,email,section
alice,S001,"Łukasiewicz, Zoë",zoe@example.org,A
bob,S002,Bob Brown,bob@example.org,A
carol,S003,Carol Chen,carol@example.org,B
dave,S003,Dave Duplicate,dave@example.org,B
erin,S005,Erin Early,erin@example.org,B
"""

GRADEBOOK = [  # the grader's gradebook.csv rows (the columns this module reads)
    {"submission": "alice/03_scaling_and_softmax.ipynb", "exercise": "03_scaling_and_softmax",
     "score": "3", "max_score": "3", "status": "ran"},
    {"submission": "alice/01_qkv_projections.ipynb", "exercise": "01_qkv_projections",
     "score": "0", "max_score": "1", "status": "ran"},
    {"submission": "bob/03_scaling_and_softmax.ipynb", "exercise": "03_scaling_and_softmax",
     "score": "1", "max_score": "3", "status": "ran"},
    {"submission": "bob/copy of 03.ipynb", "exercise": "03_scaling_and_softmax",
     "score": "2", "max_score": "3", "status": "ran"},
    {"submission": "carol/03_scaling_and_softmax.ipynb", "exercise": "03_scaling_and_softmax",
     "score": "2", "max_score": "3", "status": "ran"},
    {"submission": "mallory/03_scaling_and_softmax.ipynb", "exercise": "03_scaling_and_softmax",
     "score": "3", "max_score": "3", "status": "ran"},
    {"submission": "alice/notes.ipynb", "exercise": "", "score": "0", "max_score": "0",
     "status": "unreadable: not an exercise notebook"},
]


@pytest.fixture
def roster(tmp_path: Path) -> list[Learner]:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    return read_roster(path)


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_the_roster_is_read_with_a_spreadsheets_byte_order_mark_and_quoted_commas(
    roster: list[Learner],
) -> None:
    assert [entry.learner for entry in roster] == ["alice", "bob", "carol", "dave", "erin"]
    assert roster[0].name == "Łukasiewicz, Zoë" and roster[0].section == "A"
    assert roster[0].line == 2


def test_canvas_layout_header_points_possible_and_a_row(roster: list[Learner]) -> None:
    # Canvas, "How do I import grades in the Gradebook?": Student, ID, SIS User ID, SIS Login ID,
    # Section, then one column per assignment; its export's second row is "Points Possible".
    rows = parse(canvas_csv(reconcile(GRADEBOOK, roster)))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                       "Exercise 01: qkv projections", "Exercise 03: scaling and softmax"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "1", "3"]
    assert rows[2] == ["Łukasiewicz, Zoë", "", "S001", "", "A", "0", "3"]
    assert rows[3] == ["Bob Brown", "", "S002", "", "A", "", "2"]  # the best of two submissions
    assert [row[0] for row in rows[2:]] == ["Łukasiewicz, Zoë", "Bob Brown", "Erin Early"]


def test_canvas_file_quotes_the_comma_and_keeps_the_letters(roster: list[Learner]) -> None:
    text = canvas_csv(reconcile(GRADEBOOK, roster))
    assert '"Łukasiewicz, Zoë",,S001,,A,0,3\r\n' in text
    assert text.encode("utf-8").decode("utf-8") == text and "\ufeff" not in text


def test_moodle_layout_header_and_a_row(roster: list[Learner]) -> None:
    # MoodleDocs, "Grade import": a header row; one column mapped to the user (Email address ->
    # useremail, ID number -> useridnumber), each other column to a grade item.
    rows = parse(moodle_csv(reconcile(GRADEBOOK, roster)))
    assert rows[0] == ["ID number", "Email address", "Full name",
                       "Exercise 01: qkv projections (out of 1)",
                       "Exercise 03: scaling and softmax (out of 3)"]
    assert rows[1] == ["S001", "zoe@example.org", "Łukasiewicz, Zoë", "0", "3"]
    assert rows[3] == ["S005", "erin@example.org", "Erin Early", "", ""]
    assert all(len(row) == len(rows[0]) for row in rows)


def test_every_mismatch_is_listed_not_dropped(roster: list[Learner]) -> None:
    table = reconcile(GRADEBOOK, roster)
    problems = "\n".join(table.problems())
    # a duplicate student id: neither learner gets a row (a grade must not reach the wrong one)
    assert "duplicate student id 'S003'" in problems and "line 4 (carol)" in problems
    assert "line 5 (dave)" in problems
    assert {entry.learner for entry in table.learners} == {"alice", "bob", "erin"}
    # an extra learner: graded, not on the roster
    assert table.not_on_roster == {"mallory": ["mallory/03_scaling_and_softmax.ipynb"]}
    # a missing learner: on the roster, no submission
    assert [entry.learner for entry in table.no_submission] == ["erin"]
    assert "no submission (exported with empty scores): erin" in problems
    assert table.unrecognised == ["alice/notes.ipynb"]
    assert table.several == {("bob", "03_scaling_and_softmax"): [
        "bob/03_scaling_and_softmax.ipynb", "bob/copy of 03.ipynb"]}
    assert len(table.problems()) == 5


def test_a_learner_whose_only_notebook_was_not_recognised_is_not_said_to_have_none(
        roster: list[Learner]) -> None:
    unreadable = {"submission": "erin/03.ipynb", "exercise": "?", "score": "0",
                  "max_score": "0"}
    problems = reconcile([*GRADEBOOK, unreadable], roster).problems()
    assert ("no gradable submission (handed in, but not recognised: erin/03.ipynb) (exported "
            "with empty scores): erin") in "\n".join(problems)
    assert not any(line.startswith("no submission") for line in problems)


def test_a_clean_roster_has_no_problems_and_names_match_without_case(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("Learner,Student_ID,Name,Email\nAlice,S1,Alice,a@x.org\n", encoding="utf-8")
    table = reconcile(GRADEBOOK[:1], read_roster(path))
    assert table.problems() == [] and table.scores == {"Alice": {"03_scaling_and_softmax": 3.0}}


@pytest.mark.parametrize(("text", "message"), [
    ("learner,name,email\nalice,A,a@x\n", "no column student_id"),
    ("learner,student_id,name,email\n", "lists no learners"),
    ("learner,student_id,name,email\n,S1,A,a@x\n", "line 2: no learner name"),
])
def test_a_bad_roster_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RosterError, match=message):
        read_roster(path)


def test_learner_and_exercise_names() -> None:
    assert learner_of("alice/03_scaling_and_softmax.ipynb") == "alice"
    assert learner_of("alice/deep/03.ipynb") == "alice"
    assert learner_of("bob.ipynb") == "bob"
    assert exercise_title("08_masks_heads_and_applications") == (
        "Exercise 08: masks heads and applications")


def test_grade_refuses_lms_without_roster_and_a_bad_roster_before_grading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grades"
    assert main(["grade", str(tmp_path), "--out", str(out), "--lms", "canvas"]) == 2
    assert "--lms needs --roster" in capsys.readouterr().err
    (tmp_path / "roster.csv").write_text("name\nAlice\n", encoding="utf-8")
    assert main(["grade", str(tmp_path), "--out", str(out),
                 "--roster", str(tmp_path / "roster.csv")]) == 2
    assert "no column learner" in capsys.readouterr().err
    assert not out.exists()  # nothing graded, nothing written


SCALE = "import numpy as np\n\ndef scale_scores(A, d_k):\n    return A / np.sqrt(d_k)"
SOFTMAX = ("def softmax(x, axis=-1):\n    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
           "    return e / e.sum(axis=axis, keepdims=True)")


def test_grade_with_roster_writes_the_lms_file_next_to_the_plain_gradebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submissions = tmp_path / "submissions"
    for learner, cells in {"alice": [SCALE, SOFTMAX], "zed": [SCALE]}.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["course"] = {"exercise": "03_scaling_and_softmax"}
        nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
        (submissions / learner).mkdir(parents=True)
        nbformat.write(nb, submissions / learner / "03_scaling_and_softmax.ipynb")
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "grades"
    assert main(["grade", str(submissions), "--out", str(out), "--timeout", "30",
                 "--roster", str(roster), "--lms", "moodle"]) == 0
    captured = capsys.readouterr()
    assert "not on the roster (not exported): zed" in captured.err
    rows = parse((out / "moodle.csv").read_text(encoding="utf-8"))
    assert rows[0][3] == "Exercise 03: scaling and softmax (out of 3)"
    assert rows[1] == ["S001", "zoe@example.org", "Łukasiewicz, Zoë", "2"]
    plain = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text())))
    assert [row["submission"] for row in plain] == [
        "alice/03_scaling_and_softmax.ipynb", "zed/03_scaling_and_softmax.ipynb"]
    # the roster's duplicate id is reported once, before grading (the seed line starts grading)
    assert captured.err.count("duplicate student id 'S003'") == 1
    assert captured.err.index("duplicate student id") < captured.err.index("Seed of this run")


def _submit(folder: Path, learner: str, name: str, exercise: str, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {"exercise": exercise}
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    (folder / learner).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / learner / name)


QKV = "def project_qkv(X, W_Q, W_K, W_V):\n    return X @ W_Q, X @ W_K, X @ W_V"


def test_one_exercise_exports_only_that_exercise_with_its_own_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submissions = tmp_path / "submissions"
    _submit(submissions, "alice", "03_scaling_and_softmax.ipynb", "03_scaling_and_softmax",
            [SCALE, SOFTMAX])
    _submit(submissions, "alice", "01_qkv_projections.ipynb", "01_qkv_projections", [QKV])
    _submit(submissions, "bob", "01_qkv_projections.ipynb", "01_qkv_projections", [QKV])
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "grades"
    assert main(["grade", str(submissions), "--out", str(out), "--timeout", "30", "--seed", "1",
                 "--exercise", "3", "--roster", str(roster), "--lms", "canvas"]) == 0
    captured = capsys.readouterr()
    assert "skipped alice/01_qkv_projections.ipynb: exercise 01_qkv_projections" in captured.out
    assert "skipped bob/01_qkv_projections.ipynb" in captured.out
    rows = parse((out / "canvas.csv").read_text(encoding="utf-8"))
    assert rows[0][5:] == ["Exercise 03: scaling and softmax"]  # no column for exercise 01
    assert rows[1][5:] == ["3"]
    by_name = {row[0]: row[5:] for row in rows[2:]}
    assert by_name["Łukasiewicz, Zoë"] == ["2"] and by_name["Bob Brown"] == [""]  # not a 0


def test_no_learner_matched_is_an_error_and_writes_no_lms_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = tmp_path / "flat"  # notebooks straight in the folder: no folder per learner
    flat.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {"exercise": "03_scaling_and_softmax"}
    nb.cells = [nbformat.v4.new_code_cell(SCALE)]
    nbformat.write(nb, flat / "03_scaling_and_softmax.ipynb")
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    out = tmp_path / "grades"
    assert main(["grade", str(flat), "--out", str(out), "--timeout", "30", "--seed", "1",
                 "--roster", str(roster), "--lms", "canvas"]) == 1
    err = capsys.readouterr().err
    assert "no learner of the roster" in err and "one folder per learner" in err
    assert not (out / "canvas.csv").exists() and (out / "gradebook.csv").is_file()


def test_formulas_are_neutralised_in_the_lms_files_and_undone_when_read_back(
        tmp_path: Path) -> None:
    # a roster name and a learner folder a spreadsheet would evaluate (OWASP, CSV injection)
    path = tmp_path / "roster.csv"
    path.write_text('learner,student_id,name,email\n-eve,S9,"=HYPERLINK(""x"")",e@x.org\n',
                    encoding="utf-8")
    gradebook = tmp_path / "gradebook.csv"
    with open(gradebook, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["submission", "exercise", "score", "max_score", "status"])
        writer.writerow([csv_safe(v) for v in
                         ["-eve/03.ipynb", "03_scaling_and_softmax", "2", "3", "ran"]])
    table = reconcile(read_gradebook(gradebook), read_roster(path))
    assert table.scores["-eve"]["03_scaling_and_softmax"] == 2  # the folder, read back exactly
    for text in (canvas_csv(table), moodle_csv(table)):
        assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and '"=HYPERLINK' not in text
    for value in ("=1+1", "-x", "'quoted", "''", "plain", "@a"):
        assert csv_read_back(csv_safe(value)) == value


def test_identity_columns_are_written_verbatim_and_formula_like_ids_reported(
        tmp_path: Path) -> None:
    """The LMS matches a learner on these columns: `-4471` written `'-4471` would match no one.
    Free text keeps the formula escape; an id that looks like a formula is reported."""
    path = tmp_path / "roster.csv"
    path.write_text("learner,student_id,name,email,section,canvas_id,sis_login_id\n"
                    "ann,-4471,=Ann,@ann@example.org,+A,=7,+33612\n"
                    "ben,S2,Ben,ben@example.org,B,8,ben\n", encoding="utf-8")
    rows = [{"submission": f"{who}/03.ipynb", "exercise": "03_scaling_and_softmax",
             "score": "2", "max_score": "3", "status": "ran"} for who in ("ann", "ben")]
    table = reconcile(rows, read_roster(path))
    canvas = parse(canvas_csv(table))
    assert canvas[2][:5] == ["'=Ann", "=7", "-4471", "+33612", "'+A"]
    moodle = parse(moodle_csv(table))
    assert moodle[1][:3] == ["-4471", "@ann@example.org", "'=Ann"]
    problems = "\n".join(table.problems())
    for value in ("'-4471'", "'=7'", "'+33612'", "'@ann@example.org'"):
        assert "ann's" in problems and value in problems, value
    assert "ben" not in problems
    assert len(table.formula_ids) == 4
