"""What each isolation mode guarantees about the course's own files (issue 22 §3, last bullet).

A submission that knows where the course is (its path is in the grader's own packages folder)
reads a solution master and runs its code. In every mode the grader offers, it must fail to
read it, or the grader must refuse to run: under bubblewrap the course is not in the
sandbox's view; as an unprivileged user of its own without bubblewrap, the grader first checks
as that user that it can read no file of the course (`isolation.course_files`) and refuses
otherwise; with neither, it refuses unless the risk is accepted, and then nothing is
protected (said, and shown).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_grading import CORRECT, IMPORTS, ROOT, TIMEOUT, notebook, write

from course_lib.grading import UncontainedError, detect_isolation, grade, refusal
from course_lib.grading import isolation as isolation_module

MASTER = "03_scaling_and_softmax.ipynb"
SNOOP = '''import glob, json, os
read = []
for path in sorted(glob.glob(os.path.join(COURSE, "exercises", "solutions", "03*.ipynb"))):
    try:
        with open(path, encoding="utf-8") as file:
            master = json.load(file)
    except OSError:
        continue
    read.append(path)
    for cell in master["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def " in source and "check_" not in source:
            exec(source, globals())
print("read:", read)'''
AS_ROOT = os.geteuid() == 0


def snooping(folder: Path, course: Path) -> Path:
    """A notebook that defines no function itself: only what it reads from `course`'s
    master (3/3 when it can read it, 0/3 when it cannot)."""
    return write(folder, "snoop.ipynb", notebook(IMPORTS, f"COURSE = {str(course)!r}", SNOOP))


@pytest.fixture
def fake_course() -> Iterator[Path]:
    """A copy of the course's master and reference in a folder any user may pass (unlike
    pytest's own temporary folders), so that only the course's own modes decide."""
    top = Path(tempfile.mkdtemp(prefix="course-modes-"))
    os.chmod(top, 0o755)
    course = top / "course"
    (course / "exercises" / "solutions").mkdir(parents=True)
    (course / "course_lib").mkdir()
    shutil.copy(ROOT / "exercises" / "solutions" / MASTER, course / "exercises" / "solutions")
    shutil.copy(ROOT / "course_lib" / "attention.py", course / "course_lib")
    for folder in (course, course / "exercises", course / "exercises" / "solutions",
                   course / "course_lib"):
        os.chmod(folder, 0o755)
    for path in course.rglob("*.*"):
        os.chmod(path, 0o644)
    try:
        yield course
    finally:
        shutil.rmtree(top)


def _files(course: Path) -> tuple[Path, ...]:
    return (course / "course_lib" / "attention.py", course / "exercises" / "solutions" / MASTER)


def test_the_course_files_are_the_reference_and_the_masters() -> None:
    files = isolation_module.course_files()
    assert ROOT / "course_lib" / "attention.py" in files
    assert ROOT / "exercises" / "solutions" / MASTER in files


@pytest.mark.skipif(not AS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_the_probe_reads_as_a_user_of_its_own(fake_course: Path) -> None:
    files = _files(fake_course)
    assert isolation_module.readable_by_own_user(files) == str(files[0])
    os.chmod(fake_course, 0o700)  # as `chmod 700` on a checkout
    assert isolation_module.readable_by_own_user(files) == ""
    os.chmod(fake_course, 0o755)
    for path in files:
        os.chmod(path, 0o600)
    assert isolation_module.readable_by_own_user(files) == ""


@pytest.mark.skipif(not AS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_user_of_its_own_that_can_read_the_course_is_refused(
        tmp_path: Path, path_with, fake_course: Path,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No bubblewrap, root, a runtime other users can start: the mode runs only where that user
    can read no file of the course. (The runtime's start is taken as given here: on a machine
    whose runtime lives under /root it cannot, and the mode is refused for that reason.)"""
    path_with("setpriv")
    monkeypatch.setattr(isolation_module, "starts", lambda prefix, unprivileged: True)
    monkeypatch.setattr(isolation_module, "course_files", lambda: _files(fake_course))
    isolation = detect_isolation()
    assert isolation.unprivileged and not isolation.contained
    assert isolation.readable_course == str(_files(fake_course)[0])
    message = refusal(isolation)
    for words in ("refuses to run the submissions", "can read the course's own files",
                  str(_files(fake_course)[0]), "install bubblewrap", "chmod 700",
                  isolation_module.ACCEPT_RISK_FLAG):
        assert words in message, words
    assert "\n" not in message
    out = tmp_path / "grades"
    with pytest.raises(UncontainedError):
        grade([snooping(tmp_path, fake_course)], out, timeout=TIMEOUT)
    assert not out.exists()  # nothing ran
    os.chmod(fake_course, 0o700)  # the instructor follows the advice
    detect_isolation.cache_clear()
    isolation = detect_isolation()
    assert isolation.contained and refusal(isolation) == ""
    assert "unprivileged user" in isolation.label and isolation.readable_course == ""


MODES = {  # name: (PATH holds, isolation, accept_risk)
    "bwrap, unprivileged user": (("bwrap", "setpriv"), "auto", False),
    "bwrap, as root or as the grader's user": (("bwrap",), "auto", False),
    "no bwrap, unprivileged user": (("setpriv",), "auto", False),
    "no isolation, no user of its own": ((), "none", False),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_submission_cannot_read_the_masters_in_any_mode_the_grader_runs(
        tmp_path: Path, path_with, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The real checkout, as this machine has it: the snooping notebook scores 0 (it could not
    read the master), or the grader refuses to run it."""
    programs, isolation, accept_risk = MODES[mode]
    if any(shutil.which(p) is None for p in programs):
        pytest.skip(f"needs {', '.join(programs)}")
    path_with(*programs)
    detected = detect_isolation(isolation)
    if mode.startswith("bwrap") and not detected.isolated:
        pytest.skip("bubblewrap cannot run here")
    folder = tmp_path / "subs"
    folder.mkdir()
    snooping(folder, ROOT)
    write(folder, "honest.ipynb", notebook(*CORRECT))
    if not detected.contained:
        with pytest.raises(UncontainedError) as refused:
            grade([folder], tmp_path / "out", timeout=TIMEOUT, isolation=isolation)
        assert "refuses to run the submissions" in str(refused.value)
        return
    graded = {g.submission: g for g in grade([folder], tmp_path / "out", timeout=TIMEOUT,
                                             isolation=isolation, accept_risk=accept_risk)}
    assert graded["honest.ipynb"].score == 3
    assert graded["snoop.ipynb"].score == 0, graded["snoop.ipynb"].status


def test_with_the_risk_accepted_nothing_protects_the_masters(
        tmp_path: Path, path_with) -> None:  # type: ignore[no-untyped-def]
    """The flag with the unmistakable name means what it says: the master is read (3/3)."""
    path_with()
    if detect_isolation("none").contained:  # pragma: no cover - a runtime any user may start
        pytest.skip("this machine runs a sandbox as a user of its own even without setpriv")
    [graded] = grade([snooping(tmp_path, ROOT)], tmp_path / "out", timeout=TIMEOUT,
                     isolation="none", accept_risk=True)
    assert graded.score == 3
    assert graded.isolation.startswith("none (no isolation)")


def test_bubblewrap_hides_the_course_where_it_is_installed_into_the_runtime(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A course installed into the runtime's packages (not in editable mode) lies inside a
    folder the sandbox sees: bubblewrap mounts an empty folder over it."""
    inside = Path(isolation_module.site_packages()) / "course_lib"
    monkeypatch.setattr(isolation_module, "course_files", lambda: (inside / "attention.py",))
    isolation_module.bwrap_view.cache_clear()
    try:
        view = isolation_module.bwrap_view()
        position = view.index(str(inside))
        assert view[position - 1] == "--tmpfs"
        assert position > max(i for i, arg in enumerate(view) if arg == "--ro-bind")
    finally:
        isolation_module.bwrap_view.cache_clear()


def test_modes_are_stated_in_the_readme_and_the_boundary() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    boundary = (ROOT / "course_lib" / "grading" / "BOUNDARY.md").read_text(encoding="utf-8")
    for text in (readme, boundary):
        assert "nothing a submission does can raise its grade" not in text.lower()
        assert "can read no file of the course" in text
