"""Which submissions lack cells of the current release: learners whose copy did not get an update.

A learner who clicks the nbgitpuller link again gets the instructor's changes merged into their
copy, but where both changed the same lines of a notebook (both appended a cell at its end, say)
nbgitpuller keeps the learner's lines and drops the instructor's, without a word (its documented
"Case 3"). Every cell of a released notebook has a stable id (`release` writes them, and
JupyterLab keeps them), so a submission that holds some of the release's ids but not all of them
was made from an older release, or had cells deleted: `lacking(...)` names the cells it lacks,
by their first line. A notebook with no id in common with the release (another format, a copy
made by hand) is not judged: nothing can be said about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Release", "cell_ids", "lacking", "read_release"]

Release = dict[str, list[tuple[str, str]]]
"""exercise -> its released cells, in order: (cell id, first line)."""


def read_release(folder: Path) -> Release:
    """The cells of each released student notebook `folder/NN_name.ipynb` (the course's
    `exercises/`); exercises without one, or an unreadable one, are left out."""
    release: Release = {}
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        release[path.stem] = [(cell["id"], _first_line(cell)) for cell in cells
                              if isinstance(cell, dict) and isinstance(cell.get("id"), str)]
    return release


def cell_ids(cells: Any) -> tuple[str, ...]:
    """The ids of a notebook's cells (as read from its JSON), in order."""
    if not isinstance(cells, list):
        return ()
    return tuple(c["id"] for c in cells if isinstance(c, dict) and isinstance(c.get("id"), str))


def lacking(exercise: str, ids: tuple[str, ...], release: Release) -> list[str]:
    """The first lines of the released cells of `exercise` that a notebook with these cell ids
    lacks; [] when it lacks none, or shares no id with the release (then nothing is known)."""
    released = release.get(exercise, [])
    have = set(ids)
    if not have & {cell_id for cell_id, _ in released}:
        return []
    return [first for cell_id, first in released if cell_id not in have]


def _first_line(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(part for part in source if isinstance(part, str))
    first = next((line.strip() for line in str(source).splitlines() if line.strip()), "")
    return first[:60] or f"(an empty {cell.get('cell_type', 'cell')} cell)"
