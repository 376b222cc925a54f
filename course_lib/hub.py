"""The course on a JupyterHub: the learners' copy, the nbgitpuller link that hands it out, and
collecting the exercises.

    publish(Path("."), Path("/srv/self-attention-course"))                # the learners' copy
    hub_link("https://hub.example.org", "/srv/self-attention-course")    # the link for learners
    collect(["/home/jupyter-*"], Path("submissions"))                     # the instructor collects

or `python -m course_lib hub-publish DIR`, `python -m course_lib hub-link --hub URL --repo URL
[--branch B]` and `python -m course_lib collect 'HOMES_GLOB' --out submissions/`. The hub itself
is configured in `deploy/jupyterhub/` (one machine, and notes for Zero to JupyterHub).

The learners' copy is a git repository of its own that holds the lessons, the released student
notebooks and the README, and never held anything else: no solution master, no history of the
instructor's repository. The masters stay in the instructor's checkout, in a folder only the
instructor can enter.

The link is nbgitpuller's (https://nbgitpuller.readthedocs.io/en/latest/link.html): opening it
clones the repository into the learner's home (into a folder named like the repository), or
pulls it again, then opens lesson 00 in JupyterLab. Pulling again never loses a learner's work:
nbgitpuller keeps the learner's version of every file they changed and brings in everything
else (https://nbgitpuller.readthedocs.io/en/latest/topic/automatic-merging.html). The other side
of that rule: where the instructor changed a file the learner changed too (a cell appended to the
same exercise), the learner keeps their version and the instructor's change is dropped without a
word; `python -m course_lib grade --release exercises/` lists who lacks the released cells.

`collect` runs as root in the learners' homes, where each learner controls every name: it never
follows a symbolic link (not a linked course folder, not a linked exercises/ folder, not a
linked notebook), opens each notebook once without following links, checks what it opened
(a regular file owned by the home's owner, not larger than the grader accepts) and copies from
that same descriptor, so a notebook swapped for a link while it runs is refused, not copied.
"""

from __future__ import annotations

import errno
import glob
import io
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from course_lib.grading.submissions import (
    MAX_NOTEBOOK_BYTES,
    Submission,
    read_submission,
    resolve_exercise,
)

__all__ = ["START", "Collected", "Published", "collect", "for_learners",
           "hub_link", "masters_warning", "publish", "repo_folder",
           "repo_warning"]

START = "notebooks/00_welcome.ipynb"
"""What the link opens: lesson 00."""

TLJH_PREFIX = "jupyter-"  # The Littlest JupyterHub names a hub user's system account jupyter-<name>


def repo_folder(repo: str) -> str:
    """The folder nbgitpuller clones `repo` into: the URL's last part, as nbgitpuller's own
    default `targetpath` (`repo.rstrip('/').split('/')[-1]`, so "course.git" keeps its ".git")."""
    return repo.rstrip("/").split("/")[-1]


def hub_link(hub: str, repo: str, branch: str | None = None, path: str = START) -> str:
    """The nbgitpuller link: `<hub>/hub/user-redirect/git-pull?repo=...&branch=...&urlpath=...`.

    hub: the hub's address ("https://hub.example.org", with or without a trailing "/hub");
    repo: the course's git URL as the hub's machine reaches it; branch: default, the
    repository's default branch; path: what JupyterLab opens, relative to the repository.
    Raises ValueError for a hub address that is not http(s) or an empty repository.
    """
    parts = urlsplit(hub.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the hub's address must start with http:// or https://, got {hub!r}")
    if not repo.strip() or not repo_folder(repo.strip()):
        raise ValueError(f"the repository must be a git URL, got {repo!r}")
    base = hub.strip().rstrip("/").removesuffix("/hub")
    query = {"repo": repo.strip()}
    if branch:
        query["branch"] = branch
    query["urlpath"] = f"lab/tree/{repo_folder(repo.strip())}/{path}"
    return f"{base}/hub/user-redirect/git-pull?{urlencode(query, quote_via=quote)}"


def repo_warning(repo: str) -> str:
    """Why learners' servers probably cannot clone `repo` ("" when nothing is wrong): an SSH
    address (git@host:owner/name or ssh://) needs a key that a learner's server lacks."""
    repo = repo.strip()
    if re.match(r"^(?:ssh://|[\w.-]+@[\w.-]+:)", repo):
        return (f"{repo} is an SSH address: learners' servers usually have no SSH key for it, "
                "so nbgitpuller cannot clone it; give the https:// address of the repository "
                "(public, or readable by the hub)")
    return ""


# --- the learners' copy -------------------------------------------------------------------------

LEARNERS_BRANCH = "main"
"""The branch of the learners' copy (the link's default: no --branch needed)."""


def for_learners(path: str) -> bool:
    """Whether a file of the course (a path in the repository) belongs in the learners' copy:
    the lessons (`notebooks/`), the released student notebooks (`exercises/*.ipynb`, not
    `exercises/solutions/`) and `README.md`. A list of what is in, so that a new folder of the
    instructor's (masters, answers, tests that hold solutions) stays out until it is added."""
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    return (path == "README.md" or (parts[0] == "notebooks" and len(parts) > 1)
            or (len(parts) == 2 and parts[0] == "exercises" and parts[1].endswith(".ipynb")))


@dataclass
class Published:
    """The learners' copy after `publish`: where, what it holds, and the commit made."""

    dest: Path
    source_commit: str  # the instructor's commit it was made from
    files: list[str] = field(default_factory=list)
    commit: str = ""  # the learners' copy's new commit ("" when nothing changed)
    warnings: list[str] = field(default_factory=list)


def publish(source: Path, dest: Path, ref: str = "HEAD") -> Published:
    """Build or update the learners' copy of the course: a git repository at `dest` that nbgitpuller
    clones (`hub-link --repo DEST`), holding only what `for_learners` lets in, as committed at
    `ref` in the instructor's checkout `source`.

    Each publish adds one commit on top of the copy's own history (so that a learner's repeated
    click on the link pulls it), never the instructor's history: the copy never held a
    solution master, in any commit or object. Its files are readable by every user
    (0644, folders 0755), whatever the umask. Refuses (ValueError) a `source` that is not a git
    checkout, a `dest` that is another repository or a non-empty folder, and a `dest` whose
    history holds any file `for_learners` keeps out. Warns when the masters in `source` can be
    reached by other users of this machine.
    """
    source, dest = Path(source).resolve(), Path(dest).absolute()
    try:
        source_commit = _git(source, "rev-parse", "--verify", "--quiet",
                             f"{ref}^{{commit}}").strip()
        archive = subprocess.run(["git", "-C", str(source), "archive", "--format=tar",
                                  source_commit], check=True, capture_output=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        raise ValueError(f"{source} is not a git checkout of the course with a commit {ref!r} "
                         f"({_stderr(error)})") from error
    files = _learners_files(archive)
    if not any(path.startswith("exercises/") for path in files) or START not in files:
        raise ValueError(f"{source} at {ref} has no {START} or no released exercises/*.ipynb: "
                         "nothing to hand out (release the exercises and commit them first)")
    published = Published(dest, source_commit, sorted(files))
    published.warnings += _source_warnings(source, ref)
    umask = os.umask(0o022)  # what git writes (COMMIT_EDITMSG, index) is readable by all too
    try:
        _commit_files(files, dest, published, source)
    finally:
        os.umask(umask)
    leaked = _not_for_learners(dest)
    if leaked:  # cannot happen through publish; checked anyway, as a learner would look
        raise ValueError(f"{dest} holds files learners must not get: {', '.join(leaked[:5])}")
    return published


def _commit_files(files: dict[str, bytes], dest: Path, published: Published,
                   source: Path) -> None:
    """Make `dest`'s files exactly `files` and commit them (when anything changed)."""
    _prepare(dest)
    for entry in os.scandir(dest):  # the copy's files are exactly this commit's
        if entry.name != ".git":
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    for path, data in files.items():
        target = dest / path
        for folder in reversed([p for p in target.parents if p != dest and dest in p.parents]):
            if not folder.is_dir():
                folder.mkdir()
                folder.chmod(0o755)
        target.write_bytes(data)
        target.chmod(0o644)
    _git(dest, "add", "--all")
    if _git(dest, "status", "--porcelain"):
        _git(dest, *_identity(source), "commit", "--quiet", "-m",
             f"The course for learners, from {published.source_commit[:12]}")
        published.commit = _git(dest, "rev-parse", "HEAD").strip()


def _learners_files(archive: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and for_learners(member.name):
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return files


def _prepare(dest: Path) -> None:
    """A new repository at `dest`, or check that the one there is a learners' copy."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        dest.mkdir(parents=True, exist_ok=True)
        dest.chmod(0o755)
        # --shared=0644: git writes its objects readable by every user, whatever the umask
        _git(dest, "init", "--quiet", "--shared=0644", "-b", LEARNERS_BRANCH)
        return
    if dest.is_symlink() or not dest.is_dir():
        raise ValueError(f"{dest} is not a folder")
    top = subprocess.run(["git", "-C", str(dest), "rev-parse", "--show-toplevel"],
                         capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != dest.resolve():
        raise ValueError(f"{dest} is a folder with files but not a learners' copy made by "
                         "hub-publish: give a new or empty folder")
    leaked = _not_for_learners(dest)
    if leaked:
        raise ValueError(f"{dest} is a repository whose history holds files learners must not "
                         f"get ({', '.join(leaked[:3])}{', ...' if len(leaked) > 3 else ''}): "
                         "its objects cannot be taken back; publish into a new folder")
    # a clone from a local path copies every object, also one that no commit uses
    every = set(_git(dest, "cat-file", "--batch-all-objects",
                     "--batch-check=%(objectname)").split())
    used = {line.split()[0] for line in _git(dest, "rev-list", "--all", "--objects").splitlines()}
    if every - used:
        raise ValueError(f"{dest} holds {len(every - used)} git object(s) that no commit uses "
                         "(not made by hub-publish; a learner's clone would copy them): "
                         "publish into a new folder")


def _not_for_learners(dest: Path) -> list[str]:
    """Every path in any commit of the repository at `dest` that `for_learners` keeps out."""
    if not _git(dest, "rev-parse", "--all").strip():
        return []  # no commit yet
    listed = _git(dest, "log", "--all", "--format=", "--name-only", "--no-renames", "-z")
    paths = {path.strip("\n") for path in listed.split("\0") if path.strip("\n")}
    return sorted(path for path in paths if not for_learners(path))


def _source_warnings(source: Path, ref: str) -> list[str]:
    warnings = []
    if _git(source, "status", "--porcelain", "--untracked-files=no").strip():
        warnings.append(f"{source} has uncommitted changes: only what is committed at {ref} is "
                        "published")
    if masters_warning(source):
        warnings.append(masters_warning(source))
    return warnings


def masters_warning(checkout: Path) -> str:
    """Why the solution masters of `checkout` are exposed to other users of this machine
    ("" when they are not, or when it has none): every folder from / to its
    exercises/solutions/ lets its group or others pass."""
    masters = Path(checkout).resolve() / "exercises" / "solutions"
    if not masters.is_dir() or not _reachable_by_others(masters):
        return ""
    return (f"the masters in {masters} can be read by other users of this machine (no folder "
            "from / to it is closed to its group and to others); on a hub where learners run "
            f"as local users: chmod 700 {Path(checkout).resolve()} (deploy/jupyterhub/README.md)")


def _reachable_by_others(folder: Path) -> bool:
    """Whether a user other than the owner (and root) may pass every folder from / to `folder`,
    i.e. no folder on the way is closed (no x) to both its group and others."""
    return all(path.stat().st_mode & 0o011 for path in [folder, *folder.parents])


def _identity(source: Path) -> list[str]:
    """The instructor's git identity, or a stand-in when the checkout has none."""
    configured = subprocess.run(["git", "-C", str(source), "config", "user.email"],
                                capture_output=True, text=True).stdout.strip()
    return [] if configured else ["-c", "user.name=course_lib hub-publish",
                                  "-c", "user.email=hub-publish@localhost"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def _stderr(error: Exception) -> str:
    text = getattr(error, "stderr", None) or str(error)
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


# --- collect ------------------------------------------------------------------------------------

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOTEBOOK = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_COPY = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK = "a symbolic link, not entered (collect never follows links)"


@dataclass
class Collected:
    """One learner's collection: the copies made, or why there are none."""

    learner: str
    home: Path
    copied: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<file>: <reason>"
    exercise: str = ""  # the exercise collected ("" for all)
    others: int = 0  # notebooks of other exercises, not collected

    @property
    def started(self) -> bool:
        """Whether at least one notebook was copied."""
        return bool(self.copied)

    def message(self) -> str:
        """One line for the instructor: what was copied or why nothing was, and every skip."""
        if self.copied:
            text = (f"{self.learner}: {len(self.copied)} exercise notebook"
                    f"{'s' if len(self.copied) != 1 else ''} -> {self.copied[0].parent}/")
        elif self.exercise and self.others:
            which = ("its one notebook" if self.others == 1 else
                     f"none of its {self.others} notebooks")
            verb = "is not" if self.others == 1 else "is"
            text = (f"{self.learner}: has not started exercise {self.exercise[:2]}: {which} in "
                    f"exercises/ (in {self.home} or its course folder) {verb} "
                    f"{self.exercise}")
        else:
            text = (f"{self.learner}: has not started: no notebook in exercises/ in {self.home} "
                    "or its course folder (did they open the link?)")
        return "; ".join([text, *(f"skipped {reason}" for reason in self.skipped)])


def collect(patterns: Iterable[str], out: Path, *, prefix: str = TLJH_PREFIX,
            exercise: str | None = None) -> list[Collected]:
    """Copy each learner's exercise notebooks into `out/<learner>/`; never touch the originals.

    patterns: globs of learners' home folders ("/home/jupyter-*"); a learner is a matching
    folder, named after it without `prefix` (TLJH's "jupyter-alice" is "alice"). Their
    notebooks are every `exercises/*.ipynb` in the home or in a folder one level down (where
    the nbgitpuller link put the course), whatever their names (a learner's
    "my work (1).ipynb" too; not exercises/solutions/ nor checkpoints).

    Run as root in folders the learners control, it never follows a symbolic link: a linked
    home, course folder, exercises/ folder or notebook is skipped and said so. Each notebook is
    opened once (without following links, without blocking), the opened file is checked (a
    regular file, owned by the home's owner: a hard link to another user's file is refused;
    not larger than the grader accepts) and copied from that descriptor, so a notebook swapped
    for a link or another file while collect runs is refused, never copied. The learner's files
    are only read. The copies are readable by their owner only (files 0600, folders 0700); run
    as root into a folder of another user's, that user owns them.

    exercise: only the notebooks of this exercise ("03" or "3"), recognised as the grader
    recognises them (from the notebook, so a renamed file is still found); a notebook that
    cannot be recognised (broken JSON) is collected when its name starts with the exercise's
    number, so that `grade` reports it. Raises FileNotFoundError when no folder matches,
    ValueError for an unknown exercise.
    """
    wanted = resolve_exercise(exercise) if exercise else None
    homes = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))
                    if _folder_or_link(Path(p))})
    if not homes:
        raise FileNotFoundError(f"no learner's home folder matches {', '.join(patterns)}")
    out = Path(out)
    if not out.is_dir():
        out.mkdir(mode=0o700, parents=True)
    out_fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        keeper = os.fstat(out_fd)
        return [_collect_home(home, home.name.removeprefix(prefix) or home.name, out, out_fd,
                              keeper, wanted) for home in homes]
    finally:
        os.close(out_fd)


def _collect_home(home: Path, learner: str, out: Path, out_fd: int, keeper: os.stat_result,
                  wanted: str | None) -> Collected:
    result = Collected(learner, home, exercise=wanted or "")
    if learner in (".", "..") or "/" in learner:
        result.skipped.append(f"{home}: not a usable learner's name")
        return result
    try:
        home_fd = os.open(home, _FOLDER)
    except OSError:
        result.skipped.append(f"{home}: {_folder_refusal(home, None)}")
        return result
    copies = _Copies(out, out_fd, keeper, learner, wanted)
    try:
        owner = os.fstat(home_fd).st_uid
        for name in _course_folders(home_fd):  # one open at a time: thousands of folders are fine
            folder = home / name if name else home
            with ExitStack() as opened:
                if name:
                    try:
                        folder_fd = os.open(name, _FOLDER, dir_fd=home_fd)
                    except OSError:
                        if _is_link(name, home_fd):
                            result.skipped.append(f"{folder}: {_LINK}")
                        continue  # a file, or gone
                    opened.callback(os.close, folder_fd)
                else:
                    folder_fd = home_fd
                try:
                    exercises_fd = os.open("exercises", _FOLDER, dir_fd=folder_fd)
                except OSError:
                    if _is_link("exercises", folder_fd):
                        result.skipped.append(f"{folder / 'exercises'}: {_LINK}")
                    continue  # no exercises/ folder here: not the course
                opened.callback(os.close, exercises_fd)
                for notebook in _listing(exercises_fd):
                    copies.take(result, folder / "exercises" / notebook, exercises_fd, owner)
    finally:
        os.close(home_fd)
        copies.close()
    return result


def _course_folders(home_fd: int) -> list[str]:
    """Where a home's exercises/ may be: "" (the home itself) and every folder in it (not
    hidden; links too, to be reported), in the order of their exercises/ paths."""
    with os.scandir(home_fd) as entries:
        names = [entry.name for entry in entries
                 if not entry.name.startswith(".") and entry.name != "exercises"
                 and (entry.is_symlink() or entry.is_dir(follow_symlinks=False))]
    return sorted(["", *names], key=lambda name: name or "exercises")


@dataclass
class _Copies:
    """Where one learner's copies go: out/<learner>/, made when the first copy is."""

    out: Path
    out_fd: int
    keeper: os.stat_result  # out's owner, who owns the copies
    learner: str
    wanted: str | None
    learner_fd: int | None = None

    def take(self, result: Collected, path: Path, folder_fd: int, owner: int) -> None:
        """Copy the notebook `path` (named `path.name` in `folder_fd`), or say why not."""
        name = path.name
        data, reason = _read_notebook(folder_fd, name, owner)
        if reason:
            result.skipped.append(f"{path}: {reason}")
            return
        staged = _write_copy(data, self.out_fd, self.keeper)
        try:
            if self.wanted and not _is_exercise(self.out / staged, name, self.wanted):
                result.others += 1
                return
            target = self.out / self.learner / name
            if target in result.copied:
                result.skipped.append(f"{path}: a notebook named {name} was already "
                                      "collected from another folder")
                return
            if self.learner_fd is None:
                self.learner_fd = _learner_folder(self.learner, self.out_fd, self.keeper)
            os.replace(staged, name, src_dir_fd=self.out_fd, dst_dir_fd=self.learner_fd)
            result.copied.append(target)
        finally:
            if _exists(staged, self.out_fd):
                os.unlink(staged, dir_fd=self.out_fd)

    def close(self) -> None:
        """Close the learner's folder, if it was opened."""
        if self.learner_fd is not None:
            os.close(self.learner_fd)


def _folder_or_link(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


def _listing(exercises_fd: int) -> list[str]:
    """The notebooks' names in an opened exercises/ folder (not hidden ones, not solutions/)."""
    return sorted(name for name in os.listdir(exercises_fd)
                  if name.endswith(".ipynb") and not name.startswith("."))


def _read_notebook(folder_fd: int, name: str, owner: int) -> tuple[bytes, str]:
    """The notebook's bytes, read from one descriptor opened without following a link; or, when
    it is refused, b"" and why."""
    try:
        descriptor = os.open(name, _NOTEBOOK, dir_fd=folder_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return b"", "a symbolic link, not a notebook (collect never follows links)"
        return b"", f"cannot be opened ({error.strerror or error})"
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return b"", "not a regular file"
        if info.st_uid != owner:
            return b"", (f"owned by user id {info.st_uid}, not by the home's owner ({owner}): "
                         "another user's file (a hard link to it?) is never copied")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            return b"", f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        chunks, size = [], 0
        while size <= MAX_NOTEBOOK_BYTES:
            chunk = os.read(descriptor, min(2**20, MAX_NOTEBOOK_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > MAX_NOTEBOOK_BYTES:
        return b"", f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    return b"".join(chunks), ""


def _write_copy(data: bytes, out_fd: int, keeper: os.stat_result) -> str:
    """A new file in `out` (hidden name) holding `data`, mode 0600, owned by `out`'s owner."""
    name = f".collect-{secrets.token_hex(8)}.ipynb"
    descriptor = os.open(name, _COPY, 0o600, dir_fd=out_fd)
    with os.fdopen(descriptor, "wb") as copy:
        os.fchmod(descriptor, 0o600)
        _give(descriptor, keeper)
        copy.write(data)
    return name


def _learner_folder(learner: str, out_fd: int, keeper: os.stat_result) -> int:
    """`out/<learner>/`, created mode 0700 (owned by `out`'s owner) if new, opened."""
    try:
        os.mkdir(learner, 0o700, dir_fd=out_fd)
    except FileExistsError:
        pass
    else:
        descriptor = os.open(learner, _FOLDER, dir_fd=out_fd)
        _give(descriptor, keeper)
        return descriptor
    return os.open(learner, _FOLDER, dir_fd=out_fd)


def _give(descriptor: int, keeper: os.stat_result) -> None:
    """As root, hand a new copy to the owner of the submissions folder (the instructor)."""
    if os.geteuid() == 0 and keeper.st_uid != 0:
        os.fchown(descriptor, keeper.st_uid, keeper.st_gid)


def _is_exercise(copy: Path, name: str, exercise: str) -> bool:
    recognised = read_submission(Submission("", copy)).exercise
    return recognised == exercise or (not recognised and name.startswith(exercise[:2]))


def _is_link(name: str, folder_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _exists(name: str, folder_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _folder_refusal(path: Path, folder_fd: int | None) -> str:
    try:
        mode = os.stat(path, dir_fd=folder_fd, follow_symlinks=False).st_mode
    except OSError as error:
        return f"cannot be opened ({error.strerror or error})"
    if stat.S_ISLNK(mode):
        return _LINK
    return "not a folder" if not stat.S_ISDIR(mode) else "cannot be opened"
