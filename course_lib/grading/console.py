"""What the grader shows on the terminal: a progress bar while it runs, a summary table after."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from course_lib.grading.verdict import Graded

__all__ = ["ProgressBar", "summary_table", "printable"]


def printable(text: str) -> str:
    """`text` on one line: control characters (a newline in a file name) escaped as \\n, \\x1b."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ProgressBar:
    """`bar(done, total, graded)` after each submission: a redrawn bar on a terminal, one
    line per submission otherwise (a log file, CI)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = self.stream.isatty()

    def __call__(self, done: int, total: int, graded: Graded) -> None:
        if not self.live:
            print(f"[{done}/{total}] {printable(graded.submission)}: "
                  f"{graded.score}/{graded.max_score} "
                  f"{graded.status_kind}", file=self.stream, flush=True)
            return
        filled = self.width * done // max(total, 1)
        bar = "█" * filled + "░" * (self.width - filled)
        name = printable(graded.submission)[-30:]
        self.stream.write(f"\r\x1b[2Kgrading {bar} {done}/{total}  {name}")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def summary_table(graded: Sequence[Graded], isolation: str) -> str:
    """A plain-text table: one line per submission, then the totals and the isolation."""
    header = ("submission", "exercise", "score", "status")
    rows = [
        (printable(g.submission), g.exercise or "?", f"{g.score}/{g.max_score}",
         _short(printable(g.status), 70))
        for g in graded
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=False)), cells[3]])

    lines = [line(header), line([*("-" * w for w in widths), "------"])]
    lines += [line(row) for row in rows]
    kinds: dict[str, int] = {}
    for g in graded:
        kinds[g.status_kind] = kinds.get(g.status_kind, 0) + 1
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    noun = "submission" if len(graded) == 1 else "submissions"
    lines += ["", f"{len(graded)} {noun} graded ({counts}).", f"Isolation: {isolation}"]
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
