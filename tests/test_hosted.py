"""The set-up cell for hosted notebooks: the tool that inserts it, and lesson 00 in a bare venv.

The last test is the hosted service's situation: a fresh virtual environment with only
ipykernel, numpy, matplotlib and ipywidgets (what Colab or Binder offer), lesson 00 with the cell
inserted, and COURSE_LIB_URL pointing at a local clone of the repository. It needs pip to reach a
package index (for those four packages and the build backend).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.__main__ import main
from course_lib.hosted import (
    ENV_VAR,
    TAG,
    default_notebooks,
    has_setup_cell,
    insert_setup_cell,
    setup_cell_source,
    update_notebooks,
)
from course_lib.release import student_notebook

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "00_welcome.ipynb"
MASTER = ROOT / "exercises" / "solutions" / "03_scaling_and_softmax.ipynb"
URL = "git+https://example.org/course"


def test_the_cell_is_inserted_once_at_the_top_and_updated_in_place(tmp_path: Path) -> None:
    nb = nbformat.read(LESSON, as_version=4)
    nb.cells = [cell for cell in nb.cells if TAG not in cell.metadata.get("tags", [])]
    first = nb.cells[0].source  # the lesson's title, as before any set-up cell
    assert insert_setup_cell(nb, URL) and nb.cells[0].metadata["tags"] == [TAG]
    assert nb.cells[0].source == setup_cell_source(URL) and nb.cells[1].source == first
    assert not insert_setup_cell(nb, URL)  # idempotent
    assert insert_setup_cell(nb, URL + "@v2")  # a new URL: the same cell, updated
    assert sum(TAG in cell.metadata.get("tags", []) for cell in nb.cells) == 1
    assert has_setup_cell(nb, URL + "@v2") and not has_setup_cell(nb, URL)
    nb.cells.append(nb.cells.pop(0))  # misplaced: moved back to the top
    assert insert_setup_cell(nb, URL + "@v2") and has_setup_cell(nb, URL + "@v2")
    nbformat.validate(nb)


def test_the_tool_writes_only_what_lacks_the_cell(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for source in (LESSON, MASTER):
        shutil.copyfile(source, tmp_path / source.name)
    paths = sorted(tmp_path.glob("*.ipynb"))
    assert main(["setup-cells", "--check", *map(str, paths), "--repo", URL]) == 1
    assert main(["setup-cells", *map(str, paths), "--repo", URL]) == 0
    written = {path: path.read_bytes() for path in paths}
    assert update_notebooks(paths, URL) == []  # second run: nothing to do, nothing written
    assert {path: path.read_bytes() for path in paths} == written
    assert main(["setup-cells", "--check", *map(str, paths), "--repo", URL]) == 0
    capsys.readouterr()
    assert main(["setup-cells", *map(str, paths)]) == 0  # the default: written, with a reminder
    assert "placeholder" in capsys.readouterr().err
    assert all(has_setup_cell(nbformat.read(path, as_version=4)) for path in paths)


def test_every_lesson_and_master_starts_with_the_current_cell() -> None:
    notebooks = default_notebooks(ROOT)
    lessons = (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    masters = (ROOT / "exercises" / "solutions").glob("[0-9][0-9]_*.ipynb")
    assert sorted(map(Path, notebooks)) == sorted([*lessons, *masters])  # every lesson and master
    assert update_notebooks(notebooks, check=True) == []
    for student in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):  # released
        assert has_setup_cell(nbformat.read(student, as_version=4)), student.name


def test_release_hands_the_cell_on_to_the_student_notebook() -> None:
    master = nbformat.read(MASTER, as_version=4)
    insert_setup_cell(master, URL)
    student = student_notebook(master)
    assert student.cells[0].source == setup_cell_source(URL)
    assert student.cells[0].metadata["tags"] == [TAG]


def test_the_cell_does_nothing_where_course_lib_is_installed() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(setup_cell_source(URL), {})
    assert out.getvalue() == ""


def test_default_notebooks_are_the_lessons_and_the_masters() -> None:
    found = default_notebooks(ROOT)
    assert LESSON in found and MASTER in found
    assert not any(path.parent == ROOT / "exercises" for path in found)


@pytest.mark.parametrize("url", ["", 'x"; import os', "a\nb"])
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        setup_cell_source(url)


def local_clone(destination: Path) -> Path:
    """A git repository with what `pip install` needs of the course: the package."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, destination / name)
    shutil.copytree(ROOT / "course_lib", destination / "course_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "course"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                       cwd=destination, check=True, capture_output=True)
    return destination


def test_lesson_00_runs_in_a_bare_environment_after_the_set_up_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "ipykernel", "numpy", "matplotlib",
         "ipywidgets"], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert subprocess.run([str(python), "-c", "import course_lib"], cwd=tmp_path,
                          capture_output=True).returncode != 0  # really not there
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(tmp_path / "jp"),
                    "--name", "bare"], check=True, capture_output=True)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp" / "share" / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    clone = local_clone(tmp_path / "clone")
    monkeypatch.setenv(ENV_VAR, f"git+file://{clone}")

    lesson = nbformat.read(LESSON, as_version=4)
    insert_setup_cell(lesson, "git+https://example.org/unreachable")  # the variable wins
    work = tmp_path / "lesson"
    work.mkdir()
    NotebookClient(lesson, timeout=600, kernel_name="bare",
                   resources={"metadata": {"path": str(work)}}).execute()

    said = "".join(out.get("text", "") for out in lesson.cells[0].outputs)
    assert f"installing it from git+file://{clone}" in said
    errors = [out for cell in lesson.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert not errors
    images = [out for cell in lesson.cells if cell.cell_type == "code" for out in cell.outputs
              if "image/png" in out.get("data", {})]
    assert images  # the preview's heatmap was drawn
    again = nbformat.v4.new_notebook(cells=[lesson.cells[0].copy()])
    NotebookClient(again, timeout=600, kernel_name="bare",
                   resources={"metadata": {"path": str(work)}}).execute()
    assert again.cells[0].outputs == []  # installed now: the cell does nothing, says nothing


def test_the_grader_runs_a_notebook_with_the_cell_and_installs_nothing(tmp_path: Path) -> None:
    from course_lib.grading import grade

    learner = nbformat.read(MASTER, as_version=4)  # the master's code, as a learner's
    for cell in learner.cells:
        cell.source = "\n".join(line for line in cell.source.splitlines()
                                if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    insert_setup_cell(learner, "git+https://example.org/must-not-be-fetched")
    nbformat.write(learner, tmp_path / "03.ipynb")
    (graded,) = grade([tmp_path / "03.ipynb"], tmp_path / "grades", timeout=60)
    assert (graded.score, graded.max_score, graded.status) == (3, 3, "ran")
    assert not any(note.startswith("cell 1 ") for note in graded.notes), graded.notes  # quiet
