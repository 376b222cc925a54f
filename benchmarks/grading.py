"""Benchmark: grade 30 generated submissions (correct, wrong, hostile) with --jobs 2.

    .venv/bin/python benchmarks/grading.py [--jobs 2] [--timeout 10]

Prints the wall time and the submissions per second. Target on a 2-core machine: the 30
submissions in under 60 s. A benchmark, not a test: nothing here asserts. Like `grade`, it
refuses to run the hostile submissions where nothing isolates them (one writes /etc/hostname).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from course_lib.grading import UncontainedError, detect_isolation, grade

ROOT = Path(__file__).resolve().parent.parent
CORRECT = {
    "scale_scores": "def scale_scores(A, d_k):\n    return A / np.sqrt(d_k)",
    "softmax": "def softmax(x, axis=-1):\n    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
    "    return e / e.sum(axis=axis, keepdims=True)",
    "attention_weights": "def attention_weights(Q, K):\n"
    "    return softmax(scale_scores(Q @ np.swapaxes(K, -1, -2), Q.shape[-1]))",
}
WRONG = {
    "scale_scores": "def scale_scores(A, d_k):\n    return A / d_k",
    "softmax": "def softmax(x, axis=-1):\n    e = np.exp(x)\n    return e / e.sum()",
    "attention_weights": "def attention_weights(Q, K):\n    return softmax(Q @ K.T)",
}
HOSTILE = [
    "while True:\n    pass",
    "hog = []\nwhile True:\n    hog.append(np.empty(10**8))",
    "import os\nos._exit(1)",
    "import sys\nsys.exit(0)",
    "for _ in range(5000):\n    print('✓ softmax: all 11 cases passed.' * 100)",
    "import subprocess\nsubprocess.Popen(['sleep', '600'], start_new_session=True)",
    "import numpy\nnumpy.allclose = lambda *a, **k: True",
    "from course_lib.attention import softmax",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "open('/etc/hostname', 'w').write('x')",
]


def submission(i: int) -> nbformat.NotebookNode:
    """Submission i: a mix of right and wrong functions, every third one with a hostile cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {"exercise": "03_scaling_and_softmax",
                             "functions": list(CORRECT)}
    cells = ["import numpy as np\nfrom course_lib.checks import check_softmax"]
    for j, name in enumerate(CORRECT):
        cells.append((WRONG if (i >> j) & 1 else CORRECT)[name])
    if i % 3 == 0:
        cells.insert(2, HOSTILE[(i // 3) % len(HOSTILE)])
    cells.append("check_softmax(softmax)")
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        subs = Path(folder) / "submissions"
        subs.mkdir()
        for i in range(args.n):
            nbformat.write(submission(i), subs / f"learner_{i:02d}.ipynb")
        start = time.perf_counter()
        try:
            graded = grade([subs], Path(folder) / "grades", timeout=args.timeout, jobs=args.jobs)
        except UncontainedError as refused:
            raise SystemExit(f"not run: {refused}") from None
        elapsed = time.perf_counter() - start
    kinds: dict[str, int] = {}
    for g in graded:
        kinds[g.status_kind] = kinds.get(g.status_kind, 0) + 1
    print(f"graded {len(graded)} submissions with --jobs {args.jobs} "
          f"(--timeout {args.timeout:g}) in {elapsed:.1f} s: "
          f"{len(graded) / elapsed:.2f} submissions/s; statuses: {kinds}; isolation: "
          f"{detect_isolation().label}")


if __name__ == "__main__":
    main()
