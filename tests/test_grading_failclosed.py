"""The grader fails closed, and grades private copies: issue 22, section 1.

Where nothing keeps a submission from the other learners' files and from the course (no
bubblewrap, and no user of its own for the sandbox), the grader refuses to run submissions,
says why and what to do, unless told that the risk is accepted. In every mode it offers, each
notebook is read once into a private staging folder before any learner's code runs and that
copy is graded: a submission that overwrites its neighbours, the gradebook and the feedback
folder changes no grade, and, wherever the grader isolates, no original. The modes are chosen
as an instructor's machine would: PATH without bwrap (and without setpriv, so that root cannot
run a sandbox as a user of its own).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from test_grading import CORRECT, TIMEOUT, notebook, write

from course_lib.__main__ import main
from course_lib.grading import (
    ACCEPT_RISK_FLAG,
    UncontainedError,
    changed_originals,
    detect_isolation,
    grade,
)
from course_lib.grading import isolation as isolation_module
from course_lib.grading.staging import Staging
from course_lib.grading.submissions import find_submissions, read_submission

BWRAP, SETPRIV = shutil.which("bwrap"), shutil.which("setpriv")


def _uncontained_here(path_with) -> None:  # type: ignore[no-untyped-def]
    """No bubblewrap, and no user of its own (no setpriv; or not root)."""
    path_with()
    isolation = detect_isolation()
    if isolation.contained:  # pragma: no cover - a runtime any user may start, as root
        pytest.skip("this machine runs a sandbox as a user of its own even without setpriv")


def test_without_isolation_the_grader_refuses_and_says_what_to_do(
        tmp_path: Path, path_with, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _uncontained_here(path_with)
    path = write(tmp_path, "alice.ipynb", notebook(*CORRECT))
    out = tmp_path / "grades"
    with pytest.raises(UncontainedError) as refused:
        grade([path], out, timeout=TIMEOUT)
    message = str(refused.value)
    for advice in ("bubblewrap (bwrap) is not installed", "install bubblewrap",
                   "unprivileged user of its own", ACCEPT_RISK_FLAG,
                   "read every solution", "change every other learner's notebook"):
        assert advice in message, advice
    assert "\n" not in message  # one paragraph
    assert not out.exists()  # nothing was run, nothing was written
    assert main(["grade", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refuses to run the submissions" in err and ACCEPT_RISK_FLAG in err
    assert not out.exists()


@pytest.mark.may_skip_in_ci  # skipped where the runtime starts as another user
def test_no_isolation_as_root_without_a_user_of_its_own_is_refused(
        tmp_path: Path, path_with) -> None:  # type: ignore[no-untyped-def]
    """--no-isolation does not open the door: it still needs a user of its own."""
    path_with("bwrap")
    isolation = detect_isolation("none")
    if isolation.contained:
        pytest.skip("the runtime starts as another user here: --no-isolation is contained")
    assert "isolation turned off" in isolation_module.refusal(isolation)
    with pytest.raises(UncontainedError):
        grade([write(tmp_path, "a.ipynb", notebook(*CORRECT))], tmp_path / "out",
              timeout=TIMEOUT, isolation="none")


def test_the_flag_with_the_unmistakable_name_grades_anyway(
        tmp_path: Path, path_with, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _uncontained_here(path_with)
    path = write(tmp_path, "alice.ipynb", notebook(*CORRECT))
    out = tmp_path / "grades"
    assert main(["grade", str(path), "--out", str(out), "--timeout", str(TIMEOUT),
                 ACCEPT_RISK_FLAG]) == 0
    assert "warning: no isolation" in capsys.readouterr().err
    [row] = csv.DictReader(open(out / "gradebook.csv", encoding="utf-8"))
    assert row["score"] == "3" and row["isolation"].startswith("none (no isolation)")
    assert json.loads((out / "gradebook.json").read_text())["settings"]["contained"] is False


# -- a hostile submission in every mode the grader offers ---------------------------------------

ATTACK = '''import glob, os
targets = glob.glob(os.path.join(SUBS, "*", "*.ipynb"))
targets += glob.glob(os.path.join(OUT, "*")) + glob.glob(os.path.join(OUT, "feedback", "*"))
targets += glob.glob(os.path.join(SCRATCH, "course-grade-*", "*"))  # the staged copies
for path in targets:
    try:
        with open(path, "w") as file:
            file.write("{}")
    except OSError:
        pass
for path in (os.path.join(OUT, "feedback", "planted.md"), os.path.join(OUT, "gradebook.csv")):
    try:
        with open(path, "w") as file:
            file.write("hacked")
    except OSError:
        pass'''

MODES = {  # name: (PATH holds, isolation, accept_risk, whether the originals are kept)
    "bwrap, unprivileged user": (("bwrap", "setpriv"), "auto", False, True),
    "bwrap, as root or as the grader's user": (("bwrap",), "auto", False, True),
    "no bwrap, unprivileged user": (("setpriv",), "auto", False, True),
    "no isolation, risk accepted": ((), "none", True, False),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", [  # a user of its own without bwrap needs root and a runtime
    pytest.param(mode, marks=pytest.mark.may_skip_in_ci) if mode == "no bwrap, unprivileged user"
    else mode for mode in sorted(MODES)])  # that other users may read: it depends on the host
def test_a_submission_that_overwrites_its_neighbours_changes_no_grade(
        tmp_path: Path, path_with, mode: str,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    programs, isolation, accept_risk, kept = MODES[mode]
    if any(shutil.which(p) is None for p in programs):
        pytest.skip(f"needs {', '.join(programs)}")
    path_with(*programs)
    detected = detect_isolation(isolation)
    if mode.startswith("bwrap") and not detected.isolated:
        pytest.skip("bubblewrap cannot run here")
    if mode == "bwrap, as root or as the grader's user" and detected.unprivileged:
        pytest.skip("setpriv is reachable without PATH here")  # pragma: no cover
    if mode == "no bwrap, unprivileged user" and not detected.contained:
        pytest.skip("no user of its own here: the Python runtime cannot start as another user "
                    "(e.g. under /root), or that user can read the course (then the mode is "
                    "refused: tests/test_grading_modes.py)")
    subs, out, scratch = tmp_path / "subs", tmp_path / "grades", tmp_path / "scratch"
    for learner in ("alice", "bob", "carol"):
        (subs / learner).mkdir(parents=True)
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the grader's staging folder
    setup = f"SUBS = {str(subs)!r}\nOUT = {str(out)!r}\nSCRATCH = {str(scratch)!r}"
    write(subs / "alice", "03.ipynb", notebook(*CORRECT, setup, ATTACK))
    write(subs / "bob", "03.ipynb", notebook(*CORRECT))
    write(subs / "carol", "03.ipynb", notebook(*CORRECT))
    out.mkdir()
    (out / "feedback").mkdir()
    (out / "gradebook.csv").write_text("the previous gradebook\n")  # what a re-run replaces
    before = {p: _sha256(p) for p in subs.rglob("*.ipynb")}
    graded = grade([subs], out, timeout=TIMEOUT, isolation=isolation, accept_risk=accept_risk)
    assert {g.submission: g.score for g in graded} == {
        "alice/03.ipynb": 3, "bob/03.ipynb": 3, "carol/03.ipynb": 3}
    assert "hacked" not in (out / "gradebook.csv").read_text()  # written after every run
    document = json.loads((out / "gradebook.json").read_text())
    graded_hashes = {s["submission"]: s["sha256"] for s in document["submissions"]}
    assert graded_hashes == {p.relative_to(subs).as_posix(): h for p, h in before.items()}
    after = {p: _sha256(p) for p in subs.rglob("*.ipynb")}
    if kept:
        assert after == before
        assert changed_originals(out) == []
        assert not (out / "feedback" / "planted.md").exists()
    else:  # nothing stops it; the grader says so, and what it graded
        assert after != before
        changed = [p.relative_to(subs).as_posix() for p in before if after[p] != before[p]]
        assert changed_originals(out) == sorted(changed)
        bob = next(g for g in graded if g.submission == "bob/03.ipynb")
        assert any("changed while the batch was graded" in note for note in bob.notes)


def test_each_submission_is_read_once_into_a_private_copy(tmp_path: Path) -> None:
    original = write(tmp_path, "alice.ipynb", notebook(*CORRECT))
    [found] = find_submissions([original])
    with Staging() as staging:
        staged = staging.stage(found)
        folder = staged.path.parent
        assert staged.path != original and staged.name == "alice.ipynb"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert staged.path.read_bytes() == original.read_bytes()
        assert read_submission(staged).cells == read_submission(found).cells
        assert staging.changed() == []
        original.write_text("{}")
        assert staging.changed() == ["alice.ipynb"]
        assert staging.sha256("alice.ipynb") != _sha256(original)
    assert not folder.exists()
