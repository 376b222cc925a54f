"""Removing a folder a submission wrote into, however deep, whatever it left there.

`shutil.rmtree` recurses once per level and keeps a descriptor open per level: a submission that
nests 1,500 folders makes it fail (RecursionError, or too many open files). `remove_tree` walks
down and back up with one open folder at a time and a list of names, so its depth is bounded by
nothing but the file system; it never follows a link, makes each folder its own again before
emptying it (a submission may have made one unreadable), and never raises: it returns whether
the folder is gone. It runs after every process of the submission has ended, so nothing moves
while it works.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["remove_tree"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(root: Path) -> bool:
    """Remove `root` and everything in it; True when it is gone (or was never there)."""
    try:
        _remove(Path(root))
    except OSError:
        pass
    return not os.path.lexists(root)


def _remove(root: Path) -> None:
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(root)
        return
    _own(str(root), None)
    descriptor = os.open(root, _FOLDER)
    names: list[str] = []  # the path from root down to the open folder
    try:
        while True:
            child = _first_folder(descriptor)
            if child is not None:  # go down into it
                _own(child, descriptor)
                inner = os.open(child, _FOLDER, dir_fd=descriptor)
                os.close(descriptor)
                descriptor = inner
                names.append(child)
                continue
            if not names:  # root is empty
                break
            parent = os.open("..", _FOLDER, dir_fd=descriptor)  # go back up, remove it
            os.close(descriptor)
            descriptor = parent
            os.rmdir(names.pop(), dir_fd=descriptor)
    finally:
        os.close(descriptor)
    os.rmdir(root)


def _first_folder(descriptor: int) -> str | None:
    """Unlink every entry of the open folder that is not a folder; the first folder's name."""
    with os.scandir(descriptor) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            try:
                os.unlink(entry.name, dir_fd=descriptor)
            except FileNotFoundError:
                pass
    return None


def _own(name: str, parent: int | None) -> None:
    """Let the grader read, pass and empty this folder (it checked it is not a link)."""
    try:
        os.chmod(name, stat.S_IRWXU, dir_fd=parent)
    except OSError:
        pass
