"""The workshop route end to end: JupyterHub, the nbgitpuller link, three learners, collect, grade.

JupyterHub is started on localhost with deploy/jupyterhub/jupyterhub_config.py (its room
password authenticator included); only the spawner is swapped, for JupyterHub's
SimpleLocalProcessSpawner: every learner's server runs as the user running the test, in its own
home folder under a temporary directory. The real room's LocalProcessSpawner needs one system
account per learner (`useradd`), which a test on a shared machine must not create; the single-user
server, nbgitpuller and the kernel are the same either way (only the isolation between learners
differs, and that is the operating system's job, not the course's).

In headless Chromium three learners log in at the same time, each opens the nbgitpuller link
(the repository: a local git repository of the course), runs lesson 00 top to bottom, fills
exercise 03 (alice correctly, bob with one wrong function, carol not at all) and saves. The
instructor then collects and grades: three rows with scores 3, 2 and 0, and a Canvas file. Every
process the test started is stopped, checked by a token in their environment. Screenshots go to
test-artifacts/hub/.

Run it alone with `.venv/bin/python -m pytest -m hub tests/test_hub.py` (a few minutes); it needs
the `hub` extra (`pip install -e '.[dev,hub]'`), `configurable-http-proxy` (npm) and Chromium;
`.ci/run` installs all three.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import browser_support as lab_ui
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, ROOT, VIEWPORT

from course_lib.__main__ import main
from course_lib.hub import collect, hub_link, repo_folder

pytestmark = pytest.mark.hub

ARTIFACTS = ROOT / "test-artifacts" / "hub"
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
LESSON = "notebooks/00_welcome.ipynb"
EXERCISE = "exercises/03_scaling_and_softmax.ipynb"
HUB_START_TIMEOUT_S = 120
SPAWN_TIMEOUT_MS = 180_000
PULL_TIMEOUT_MS = 180_000

SCALE = "def scale_scores(A, d_k):\nreturn A / np.sqrt(d_k)"
SOFTMAX = ("def softmax(x, axis=-1):\ne = np.exp(x - x.max(axis=axis, keepdims=True))\n"
           "return e / e.sum(axis=axis, keepdims=True)")
WEIGHTS = ("def attention_weights(Q, K):\n"
           "return softmax(scale_scores(Q @ np.swapaxes(K, -1, -2), Q.shape[-1]))")
WEIGHTS_UNSCALED = "def attention_weights(Q, K):\nreturn softmax(Q @ np.swapaxes(K, -1, -2))"
# What each learner types into exercise 03's three function cells, and the score it earns.
LEARNERS: dict[str, tuple[tuple[str, ...], int]] = {
    "alice": ((SCALE, SOFTMAX, WEIGHTS), 3),           # correct
    "bob": ((SCALE, SOFTMAX, WEIGHTS_UNSCALED), 2),    # partly wrong: forgets √d_k
    "carol": ((), 0),                                  # untouched
}
FUNCTION_CELLS = ("def scale_scores", "def softmax", "def attention_weights")


def why_not_runnable() -> str | None:
    """None when the hub test can run here, else everything it lacks and how to install it."""
    missing = []
    if find_spec("jupyterhub") is None or find_spec("nbgitpuller") is None:
        missing.append("the hub extra (.venv/bin/python -m pip install -e '.[dev,hub]')")
    if not shutil.which("configurable-http-proxy"):
        missing.append("configurable-http-proxy (npm install -g configurable-http-proxy)")
    if not shutil.which("git"):
        missing.append("git (apt-get install git)")
    browser = lab_ui.why_not_runnable()
    if browser:
        missing.append(browser.replace("the browser test needs ", ""))
    if not missing:
        return None
    return ("the hub test needs " + "; ".join(missing) + "; .ci/run installs them all "
            "(alone: .venv/bin/python -m pytest -m hub tests/test_hub.py)")


# --- the hub ------------------------------------------------------------------------------------


@dataclass
class Hub:
    url: str
    password: str
    homes: Path
    token: str  # in the environment of every process the hub starts


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Instructor", "-c", "user.email=i@example.org",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, check=True,
                   capture_output=True)


def course_repository(destination: Path) -> Path:
    """A local git repository of the course: its lessons and exercises as they are now, without
    the masters in exercises/solutions/ (a workshop branch, as deploy/jupyterhub/README.md says:
    the link hands out the whole repository)."""
    lab_ui.copy_course(destination)
    shutil.rmtree(destination / "exercises" / "solutions")
    git(destination, "init", "-q")
    git(destination, "add", ".")
    git(destination, "commit", "-q", "-m", "the course")
    return destination


def processes_with(token: str) -> list[int]:
    """The processes whose environment holds `token`: everything this test's hub started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if token.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass  # gone, or not ours to read
    return found


def memory_report(token: str) -> str:
    """Peak resident memory (VmHWM) of every process the hub started: a record, not a check."""
    lines = []
    for pid in processes_with(token):
        try:
            command = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                       .decode(errors="replace"))
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peak = next((int(line.split()[1]) // 1024 for line in status.splitlines()
                     if line.startswith("VmHWM:")), 0)
        lines.append(f"{peak:>6} MB  {command[:150]}")
    return "\n".join(sorted(lines, key=lambda line: line[60:])) + "\n"


def stop_all(process: subprocess.Popen, token: str) -> list[int]:
    """Stop the hub (it stops the proxy and the learners' servers), then any process it left;
    returns the processes that had to be killed."""
    lab_ui.stop_process_group(process)
    leftovers = processes_with(token)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    return leftovers


@contextmanager
def jupyterhub(tmp: Path) -> Iterator[Hub]:
    """JupyterHub on free loopback ports with the course's configuration; always stopped."""
    port, hub_port, api_port = (lab_ui.free_port() for _ in range(3))
    token, password = f"course-hub-test-{secrets.token_hex(8)}", secrets.token_urlsafe(12)
    homes = tmp / "home"
    for learner in LEARNERS:  # no "get notified about Jupyter news?" toast over the screenshots
        settings = homes / learner / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    test_config = tmp / "jupyterhub_test_config.py"
    # The course's configuration, then only what a test on a shared machine needs instead.
    test_config.write_text(f"""
c = get_config()  # noqa
load_subconfig({str(CONFIG)!r})
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(homes)!r} + "/{{username}}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.Spawner.environment = {{**c.Spawner.environment, "COURSE_HUB_TEST": {token!r}}}
c.Spawner.args = [*c.Spawner.args, *{['--allow-root'] if os.geteuid() == 0 else []!r}]
""")
    env = os.environ | {
        "COURSE_HUB_TEST": token,
        "COURSE_HUB_URL": f"http://127.0.0.1:{port}",
        "COURSE_HUB_STATE": str(tmp / "hub-state"),
        "COURSE_HUB_PASSWORD": password,
        "COURSE_HUB_ADMINS": "",
    }
    env.pop("COURSE_HUB_ROSTER", None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "jupyterhub.log", "wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(test_config)],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    hub = Hub(f"http://127.0.0.1:{port}", password, homes, token)
    try:
        deadline = time.monotonic() + HUB_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterHub exited with {process.returncode}:\n"
                                   f"{(ARTIFACTS / 'jupyterhub.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=5) as response:
                    json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                if time.monotonic() > deadline:
                    raise TimeoutError("JupyterHub did not answer within "
                                       f"{HUB_START_TIMEOUT_S} s") from None
                time.sleep(0.5)
        yield hub
    finally:
        killed = stop_all(process, token)
        (ARTIFACTS / "cleanup.txt").write_text(
            f"processes left after the hub stopped, killed: {killed or 'none'}\n")
        assert not processes_with(token), "a process the hub started is still running"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (never `playwright install`); always closed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --- a learner's actions ------------------------------------------------------------------------


def screenshot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def log_in(page: Any, hub: Hub, learner: str) -> None:
    page.goto(f"{hub.url}/hub/login", wait_until="domcontentloaded")
    page.fill("#username_input", learner)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=SPAWN_TIMEOUT_MS)


def wait_for_notebook(page: Any, n_cells: int, timeout_ms: int = SPAWN_TIMEOUT_MS) -> None:
    """Wait until JupyterLab shows the notebook with all its cells and an idle kernel."""
    page.wait_for_function(
        "n => document.querySelectorAll("
        "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
        arg=n_cells, timeout=timeout_ms,
    )
    lab_ui.wait_for_idle_kernel(page)


def start_run_all(page: Any) -> None:
    """Clear the outputs, then Kernel > Restart Kernel and Run All Cells… (does not wait)."""
    lab_ui.menu(page, "Edit", "Clear Outputs of All Cells")
    lab_ui.menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    lab_ui.accept_dialog(page)


def wait_for_run(page: Any) -> list[dict]:
    page.wait_for_function(lab_ui._RUN_FINISHED_JS, timeout=lab_ui.RUN_ALL_TIMEOUT_MS,
                           polling=250)
    return lab_ui.cells(page)


def errors(shown: list[dict]) -> list[str]:
    return [f"cell {cell['index']}: {out['text'][-300:]}" for cell in shown
            for out in cell["outputs"] if "error" in out["mime"] or out["mime"].endswith("stderr")]


def save(page: Any) -> None:
    """File > Save Notebook; wait until the tab is no longer marked as changed."""
    lab_ui.menu(page, "File", "Save Notebook")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')")


def notebook_cells(path: Path) -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]]


# --- the test ------------------------------------------------------------------------------------


def test_three_learners_on_the_hub_then_collect_and_grade(tmp_path: Path) -> None:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    started = time.monotonic()
    upstream = course_repository(tmp_path / "self-attention-course")
    folder = repo_folder(str(upstream))
    lesson_cells = len(notebook_cells(upstream / LESSON))
    exercise_source = notebook_cells(upstream / EXERCISE)
    exercise_cells = len(exercise_source)
    function_cells = [next(i for i, code in enumerate(exercise_source) if code.startswith(name))
                      for name in FUNCTION_CELLS]

    with jupyterhub(tmp_path) as hub, chromium() as browser:
        link = hub_link(hub.url, str(upstream))
        pages = {}
        for learner in LEARNERS:  # three learners at the same time, each in a browser of their own
            context = browser.new_context(viewport=VIEWPORT)
            pages[learner] = context.new_page()
            log_in(pages[learner], hub, learner)
        for page in pages.values():
            page.goto(link, wait_until="domcontentloaded", timeout=SPAWN_TIMEOUT_MS)
        for learner, page in pages.items():  # nbgitpuller clones, then opens lesson 00
            page.wait_for_url(f"**/user/{learner}/lab/tree/{folder}/{LESSON}*",
                              timeout=PULL_TIMEOUT_MS)
            wait_for_notebook(page, lesson_cells)
            assert (hub.homes / learner / folder / LESSON).is_file()
        for page in pages.values():
            start_run_all(page)  # all three kernels run lesson 00 at once
        for learner, page in pages.items():
            shown = wait_for_run(page)
            lab_ui.scroll_to(page, lab_ui.cell_locator(page, lesson_cells - 1))
            screenshot(page, f"{learner}-1-lesson-00")
            assert not errors(shown), f"{learner}'s lesson 00: {errors(shown)}"
            # a collapsed input (a maintainer check) shows no prompt; its error would show above
            assert all(re_prompt(cell) for cell in shown if cell["code"] and not cell["hidden"]), (
                f"{learner}: not run")

        for learner, page in pages.items():
            page.goto(f"{hub.url}/user/{learner}/lab/tree/{folder}/{EXERCISE}",
                      wait_until="domcontentloaded")
            wait_for_notebook(page, exercise_cells)
            for index, code in zip(function_cells, LEARNERS[learner][0], strict=False):
                typed = lab_ui.type_into_cell(page, index, code)
                assert typed.replace(" ", "") == code.replace(" ", ""), typed
            start_run_all(page)
        for learner, page in pages.items():
            shown = wait_for_run(page)
            assert not errors(shown), f"{learner}'s exercise: {errors(shown)}"
            save(page)
            check = lab_ui.cell_locator(page, function_cells[-1] + 1)
            lab_ui.scroll_to(page, check)
            screenshot(page, f"{learner}-2-exercise-03")
            saved = notebook_cells(hub.homes / learner / folder / EXERCISE)
            for index, code in zip(function_cells, LEARNERS[learner][0], strict=False):
                assert code.splitlines()[-1].strip() in saved[index]
        (ARTIFACTS / "memory.txt").write_text(memory_report(hub.token))

    # The instructor: collect from the homes, grade, export for Canvas.
    submissions, grades = tmp_path / "submissions", tmp_path / "grades"
    homes_before = {p: p.read_bytes() for p in hub.homes.rglob("*.ipynb")}
    collected = collect([str(hub.homes / "*")], submissions, prefix="", exercise="03")
    assert {c.learner for c in collected if c.started} == set(LEARNERS)
    assert {p: p.read_bytes() for p in hub.homes.rglob("*.ipynb")} == homes_before
    roster = tmp_path / "roster.csv"
    roster.write_text("learner,student_id,name,email\n" + "".join(
        f"{name},S{n},{name.title()},{name}@example.org\n" for n, name in enumerate(LEARNERS)))
    assert main(["grade", str(submissions), "--out", str(grades), "--jobs", "2",
                 "--roster", str(roster), "--lms", "canvas"]) == 0
    with open(grades / "gradebook.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert {row["submission"]: int(row["score"]) for row in rows} == {
        f"{learner}/03_scaling_and_softmax.ipynb": score
        for learner, (_, score) in LEARNERS.items()}
    assert all(row["max_score"] == "3" for row in rows)
    with open(grades / "canvas.csv", encoding="utf-8") as file:
        canvas = list(csv.reader(file))
    assert [(row[0], row[-1]) for row in canvas[2:]] == [("Alice", "3"), ("Bob", "2"),
                                                         ("Carol", "0")]
    (ARTIFACTS / "run-time.txt").write_text(
        f"the hub test took {time.monotonic() - started:.0f} s (wall clock, this machine)\n")


def re_prompt(cell: dict) -> bool:
    """The cell has run in this session: its prompt shows an execution count."""
    return any(ch.isdigit() for ch in cell["prompt"])
