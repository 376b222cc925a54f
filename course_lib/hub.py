"""The course on a JupyterHub: the nbgitpuller link that hands it out, and collecting the exercises.

    hub_link("https://hub.example.org", "https://github.com/me/course")   # the link for learners
    collect(["/home/jupyter-*"], Path("submissions"))                     # the instructor collects

or `python -m course_lib hub-link --hub URL --repo URL [--branch B]` and
`python -m course_lib collect 'HOMES_GLOB' --out submissions/`. The hub itself is configured in
`deploy/jupyterhub/` (one machine, and notes for Zero to JupyterHub).

The link is nbgitpuller's (https://nbgitpuller.readthedocs.io/en/latest/link.html): opening it
clones the repository into the learner's home (into a folder named like the repository), or
pulls it again, then opens lesson 00 in JupyterLab. Pulling again never loses a learner's work:
nbgitpuller keeps the learner's version of every file they changed and brings in everything
else (https://nbgitpuller.readthedocs.io/en/latest/topic/automatic-merging.html). The other side
of that rule: where the instructor changed a file the learner changed too (a cell appended to the
same exercise), the learner keeps their version and the instructor's change is dropped without a
word; `python -m course_lib grade --release exercises/` lists who lacks the released cells.
"""

from __future__ import annotations

import glob
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from course_lib.grading.collect import Submission, read_submission, resolve_exercise

__all__ = ["START", "Collected", "collect", "hub_link", "repo_folder", "repo_warning"]

START = "notebooks/00_welcome.ipynb"
"""What the link opens: lesson 00."""

EXERCISE_GLOB = "exercises/*.ipynb"  # every notebook there, renamed ones too (not solutions/)
MAX_NOTEBOOK_BYTES = 20 * 2**20  # the grader refuses larger notebooks; so does collect
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
        return bool(self.copied)

    def message(self) -> str:
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
    "my work (1).ipynb" too; not exercises/solutions/ nor checkpoints). Only regular files
    are copied (a symbolic link could point anywhere on the machine), none larger than the
    grader accepts; the learner's files are only read. exercise: only the notebooks of this
    exercise ("03" or "3"), recognised as the grader recognises them (from the notebook, so a
    renamed file is still found); a notebook that cannot be recognised (broken JSON) is
    collected when its name starts with the exercise's number, so that `grade` reports it.
    Raises FileNotFoundError when no folder matches, ValueError for an unknown exercise.
    """
    wanted = resolve_exercise(exercise) if exercise else None
    homes = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))
                    if Path(p).is_dir()})
    if not homes:
        raise FileNotFoundError(f"no learner's home folder matches {', '.join(patterns)}")
    results = []
    for home in homes:
        learner = home.name.removeprefix(prefix) or home.name
        found = sorted(notebook for notebook in {*home.glob(EXERCISE_GLOB),
                                                 *home.glob(f"*/{EXERCISE_GLOB}")}
                       if not notebook.name.startswith("."))
        result = Collected(learner, home, exercise=wanted or "")
        for notebook in found:
            reason = _unsafe(notebook)
            if reason:
                result.skipped.append(f"{notebook}: {reason}")
                continue
            if wanted and not _is_exercise(notebook, wanted):
                result.others += 1
                continue
            target = Path(out) / learner / notebook.name
            if target in result.copied:
                result.skipped.append(f"{notebook}: a notebook named {notebook.name} was "
                                      "already collected from another folder")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, target)  # contents only: the copy is the instructor's
            result.copied.append(target)
        results.append(result)
    return results


def _is_exercise(notebook: Path, exercise: str) -> bool:
    recognised = read_submission(Submission("", notebook)).exercise
    return recognised == exercise or (not recognised and notebook.name.startswith(exercise[:2]))


def _unsafe(path: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link, not a notebook"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    return ""
