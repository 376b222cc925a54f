"""The set-up cell for hosted notebooks (Colab, Binder, any Jupyter without the course).

A learner who opens a lesson in a hosted notebook service has no `course_lib`. Every lesson and
every exercise master starts with one short code cell (made here, tagged `course-setup`) that
does nothing when `course_lib` can be imported, and otherwise installs it from the course's
repository and says so. The repository is `REPOSITORY` below (the one place to change it);
the environment variable `COURSE_LIB_URL` overrides it when the cell runs (any pip requirement:
`git+https://...@branch`, `git+file:///path/to/clone`, a wheel).

    python -m course_lib setup-cells            # insert or update the cell: lessons and masters
    python -m course_lib setup-cells --check    # exit 1 if a notebook lacks the current cell

The student notebooks get the cell from their master through `release`. The tool is idempotent:
a notebook that already has the current cell is not written. The cell installs with
`--no-deps`: the hosted services have numpy, matplotlib and ipywidgets (the lessons' kernel
needs nothing else but threadpoolctl, which Colab has too), and the course's `jupyterlab`
requirement is for running JupyterLab itself, which a hosted service must not have replaced.
Inside the grader's sandbox `course_lib` resolves to the grader's stub, so the cell does nothing
there either.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_lib.release import write_notebook

__all__ = ["ENV_VAR", "REPOSITORY", "TAG", "default_notebooks", "has_setup_cell",
           "insert_setup_cell", "is_placeholder", "setup_cell_source", "update_notebooks"]

REPOSITORY = "git+https://github.com/OWNER/self-attention-course"
"""Where the set-up cell installs course_lib from (a pip requirement). The course has no public
address yet: when it is published, set it here, run `python -m course_lib setup-cells` and
`make notebooks` (the CLI reminds you while it still says OWNER; the README's Colab and Binder
links carry the same placeholder)."""


def is_placeholder(url: str) -> bool:
    """True while `url` is still the unpublished placeholder."""
    return "/OWNER/" in url

ENV_VAR = "COURSE_LIB_URL"
TAG = "course-setup"

_TEMPLATE = '''\
# Set-up for hosted notebooks (Colab, Binder): installs course_lib when it is missing.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("course_lib") is None:
    _url = os.environ.get("{env}", "{url}")
    print(f"course_lib is not installed: installing it from {{_url}} ({env} overrides)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", _url], check=True)
    importlib.invalidate_caches()'''


def setup_cell_source(url: str = REPOSITORY) -> str:
    """The set-up cell's code, installing from `url` unless COURSE_LIB_URL is set."""
    if not url.strip() or '"' in url or "\\" in url or "\n" in url:
        raise ValueError(f"not a usable pip requirement for the set-up cell: {url!r}")
    return _TEMPLATE.format(env=ENV_VAR, url=url.strip())


def _setup_cell(url: str) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_cell_source(url))
    cell.id = TAG
    cell.metadata = {"tags": [TAG], "slideshow": {"slide_type": "skip"}}
    return cell


def has_setup_cell(nb: NotebookNode, url: str = REPOSITORY) -> bool:
    """True when the notebook's first cell is the current set-up cell."""
    return bool(nb.cells) and _is_setup(nb.cells[0]) and (
        nb.cells[0].source == setup_cell_source(url))


def insert_setup_cell(nb: NotebookNode, url: str = REPOSITORY) -> bool:
    """Make the current set-up cell the notebook's first and only one; True if `nb` changed."""
    if has_setup_cell(nb, url) and sum(map(_is_setup, nb.cells)) == 1:
        return False
    nb.cells = [_setup_cell(url), *(cell for cell in nb.cells if not _is_setup(cell))]
    return True


def default_notebooks(root: Path = Path(".")) -> list[Path]:
    """Every lesson and every exercise master (the students' come from `release`)."""
    return [*sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")),
            *sorted((root / "exercises" / "solutions").glob("[0-9][0-9]_*.ipynb"))]


def update_notebooks(paths: Iterable[Path], url: str = REPOSITORY,
                     check: bool = False) -> list[Path]:
    """The notebooks that lack the current cell; unless `check`, they are rewritten with it."""
    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if insert_setup_cell(nb, url):
            changed.append(path)
            if not check:
                write_notebook(nb, path)
    return changed


def _is_setup(cell: NotebookNode) -> bool:
    return cell.get("cell_type") == "code" and TAG in cell.get("metadata", {}).get("tags", [])
