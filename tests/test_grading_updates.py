"""Which learners did not get an update: issue 22, section 4.

nbgitpuller keeps a learner's lines where both the learner and the instructor changed the same
lines of a notebook (both appended a cell at its end), and drops the instructor's without a word.
The grader compares each submission's cell ids with the released notebooks' and lists those that
lack some of them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from test_grading import CORRECT, TIMEOUT, notebook, write

from course_lib.__main__ import main
from course_lib.grading import grade, lacking_updates
from course_lib.grading.updates import lacking, read_release

ROOT = Path(__file__).resolve().parent.parent
EXERCISE = "03_scaling_and_softmax"


def test_a_submission_that_lacks_the_instructors_new_cell_is_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    released = nbformat.read(ROOT / "exercises" / f"{EXERCISE}.ipynb", as_version=4)
    subs = tmp_path / "subs"
    for learner in ("alice", "bob"):
        (subs / learner).mkdir(parents=True)
    # alice appended a cell to the old release; a re-pull kept her version (nbgitpuller's case 3)
    alice = nbformat.from_dict(released)
    alice.cells.append(nbformat.v4.new_code_cell("# my own notes\nx = 1"))
    write(subs / "alice", "03.ipynb", alice)
    # the instructor appended a cell to the release; bob has it
    release = tmp_path / "exercises"
    release.mkdir()
    updated = nbformat.from_dict(released)
    new_cell = nbformat.v4.new_markdown_cell("## A question added after the workshop began")
    new_cell.id = "03-added"
    updated.cells.append(new_cell)
    nbformat.write(updated, release / f"{EXERCISE}.ipynb")
    write(subs / "bob", "03.ipynb", updated)
    write(subs, "by_hand.ipynb", notebook(*CORRECT))  # no released cell ids: nothing known
    graded = grade([subs], tmp_path / "grades", timeout=TIMEOUT, release=release)
    assert lacking_updates(tmp_path / "grades") == {
        "alice/03.ipynb": ["## A question added after the workshop began"]}
    alice_graded = next(g for g in graded if g.submission == "alice/03.ipynb")
    assert any("lacks 1 cell(s) of the current exercise" in n for n in alice_graded.notes)
    assert main(["grade", str(subs), "--out", str(tmp_path / "cli"), "--timeout", str(TIMEOUT),
                 "--release", str(release)]) == 0
    out = capsys.readouterr().out
    assert "not up to date: alice/03.ipynb lacks 1 cell(s)" in out
    assert "bob/03.ipynb" not in out.split("not up to date")[-1]


def test_unrelated_notebooks_and_missing_releases_say_nothing(tmp_path: Path) -> None:
    shutil.copy(ROOT / "exercises" / f"{EXERCISE}.ipynb", tmp_path)
    release = read_release(tmp_path)
    ids = tuple(cell_id for cell_id, _ in release[EXERCISE])
    assert lacking(EXERCISE, ids, release) == []
    assert lacking(EXERCISE, ids[:-1], release) == [release[EXERCISE][-1][1]]
    assert lacking(EXERCISE, ("random-id",), release) == []
    assert lacking("01_qkv_projections", ids[:1], release) == []


def test_a_release_check_that_cannot_run_is_said_and_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graded from a folder with no exercises/: the check is skipped, and the console and
    gradebook.json say so (a learner who lacks an update must not pass unnoticed in silence)."""
    (tmp_path / "subs").mkdir()
    write(tmp_path / "subs", "a.ipynb", notebook(*CORRECT))
    monkeypatch.chdir(tmp_path)  # no ./exercises here
    assert main(["grade", "subs", "--out", "grades", "--timeout", str(TIMEOUT)]) == 0
    assert "release check: skipped (no folder" in capsys.readouterr().err
    settings = json.loads((tmp_path / "grades" / "gradebook.json").read_text())["settings"]
    assert settings["release"] is None
    release = tmp_path / "exercises"
    release.mkdir()
    assert main(["grade", "subs", "--out", "again", "--timeout", str(TIMEOUT)]) == 0
    assert "release check: skipped" not in capsys.readouterr().err
    settings = json.loads((tmp_path / "again" / "gradebook.json").read_text())["settings"]
    assert settings["release"] == str(release.resolve())
