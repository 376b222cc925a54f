"""The maintainer-check convention, on every notebook of the course (issue 20, §4.6).

A learner reads teaching, not test code. A block of `assert`s that checks a result for the
maintainers sits in a code cell of its own, right after the cell it checks, tagged
`maintainer-check`, collapsed and out of the slides:

    metadata {"tags": ["maintainer-check"], "jupyter": {"source_hidden": true},
              "slideshow": {"slide_type": "skip"}}
    first line: # Maintainer check: <what holds, in words>
    no outputs (it prints nothing)

No other code cell holds an `assert`: a sanity check the lesson teaches is a printed comparison
(`print(np.allclose(a, b))` -> True), which nbval compares anyway. Cells are parsed with `ast`
after IPython's own input transformation (magics, `!` shell lines, `?` help become Python), so an
`assert` is found wherever it is (in a loop, in a function) and a word "assert" in a string or a
comment is not one. The static site and the slides leave these cells out (course_lib/site.py,
tests/test_site.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
TAG = "maintainer-check"
FIRST_LINE = "# Maintainer check:"
# IPython cell magics whose body is Python run by the kernel.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "python", "python3"}
NOTEBOOKS = sorted(
    path
    for folder in ("notebooks", "exercises", "exercises/solutions")
    for path in (ROOT / folder).glob("*.ipynb")
)


def code_cells(path: Path) -> list[tuple[int, nbformat.NotebookNode]]:
    """(index, cell) of every code cell; the index is the cell's position in the notebook."""
    notebook = nbformat.read(path, as_version=4)
    return [(i, cell) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def asserts_in(source: str) -> list[int]:
    """Line numbers (in the cell) of the `assert` statements of a code cell.

    Raises SyntaxError when the cell is not Python once IPython's syntax is transformed. A cell
    magic whose body is Python (`%%time`, `%%capture`, ...) is checked in its body; a cell of
    another language (`%%bash`, `%%html`, ...) holds no Python assert.
    """
    offset = 0
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        magic = lines[0][2:].split(maxsplit=1)[0] if lines[0][2:].strip() else ""
        if magic not in PYTHON_CELL_MAGICS:
            return []
        source, offset = "\n".join(lines[1:]), 1
    python = TransformerManager().transform_cell(source)
    return sorted(node.lineno + offset for node in ast.walk(ast.parse(python))
                  if isinstance(node, ast.Assert))


def where(path: Path, index: int, cell: nbformat.NotebookNode) -> str:
    first = cell.source.strip().splitlines()[0][:70] if cell.source.strip() else "(empty)"
    return f"{path.relative_to(ROOT)}, cell {index} ({first!r})"


def is_maintainer_check(cell: nbformat.NotebookNode) -> bool:
    return TAG in cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_asserts_only_in_maintainer_check_cells(path: Path) -> None:
    problems = []
    for index, cell in code_cells(path):
        try:
            lines = asserts_in(cell.source)
        except SyntaxError as error:
            problems.append(f"{where(path, index, cell)}: not Python, so it cannot be checked "
                            f"for assert statements: {error.msg} (line {error.lineno})")
            continue
        if lines and not is_maintainer_check(cell):
            problems.append(
                f"{where(path, index, cell)}: `assert` on line(s) {lines} in a cell a learner "
                f"reads; move the checks to a `{TAG}` cell right after it, or show the check "
                "as a printed comparison"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_maintainer_check_cells_are_hidden_silent_and_say_what_they_check(path: Path) -> None:
    problems = []
    cells = code_cells(path)
    notebook = nbformat.read(path, as_version=4)
    for index, cell in cells:
        if not is_maintainer_check(cell):
            continue
        here = where(path, index, cell)
        if cell.metadata.get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"{here}: needs metadata jupyter.source_hidden = true (collapsed)")
        if cell.metadata.get("slideshow", {}).get("slide_type") != "skip":
            problems.append(f"{here}: needs metadata slideshow.slide_type = 'skip'")
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if not first.startswith(FIRST_LINE) or not first.removeprefix(FIRST_LINE).strip():
            problems.append(f"{here}: the first line must be '{FIRST_LINE} <what holds, in "
                            "words>'")
        if cell.outputs:
            problems.append(f"{here}: a maintainer check prints nothing, but it has "
                            f"{len(cell.outputs)} output(s)")
        if index == 0 or notebook.cells[index - 1].cell_type != "code":
            problems.append(f"{here}: must come right after the code cell it checks")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" and is_maintainer_check(cell):
            problems.append(f"{where(path, index, cell)}: a `{TAG}` cell must be a code cell")
    assert not problems, "\n".join(problems)


def test_the_checks_find_what_they_look_for() -> None:
    """The parser sees asserts through IPython syntax and nesting, and nothing in strings."""
    assert asserts_in("%matplotlib inline\nx = 1\nassert x == 1") == [3]
    assert asserts_in("!ls\nfiles = !ls\nfor i in range(2):\n    assert i < 2") == [4]
    assert asserts_in("def f(x):\n    assert x\n    return x\nnp.mean?") == [2]
    assert asserts_in("%%time\nassert True") == [2]
    assert asserts_in("%%capture out\nx = 1\nassert x") == [3]
    assert asserts_in("%%bash\nassert() { true; }") == []
    assert asserts_in("print('assert x')  # assert nothing") == []
    with pytest.raises(SyntaxError):
        asserts_in("def f(:\n    pass")
    assert len(NOTEBOOKS) >= 20  # lessons, student exercises and solutions were all found
