"""Helpers for the browser test: a JupyterLab server, headless Chromium, and a learner's actions.

The server is started the way `make lab` starts it, from this environment's Python, on a free
loopback port with a generated token, and serves a temporary copy of the course (so nothing the
browser does, autosave included, can touch the committed notebooks). Chromium is Debian's
`/usr/bin/chromium`, driven by Playwright for Python.

What a learner sees is read from JupyterLab's DOM: cells are `.jp-Cell`, outputs
`.jp-OutputArea-output` with a `data-mime-type`, the kernel's state is the `data-status` of the
notebook toolbar's execution indicator.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}

# Generous: the machine is small and shared. Waits poll for a condition, they never just sleep.
SERVER_START_TIMEOUT_S = 90
LAB_LOAD_TIMEOUT_MS = 90_000
RUN_ALL_TIMEOUT_MS = 180_000
OUTPUT_TIMEOUT_MS = 60_000

# What a widget or a figure looks like when the browser could not render it: its plain text.
TEXT_FALLBACK = re.compile(
    r"(IntSlider|FloatSlider|SelectionSlider|Dropdown|Checkbox|VBox|HBox|Image|HTML)\(|"
    r"\w+Explorer\(|<Figure size|Error displaying widget|Loading widget"
)


def why_not_runnable() -> str | None:
    """None when the browser test can run here, else how to enable it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the browser test needs Playwright for Python: install the dev extra "
            "(make setup, or .venv/bin/python -m pip install -e '.[dev]')"
        )
    if not CHROMIUM.exists():
        return (
            f"the browser test needs Debian's Chromium at {CHROMIUM}: "
            "apt-get install chromium (never `playwright install`)"
        )
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_course(destination: Path) -> Path:
    """Copy the notebooks the learner opens (lessons and exercises) into `destination`."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("notebooks", "exercises"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


@dataclass
class LabServer:
    """A running JupyterLab: its base URL and token, and the process to stop."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, path: str) -> str:
        """The URL that opens `path` (relative to the root) in a fresh JupyterLab layout."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def shut_down_kernels(self) -> None:
        """End every session, so that each notebook gets a fresh kernel and none are left."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


@contextmanager
def jupyter_lab(
    root_dir: Path, log_path: Path, extra_args: tuple[str, ...] = ()
) -> Iterator[LabServer]:
    """Start JupyterLab as `make lab` does, wait until it answers; always stop it afterwards."""
    port, token = free_port(), secrets.token_hex(24)
    state = root_dir.parent / "jupyter-state"  # settings and workspaces of this run only
    env = os.environ | {
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
    }
    command = [
        sys.executable, "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        *extra_args,
    ]  # fmt: skip
    # JupyterLab 4.6 asks "Would you like to get notified about official Jupyter news?" even
    # with news_url=None; answer it in this run's own settings so that the page stays clean.
    notification = state / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kernels are stopped with it
        )  # fmt: skip
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n"
                        f"{log_path.read_text()}"
                    ) from None
                time.sleep(0.25)
        yield server
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM (JupyterLab shuts its kernels down), then SIGKILL the group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group we started: kernels left behind
    except ProcessLookupError:
        pass
    process.wait(timeout=20)


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Any]:
    """Debian's headless Chromium under Playwright, as a persistent context; always closed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


# --- reading the page ---------------------------------------------------------------------------

# A cell's input prompt ("[3]:"); not the empty one of the placeholder that stands for a hidden
# input (a maintainer-check cell, whose source is collapsed).
_INPUT_PROMPT = ".jp-InputPrompt:not(.jp-Placeholder-prompt)"

# One record per cell of the open notebook: what the learner sees in it.
_CELLS_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  return [...panel.querySelectorAll('.jp-Notebook .jp-Cell')].map((cell, index) => ({
    index,
    code: cell.classList.contains('jp-CodeCell'),
    hidden: !!cell.querySelector('.jp-InputPlaceholder'),  // input collapsed: no prompt shown
    prompt: (cell.querySelector('INPUT_PROMPT')?.textContent || '').trim(),
    source: (cell.querySelector('.cm-content')?.innerText || '').slice(0, 80),
    outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(out => ({
      mime: out.getAttribute('data-mime-type') || '',
      text: (out.textContent || '').slice(-4000),  // a traceback ends with the error
      images: [...out.querySelectorAll('img')].map(img => ({
        src: img.getAttribute('src') || '',
        loaded: img.complete && img.naturalWidth > 0,
      })),
      widgets: out.querySelectorAll('.jupyter-widgets').length,
      controls: out.querySelectorAll(
        '.widget-slider, .widget-dropdown, .widget-checkbox, .widget-toggle-button, ' +
        '.widget-text, .widget-button, select, input').length,
    })),
  }));
}
""".replace("INPUT_PROMPT", _INPUT_PROMPT)

# Done: the kernel is idle and no cell is queued or running, and either every code cell has run
# or an error stopped the run (JupyterLab then leaves the rest un-run). JupyterLab shows an error
# (a traceback) as an output of MIME type application/vnd.jupyter.stderr, like a warning.
_RUN_FINISHED_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const status = panel?.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
  if (status !== 'idle') return false;
  const prompts = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell INPUT_PROMPT')]
    .map(p => p.textContent.trim());
  if (prompts.some(p => p.includes('*'))) return false;
  const error = panel.querySelector(
    '.jp-OutputArea-output[data-mime-type*="error"], ' +
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
  return !!error || prompts.every(p => /\\[\\d+\\]/.test(p));
}
""".replace("INPUT_PROMPT", _INPUT_PROMPT)


def cells(page: Any) -> list[dict]:
    return page.evaluate(_CELLS_JS)


# --- a learner's actions ------------------------------------------------------------------------


def open_notebook(page: Any, server: LabServer, path: str) -> int:
    """Open `path` in JupyterLab; wait until all its cells are on the page and its kernel is idle.

    Returns the number of cells. JupyterLab adds a long notebook's cells to the page in steps.
    """
    n_cells = len(json.loads((server.root_dir / path).read_text())["cells"])
    page.goto(server.lab_url(path), wait_until="domcontentloaded", timeout=LAB_LOAD_TIMEOUT_MS)
    page.wait_for_function(
        "n => document.querySelectorAll("
        "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
        arg=n_cells,
        timeout=LAB_LOAD_TIMEOUT_MS,
    )
    wait_for_idle_kernel(page)
    return n_cells


def wait_for_idle_kernel(page: Any, timeout_ms: int = LAB_LOAD_TIMEOUT_MS) -> None:
    page.wait_for_function(
        "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'",
        timeout=timeout_ms,
    )


def menu(page: Any, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items (as a learner does)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(
        ".lm-Menu:not(.lm-mod-hidden) .lm-Menu-itemLabel",
        has_text=re.compile(f"^{re.escape(item)}$"),
    ).click()


def accept_dialog(page: Any) -> None:
    """Confirm the dialog that is open (e.g. "Restart Kernel?") and wait until it is gone."""
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")


def restart_and_run_all(page: Any) -> None:
    """Clear the saved outputs, then Kernel > Restart Kernel and Run All Cells…; wait until done.

    Clearing first means every prompt and output on the page afterwards comes from this run.
    """
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        "() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-OutputArea-output')"
    )
    menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    accept_dialog(page)
    page.wait_for_function(_RUN_FINISHED_JS, timeout=RUN_ALL_TIMEOUT_MS, polling=250)


def cell_locator(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def type_into_cell(page: Any, index: int, code: str) -> str:
    """Replace the code of cell `index` by typing `code`; return the code the editor now holds.

    Each line is typed without its leading spaces: after Enter the editor indents by itself, as it
    does for a learner (so `code` must be indented the way the editor indents it).
    """
    editor = cell_locator(page, index).locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    for number, line in enumerate(code.splitlines()):
        if number:
            page.keyboard.press("Enter")
        page.keyboard.type(line.lstrip())
    return editor_text(page, index)


def editor_text(page: Any, index: int) -> str:
    lines = cell_locator(page, index).locator(".cm-content .cm-line").all_inner_texts()
    return "\n".join(line.replace("\u00a0", " ") for line in lines)


def run_cell(page: Any, index: int) -> None:
    """Select cell `index` and run it with Ctrl+Enter, as a learner does."""
    cell = cell_locator(page, index)
    cell.locator(".jp-InputArea-prompt, .jp-InputPrompt").first.click()
    page.keyboard.press("Control+Enter")


def scroll_to(page: Any, locator: Any) -> None:
    """Scroll the notebook until `locator` sits still in the middle of the view.

    Cells above it may still be growing (figures decoding, lazily laid out cells), so scroll
    again until its position no longer changes.
    """
    locator.evaluate(
        """async element => {
          let last = null;
          for (let i = 0; i < 50; i++) {
            element.scrollIntoView({block: 'center'});
            await new Promise(done => requestAnimationFrame(() => setTimeout(done, 50)));
            const top = element.getBoundingClientRect().top;
            if (last !== null && Math.abs(top - last) < 1) return;
            last = top;
          }
        }"""
    )


def assert_clean_page(page: Any) -> None:
    """No dialog, pop-up or notification toast covers the notebook."""
    covering = page.evaluate(
        "() => [...document.querySelectorAll('.jp-Dialog, .Toastify__toast, .lm-Menu')]"
        ".filter(e => e.offsetParent !== null || e.getClientRects().length)"
        ".map(e => (e.innerText || e.className).slice(0, 120))"
    )
    assert not covering, f"something covers the page: {covering}"


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
