"""The release tool: student notebooks are generated from the masters, exactly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.__main__ import main
from course_lib.checks import CHECKS
from course_lib.hosted import TAG as SETUP_TAG
from course_lib.release import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    masters,
    normalize,
    release,
    strip_solutions,
    student_notebook,
    write_notebook,
)

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
MASTERS = masters(EXERCISES)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _skeleton(nb: nbformat.NotebookNode) -> dict:
    """What release decides, without the outputs (nbval checks those)."""
    return {
        "metadata": {key: nb.metadata.get(key) for key in ("course", "kernelspec")},
        "cells": [
            (cell.get("id"), cell.cell_type, cell.source, dict(cell.metadata))
            for cell in nb.cells
        ],
    }


# -- strip_solutions -----------------------------------------------------------------------------


def test_a_solution_block_becomes_the_stub_at_its_indentation():
    source = (
        "def f(x):\n"
        '    """Doc."""\n'
        "    ### BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    return y\n"
        "    ### END SOLUTION\n"
        "\n"
        "### BEGIN SOLUTION\n"
        "z = 2\n"
        "### END SOLUTION"
    )
    assert strip_solutions(source) == (
        "def f(x):\n"
        '    """Doc."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError\n"
        "\n"
        "# YOUR CODE HERE\n"
        "raise NotImplementedError"
    )


def test_source_without_markers_is_unchanged():
    assert strip_solutions("x = 1\nprint(x)") == "x = 1\nprint(x)"


@pytest.mark.parametrize(
    "source",
    [
        f"{BEGIN_SOLUTION}\nx = 1",
        f"x = 1\n{END_SOLUTION}",
        f"{BEGIN_SOLUTION}\n{BEGIN_SOLUTION}\n{END_SOLUTION}",
    ],
)
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(ValueError):
        strip_solutions(source)


def test_markdown_answers_are_stubbed():
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(f"Q?\n{BEGIN_SOLUTION}\nA.\n{END_SOLUTION}")]
    )
    nb.metadata["course"] = {"exercise": "99_x", "functions": []}
    assert student_notebook(nb).cells[0].source == "Q?\nYOUR ANSWER HERE"


def test_a_master_needs_course_metadata():
    with pytest.raises(ValueError, match="metadata.course"):
        student_notebook(nbformat.v4.new_notebook())


# -- the committed notebooks ---------------------------------------------------------------------


def test_there_are_four_exercises():
    assert [p.stem[:2] for p in MASTERS if p.stem[:2] in ("01", "02", "03", "04")] == [
        "01", "02", "03", "04"
    ]


def test_exercise_07_is_released():
    assert "08_masks_heads_and_applications" in [p.stem for p in MASTERS]


def test_exercises_05_and_06_are_released():
    stems = [p.stem for p in MASTERS]
    assert "06_rnn_vs_attention" in stems and "07_parallelism" in stems


def test_exercise_05_training_is_released():
    assert "05_training" in [p.stem for p in MASTERS]


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_committed_student_notebook_is_what_release_produces(master):
    committed = EXERCISES / master.name
    assert committed.exists(), f"run `python -m course_lib release` to create {committed}"
    expected = student_notebook(_read(master))
    assert _skeleton(_read(committed)) == _skeleton(expected), (
        f"{committed.name} differs from its master: run `python -m course_lib release`"
    )


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_student_notebook_is_executed_and_every_check_says_not_implemented(master):
    nb = _read(EXERCISES / master.name)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert BEGIN_SOLUTION not in nbformat.writes(nb)
    for cell in code:
        assert all(output.output_type != "error" for output in cell.outputs)
        assert "execution" not in cell.metadata
        if cell.source.startswith("check_"):
            text = cell.outputs[0]["data"]["text/plain"]
            assert text.startswith("✗") and "not implemented yet" in text


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_master_is_consistent_with_the_checkers(master):
    nb = _read(master)
    course = nb.metadata["course"]
    assert course["exercise"] == master.stem
    assert nb.metadata["kernelspec"]["name"] == "python3"
    nb.cells = [cell for cell in nb.cells if SETUP_TAG not in cell.metadata.get("tags", [])]
    sources = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for function in course["functions"]:
        assert function in CHECKS
        assert f"def {function}(" in sources
        assert f"check_{function}({function})" in sources
    # the exercise uses the checkers, never the reference implementation
    imports = re.findall(r"^(?:from|import) .*$", sources, flags=re.MULTILINE)
    assert all(line == "import numpy as np" or "course_lib.checks" in line for line in imports)
    # links back to its lesson
    assert f"../notebooks/{master.stem}.ipynb" in nb.cells[0].source
    # every check passes in the solutions
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("check_"):
            assert cell.outputs[0]["data"]["text/plain"].startswith("✓"), cell.source


# -- running release -----------------------------------------------------------------------------


def test_release_regenerates_a_notebook_byte_for_byte(tmp_path):
    """Executes one exercise in a fresh kernel (a few seconds): same bytes as committed."""
    master = MASTERS[1]
    (tmp_path / "solutions").mkdir()
    shutil.copy(master, tmp_path / "solutions" / master.name)
    [written] = release(tmp_path, [master.stem[:2]])
    assert written.read_bytes() == (EXERCISES / master.name).read_bytes()


def test_the_kernels_python_version_is_not_recorded():
    """The same release on another Python (3.11.2, 3.12, ...) gives the same bytes."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.2"}
    assert normalize(nb).metadata["language_info"] == {"name": "python"}
    for path in [*EXERCISES.glob("*.ipynb"), *(EXERCISES / "solutions").glob("*.ipynb")]:
        assert "version" not in json.loads(path.read_text())["metadata"].get("language_info", {})


def test_cli_release_without_execution(tmp_path, capsys):
    shutil.copytree(EXERCISES / "solutions", tmp_path / "solutions")
    assert main(["release", "--no-execute", "--exercises", str(tmp_path), "01", "04"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [
        MASTERS[0].name,
        MASTERS[3].name,
    ]
    assert "released" in capsys.readouterr().out
    first = (tmp_path / MASTERS[0].name).read_bytes()
    write_notebook(_read(tmp_path / MASTERS[0].name), tmp_path / "again.ipynb")
    assert (tmp_path / "again.ipynb").read_bytes() == first


def test_cli_reports_missing_masters(tmp_path):
    assert main(["release", "--no-execute", "--exercises", str(tmp_path)]) == 1


def test_cli_needs_a_command():
    with pytest.raises(SystemExit):
        main([])
