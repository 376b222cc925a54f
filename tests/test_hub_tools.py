"""The hub's tools without a hub: the learners' copy (`hub-publish`), the nbgitpuller link,
nbgitpuller's merge, and `collect` (its defences against learners: tests/test_hub_collect.py).

nbgitpuller's puller (`nbgitpuller.pull.GitPuller`, what the link runs in the learner's server)
is driven directly on a local repository, as a learner's repeated clicks on the link would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest

from course_lib.__main__ import main
from course_lib.hub import START, collect, hub_link, publish, repo_folder

ROOT = Path(__file__).resolve().parents[1]
LESSON = "notebooks/00_welcome.ipynb"
EXERCISE = "exercises/03_scaling_and_softmax.ipynb"
LEARNER_CODE = "def softmax(x, axis=-1):\n    return x  # the learner's own attempt"

# The merge tests drive nbgitpuller itself: what they check is nbgitpuller's behaviour ("will not
# eat your homework"), which no stand-in could show, so they need the real package. It comes
# with the `hub` extra, which belongs in a hub's environment, not a self-paced learner's
# (pyproject.toml): `make test` does not install it, so there they skip and say how to run them;
# `.ci/run` installs the extra, and there a skip fails the run (COURSE_REQUIRE_ALL_TESTS,
# tests/conftest.py). The link and `collect` tests need only course_lib and run everywhere.
NO_NBGITPULLER = ("needs nbgitpuller, from the hub extra: .venv/bin/python -m pip install -e "
                  "'.[dev,hub]' then .venv/bin/python -m pytest tests/test_hub_tools.py "
                  "(.ci/run installs it)")
needs_nbgitpuller = pytest.mark.skipif(find_spec("nbgitpuller") is None, reason=NO_NBGITPULLER)


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Instructor", "-c", "user.email=i@example.org",
               "-c", "init.defaultBranch=main", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A course repository with lesson 00 and exercise 03, one commit on `main`."""
    repo = tmp_path / "self-attention-course"
    for path in (LESSON, EXERCISE):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, repo / path)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "course")
    return repo


def pull(repo: Path, home: Path) -> Path:
    """What opening the link does in the learner's server: nbgitpuller's GitPuller."""
    GitPuller = pytest.importorskip("nbgitpuller.pull", reason=NO_NBGITPULLER).GitPuller

    target = home / repo_folder(str(repo))
    for _ in GitPuller(str(repo), str(target), branch="main", depth=0).pull():
        pass
    return target


# --- the link ---------------------------------------------------------------------------------


def test_the_link_is_nbgitpullers_and_opens_lesson_00() -> None:
    link = hub_link("https://hub.example.org/", "https://github.com/me/course", branch="main")
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "hub.example.org", "/hub/user-redirect/git-pull")
    assert parse_qs(parts.query) == {
        "repo": ["https://github.com/me/course"], "branch": ["main"],
        "urlpath": ["lab/tree/course/notebooks/00_welcome.ipynb"],
    }
    assert START == LESSON


def test_the_link_follows_nbgitpullers_folder_name_and_a_hub_path() -> None:
    link = hub_link("http://10.0.0.5:8000/hub", "https://example.org/x/course.git/")
    query = parse_qs(urlsplit(link).query)
    assert link.startswith("http://10.0.0.5:8000/hub/user-redirect/git-pull?")
    assert "branch" not in query  # the repository's default branch
    assert query["urlpath"] == ["lab/tree/course.git/notebooks/00_welcome.ipynb"]


@pytest.mark.parametrize(("hub", "repo"), [("hub.example.org", "https://x/c"),
                                           ("ftp://hub", "https://x/c"), ("https://hub", " ")])
def test_a_bad_link_request_is_refused(hub: str, repo: str) -> None:
    with pytest.raises(ValueError):
        hub_link(hub, repo)


def test_hub_link_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hub-link", "--hub", "https://hub.example.org", "--repo",
                 "https://github.com/me/course", "--branch", "b1"]) == 0
    assert capsys.readouterr().out.strip() == hub_link(
        "https://hub.example.org", "https://github.com/me/course", "b1")
    assert main(["hub-link", "--hub", "hub.example.org", "--repo", "https://x/c"]) == 2
    assert "http://" in capsys.readouterr().err


@pytest.mark.parametrize("repo", ["git@github.com:me/course.git", "ssh://git@host/me/course"])
def test_hub_link_warns_about_an_ssh_repository(repo: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hub-link", "--hub", "https://hub.example.org", "--repo", repo]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == hub_link("https://hub.example.org", repo)
    assert "SSH address" in captured.err and "https://" in captured.err
    assert main(["hub-link", "--hub", "https://hub.example.org", "--repo",
                 "https://github.com/me/course"]) == 0
    assert capsys.readouterr().err == ""


# --- nbgitpuller's merge, as the course relies on it --------------------------------------------


@needs_nbgitpuller
def test_the_link_puts_lesson_00_where_its_urlpath_points(upstream: Path, tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    pull(upstream, home)
    urlpath = parse_qs(urlsplit(hub_link("https://h.org", str(upstream))).query)["urlpath"][0]
    assert (home / urlpath.removeprefix("lab/tree/")).is_file()


@needs_nbgitpuller
def test_pulling_again_brings_the_new_lesson_and_keeps_the_learners_exercise(
    upstream: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    course = pull(upstream, home)
    # the learner fills in the exercise's softmax cell and saves
    exercise = nbformat.read(course / EXERCISE, as_version=4)
    index = next(i for i, cell in enumerate(exercise.cells)
                 if cell.cell_type == "code" and "def softmax" in cell.source)
    exercise.cells[index].source = LEARNER_CODE
    nbformat.write(exercise, course / EXERCISE)
    # the instructor changes lesson 00, and the same exercise cell, upstream
    lesson = nbformat.read(upstream / LESSON, as_version=4)
    lesson.cells.append(nbformat.v4.new_markdown_cell("A note added after the workshop began."))
    nbformat.write(lesson, upstream / LESSON)
    master = nbformat.read(upstream / EXERCISE, as_version=4)
    master.cells[index].source += "\n# a clearer stub from the instructor"
    nbformat.write(master, upstream / EXERCISE)
    git(upstream, "commit", "-q", "-am", "lesson 00: a note; exercise 03: clearer stub")

    pull(upstream, home)  # the learner clicks the link again

    pulled = nbformat.read(course / LESSON, as_version=4)
    assert pulled.cells[-1].source == "A note added after the workshop began."
    kept = nbformat.read(course / EXERCISE, as_version=4)
    nbformat.validate(kept)
    assert kept.cells[index].source == LEARNER_CODE  # nbgitpuller "will not eat your homework"


@needs_nbgitpuller
def test_a_deleted_exercise_comes_back_fresh(upstream: Path, tmp_path: Path) -> None:
    home = tmp_path / "home" / "bob"
    home.mkdir(parents=True)
    course = pull(upstream, home)
    (course / EXERCISE).unlink()  # "start over"
    pull(upstream, home)
    assert (course / EXERCISE).read_bytes() == (upstream / EXERCISE).read_bytes()


# --- collect ------------------------------------------------------------------------------------


def make_homes(root: Path) -> dict[str, Path]:
    """alice: two exercises in the course folder; bob: has not started; carol: the course at the
    top of her home, a symbolic link and a checkpoint copy; dave: an empty course folder."""
    homes = {name: root / f"jupyter-{name}" for name in ("alice", "bob", "carol", "dave")}
    for home in homes.values():
        home.mkdir(parents=True)
    for name in ("01_qkv_projections.ipynb", "03_scaling_and_softmax.ipynb"):
        (homes["alice"] / "course" / "exercises").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "exercises" / name, homes["alice"] / "course/exercises" / name)
    (homes["alice"] / "course/exercises/solutions").mkdir()
    (homes["alice"] / "course/exercises/solutions/03_scaling_and_softmax.ipynb").write_text("{}")
    (homes["bob"] / "notes.txt").write_text("nothing yet")
    exercises = homes["carol"] / "exercises"
    (exercises / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copyfile(ROOT / EXERCISE, exercises / "03_scaling_and_softmax.ipynb")
    shutil.copyfile(ROOT / EXERCISE, exercises / ".ipynb_checkpoints" / "03-checkpoint.ipynb")
    secret = root / "instructor-only.txt"
    secret.write_text("not for learners")
    (exercises / "04_weighted_sum.ipynb").symlink_to(secret)
    (homes["dave"] / "course" / "exercises").mkdir(parents=True)
    return homes


def rename_alices_03(root: Path, name: str) -> dict[str, Path]:
    """make_homes, with alice's exercise 03 saved under another name."""
    homes = make_homes(root)
    original = homes["alice"] / "course/exercises/03_scaling_and_softmax.ipynb"
    original.rename(original.with_name(name))
    return homes


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(path): (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode)
            for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()}


def test_collect_copies_each_learners_exercises_and_leaves_the_originals(tmp_path: Path) -> None:
    homes = make_homes(tmp_path / "home")
    before = snapshot(tmp_path / "home")
    out = tmp_path / "submissions"
    results = {r.learner: r for r in collect([str(tmp_path / "home" / "jupyter-*")], out)}

    assert snapshot(tmp_path / "home") == before  # the originals: same bytes, times, modes
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "alice/01_qkv_projections.ipynb", "alice/03_scaling_and_softmax.ipynb",
        "carol/03_scaling_and_softmax.ipynb",
    ]
    assert (out / "alice/03_scaling_and_softmax.ipynb").read_bytes() == (
        homes["alice"] / "course/exercises/03_scaling_and_softmax.ipynb").read_bytes()
    assert not results["bob"].started and not results["dave"].started
    assert "bob: has not started" in results["bob"].message()
    assert "symbolic link" in results["carol"].message()
    assert "not for learners" not in "".join(p.read_text() for p in out.rglob("*.ipynb"))


def test_collect_command_reports_every_learner(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    make_homes(tmp_path / "home")
    out = tmp_path / "submissions"
    assert main(["collect", str(tmp_path / "home" / "jupyter-*"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "alice: 2 exercise notebooks" in captured.out
    assert "collected 2 of 4 learners" in captured.out
    assert "bob: has not started" in captured.err and "dave: has not started" in captured.err
    assert main(["collect", str(tmp_path / "nobody-*"), "--out", str(out)]) == 2
    assert "no learner's home folder matches" in capsys.readouterr().err


def test_collected_notebooks_are_what_the_grader_reads(tmp_path: Path) -> None:
    from course_lib.grading.submissions import find_submissions, read_submission

    make_homes(tmp_path / "home")
    out = tmp_path / "submissions"
    collect([str(tmp_path / "home" / "jupyter-*")], out)
    found = [read_submission(s) for s in find_submissions([out])]
    assert [(s.name, s.exercise) for s in found] == [
        ("alice/01_qkv_projections.ipynb", "01_qkv_projections"),
        ("alice/03_scaling_and_softmax.ipynb", "03_scaling_and_softmax"),
        ("carol/03_scaling_and_softmax.ipynb", "03_scaling_and_softmax"),
    ]
    assert os.access(out / "carol", os.W_OK)


def test_collect_one_exercise_recognised_from_the_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rename_alices_03(tmp_path / "home", "0_my_softmax.ipynb")
    out = tmp_path / "submissions"
    results = {r.learner: r for r in collect([str(tmp_path / "home" / "*")], out, exercise="03")}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "alice/0_my_softmax.ipynb", "carol/03_scaling_and_softmax.ipynb"]
    assert not results["bob"].started
    assert main(["collect", str(tmp_path / "home" / "*"), "--out", str(out),
                 "--exercise", "99"]) == 2
    assert "unknown exercise" in capsys.readouterr().err


def test_collect_takes_renamed_notebooks_not_solutions_or_checkpoints(tmp_path: Path) -> None:
    homes = make_homes(tmp_path / "home")
    exercises = homes["bob"] / "course" / "exercises"  # bob has no exercises/*.ipynb
    (exercises / "solutions").mkdir(parents=True)
    shutil.copyfile(ROOT / EXERCISE, exercises / "my work (1).ipynb")
    shutil.copyfile(ROOT / EXERCISE, exercises / "solutions" / "03_scaling_and_softmax.ipynb")
    out = tmp_path / "submissions"
    results = {r.learner: r for r in collect([str(tmp_path / "home" / "jupyter-*")], out)}
    assert sorted(p.name for p in (out / "bob").iterdir()) == ["my work (1).ipynb"]
    assert results["bob"].started
    assert not (out / "carol" / "03-checkpoint.ipynb").exists()
    # without --exercise the message does not mention one
    assert "(of the exercise" not in results["dave"].message()
    assert results["dave"].message().startswith("dave: has not started: no notebook in ")


def test_collect_one_exercise_names_learners_who_have_not_started_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    homes = rename_alices_03(tmp_path / "home", "my work (1).ipynb")
    out = tmp_path / "submissions"
    assert main(["collect", str(tmp_path / "home" / "jupyter-*"), "--out", str(out),
                 "--exercise", "3"]) == 0  # "3" is exercise 03, as for release
    captured = capsys.readouterr()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "alice/my work (1).ipynb", "carol/03_scaling_and_softmax.ipynb"]
    assert "alice: 1 exercise notebook ->" in captured.out
    shutil.rmtree(out)
    (homes["alice"] / "course/exercises/my work (1).ipynb").unlink()
    results = {r.learner: r for r in collect([str(tmp_path / "home" / "jupyter-*")], out,
                                             exercise="03")}
    # alice has exercise 01 but not 03; bob has nothing at all
    assert results["alice"].message().startswith("alice: has not started exercise 03: ")
    assert results["bob"].message().startswith("bob: has not started: no notebook in ")
    assert "exercise 03" not in results["bob"].message()


# --- the learners' copy (hub-publish) -----------------------------------------------------------

MASTER_ONLY = "MASTER-ONLY: the instructor's answer"
STUDENT = "exercises/03_scaling_and_softmax.ipynb"
MASTER = "exercises/solutions/03_scaling_and_softmax.ipynb"


@pytest.fixture
def instructor(tmp_path: Path) -> Path:
    """The instructor's checkout: lessons, a student notebook, its master, a test holding a
    solution; and, in its history, a master once committed at the top of exercises/."""
    repo = tmp_path / "instructor" / "course"
    for path in (LESSON, STUDENT, MASTER, "README.md"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, repo / path)
    master = nbformat.read(repo / MASTER, as_version=4)
    master.cells.append(nbformat.v4.new_markdown_cell(MASTER_ONLY))
    nbformat.write(master, repo / MASTER)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_answers.py").write_text(f"ANSWER = {MASTER_ONLY!r}\n")
    shutil.copyfile(repo / MASTER, repo / "exercises" / "03_answers.ipynb")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "an answer committed by mistake")
    git(repo, "rm", "-q", "exercises/03_answers.ipynb")
    git(repo, "commit", "-q", "-m", "the course")
    return repo


def every_object(repo: Path) -> str:
    """The text of every object in the repository's .git, as a learner with `git` can read it."""
    return subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
                          check=True, capture_output=True).stdout.decode(errors="replace")


def test_the_learners_copy_holds_the_released_notebooks_only(instructor: Path,
                                                              tmp_path: Path) -> None:
    dest = tmp_path / "self-attention-course"
    umask = os.umask(0o077)  # an instructor's strict umask: the copy is readable by all anyway
    try:
        published = publish(instructor, dest)
    finally:
        os.umask(umask)
    assert published.files == ["README.md", STUDENT, LESSON]
    on_disk = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")
                     if p.is_file() and ".git" not in p.relative_to(dest).parts)
    assert on_disk == published.files
    assert MASTER_ONLY in every_object(instructor)  # the instructor's repository holds it ...
    assert MASTER_ONLY not in every_object(dest)  # ... the learners' copy, in no object
    assert git(dest, "log", "--all", "--format=", "--name-only").split() == published.files
    assert git(dest, "rev-list", "--all").split() == [published.commit]  # no history of theirs
    assert published.source_commit == git(instructor, "rev-parse", "HEAD").strip()
    # readable by every user, whatever the umask: files 0644 (git's objects too), folders 0755
    for path in [dest, *dest.rglob("*")]:
        assert path.stat().st_mode & 0o004, path
        assert not path.is_dir() or path.stat().st_mode & 0o001, path


def test_publishing_again_adds_one_commit_on_top(instructor: Path, tmp_path: Path) -> None:
    dest = tmp_path / "self-attention-course"
    first = publish(instructor, dest)
    assert publish(instructor, dest).commit == ""  # nothing new: nothing committed
    lesson = nbformat.read(instructor / LESSON, as_version=4)
    lesson.cells.append(nbformat.v4.new_markdown_cell("A note added after the workshop began."))
    nbformat.write(lesson, instructor / LESSON)
    git(instructor, "commit", "-q", "-am", "lesson 00: a note")
    second = publish(instructor, dest)
    assert git(dest, "rev-list", "--all").split() == [second.commit, first.commit]
    assert (dest / LESSON).read_bytes() == (instructor / LESSON).read_bytes()


@needs_nbgitpuller
def test_learners_pull_the_learners_copy_and_its_updates(instructor: Path,
                                                          tmp_path: Path) -> None:
    dest = tmp_path / "self-attention-course"
    publish(instructor, dest)
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    course = pull(dest, home)
    assert not (course / "exercises" / "solutions").exists()
    (course / STUDENT).write_text((course / STUDENT).read_text().replace(
        "YOUR CODE HERE", "the learner's work", 1))
    lesson = nbformat.read(instructor / LESSON, as_version=4)
    lesson.cells.append(nbformat.v4.new_markdown_cell("A note added after the workshop began."))
    nbformat.write(lesson, instructor / LESSON)
    git(instructor, "commit", "-q", "-am", "lesson 00: a note")
    publish(instructor, dest)
    pull(dest, home)
    assert (course / LESSON).read_bytes() == (instructor / LESSON).read_bytes()
    assert "the learner's work" in (course / STUDENT).read_text()
    assert MASTER_ONLY not in every_object(course)


def test_publish_refuses_a_folder_that_holds_more(instructor: Path, tmp_path: Path) -> None:
    clone = tmp_path / "a-clone"  # the instructor's repository cloned: its objects hold masters
    subprocess.run(["git", "clone", "-q", str(instructor), str(clone)], check=True)
    with pytest.raises(ValueError, match="history holds files learners must not get"):
        publish(instructor, clone)
    stray = tmp_path / "stray"  # a learners' copy with a master's blob that no commit uses
    publish(instructor, stray)
    git(stray, "hash-object", "-w", str(instructor / MASTER))
    with pytest.raises(ValueError, match="object.s. that no commit uses"):
        publish(instructor, stray)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("the instructor's notes")
    with pytest.raises(ValueError, match="not a learners' copy"):
        publish(instructor, other)
    with pytest.raises(ValueError, match="not a git checkout"):
        publish(tmp_path, tmp_path / "new")


def test_hub_publish_command(instructor: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "self-attention-course"
    assert main(["hub-publish", str(dest), "--source", str(instructor)]) == 0
    out = capsys.readouterr().out
    assert f"{dest}: 3 files (2 notebooks)" in out and "no solutions" in out
    assert f"safe.directory {dest / '.git'}" in out and f"--repo {dest}" in out
    assert main(["hub-publish", str(tmp_path / "x"), "--source", str(tmp_path)]) == 2
    assert "not a git checkout" in capsys.readouterr().err


def recipe_layout(base: Path) -> tuple[Path, Path]:
    """The one-machine recipe (deploy/jupyterhub/README.md): the instructor's checkout in a
    folder only its owner may enter, the learners' copy published next to it."""
    instructor = base / "course-instructor"
    instructor.mkdir(mode=0o700)
    checkout = instructor / "self-attention-course"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
    dest = base / "self-attention-course"
    return checkout, dest


@pytest.mark.may_skip_in_ci
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to act as another user (nobody), "
                    "as a learner's server runs on a hub: run as root, e.g. in the CI container")
def test_a_learners_user_can_clone_the_course_but_not_read_the_masters(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="course-recipe-", dir="/tmp"))
    try:
        base.chmod(0o755)  # as /srv: every user may pass
        checkout, dest = recipe_layout(base)
        published = publish(checkout, dest)
        assert not [w for w in published.warnings if "masters" in w]
        learner = base / "home-nobody"
        learner.mkdir()
        os.chown(learner, 65534, 65534)
        config = base / "gitconfig"  # the recipe's `git config --system --add safe.directory`
        config.write_text(f"[safe]\n\tdirectory = {dest / '.git'}\n")
        config.chmod(0o644)

        def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, user=65534, group=65534, extra_groups=[],
                                  capture_output=True, text=True, cwd=learner,
                                  env={"HOME": str(learner), "PATH": os.environ["PATH"],
                                       "GIT_CONFIG_SYSTEM": str(config)})

        masters = checkout / "exercises" / "solutions"
        for command in (["ls", str(masters)], ["cat", str(masters / MASTER.split("/")[-1])],
                        ["ls", str(checkout / ".git")]):
            refused = as_nobody(*command)
            assert refused.returncode != 0 and "Permission denied" in refused.stderr, command
        cloned = as_nobody("git", "clone", "-q", str(dest), str(learner / "course"))
        assert cloned.returncode == 0, cloned.stderr
        clone = learner / "course"
        assert (clone / STUDENT).is_file() and not (clone / "exercises" / "solutions").exists()
        masters_blobs = {line.split()[2] for line in git(
            checkout, "ls-tree", "-r", "HEAD", "exercises/solutions").splitlines()}
        learners_objects = set(as_nobody("git", "-C", str(clone), "cat-file",
                                         "--batch-all-objects",
                                         "--batch-check=%(objectname)").stdout.split())
        assert len(masters_blobs) >= 8 and len(learners_objects) > 10
        assert not masters_blobs & learners_objects
        # what the recipe warns about: the same checkout left open to every user
        checkout.parent.chmod(0o755)
        assert any("can be read by other users" in w for w in publish(checkout, dest).warnings)
    finally:
        shutil.rmtree(base)
