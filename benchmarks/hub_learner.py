"""What one learner needs on a hub: memory and time to run every lesson and every exercise.

    .venv/bin/python benchmarks/hub_learner.py

One learner's day, as on the hub: every lesson, then every exercise (the instructor's solved
masters, so that every cell runs as for a learner who finished), each notebook top to bottom in
a kernel of its own, as JupyterLab gives each open notebook. For each notebook: the wall-clock
time and the kernel's peak resident memory (VmHWM in /proc, read after every cell); then the
JupyterLab server's own memory when idle. A learner who leaves every kernel running holds the sum
of the kernels; one who closes each notebook (Kernel > Shut Down) holds the largest. Runs on a
temporary copy; nothing in the checkout is written. Linux only (/proc). Timings are noisy on a
shared machine: read them as an order of magnitude.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def peak_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's peak (VmHWM) or current (VmRSS) resident memory, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def run(path: Path) -> tuple[float, float, str]:
    """(seconds, kernel peak MB, error or "") for one notebook in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peak = [0.0]

    def measure(**_: object) -> None:
        peak[0] = max(peak[0], peak_mb(client.km.provisioner.process.pid))

    client.on_cell_executed = measure
    started = time.perf_counter()
    try:
        client.execute()
        error = ""
    except Exception as exc:  # a notebook being edited by someone else: report, go on
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:80]}"
    return time.perf_counter() - started, peak[0], error


def server_mb(root: Path) -> float:
    """The resident memory of an idle JupyterLab server (what jupyterhub-singleuser runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", f"--ServerApp.root_dir={root}",
               *(["--allow-root"] if os.geteuid() == 0 else [])]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(2)
        return peak_mb(server.pid, "VmRSS")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
        for folder in ("notebooks", "exercises"):
            shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
        notebooks = [*sorted((copy / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                     *sorted((copy / "exercises" / "solutions").glob("[0-9][0-9]_*.ipynb"))]
        print(f"{os.cpu_count()} cores; one kernel per notebook, run top to bottom\n")
        print(f"{'notebook':<50} {'time (s)':>9} {'kernel peak (MB)':>17}")
        rows = []
        for path in notebooks:
            seconds, peak, error = run(path)
            rows.append((seconds, peak))
            name = path.relative_to(copy).as_posix()
            print(f"{name:<50} {seconds:>9.1f} {peak:>17.0f}  {error}", flush=True)
        server = server_mb(copy)
    total = sum(seconds for seconds, _ in rows)
    largest, every = max(peak for _, peak in rows), sum(peak for _, peak in rows)
    print(f"\nall {len(rows)} notebooks: {total:.0f} s of computing")
    print(f"largest kernel: {largest:.0f} MB; every kernel left running: {every:.0f} MB")
    print(f"JupyterLab server, idle: {server:.0f} MB")
    print(f"one learner, closing notebooks when done: about {server + largest:.0f} MB; "
          f"leaving them all open: about {server + every:.0f} MB")


if __name__ == "__main__":
    main()
