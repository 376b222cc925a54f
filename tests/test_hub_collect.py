"""`collect` as root in homes the learners control: no link followed, no race won, no copy shared.

The learner controls every name in their home, and can change them while `collect` runs. These
tests play that learner: folders and notebooks that are symbolic links (to another learner's
course, to the instructor's masters, to a root-only file), a notebook swapped for a link between
the listing and the copy (deterministically, through the listing, and with a real thread), a hard
link to a file of another user (as root only: only root can make files of another user).
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from course_lib import hub
from course_lib.hub import collect

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "03_scaling_and_softmax.ipynb"
SECRET = "root-only: not for learners"
NOBODY = 65534
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not AS_ROOT, reason="needs root (files owned by another user, as on a hub with one system "
    "user per learner): run as root, e.g. in the CI container")


def course(folder: Path, *names: str) -> Path:
    """A course folder as the link makes it, with these exercise notebooks in exercises/."""
    (folder / "exercises").mkdir(parents=True)
    for name in names:
        shutil.copyfile(ROOT / "exercises" / name, folder / "exercises" / name)
    return folder


def secret_file(root: Path) -> Path:
    secret = root / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    return secret


def copied(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def nothing_secret(out: Path) -> bool:
    return all(SECRET not in p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


def test_linked_folders_in_a_home_are_not_entered(tmp_path: Path) -> None:
    """Two links in one home, to another learner's course and to the instructor's masters."""
    homes = tmp_path / "home"
    alice = course(homes / "jupyter-alice" / "course", EXERCISE)
    masters = course(tmp_path / "instructor" / "course", EXERCISE)
    (masters / "exercises" / "solutions").mkdir()
    shutil.copyfile(ROOT / "exercises/solutions" / EXERCISE,
                    masters / "exercises/solutions" / EXERCISE)
    mallory = homes / "jupyter-mallory"
    mallory.mkdir()
    (mallory / "course").symlink_to(alice)  # a linked course folder
    (mallory / "mine").mkdir()
    (mallory / "mine" / "exercises").symlink_to(masters / "exercises" / "solutions")
    (homes / "jupyter-eve").symlink_to(homes / "jupyter-alice")  # a linked home

    out = tmp_path / "submissions"
    results = {r.learner: r for r in collect([str(homes / "jupyter-*")], out)}

    assert copied(out) == [f"alice/{EXERCISE}"]
    assert not results["mallory"].started and not results["eve"].started
    report = results["mallory"].message()
    assert f"skipped {mallory / 'course'}: a symbolic link, not entered" in report
    assert f"skipped {mallory / 'mine' / 'exercises'}: a symbolic link, not entered" in report
    assert "symbolic link" in results["eve"].message()


def test_a_notebook_swapped_for_a_link_after_the_listing_is_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, made certain: the learner swaps the notebook for a link to a root-only file
    between collect's listing of exercises/ and its opening of the notebook."""
    home = tmp_path / "home" / "jupyter-mallory"
    notebook = course(home / "course", EXERCISE) / "exercises" / EXERCISE
    secret = secret_file(tmp_path)
    swap_after(monkeypatch, lambda: (notebook.unlink(), notebook.symlink_to(secret)))

    out = tmp_path / "submissions"
    [result] = collect([str(home)], out)

    assert copied(out) == [] and nothing_secret(out)
    assert result.skipped == [f"{notebook}: a symbolic link, not a notebook (collect never "
                              "follows links)"]


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    home = tmp_path / "home" / "jupyter-mallory"
    fifo = course(home / "course") / "exercises" / EXERCISE
    os.mkfifo(fifo)
    [result] = collect([str(home)], tmp_path / "submissions")  # O_NONBLOCK: no hang
    assert result.skipped == [f"{fifo}: not a regular file"]


def test_a_home_with_more_folders_than_open_files_allowed_is_collected(tmp_path: Path) -> None:
    """collect holds a few folders open at a time, not one per folder of the home."""
    home = tmp_path / "home" / "jupyter-mallory"
    course(home / "zz-course", EXERCISE)
    for index in range(300):
        (home / f"folder-{index:03d}" / "exercises").mkdir(parents=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 200), hard))
    try:
        [result] = collect([str(home)], tmp_path / "submissions")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [p.name for p in result.copied] == [EXERCISE] and not result.skipped


@needs_root
@pytest.mark.may_skip_in_ci
def test_a_hard_link_to_another_users_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hard link is a regular file: only its owner tells it from the learner's work. Here the
    learner is `nobody` and a root-only file appears in their exercises/, from the start and
    swapped in after the listing."""
    tmp_path.chmod(0o755)
    home = tmp_path / "home" / "jupyter-mallory"
    exercises = course(home / "course", EXERCISE, "01_qkv_projections.ipynb") / "exercises"
    for path in [home, *home.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    secret = secret_file(tmp_path)
    os.link(secret, exercises / "04_weighted_sum.ipynb")  # there from the start
    swapped = exercises / EXERCISE
    swap_after(monkeypatch, lambda: (swapped.unlink(), os.link(secret, swapped)))

    out = tmp_path / "submissions"
    [result] = collect([str(home)], out)

    assert copied(out) == ["mallory/01_qkv_projections.ipynb"] and nothing_secret(out)
    refused = "owned by user id 0, not by the home's owner (65534)"
    assert [reason.split(": ", 1)[0] for reason in result.skipped if refused in reason] == [
        str(swapped), str(exercises / "04_weighted_sum.ipynb")]


def test_copies_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home" / "jupyter-alice"
    course(home / "course", EXERCISE)
    out = tmp_path / "submissions"
    collect([str(home)], out)
    assert stat.S_IMODE((out / "alice").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "alice" / EXERCISE).stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # made by collect
    assert [p.name for p in out.iterdir()] == ["alice"]  # no staging file left behind


@needs_root
@pytest.mark.may_skip_in_ci
def test_as_root_the_copies_belong_to_the_owner_of_the_submissions_folder(
    tmp_path: Path
) -> None:
    home = tmp_path / "home" / "jupyter-alice"
    course(home / "course", EXERCISE)
    out = tmp_path / "submissions"
    out.mkdir()
    os.chown(out, NOBODY, NOBODY)  # the instructor's own folder; collect runs with sudo
    collect([str(home)], out)
    for path in (out / "alice", out / "alice" / EXERCISE):
        assert (path.stat().st_uid, path.stat().st_gid) == (NOBODY, NOBODY)


SWAPPER = """
import os, sys
from pathlib import Path
notebook, secret = Path(sys.argv[1]), sys.argv[2]
real = notebook.read_bytes()
link, file = notebook.with_name(".link"), notebook.with_name(".file")
print("swapping", flush=True)
while True:
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    os.replace(link, notebook)
    file.write_bytes(real)
    os.replace(file, notebook)
"""


def test_a_learner_swapping_a_notebook_and_a_link_all_along_never_gets_the_file_copied(
    tmp_path: Path
) -> None:
    """The race as the issue found it: a learner's server (another process) swaps the notebook
    and a link to a root-only file over and over while collect runs, 40 times."""
    home = tmp_path / "home" / "jupyter-mallory"
    exercises = course(home / "course", EXERCISE) / "exercises"
    notebook, real = exercises / EXERCISE, (exercises / EXERCISE).read_bytes()
    secret = secret_file(tmp_path)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(notebook), str(secret)],
                               stdout=subprocess.PIPE, text=True)
    outcomes = {"copied": 0, "refused": 0}
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
        for run in range(40):
            out = tmp_path / f"submissions-{run}"
            [result] = collect([str(home)], out)
            assert nothing_secret(out), f"run {run}: the root-only file was copied"
            for path in out.rglob("*.ipynb"):
                assert path.read_bytes() == real
            outcomes["copied" if result.copied else "refused"] += 1
    finally:
        swapper.kill()
        swapper.wait()
    print(f"40 runs against a swapping learner: {outcomes}; the secret never copied")


def swap_after(monkeypatch: pytest.MonkeyPatch, change: Callable[[], object]) -> None:
    """Run `change` (the learner's move) right after collect lists an exercises/ folder."""
    listing = hub._listing

    def listed_then_changed(folder_fd: int) -> list[str]:
        names = listing(folder_fd)
        change()
        return names

    monkeypatch.setattr(hub, "_listing", listed_then_changed)
