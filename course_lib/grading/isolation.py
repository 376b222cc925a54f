"""Isolation: what keeps a submission's process from the machine, and the limits it runs under.

The sandbox (sandbox.py) asks this module for four things, and nothing else:

- `detect_isolation()`: the best containment this machine allows, tried by starting the
  runner's Python exactly so; `refusal(isolation)` says in one paragraph why the grader will
  not run submissions when no containment can be had, and what to do;
- `command(...)` and `environment(...)`: how to start the runner under it (bubblewrap's view
  of the file system, as a user of its own), and `preexec(...)`: the limits the runner's
  process and every process it starts inherit (RLIMIT_AS, RLIMIT_NPROC, no core files, a
  bounded file size, its control group);
- `new_group(limits)`, `end(process, group)`: the control group of one attempt (cgroups.py),
  and the end of every process it started;
- `free_uid()` / `release_uid(uid)`: the pool of user ids, one no account and no other run
  has, for a grader running as root.

The modes, and what each guarantees, are in BOUNDARY.md ("what each mode guarantees"):

- bubblewrap (`Isolation.name == "bwrap"`): the sandbox sees only the Python runtime it runs
  (read-only; the course's own package hidden if it lies there), the shared libraries and
  programs it needs (read-only), its own copy of the runner and its working folder, a private
  /tmp and /dev/shm (multiprocessing's pools work); no network, its own process tree (every
  process in it dies with it);
- no bubblewrap, and root can run each sandbox as an unprivileged user of its own (`setpriv`,
  from util-linux, no capabilities): the limits, and what that user may read. The grader
  checks, as that user, that it can read neither the reference implementation it runs nor the
  solution masters next to it (`course_files`); if it can, the mode does not contain
  (`Isolation.contained` is False, `refusal` says which file and what to do);
- neither: the limits only, as the grader's user: refused unless the risk is accepted.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_lib.grading import cgroups

__all__ = ["ACCEPT_RISK_FLAG", "Limits", "Isolation", "detect_isolation", "refusal",
           "command", "environment", "preexec", "new_group", "end", "site_packages",
           "runtime_paths", "bwrap_view", "course_files", "readable_by", "starts",
           "SANDBOX_USERS", "free_uid", "release_uid", "uids_in_use", "has_account",
           "processes_of_users", "readable_by_own_user"]

FILE_SIZE_LIMIT = 256 * 2**20
"""Bytes of one file the sandbox writes (RLIMIT_FSIZE)."""
SANDBOX_USERS = range(61184, 65520)
"""User ids for sandboxes run by root: systemd's range for users made on the fly (mapped even
in a container that maps only the first 65536 ids); one not in use is drawn for each run."""
_USERS_TAKEN: set[int] = set()  # by this grader's runs now (--jobs runs them side by side)
_USERS_LOCK = threading.Lock()
_COURSE_PACKAGE = Path(__file__).resolve().parents[1]  # course_lib, as the grader runs it


@dataclass(frozen=True)
class Limits:
    """timeout: seconds for a whole submission; memory_mb: its memory (all its processes)."""

    timeout: float = 60.0
    memory_mb: int = 2048

    @property
    def cell_timeout(self) -> float:
        """Seconds one code cell may run before it is stopped (and skipped)."""
        return round(max(1.0, self.timeout / 4), 2)

    @property
    def case_timeout(self) -> float:
        """Seconds a learner's function may run on one case."""
        return round(min(10.0, max(0.5, self.timeout / 6)), 2)

    @property
    def grace(self) -> float:
        """Extra seconds before an overrunning step is killed from outside."""
        return 1.0


@dataclass(frozen=True)
class Isolation:
    name: str  # "bwrap" or "none"
    description: str
    limits: str = ""  # the kernel's per-submission limits in force, "" when none
    unprivileged: bool = False  # root runs each sandbox as an unprivileged user of its own
    why_uncontained: str = ""  # why no mode keeps a submission to itself here ("" if one does)
    readable_course: str = ""  # a course file the sandbox's own user can read ("" if none)

    @property
    def isolated(self) -> bool:
        """Whether bubblewrap gives the sandbox its own view of the file system."""
        return self.name != "none"

    @property
    def contained(self) -> bool:
        """Whether a submission is kept from the other learners' files and from the course's:
        by bubblewrap's view, or by running as a user of its own that can read no file of the
        course (see BOUNDARY.md)."""
        return self.isolated or (self.unprivileged and not self.readable_course)

    @property
    def label(self) -> str:
        """For the gradebook's isolation column: the sandbox, then the limits in force."""
        sandbox = self.name if self.isolated else "none (no isolation)"
        if self.unprivileged:
            sandbox += ", unprivileged user"
        elif os.geteuid() == 0:
            sandbox += ", as root"
        limits = self.limits or _fallback_limits(self.unprivileged)
        return f"{sandbox}; {limits}"


ACCEPT_RISK_FLAG = "--i-accept-that-submissions-can-read-and-change-this-machine"
"""The command line's flag that grades without containment (a throw-away machine only)."""


@functools.cache
def detect_isolation(prefer: str = "auto") -> Isolation:
    """bubblewrap when it works here (and `prefer` is not "none"), else no isolation; as root,
    each sandbox as an unprivileged user of its own when the runtime starts as one; and the
    control groups this machine allows, in every mode. Each way is tried by starting the
    runner's Python (importing numpy) exactly so. Without bubblewrap and without a user of its
    own, `Isolation.contained` is False and `refusal(isolation)` says why and what to do."""
    groups = cgroups.detect()
    limits = f"per submission: {groups.description}" if groups else ""
    bwrap = shutil.which("bwrap") if prefer != "none" else None
    setpriv = shutil.which("setpriv")
    as_root = os.geteuid() == 0 and setpriv is not None
    for unprivileged in ((True, False) if as_root else (False,)):
        if bwrap and starts([bwrap, *bwrap_view(unprivileged)], unprivileged):
            user = ", as an unprivileged user of its own" if unprivileged else ""
            return Isolation(
                "bwrap",
                "bwrap: sees only the Python runtime (read-only), its own folder and a private "
                f"/tmp; no network, own process tree{user}" + (f"; {limits}" if limits else ""),
                limits, unprivileged,
            )
    unprivileged = as_root and starts([], unprivileged=True)
    readable = readable_by_own_user(course_files()) if unprivileged else ""
    why = "bubblewrap (bwrap) is not installed" if not shutil.which("bwrap") else (
        "bubblewrap cannot run here")
    if prefer == "none":
        why = "isolation turned off"
    user = "; as an unprivileged user of its own" if unprivileged else ""
    if readable:
        user += f", who can read the course's own files ({readable})"
    if os.geteuid() == 0 and not unprivileged:
        user = ("; AS ROOT: a submission can read and change every file of this machine "
                "(install bubblewrap, or grade as another user)")
    elif not unprivileged:
        user = (f"; as your user ({_user_name()}): a submission can read and change every file "
                "you can")
    uncontained = _why_no_own_user(setpriv) if not unprivileged else (
        f"a user of its own can read the course's own files ({readable})" if readable else "")
    return Isolation(
        "none", f"no isolation: {why}; only the time and memory limits apply{user}"
        + (f" ({limits})" if limits else ""), limits, unprivileged,
        f"{why}, and {uncontained}" if uncontained else "", readable,
    )


def _why_no_own_user(setpriv: str | None) -> str:
    """Why each submission cannot run as an unprivileged user of its own here."""
    if os.geteuid() != 0:
        return (f"the grader runs as {_user_name()}, not as root, so it cannot run each "
                "submission as a user of its own")
    if setpriv is None:
        return "setpriv (util-linux), which runs each submission as a user of its own, is missing"
    return (f"the Python runtime ({sys.base_prefix}) cannot start as another user (it is in a "
            "folder only root may read)")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"user {os.geteuid()}"


def refusal(isolation: Isolation) -> str:
    """One paragraph for an instructor: why the grader will not run submissions here, and what
    to do ("" when it may: the isolation keeps each submission to itself)."""
    if isolation.contained:
        return ""
    if isolation.unprivileged:  # a user of its own, who can read the course
        return (
            "The grader refuses to run the submissions: no isolation that keeps a submission "
            f"from the course can be had here ({isolation.why_uncontained}). Each submission "
            "would run as an unprivileged user of its own, which keeps it from the other "
            "learners' notebooks and the gradebook, but it could read the course's solution "
            "masters or its reference implementation and raise its own grade with them. What "
            "to do: install bubblewrap (`apt-get install bubblewrap`; then each submission "
            "sees only the Python runtime and its own folder); or make the course's checkout "
            "readable by root only (`chmod 700` on it), with the Python runtime and its "
            "packages outside it where other users can read them (a virtual environment under "
            "/opt or /srv, the course installed into it in editable mode: `pip install -e`); "
            "or, on a throw-away machine that holds nothing else, pass "
            f"{ACCEPT_RISK_FLAG} (grade(..., accept_risk=True))."
        )
    who = "root" if os.geteuid() == 0 else f"your user ({_user_name()})"
    return (
        "The grader refuses to run the submissions: no isolation that keeps a submission from "
        f"the other learners' notebooks and from the course can be had here ("
        f"{isolation.why_uncontained or 'no bubblewrap and no user of its own'}). Each "
        f"submission would run as {who}: it could read every solution of the course and "
        "change every other learner's notebook, the gradebook and this machine. What to do: "
        "install bubblewrap (`apt-get install bubblewrap`; then each submission sees only "
        "the Python runtime and its own folder); or grade as root with a Python runtime other "
        "users can read (a virtual environment under /opt or /srv, not under /root), so that "
        "each submission runs as an unprivileged user of its own; or, on a throw-away machine "
        "that holds nothing else, pass "
        f"{ACCEPT_RISK_FLAG} (grade(..., accept_risk=True))."
    )


_STARTS = ("import sys; sys.path.append(sys.argv[1]); import numpy, IPython.core.interactiveshell"
           "; assert sys.base_prefix == sys.argv[2], sys.base_prefix")
"""What the runner's Python must do where it runs: import what the runner imports, from the
grader's own runtime (a Python that cannot read its own folder falls back to another one's)."""


def starts(prefix: list[str], unprivileged: bool) -> bool:
    """Whether the runner's Python starts this way, as the grader's runtime."""
    uid = free_uid() if unprivileged else None
    command = [*prefix, *(_as_user(uid) if uid is not None else []), sys.executable, "-I", "-S",
               "-c", _STARTS, site_packages(), sys.base_prefix]
    try:
        return subprocess.run(command, capture_output=True, timeout=30,
                              cwd="/").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        release_uid(uid)


def new_group(limits: Limits) -> cgroups.Group | None:
    """A control group for one attempt, with the memory limit (None where none can be made)."""
    controllers = cgroups.detect()
    if controllers is None:
        return None
    try:
        return cgroups.Group(controllers, limits.memory_mb * 2**20)
    except OSError:
        return None


def _fallback_limits(unprivileged: bool) -> str:
    """The limits in force without a control group."""
    if unprivileged:
        return (f"rlimits only (address space per process; {cgroups.MAX_PROCESSES} processes "
                "per submission: each runs as its own user)")
    if os.geteuid() == 0:
        return ("rlimits only (address space per process; no process limit: root, and no "
                "control group)")
    return ("rlimits only (address space per process; processes of this user limited to "
            f"those running now + {2 * cgroups.MAX_PROCESSES})")


def _process_cap(uid: int | None, group: cgroups.Group | None) -> int | None:
    """RLIMIT_NPROC for the sandbox, which counts every process of its (real) user: for a user
    of its own, MAX_PROCESSES; else, without a control group and as a user other than root
    (root is not limited), what that user runs now plus MAX_PROCESSES per sandbox."""
    if uid is not None:
        return cgroups.MAX_PROCESSES
    if group is not None or os.geteuid() == 0:
        return None
    return processes_of_users().get(os.getuid(), 0) + 2 * cgroups.MAX_PROCESSES


def processes_of_users() -> dict[int, int]:
    """How many processes each user id runs now (from /proc)."""
    counts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                uid = entry.stat().st_uid
                counts[uid] = counts.get(uid, 0) + 1
        except OSError:
            continue
    return counts


def free_uid() -> int:
    """A user id (and group id) in SANDBOX_USERS that no account, group, process or other run
    of this grader has; taken until `release_uid`."""
    running = processes_of_users()
    for uid in random.sample(SANDBOX_USERS, 64):
        if uid in running or has_account(uid):
            continue
        with _USERS_LOCK:
            if uid not in _USERS_TAKEN:
                _USERS_TAKEN.add(uid)
                return uid
    raise RuntimeError("no free user id for the sandbox")


def release_uid(uid: int | None) -> None:
    """Give back a user id that `free_uid` handed out (None: nothing)."""
    with _USERS_LOCK:
        _USERS_TAKEN.discard(uid)


def uids_in_use() -> frozenset[int]:
    """The user ids this grader's runs hold now."""
    with _USERS_LOCK:
        return frozenset(_USERS_TAKEN)


def has_account(uid: int) -> bool:
    """Whether a user or a group of the system has this id."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            continue
    return False


def _as_user(uid: int) -> list[str]:
    """The command prefix that runs what follows as `uid` (and its group), with no other groups,
    no capabilities and no way to gain privileges (setpriv, from util-linux)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def preexec(limits: Limits, uid: int | None,
            group: cgroups.Group | None) -> Callable[[], None]:
    """What the runner's process does before it runs anything (`Popen(preexec_fn=...)`): join
    its control group, and set the limits every process it starts inherits."""
    return functools.partial(_child_setup, limits.memory_mb * 2**20, group,
                             _process_cap(uid, group))


def _child_setup(memory_bytes: int, group: cgroups.Group | None,
                 process_cap: int | None = None) -> None:
    if group is not None:
        group.join()
    if process_cap is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (process_cap, process_cap))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file: an error, not a kill


def end(process: subprocess.Popen[bytes], group: cgroups.Group | None) -> None:
    """End the sandbox: its process group, its control group, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if group is not None:
        group.kill()
    process.wait()


def command(isolation: Isolation, uid: int | None, lib: Path, work: Path,
            runner_args: Sequence[str]) -> list[str]:
    """How to start `lib`/runner.py (with `runner_args` after the packages' folder) in the
    sandbox: under bubblewrap when `isolation` has it, with `lib` read-only and `work` its
    working folder; as `uid` when given (root's sandboxes)."""
    python = [sys.executable, "-I", "-S", str(lib / "runner.py"), site_packages(), *runner_args]
    if uid is not None:
        python = _as_user(uid) + python
    if not isolation.isolated:
        return python
    folders = _binds([("--ro-bind", str(lib)), ("--bind", str(work))], isolation.unprivileged)
    return ["bwrap", *bwrap_view(isolation.unprivileged), *folders, "--chdir", str(work),
            *python]


def environment(isolation: Isolation, work: Path) -> dict[str, str]:
    """The runner's whole environment (nothing of the grader's)."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work), "TMPDIR": "/tmp" if isolation.isolated else str(work),
        "IPYTHONDIR": str(work / ".ipython"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


# -- what the sandbox can see ------------------------------------------------------------------


@functools.cache
def site_packages() -> str:
    """The folder of the runtime's packages (numpy's), which the runner adds to its path."""
    return str(Path(np.__file__).resolve().parent.parent)


_PROBE = (
    "import sys; sys.path.append(sys.argv[1]); import numpy, ctypes, ssl, sqlite3, lzma, bz2, "
    "zlib, hashlib, decimal, uuid, pyexpat, IPython.core.interactiveshell; "
    "print('\\n'.join({l.split(maxsplit=5)[5] for l in open('/proc/self/maps') "
    "if len(l.split(maxsplit=5)) == 6 and '.so' in l}))"
)


@functools.cache
def runtime_paths() -> tuple[str, ...]:
    """What the runner needs, read-only: the Python runtime and its packages, the folders of
    the shared libraries it loads (found by a probe that imports them), the programs `!`
    commands run, and the dynamic loader's cache."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(sys.executable).parent, Path(site_packages()), Path("/usr/bin")}
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, site_packages()],
                               capture_output=True, text=True, timeout=60)
        libraries = [Path(line) for line in probe.stdout.splitlines() if line.startswith("/")]
    except (OSError, subprocess.SubprocessError):
        libraries = []
    prefixes = [p for p in paths if p != Path("/usr/bin")]
    for library in libraries:
        if not any(library.is_relative_to(p) for p in prefixes):
            paths.add(library.parent)
    for extra in ("/usr/lib64", "/etc/ld.so.cache"):
        if Path(extra).exists():
            paths.add(Path(extra))
    ordered = sorted(str(p) for p in paths if p.exists())
    return tuple(p for p in ordered if not any(p != q and p.startswith(q + "/") for q in ordered))


@functools.cache
def bwrap_view(unprivileged: bool = False) -> tuple[str, ...]:
    """bubblewrap's arguments for the sandbox's view of the file system (before the run's own
    folders): nothing but the runtime, read-only, on an empty root.

    Every namespace is new. For a sandbox that switches to a user of its own (root's), all but
    the user namespace: as root, bubblewrap's user namespace would hold root alone, and no
    other user could be switched to; the sandbox's /tmp is then open to that user."""
    if unprivileged:
        view = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--perms", "1777"]
    else:
        view = ["--unshare-all"]
    view += ["--tmpfs", "/tmp", "--die-with-parent", "--new-session",
             "--dev", "/dev", "--proc", "/proc",
             "--perms", "1777", "--tmpfs", "/dev/shm"]  # multiprocessing's locks live there
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):  # merged /usr: the usual links, to what is bound below
            view += ["--symlink", os.readlink(top), top]
    view += _binds([("--ro-bind", path) for path in runtime_paths()], unprivileged)
    view += _hidden(runtime_paths())
    return tuple(view)


def _binds(binds: Sequence[tuple[str, str]], unprivileged: bool) -> list[str]:
    """bubblewrap's arguments that mount each (option, path) at the same path. For a sandbox
    with a user of its own, the folders above each path are made first, open to anyone:
    bubblewrap would copy the host's modes, and that user could not pass /root's 0700."""
    args: list[str] = []
    made = {"/", "/tmp", "/dev", "/proc", "/bin", "/sbin", "/lib", "/lib64"}
    for option, path in binds:
        for parent in reversed(Path(path).parents):
            if unprivileged and str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += [option, path, path]
    return args


# -- what the sandbox must not read --------------------------------------------------------------


def course_files() -> tuple[Path, ...]:
    """The course's own files that no submission may read: the reference implementation the
    grader runs (course_lib's modules) and the solution masters of the checkout it runs from
    (exercises/solutions/*.ipynb next to course_lib), where there is one. A copy kept elsewhere
    is the instructor's to keep unreadable (BOUNDARY.md)."""
    masters = _COURSE_PACKAGE.parent / "exercises" / "solutions"
    return (*sorted(_COURSE_PACKAGE.glob("*.py")), *sorted(masters.glob("*.ipynb")))


_READS = 'for path; do if true 2>/dev/null < "$path"; then echo "$path"; exit 0; fi; done'
"""A shell loop that opens each path for reading and prints the first it can: no Python, so
that it runs as that user even where the runtime could not."""


def readable_by(uid: int, paths: Sequence[Path]) -> str:
    """The first of `paths` that user `uid` can open for reading, tried as that user (no
    capabilities, no groups), or "" when it can open none; when the probe cannot run, the first
    path (fail closed)."""
    if not paths:
        return ""
    probe = [*_as_user(uid), "/bin/sh", "-c", _READS, "sh", *map(str, paths)]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, cwd="/")
    except (OSError, subprocess.SubprocessError):
        return f"{paths[0]} (could not be checked)"
    if done.returncode != 0:
        return f"{paths[0]} (could not be checked)"
    return done.stdout.strip()


def readable_by_own_user(paths: Sequence[Path]) -> str:
    """`readable_by` for a user id drawn from the pool, as a sandbox would get."""
    uid = free_uid()
    try:
        return readable_by(uid, paths)
    finally:
        release_uid(uid)


def _hidden(bound: Sequence[str]) -> list[str]:
    """bubblewrap's arguments that hide the course's own folders where they lie inside a folder
    the sandbox sees (course_lib installed into the runtime's packages): an empty tmpfs over
    each."""
    folders = {str(path.parent) for path in course_files()}
    return [arg for folder in sorted(folders)
            if any(folder == b or folder.startswith(b + "/") for b in bound)
            for arg in ("--tmpfs", folder)]
