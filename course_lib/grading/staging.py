"""The batch's private copies of the submissions: read once, before any learner's code runs.

    with Staging() as staging:
        submissions = [read_submission(staging.stage(s)) for s in find_submissions(paths)]
        ...                               # grade: every submission's code runs
        changed = staging.changed()       # originals whose bytes are not what was graded

`stage` reads each original once (opened read-only, never following a link, bounded as
`collect` bounds it) and writes those bytes into a folder only the grader's user may open
(0700); the submission is then read, and graded, from that copy. The originals are never
opened for writing. After the batch `changed` reads each original again and compares its
SHA-256 with the one of the bytes graded: with bubblewrap or a user of its own, no submission
can reach the originals (the tests check that their hashes are unchanged); on a machine graded
with `--i-accept-that-submissions-can-read-and-change-this-machine` one can, and the grader
then says which changed, and the gradebook (gradebook.json's `sha256`) says what was graded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from course_lib.grading.cleanup import remove_tree
from course_lib.grading.submissions import MAX_NOTEBOOK_BYTES, Submission, read_bounded

__all__ = ["Staging"]


class Staging:
    """A private folder of copies, one per submission, removed on exit."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.digests: dict[str, tuple[Path, str]] = {}  # name -> (original, SHA-256 graded)

    def __enter__(self) -> Staging:
        self.folder = Path(tempfile.mkdtemp(prefix="course-grade-staging-"))  # mode 0700
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.folder is not None:
            remove_tree(self.folder)

    def stage(self, submission: Submission) -> Submission:
        """`submission` with its path replaced by a private copy of the original's bytes (as
        it is when its original cannot be read: `read_submission` then says why)."""
        if submission.problem or self.folder is None:
            return submission
        try:
            raw = read_bounded(submission.path, MAX_NOTEBOOK_BYTES + 1)
        except OSError:
            return submission  # read_submission finds the same problem and names it
        copy = self.folder / f"{len(self.digests)}.ipynb"
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(raw)
        self.digests[submission.name] = (submission.path, _sha256(raw))
        return dataclasses.replace(submission, path=copy)

    def sha256(self, name: str) -> str:
        """The SHA-256 of the bytes graded for submission `name` ("" when none were read)."""
        return self.digests.get(name, (Path(), ""))[1]

    def changed(self) -> list[str]:
        """The submissions whose original no longer holds the bytes that were graded."""
        changed = []
        for name, (original, digest) in self.digests.items():
            try:
                now = _sha256(read_bounded(original, MAX_NOTEBOOK_BYTES + 1))
            except OSError:
                now = ""
            if now != digest:
                changed.append(name)
        return changed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
