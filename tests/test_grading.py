"""The grader: `python -m course_lib grade`, on honest and on hostile submissions.

Most hostile submissions are graded in one batch (module fixture, two jobs, short limits); each
test then checks one submission's row: the grade its real functions deserve, and a status
that says what happened.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pytest

import course_lib
from course_lib.__main__ import main
from course_lib.checks import CHECKS
from course_lib.grading import EXERCISES, cgroups, detect_isolation, grade, wire
from course_lib.grading import gradebook as gradebook_module
from course_lib.grading import isolation as isolation_module
from course_lib.grading.console import printable, summary_table
from course_lib.grading.submissions import Submission, find_submissions, read_submission
from course_lib.standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
ISOLATED = detect_isolation().isolated
LABEL = detect_isolation().label
GROUPS = cgroups.detect()
TIMEOUT = 8.0  # per submission: cells 2 s, cases 1.33 s, + 1 s grace when killed (and restarted)
MEMORY = 1024
TOKEN = f"leftover-{uuid.uuid4().hex}"  # marks the processes a submission leaves behind
REFERENCE_FILE = Path(course_lib.__file__).resolve().parent / "attention.py"

IMPORTS = "import numpy as np\n\nfrom course_lib.checks import check_softmax"
SCALE = "def scale_scores(A, d_k):\n    return A / np.sqrt(d_k)"
SOFTMAX = (
    "def softmax(x, axis=-1):\n"
    "    e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
    "    return e / e.sum(axis=axis, keepdims=True)"
)
WEIGHTS = (
    "def attention_weights(Q, K):\n"
    "    return softmax(scale_scores(Q @ np.swapaxes(K, -1, -2), Q.shape[-1]), axis=-1)"
)
CHECK = "check_softmax(softmax)"
CORRECT = (IMPORTS, SCALE, SOFTMAX, WEIGHTS, CHECK)
FAKE_PASS = "✓ softmax: all 11 cases passed."


def notebook(*cells: str, exercise: str | None = "03_scaling_and_softmax",
             outputs: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    if exercise:
        nb.metadata["course"] = {"exercise": exercise, "functions": list(EXERCISES[exercise])}
    for source in cells:
        cell = nbformat.v4.new_code_cell(source)
        if outputs:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=outputs)]
        nb.cells.append(cell)
    return nb


def write(folder: Path, name: str, nb: nbformat.NotebookNode | str) -> Path:
    path = folder / name
    path.write_text(nb if isinstance(nb, str) else nbformat.writes(nb), encoding="utf-8")
    return path


HOSTILE: dict[str, nbformat.NotebookNode | str] = {
    "correct.ipynb": notebook(*CORRECT),
    "loop_top_level.ipynb": notebook(IMPORTS, SCALE, "while True:\n    pass", SOFTMAX, WEIGHTS),
    "loop_ignores_alarm.ipynb": notebook(
        IMPORTS, SCALE,
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass",
        SOFTMAX, WEIGHTS,
    ),
    "loop_in_function.ipynb": notebook(
        IMPORTS, SCALE, "def softmax(x, axis=-1):\n    while True:\n        pass", WEIGHTS,
    ),
    "memory_hog.ipynb": notebook(
        IMPORTS, SCALE, "hog = []\nwhile True:\n    hog.append(np.empty(10**8))", SOFTMAX,
        WEIGHTS, "huge = np.ones(2**40)",
    ),
    "memory_hog_in_function.ipynb": notebook(
        IMPORTS, SCALE, SOFTMAX,
        "def attention_weights(Q, K):\n    waste = np.ones((2**20, 2**20))\n    return waste",
    ),
    "sys_exit.ipynb": notebook(IMPORTS, SCALE, "import sys\nsys.exit(0)", SOFTMAX, WEIGHTS),
    "os_exit.ipynb": notebook(IMPORTS, SCALE, "import os\nos._exit(3)", SOFTMAX, WEIGHTS),
    "kills_itself.ipynb": notebook(
        IMPORTS, SCALE, SOFTMAX, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        WEIGHTS,
    ),
    "exit_in_function.ipynb": notebook(
        IMPORTS, SCALE, "def softmax(x, axis=-1):\n    import os\n    os._exit(0)", WEIGHTS,
    ),
    "huge_output.ipynb": notebook(
        IMPORTS, SCALE, SOFTMAX, WEIGHTS,
        "import sys\nfor _ in range(20000):\n    print('x' * 10000)\n"
        "    sys.stderr.write('y' * 10000)",
    ),
    "monkeypatch.ipynb": notebook(
        IMPORTS, SCALE,
        "def softmax(x, axis=-1):\n    return np.exp(x)",  # wrong: not normalised
        WEIGHTS,
        "import course_lib.checks as checks\nchecks.check_softmax = lambda fn: True\n"
        "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\nnp.isfinite = lambda x: True\n"
        "import course_lib.checks.core as core\ncore.Checker.judge = lambda *a: True",
    ),
    "fake_output.ipynb": notebook(
        IMPORTS, "def scale_scores(A, d_k):\n    return A",
        "def softmax(x, axis=-1):\n    print('✓ softmax: all 11 cases passed.')\n    return x",
        f"print({FAKE_PASS!r})\nprint('<div>✓ all checks passed</div>')",
        outputs=FAKE_PASS,
    ),
    "liar.ipynb": notebook(
        IMPORTS,
        "class Liar:\n    def __eq__(self, other):\n        return True\n"
        "    __ne__ = lambda s, o: False\n"
        "class LiarArray(np.ndarray):\n    def __eq__(self, other):\n        return True",
        "def scale_scores(A, d_k):\n    return Liar()",
        "def softmax(x, axis=-1):\n    return np.zeros_like(x).view(LiarArray)",
        "def attention_weights(Q, K):\n    return (Liar(), Liar())",
    ),
    "reference.ipynb": notebook(
        IMPORTS, "from course_lib.attention import scale_scores, softmax", SCALE,
        "def attention_weights(Q, K):\n    from course_lib import attention\n"
        "    return attention.attention_weights(Q, K)",
        "import sys\nsys.path.insert(0, " + repr(str(ROOT)) + ")\n"
        "import course_lib.attention as reference\nsoftmax = reference.softmax",
    ),
    "reads_reference_file.ipynb": notebook(
        IMPORTS, f"exec(open({str(REFERENCE_FILE)!r}).read())",
    ),
    "writes_outside.ipynb": notebook(
        *CORRECT,
        "import glob, os\n"
        "for path in glob.glob(os.path.join(OUT, '*')) + glob.glob(os.path.join(SUBS, '*')):\n"
        "    try:\n        open(path, 'w').write('hacked')\n    except OSError:\n        pass\n"
        "open(os.path.join(OUT, 'gradebook.csv'), 'w').write('hacked')",
    ),
    "leaves_children.ipynb": notebook(
        *CORRECT,
        "import os, subprocess\n"
        f"subprocess.Popen(['/bin/sh', '-c', 'sleep 600; echo {TOKEN}'],"
        " start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        f"    os.execv('/bin/sh', ['/bin/sh', '-c', 'sleep 600; echo {TOKEN}'])",
    ),
    "invalid_json.ipynb": '{"cells": [ this is not json',
    "zero_bytes.ipynb": "",
    "empty.ipynb": notebook(),
    "no_metadata_empty.ipynb": notebook(exercise=None),
    "lesson.ipynb": notebook("print('a lesson, not an exercise')", exercise=None),
    "04_weighted_sum.ipynb": notebook(*CORRECT),  # exercise 03 under another exercise's name
    "no_metadata.ipynb": notebook(*CORRECT, exercise=None),
}


def _honest(*softmax_cells: str) -> nbformat.NotebookNode:
    """Exercise 03, correct, with its softmax written in another honest style."""
    return notebook(IMPORTS, SCALE, *softmax_cells, WEIGHTS, CHECK)


HONEST: dict[str, nbformat.NotebookNode] = {  # each must get full marks and status ran
    "honest_cell_magic_time.ipynb": _honest("%%time\n" + SOFTMAX),
    "honest_cell_magic_capture.ipynb": _honest("%%capture captured\n" + SOFTMAX + "\nprint(1)"),
    "honest_timeit.ipynb": _honest(SOFTMAX, "%timeit -n 20 -r 2 softmax(np.ones((4, 4)))"),
    "honest_line_magics.ipynb": _honest("%load_ext autoreload\n%autoreload 2\n" + SOFTMAX
                                        + "\n%who_ls function"),
    "honest_shell_commands.ipynb": _honest("!echo checking\nfiles = !ls\n" + SOFTMAX),
    "honest_continuation_lines.ipynb": _honest(
        "def softmax(x, axis=-1):\n    odd = (x.ndim\n    % 2)\n    same = (odd\n    != 0)\n"
        "    e = np.exp(x - x.max(axis=axis,\n                         keepdims=True))\n"
        "    return e / e.sum(axis=axis, keepdims=True)"),
    "honest_helper_in_another_cell.ipynb": _honest(
        "def shifted_exp(x, axis):\n    return np.exp(x - x.max(axis=axis, keepdims=True))",
        "def softmax(x, axis=-1):\n    e = shifted_exp(x, axis)\n"
        "    return e / e.sum(axis=axis, keepdims=True)"),
    "honest_star_import.ipynb": _honest(
        "from numpy import *\n\ndef softmax(x, axis=-1):\n"
        "    e = exp(x - amax(x, axis=axis, keepdims=True))\n"
        "    return e / e.sum(axis=axis, keepdims=True)"),
    "honest_lambda.ipynb": _honest(
        "softmax = lambda x, axis=-1: (lambda e: e / e.sum(axis=axis, keepdims=True))(\n"
        "    np.exp(x - x.max(axis=axis, keepdims=True)))"),
    "honest_callable_instance.ipynb": _honest(
        "class Softmax:\n    def __call__(self, x, axis=-1):\n"
        "        e = np.exp(x - x.max(axis=axis, keepdims=True))\n"
        "        return e / e.sum(axis=axis, keepdims=True)\n\nsoftmax = Softmax()"),
    "honest_defined_twice.ipynb": _honest(
        "def softmax(x, axis=-1):\n    return np.exp(x) / np.exp(x).sum()", SOFTMAX),
    "honest_type_hints.ipynb": _honest(
        "def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:\n"
        "    e: np.ndarray = np.exp(x - x.max(axis=axis, keepdims=True))\n"
        "    return e / e.sum(axis=axis, keepdims=True)"),
    "honest_writefile_module.ipynb": _honest(
        "%%writefile my_softmax.py\nimport numpy as np\n\n" + SOFTMAX,
        "from my_softmax import softmax"),
    "honest_input_and_cwd.ipynb": _honest("import os\nhere = os.getcwd()\n" + SOFTMAX),
}
HOSTILE.update(HONEST)

_FRAME = ("import json, os, struct, sys\nfd = int(sys.argv[2])\n"
          "def frame(header):\n    text = json.dumps(header).encode()\n"
          "    return struct.pack('>I', len(text)) + text\n")
UNREADABLE: dict[str, nbformat.NotebookNode] = {  # each: crashed: unreadable results
    "writes_garbage_to_results.ipynb": notebook(*CORRECT, _FRAME + "os.write(fd, b'garbage' * 99)"),
    "fake_cell_end.ipynb": notebook(
        *CORRECT, _FRAME + "os.write(fd, frame({'e': 'cell-end', 'arrays': []}))"),
    "claims_a_huge_array.ipynb": notebook(
        *CORRECT, _FRAME + "os.write(fd, frame({'e': 'done', 'arrays': [['<f8', [10**6, 10**6]]]}"
        ") + b'x' * 1000)"),
    "claims_a_huge_header.ipynb": notebook(*CORRECT, _FRAME + "os.write(fd, b'\\xff' * 8)"),
    "floods_messages.ipynb": notebook(
        *CORRECT, _FRAME + "os.write(fd, frame({'e': 'cell', 'i': 0, 'arrays': []}) * 100000)"),
    "fifo_and_garbage.ipynb": notebook(
        *CORRECT, _FRAME + "for name in ('out', '../out', 'progress.jsonl'):\n    try:\n"
        "        os.mkfifo(name)\n    except OSError:\n        pass\n"
        "os.write(fd, frame({'e': 'result', 'f': 'softmax', 'i': 0, 'arrays': []}))"),
}
HOSTILE.update(UNREADABLE)

FORK_BOMB = ("import os, time\nfor _ in range(5000):\n    try:\n        if os.fork() == 0:\n"
             "            time.sleep(60)\n            os.kill(os.getpid(), 9)\n"
             "    except OSError:\n        break")
HOSTILE["fork_bomb.ipynb"] = notebook(IMPORTS, SCALE, SOFTMAX, FORK_BOMB, WEIGHTS)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    scratch = tmp_path_factory.mktemp("scratch")  # the grader's temporary folders go here
    setup = f"OUT = {str(out)!r}\nSUBS = {str(folder)!r}"
    for name, nb in HOSTILE.items():
        if name == "writes_outside.ipynb":
            nb = notebook(setup, *[c.source for c in nb.cells])
        write(folder, name, nb)
    originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        graded = grade([folder], out, timeout=TIMEOUT, memory_mb=MEMORY, jobs=2)
    finally:
        tempfile.tempdir = saved
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "gradebook.csv"))}
    return {"folder": folder, "out": out, "graded": {g.submission: g for g in graded},
            "rows": rows, "originals": originals, "scratch": scratch}


def row(batch: dict, name: str) -> dict:
    return batch["rows"][name]


def scores(batch: dict, name: str) -> tuple[str, str, str]:
    r = row(batch, name)
    return r["scale_scores"], r["softmax"], r["attention_weights"]


# -- the gradebook ----------------------------------------------------------------------------


def test_every_submission_has_a_row_feedback_and_json(batch: dict) -> None:
    assert sorted(batch["rows"]) == sorted(HOSTILE)
    document = json.loads((batch["out"] / "gradebook.json").read_text())
    assert [s["submission"] for s in document["submissions"]] == sorted(HOSTILE)
    header = next(csv.reader(open(batch["out"] / "gradebook.csv")))
    assert header[:2] == ["submission", "exercise"]
    assert header[-4:] == ["score", "max_score", "status", "isolation"]
    assert set(header[2:-4]) == {"scale_scores", "softmax", "attention_weights"}
    for entry in document["submissions"]:
        assert (batch["out"] / entry["feedback_file"]).is_file()
        for check in entry["checks"].values():
            assert check["feedback"].startswith(("✓", "✗"))
    assert not list(batch["out"].rglob("*.partial"))


def test_correct_submission_full_marks(batch: dict) -> None:
    r = row(batch, "correct.ipynb")
    assert (r["score"], r["max_score"], r["status"]) == ("3", "3", "ran")
    assert r["isolation"] == LABEL
    text = (batch["out"] / "feedback" / "correct.md").read_text()
    assert "score **3 / 3**" in text and re.search(r"✓ softmax: all \d+ cases passed\.", text)


def test_endless_loop_at_top_level_is_stopped_and_the_rest_graded(batch: dict) -> None:
    for name in ("loop_top_level.ipynb", "loop_ignores_alarm.ipynb"):
        r = row(batch, name)
        assert r["score"] == "3", r
        assert r["status"].startswith("timeout: cell 3"), r["status"]


def test_endless_loop_in_a_function(batch: dict) -> None:
    r = row(batch, "loop_in_function.ipynb")
    assert scores(batch, "loop_in_function.ipynb") == ("1", "0", "0")
    assert r["status"].startswith("timeout:") and "softmax did not finish" in r["status"]
    feedback = batch["graded"]["loop_in_function.ipynb"].results["softmax"].feedback
    assert "did not finish" in feedback


def test_memory_hog(batch: dict) -> None:
    r = row(batch, "memory_hog.ipynb")
    assert r["score"] == "3"
    assert r["status"].startswith("memory: cell 3 (`hog = []`): ran out of memory"), r["status"]
    r = row(batch, "memory_hog_in_function.ipynb")
    assert scores(batch, "memory_hog_in_function.ipynb") == ("1", "1", "0")
    assert r["status"].startswith("memory:") and "attention_weights" in r["status"]


def test_exits_are_contained(batch: dict) -> None:
    for name in ("sys_exit.ipynb", "os_exit.ipynb", "kills_itself.ipynb"):
        r = row(batch, name)
        assert r["score"] == "3", (name, r)
        assert r["status"].startswith("crashed: cell"), r["status"]
    assert "sys.exit" in row(batch, "sys_exit.ipynb")["status"]
    assert "os._exit" in row(batch, "os_exit.ipynb")["status"]
    assert "ended the process" in row(batch, "kills_itself.ipynb")["status"]
    r = row(batch, "exit_in_function.ipynb")
    assert scores(batch, "exit_in_function.ipynb") == ("1", "0", "0")
    assert r["status"].startswith("crashed:") and "softmax" in r["status"]


def test_huge_output_is_discarded(batch: dict) -> None:
    assert row(batch, "huge_output.ipynb")["score"] == "3"


def test_monkeypatching_checks_or_numpy_changes_nothing(batch: dict) -> None:
    assert scores(batch, "monkeypatch.ipynb") == ("1", "0", "0")
    feedback = batch["graded"]["monkeypatch.ipynb"].results["softmax"].feedback
    assert "Expected:" in feedback and "Received:" in feedback


def test_printed_or_stored_fake_passes_are_ignored(batch: dict) -> None:
    assert scores(batch, "fake_output.ipynb") == ("0", "0", "0")
    assert row(batch, "fake_output.ipynb")["status"] == (
        "ran with errors: attention_weights is not defined")


def test_objects_that_claim_equality_fail(batch: dict) -> None:
    assert scores(batch, "liar.ipynb") == ("0", "0", "0")
    results = batch["graded"]["liar.ipynb"].results
    assert "is a Liar, not a NumPy array" in results["scale_scores"].feedback
    assert "wrong values" in results["softmax"].feedback


def test_the_reference_is_not_available(batch: dict) -> None:
    r = row(batch, "reference.ipynb")
    assert scores(batch, "reference.ipynb") == ("1", "0", "0")
    assert "course_lib.attention" in r["status"] and "not available" in r["status"]
    hint = batch["graded"]["reference.ipynb"].results["attention_weights"].hint
    assert "write the function yourself" in hint
    if ISOLATED:  # without isolation the file could be read: that is what "none" means
        assert row(batch, "reads_reference_file.ipynb")["score"] == "0"
        notes = batch["graded"]["reads_reference_file.ipynb"].notes
        assert any("FileNotFoundError" in note for note in notes), notes


def test_writing_outside_the_sandbox(batch: dict) -> None:
    assert row(batch, "writes_outside.ipynb")["score"] == "3"
    # the gradebook is written after every submission has run, so it is intact in any case
    assert "hacked" not in (batch["out"] / "gradebook.csv").read_text()
    if ISOLATED:
        for path in batch["folder"].iterdir():
            assert path.read_bytes() == batch["originals"][path.name], path.name


def test_no_process_is_left_behind(batch: dict) -> None:
    assert row(batch, "leaves_children.ipynb")["score"] == "3"
    assert not _processes_with(TOKEN)


def test_unreadable_notebooks(batch: dict) -> None:
    for name in ("invalid_json.ipynb", "zero_bytes.ipynb"):
        r = row(batch, name)
        assert r["status"].startswith("unreadable: the notebook is not a valid notebook")
        assert (r["score"], r["max_score"]) == ("0", "0")
    r = row(batch, "empty.ipynb")
    assert (r["exercise"], r["score"], r["max_score"]) == ("03_scaling_and_softmax", "0", "3")
    assert r["status"] == "unreadable: the notebook is empty (no code)"
    for name in ("no_metadata_empty.ipynb", "lesson.ipynb"):
        assert "not an exercise notebook" in row(batch, name)["status"]


def test_exercise_comes_from_the_notebook_not_the_file_name(batch: dict) -> None:
    for name in ("04_weighted_sum.ipynb", "no_metadata.ipynb"):
        r = row(batch, name)
        assert (r["exercise"], r["score"], r["status"]) == ("03_scaling_and_softmax", "3", "ran")


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_styles_get_full_marks(batch: dict, name: str) -> None:
    """Cells run as in JupyterLab: magics, `!` commands, continuation lines, any honest way
    of defining the function."""
    r = row(batch, name)
    assert (r["score"], r["max_score"], r["status"]) == ("3", "3", "ran"), r
    assert not batch["graded"][name].notes, batch["graded"][name].notes


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_hostile_results_mark_only_that_submission(batch: dict, name: str) -> None:
    r = row(batch, name)
    assert r["status"].startswith("crashed: unreadable results"), r["status"]
    assert r["score"] == "0"


def test_the_batch_ends_with_no_temporary_folder_or_process_left(batch: dict) -> None:
    assert list(batch["scratch"].iterdir()) == []
    assert not _processes_with(TOKEN)
    assert sorted(batch["rows"]) == sorted(HOSTILE)


def test_a_fork_bomb_is_contained_to_its_submission(batch: dict) -> None:
    r = row(batch, "fork_bomb.ipynb")
    assert r["score"] == "3", r
    assert row(batch, "correct.ipynb")["status"] == "ran"  # graded next to it, in its time


def test_the_batch_reports_every_hostile_case_in_its_feedback(batch: dict) -> None:
    text = (batch["out"] / "feedback" / "loop_top_level.md").read_text()
    assert "status: timeout: cell 3" in text and "## `softmax` ✓" in text


# -- no isolation: the fallback still enforces the limits -------------------------------------


def test_fallback_without_isolation(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    token = f"leftover-{uuid.uuid4().hex}"
    write(folder, "loop.ipynb", HOSTILE["loop_ignores_alarm.ipynb"])
    write(folder, "children.ipynb", notebook(
        *CORRECT,
        f"import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 600; echo {token}'],"
        " start_new_session=True)",
    ))
    write(folder, "exit.ipynb", HOSTILE["kills_itself.ipynb"])
    graded = grade([folder], tmp_path / "out", timeout=TIMEOUT, memory_mb=MEMORY, jobs=2,
                   isolation="none", accept_risk=True)
    by_name = {g.submission: g for g in graded}
    assert [g.score for g in graded] == [3, 3, 3]
    assert by_name["loop.ipynb"].status.startswith("timeout: cell 3")
    assert by_name["exit.ipynb"].status.startswith("crashed: cell 4")
    settings = json.loads((tmp_path / "out" / "gradebook.json").read_text())["settings"]
    assert settings["isolation"].startswith("no isolation: isolation turned off")
    user = {False: "", True: ", as root"}[os.geteuid() == 0]
    if detect_isolation("none").unprivileged:
        user = ", unprivileged user"
    assert {g.isolation.split(";")[0] for g in graded} == {f"none (no isolation){user}"}
    if user == ", as root":  # the instructor is told plainly
        assert "AS ROOT: a submission can read and change every file" in settings["isolation"]
    assert not _processes_with(token)


# -- the released exercises, determinism, the exercise filter ----------------------------------


def test_released_exercises(tmp_path: Path) -> None:
    graded = grade([ROOT / "exercises"], tmp_path / "out", timeout=30, jobs=2)
    by_name = {g.submission: g for g in graded}
    for name, functions in EXERCISES.items():
        solution = by_name[f"solutions/{name}.ipynb"]
        # a master handed in as a submission: full marks, and the instructor is told
        assert (solution.exercise, solution.score, solution.max_score, solution.status) == (
            name, len(functions), len(functions), "ran: the notebook has the master's "
            "### BEGIN SOLUTION markers: a copy of the solutions?"), solution
        student = by_name[f"{name}.ipynb"]
        assert (student.score, student.max_score) == (0, len(functions))
        assert all(r.diagnosis == "not-implemented" for r in student.results.values())


def test_rerun_gives_the_same_gradebook(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    write(folder, "a.ipynb", notebook(*CORRECT))
    write(folder, "b.ipynb", HOSTILE["monkeypatch.ipynb"])
    write(folder, "c.ipynb", HOSTILE["invalid_json.ipynb"])
    out = tmp_path / "out"
    snapshots = []
    for _ in range(2):
        grade([folder], out, timeout=TIMEOUT, jobs=2, seed=2026)
        snapshots.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                          if p.is_file()})
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0]) == 5  # csv, json, three feedback files


QKV = "def project_qkv(X, W_Q, W_K, W_V):\n    return X @ W_Q, X @ W_K, X @ W_V"


def test_exercise_filter_skips_other_exercises(tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    (folder / "alice").mkdir(parents=True)
    write(folder / "alice", "03_scaling_and_softmax.ipynb", notebook(*CORRECT))
    write(folder / "alice", "01_qkv_projections.ipynb",
          notebook("import numpy as np", QKV, exercise="01_qkv_projections"))
    write(folder / "alice", "broken.ipynb", "{ not json")
    out = tmp_path / "out"
    graded = grade([folder], out, exercise="3", timeout=TIMEOUT, seed=1)
    # the notebook of exercise 01 is neither graded nor in the gradebook: only listed as skipped
    assert [(g.submission, g.score, g.max_score) for g in graded] == [
        ("alice/03_scaling_and_softmax.ipynb", 3, 3), ("alice/broken.ipynb", 0, 3)]
    rows = list(csv.DictReader((out / "gradebook.csv").open(encoding="utf-8")))
    assert "01_qkv_projections" not in {r["exercise"] for r in rows}
    document = json.loads((out / "gradebook.json").read_text(encoding="utf-8"))
    assert document["skipped"] == [{"submission": "alice/01_qkv_projections.ipynb",
                                    "exercise": "01_qkv_projections"}]


def test_each_exercise_has_its_own_maximum(tmp_path: Path) -> None:
    write(tmp_path, "a.ipynb", notebook(*CORRECT))
    write(tmp_path, "b.ipynb", notebook("import numpy as np", QKV,
                                        exercise="01_qkv_projections"))
    write(tmp_path, "c.ipynb", notebook("import numpy as np", exercise="01_qkv_projections"))
    graded = grade([tmp_path], tmp_path / "out", timeout=TIMEOUT, seed=1)
    assert [(g.exercise, g.score, g.max_score) for g in graded] == [
        ("03_scaling_and_softmax", 3, 3), ("01_qkv_projections", 1, 1),
        ("01_qkv_projections", 0, 1)]
    assert graded[2].status == "ran with errors: project_qkv is not defined"


@pytest.mark.parametrize(("broken", "error"), [
    ("def softmax(x, axis=-1):\n    e = np.exp(x)\n        return e", "IndentationError"),
    ("def softmax(x, axis=-1:\n    return x", "SyntaxError"),
])
def test_a_cell_that_cannot_run_is_named_in_its_functions_section(
    tmp_path: Path, broken: str, error: str
) -> None:
    path = write(tmp_path, "x.ipynb", notebook(IMPORTS, SCALE, broken, WEIGHTS, CHECK))
    [graded] = grade([path], tmp_path / "out", timeout=TIMEOUT, seed=1)
    softmax = graded.results["softmax"]
    assert (softmax.passed, softmax.diagnosis) == (False, "cell-not-run")
    first = broken.splitlines()[0]
    assert softmax.summary.startswith(f"not run: cell 3 (`{first}`), which defines `softmax`, "
                                      f"could not run: it raised {error}: ")
    assert "not found" not in softmax.feedback and "define it with" not in softmax.feedback
    assert f"fix the {error} in cell 3 (`{first}`)" in softmax.hint
    line = 3 if error == "IndentationError" else 1
    assert softmax.summary.endswith(f"(line {line}).")
    [note] = [n for n in graded.notes if n.startswith(f"cell 3 (`{first}`): ")]
    assert note.count("line") == 1 and "<" not in note and "ipython-input" not in note, note
    assert graded.status.startswith("ran with errors: softmax is not defined (its cell could")
    assert graded.results["scale_scores"].passed  # the other cells ran


@pytest.mark.parametrize(("cell", "said", "hint"), [
    # the runner's alarm cannot stop this loop (it ignores SIGALRM): the process is killed and
    # the notebook run again without the cell, so its `def` is lost
    (SOFTMAX + "\nimport signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n"
     "    pass", "it did not stop at its time limit and was killed", "was stopped, so its `def"),
    ("x = undefined_name\n\n" + SOFTMAX, "it raised NameError: ", "raised NameError before"),
])
def test_a_def_lost_with_its_cell_is_not_called_missing(
        tmp_path: Path, cell: str, said: str, hint: str) -> None:
    """The function is written, but its cell did not keep it: say so, not "not defined"."""
    path = write(tmp_path, "x.ipynb", notebook(IMPORTS, SCALE, cell, WEIGHTS))
    [graded] = grade([path], tmp_path / "out", timeout=TIMEOUT, seed=1)
    softmax = graded.results["softmax"]
    assert (softmax.passed, softmax.diagnosis) == (False, "cell-not-run"), softmax.feedback
    first = cell.splitlines()[0]
    assert softmax.summary.startswith(f"not run: cell 3 (`{first}`), which defines `softmax`, "
                                      f"could not run: {said}"), softmax.summary
    assert hint in softmax.hint and "define it with" not in softmax.feedback
    assert graded.results["scale_scores"].passed


# -- the command line ------------------------------------------------------------------------


def test_cli_grades_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "alice.ipynb", notebook(*CORRECT))
    out = tmp_path / "grades"
    assert main(["grade", str(path), "--out", str(out), "--timeout", str(TIMEOUT),
                 "--memory", "1024", "--jobs", "1"]) == 0
    captured = capsys.readouterr()
    assert "alice.ipynb" in captured.out and "3/3" in captured.out
    assert "Isolation:" in captured.out
    assert "[1/1] alice.ipynb: 3/3 ran" in captured.err  # the progress, when not a terminal
    assert "1 submission graded (1 ran)." in captured.out
    assert "Seed" not in captured.out and captured.err.count("Seed of this run") == 1
    assert (out / "gradebook.csv").is_file() and (out / "feedback" / "alice.md").is_file()


def test_exercise_numbers_are_accepted_as_release_accepts_them() -> None:
    from course_lib.grading.submissions import resolve_exercise

    for given in ("3", "03", " 3", "03_scaling_and_softmax", "scaling_and_softmax"):
        assert resolve_exercise(given) == "03_scaling_and_softmax", given
    assert resolve_exercise("05_rnn_vs_attention") == "06_rnn_vs_attention"  # renumbered
    for unknown in ("99", "0", "x"):
        with pytest.raises(ValueError, match=f"unknown exercise {unknown!r}"):
            resolve_exercise(unknown)


def test_help_renders_and_says_what_to_do(capsys: pytest.CaptureFixture) -> None:
    def help_of(*command: str) -> str:
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        return capsys.readouterr().out

    top = help_of()
    assert "docs/workshop.md" in top
    assert top.index("release") < top.index("hub-link") < top.index("collect") < top.rindex(
        "grade --roster")
    experiment = help_of("experiment")
    assert "90%" in experiment and "%%" not in experiment
    assert "fresh kernel" in " ".join(help_of("execute").split())
    assert "(default: exercises/)" in help_of("release")
    for command in ("site", "slides"):
        assert "(default: the current folder)" in " ".join(help_of(command).split())
    assert "one folder per learner" in " ".join(help_of("grade").split())


def test_an_untouched_exercise_does_not_read_as_fine(tmp_path: Path) -> None:
    path = tmp_path / "03.ipynb"
    shutil.copyfile(ROOT / "exercises" / "03_scaling_and_softmax.ipynb", path)
    [graded] = grade([path], tmp_path / "out", timeout=30, seed=1)
    assert graded.score == 0 and graded.status == (
        "ran: scale_scores is not implemented yet; softmax is not implemented yet; "
        "attention_weights is not implemented yet"), graded.status


def test_cli_exit_status_when_the_grader_cannot_run(tmp_path: Path) -> None:
    path = write(tmp_path, "alice.ipynb", notebook(*CORRECT))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["grade", str(path), "--out", str(blocker / "grades")]) == 1
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert main(["grade", str(path), "--exercise", "99"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["grade", str(path), "--timeout", "-1"])
    assert exit_info.value.code == 2


# -- the pieces --------------------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "gradebook.csv"
    target.write_text("old")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        gradebook_module._write_atomic(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_wire_round_trip_and_bounded_frames() -> None:
    value = (np.arange(6.0).reshape(2, 3), [1, 2.5, None, True], np.float32(1.5), "text")
    arrays: list[np.ndarray] = []
    tree = wire.encode(value, arrays)
    data = wire.frame({"e": "result", "value": tree}, arrays)
    reader = wire.FrameReader()
    messages = [m for i in range(0, len(data), 7) for m in reader.feed(data[i:i + 7])]
    [(header, loaded)] = messages
    back = wire.decode(header["value"], loaded)
    assert np.array_equal(back[0], value[0]) and back[1] == [1, 2.5, None, True]
    assert back[2] == np.float32(1.5) and back[3] == "text"
    odd = wire.decode(wire.encode(object(), []), [])
    assert type(odd).__name__ == "object" and isinstance(odd, StandIn)
    def raw(header: bytes) -> bytes:
        return len(header).to_bytes(4, "big") + header

    bad = [
        b"\xff\xff\xff\xff",  # a 4 GB header
        raw(b"not json"),
        raw(b"[]"),  # not an object
        raw(b'{"e": "x"}'),  # no list of arrays
        raw(b'{"arrays": [["|O", [1]]]}') + b"\x00" * 8,  # objects (pickles)
        raw(b'{"arrays": [["<f8", [-1]]]}'),
        raw(b"[" * 100000 + b"]" * 100000),
    ]
    for data in bad:
        with pytest.raises(wire.WireError):
            wire.FrameReader().feed(data)
    huge = b'{"arrays": [["<f8", [1000000, 1000000]]]}'
    with pytest.raises(wire.WireError):  # refused from the header, before any data arrives
        wire.FrameReader().feed(len(huge).to_bytes(4, "big") + huge)
    with pytest.raises(wire.WireError):
        wire.FrameReader(limit=100).feed(b"\x00" * 101)
    for tree in ({"t": "array", "i": 5}, {"t": "int"}, {"t": "tuple", "items": 3}, [1]):
        with pytest.raises(wire.WireError):
            wire.decode(tree, [])


def test_sandbox_side_never_imports_course_lib(tmp_path: Path) -> None:
    """The files copied into the sandbox import no course_lib module: in course_lib they import
    each other relatively; copied apart (as in the sandbox), as plain neighbours."""
    from course_lib.grading.sandbox import SANDBOX_FILES

    names = {path.stem for path in SANDBOX_FILES}
    assert {"runner", "messages", "wire", "calling", "standin"} <= names
    for path in SANDBOX_FILES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
                if node.level:  # only a neighbour that is copied too
                    assert (node.module or node.names[0].name).split(".")[-1] in names, path
                    continue
            else:
                continue
            assert not any(n.split(".")[0] == "course_lib" for n in imported), (path, imported)
    for path in SANDBOX_FILES:
        shutil.copyfile(path, tmp_path / path.name)
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
         "import runner, messages, wire, calling, standin; "
         "print(sorted(m for m in sys.modules if m.startswith('course_lib')))",
         str(tmp_path), str(Path(np.__file__).resolve().parents[1])],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_exercise_table_matches_the_released_notebooks() -> None:
    for path in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        course = nbformat.read(path, as_version=4).metadata["course"]
        assert tuple(course["functions"]) == EXERCISES[course["exercise"]]
    assert len(EXERCISES) == len(list((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")))


def test_collect_names_and_recognition(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".ipynb_checkpoints").mkdir()
    write(tmp_path / "a", "x.ipynb", notebook(*CORRECT))
    write(tmp_path / "a" / ".ipynb_checkpoints", "x-checkpoint.ipynb", notebook(*CORRECT))
    write(tmp_path, "x.ipynb", notebook("%matplotlib inline\n" + SCALE, exercise=None))
    found = find_submissions([tmp_path / "a", tmp_path / "x.ipynb"])
    assert [s.name for s in found] == [(tmp_path / "x.ipynb").as_posix(), "x.ipynb"]
    magic = read_submission(Submission("x", tmp_path / "x.ipynb"))
    assert magic.exercise == "03_scaling_and_softmax" and not magic.problem
    assert magic.cells[0][1].startswith("%matplotlib inline")  # as written: IPython runs it


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


if shutil.which("bwrap") is None:  # pragma: no cover - documented, not silent
    print("bubblewrap is not installed: the grading tests run without isolation")


@pytest.mark.parametrize("old, new", [
    ("05_rnn_vs_attention", "06_rnn_vs_attention"),
    ("06_parallelism", "07_parallelism"),
    ("07_masks_heads_and_applications", "08_masks_heads_and_applications"),
])
def test_notebooks_released_under_the_old_numbers_are_recognised(
        tmp_path: Path, old: str, new: str) -> None:
    released = nbformat.read(ROOT / "exercises" / f"{new}.ipynb", as_version=4)
    released.metadata["course"]["exercise"] = old  # as `release` wrote it before lesson 05
    path = write(tmp_path, f"{old}.ipynb", released)
    assert read_submission(Submission(path.name, path)).exercise == new
    released.metadata.pop("course")  # and from its code alone
    path = write(tmp_path, "renamed.ipynb", released)
    assert read_submission(Submission(path.name, path)).exercise == new


# -- names and files (every name unique, fits the file system, safe in every format) ----------


def test_names_are_unique_bounded_and_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    subs, other = tmp_path / "S", tmp_path / "T"
    (subs / "T").mkdir(parents=True)
    (subs / "alice").mkdir()
    other.mkdir()
    write(subs / "alice", "03.ipynb", "alice's own")
    write(subs, "alice__03.ipynb", "")
    write(subs, "x.ipynb", "first x")
    write(subs / "T", "x.ipynb", "second x")
    write(other, "x.ipynb", "third x")
    long_name = "a" * 240 + ".ipynb"  # 246 bytes: legal, and too long for a naive temp name
    write(subs, long_name, "long")
    with open(subs / "sparse.ipynb", "wb") as file:
        file.truncate(4 * 2**30)  # 4 GB, sparse: refused from its size, never read
    write(subs, "new\nline.ipynb", "newline")
    formulas = ['=HYPERLINK("http:example.com")', "+cmd|' -C calc'!A0", "@SUM(1+1)", "-2+3",
                "\tTAB"]
    for formula in formulas:
        write(subs, formula + ".ipynb", "formula")
    os.mkfifo(subs / "fifo.ipynb")
    solution = ROOT / "exercises" / "solutions" / "03_scaling_and_softmax.ipynb"
    (subs / "link.ipynb").symlink_to(solution)
    (subs / "linked_folder").symlink_to(solution.parent, target_is_directory=True)
    out = tmp_path / "grades"
    assert main(["grade", "S", "T", "--out", str(out), "--timeout", str(TIMEOUT)]) == 0
    table = capsys.readouterr().out
    document = json.loads((out / "gradebook.json").read_text())
    names = [s["submission"] for s in document["submissions"]]
    assert len(names) == len(set(names)) == 15  # nothing from the linked folder
    feedback = [s["feedback_file"] for s in document["submissions"]]
    assert len({f.lower() for f in feedback}) == len(feedback)
    for entry in document["submissions"]:
        path = out / entry["feedback_file"]
        assert len(path.name.encode()) <= 120 and path.is_file()
        assert printable(entry["submission"]) in path.read_text()
    by_name = {s["submission"]: s for s in document["submissions"]}
    assert {"alice/03.ipynb", "alice__03.ipynb", "x.ipynb", "T/x.ipynb"} <= set(names)
    assert by_name["sparse.ipynb"]["status"] == "unreadable: the notebook is larger than 20 MB"
    assert by_name["fifo.ipynb"]["status"] == "unreadable: the notebook is not a regular file"
    assert by_name["link.ipynb"]["status"].startswith("unreadable: the notebook is a symbolic link")
    assert by_name[long_name]["status"].startswith("unreadable: the notebook is not a valid")
    # the console: one line per submission, the newline shown escaped
    assert "new\\nline.ipynb" in table and "new\nline" not in table
    # the CSV: no cell a spreadsheet would evaluate
    rows = list(csv.reader(open(out / "gradebook.csv", newline="")))
    for cells in rows:
        for cell in cells:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    written = {cells[0] for cells in rows[1:]}
    for formula in formulas:
        assert "'" + formula + ".ipynb" in written
    assert not list(out.rglob("*.partial"))


def test_the_summary_table_escapes_control_characters() -> None:
    from course_lib.grading.verdict import Graded

    table = summary_table([Graded("a\x1b[31m\nb.ipynb", "", {}, "ran")], "none")
    assert "\x1b" not in table and "a\\x1b[31m\\nb.ipynb" in table


# -- what the sandbox can see ---------------------------------------------------------------------


def _solution_marker() -> str:
    """A line that only the solution notebooks contain (not the student notebooks)."""
    solution = nbformat.read(ROOT / "exercises" / "solutions" / "03_scaling_and_softmax.ipynb",
                             as_version=4)
    student = (ROOT / "exercises" / "03_scaling_and_softmax.ipynb").read_text()
    for cell in solution.cells:
        for line in cell.source.splitlines():
            line = line.strip()
            if len(line) > 30 and line not in student and "SOLUTION" not in line:
                return line
    raise AssertionError("no solution-only line found")


WALK = '''import bz2, gzip, io, lzma, os, zipfile, zlib
MARKS = [bytes.fromhex(h) for h in HEXES]
found, searched = [], [0]

def search(data, where):
    if any(mark in data for mark in MARKS):
        found.append(where)
    if len(data) > 64 * 2**20:
        return
    for magic, inflate in ((b"\\x78", zlib.decompress), (b"\\x1f\\x8b", gzip.decompress),
                           (b"BZh", bz2.decompress), (b"\\xfd7zXZ", lzma.decompress)):
        if data.startswith(magic):
            try:
                search(inflate(data), where + "!")
            except Exception:
                pass
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    search(archive.read(name), where + "/" + name)
        except Exception:
            pass

for top, folders, files in os.walk("/"):
    if top in ("/proc", "/sys", "/dev"):
        folders[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        try:
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as file:
                search(file.read(), path)
            searched[0] += 1
        except (OSError, MemoryError):
            continue
'''


@pytest.mark.skipif(not ISOLATED, reason="without bubblewrap the host's files are readable")
def test_the_sandbox_sees_no_solution_anywhere(tmp_path: Path) -> None:
    marker = _solution_marker()
    hexes = [marker.encode().hex(), json.dumps(marker)[1:-1].encode().hex()]
    walk = f"HEXES = {hexes!r}\n" + WALK
    report = ("def scale_scores(A, d_k):\n    if found or searched[0] < 1000:\n"
              "        raise RuntimeError(f'{searched[0]} files searched, found: {found[:5]}')\n"
              "    return A / np.sqrt(d_k)")
    path = write(tmp_path, "walker.ipynb", notebook(IMPORTS, walk, report, SOFTMAX, WEIGHTS))
    [graded] = grade([path], tmp_path / "out", timeout=240, memory_mb=2048)
    assert graded.results["scale_scores"].passed, graded.results["scale_scores"].feedback
    assert graded.status == "ran", graded.status


# -- limits per submission, and nothing outlives its submission ----------------------------------


HOG = '''import os, time
import numpy as np
ready, done = os.pipe()
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = np.ones(300 * 2**20 // 8)  # 300 MB, touched
        os.write(done, b"x")
        time.sleep(5)
        os.kill(os.getpid(), 9)
    children.append(pid)
deadline, held = time.time() + 4, 0
os.set_blocking(ready, False)
while held < 3 and time.time() < deadline:
    try:
        held += len(os.read(ready, 8))
    except BlockingIOError:
        time.sleep(0.05)
alive = sum(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children)
raise RuntimeError(f"{held} held, {alive} alive")'''


@pytest.mark.skipif(GROUPS is None, reason="no control groups can be created here")
def test_memory_is_limited_per_submission_not_per_process(tmp_path: Path) -> None:
    path = write(tmp_path, "hog.ipynb", notebook(IMPORTS, SCALE, SOFTMAX, WEIGHTS, HOG))
    [graded] = grade([path], tmp_path / "out", timeout=30, memory_mb=768)
    assert graded.score == 3
    [note] = [n for n in graded.notes if "held" in n] or [graded.status]
    held, alive = (int(word) for word in note.split(": ")[-1].split()[::2][:2])
    assert not (held == 3 and alive == 3), note  # 900 MB never held at once under 768 MB
    assert "cgroup" in graded.isolation


def test_a_daemon_that_leaves_its_session_dies_with_its_submission(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-isolation and no control group: the grader is the child subreaper."""
    token = f"daemon-{uuid.uuid4().hex}"
    daemon = ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              f"        os.execve('/bin/sh', ['/bin/sh', '-c', 'sleep 600; echo {token}'], {{}})\n"
              "    os.kill(os.getpid(), 9)\n")
    path = write(tmp_path, "daemon.ipynb", notebook(*CORRECT, daemon))
    monkeypatch.setattr(cgroups, "detect", lambda: None)
    isolation_module.detect_isolation.cache_clear()
    try:
        [graded] = grade([path], tmp_path / "out", timeout=TIMEOUT, isolation="none",
                         accept_risk=True)
    finally:
        isolation_module.detect_isolation.cache_clear()
    assert graded.score == 3 and "rlimits only" in graded.isolation, graded.isolation
    assert not _processes_with(token)


COUNTED_FORKS = (  # scale_scores exists only if fewer than 64 of 500 forks succeeded
    "import os, time\nforks = 0\nfor _ in range(500):\n    try:\n        if os.fork() == 0:\n"
    "            time.sleep(60)\n            os._exit(0)\n        forks += 1\n"
    "    except OSError:\n        break\n"
    "if forks < 64:\n    def scale_scores(A, d_k):\n        return A / np.sqrt(d_k)"
)
NOT_ROOT = "import os\nif os.getuid() != 0 and os.geteuid() != 0:\n" + "\n".join(
    "    " + line for line in SOFTMAX.splitlines())  # softmax exists only if not run as root


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not ISOLATED,
                    reason="needs root, setpriv and bubblewrap")
def test_without_control_groups_root_runs_each_sandbox_as_a_user_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No control group: the process limit is RLIMIT_NPROC, for a user only that sandbox has."""
    folder = tmp_path / "subs"
    folder.mkdir()
    write(folder, "fork_bomb.ipynb", notebook(IMPORTS, COUNTED_FORKS, NOT_ROOT, WEIGHTS))
    write(folder, "correct.ipynb", notebook(*CORRECT))
    monkeypatch.setattr(cgroups, "detect", lambda: None)
    isolation_module.detect_isolation.cache_clear()
    try:
        assert detect_isolation().unprivileged
        graded = grade([folder], tmp_path / "out", timeout=TIMEOUT, memory_mb=MEMORY, jobs=2)
    finally:
        isolation_module.detect_isolation.cache_clear()
    by_name = {g.submission: g for g in graded}
    assert by_name["fork_bomb.ipynb"].score == 3, by_name["fork_bomb.ipynb"]
    assert by_name["correct.ipynb"].score == 3 and by_name["correct.ipynb"].status == "ran"
    for g in graded:
        assert g.isolation.startswith("bwrap, unprivileged user; rlimits only"), g.isolation
        assert "64 processes per submission" in g.isolation
    left = [uid for uid in isolation_module.processes_of_users()
            if uid in isolation_module.SANDBOX_USERS]
    assert not left  # no process of any sandbox's user is left


def test_each_sandbox_run_has_a_user_id_no_other_has() -> None:
    """Runs side by side (--jobs) never share a user, so never share RLIMIT_NPROC's count."""
    taken = [isolation_module.free_uid() for _ in range(300)]
    try:
        assert len(set(taken)) == len(taken)
        assert all(uid in isolation_module.SANDBOX_USERS for uid in taken)
        assert not any(isolation_module.has_account(uid) for uid in taken)
    finally:
        for uid in taken:
            isolation_module.release_uid(uid)
    assert not isolation_module.uids_in_use()


def test_the_sandbox_runs_only_where_the_graders_own_runtime_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe behind detect_isolation: a way that cannot start the runner's Python, or starts
    another Python (as one that cannot read its own folder does: it falls back to the system's
    standard library), is not used."""
    assert isolation_module.starts([], unprivileged=False)
    assert not isolation_module.starts([str(tmp_path / "no-such-program")], unprivileged=False)
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))  # as if the runtime were elsewhere
    assert not isolation_module.starts([], unprivileged=False)


# -- fresh cases at grading time -------------------------------------------------------------------


def _memorised_softmax() -> str:
    """A softmax that recognises the notebook's own cases and returns their stored answers."""
    checker = CHECKS["softmax"]
    table = {case.inputs["x"].tobytes().hex(): checker.expected(case)[0].tolist()
             for case in checker.cases()}
    return (f"ANSWERS = {table!r}\n\ndef softmax(x, axis=-1):\n"
            "    key = np.asarray(x).tobytes().hex()\n"
            "    if key in ANSWERS:\n        return np.array(ANSWERS[key], dtype=x.dtype)\n"
            "    return np.zeros_like(x)")


def test_fresh_cases_catch_memorised_answers_and_the_seed_reproduces(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checker = CHECKS["softmax"]
    fixed, fresh = checker.cases(), checker.cases(seed=1)
    assert len(fresh) > len(fixed) and fresh[:len(fixed)] == fixed  # the notebook's, then more
    extra = fresh[len(fixed):]
    assert [c.name for c in extra] == [c.name for c in checker.cases(seed=2)[len(fixed):]]
    assert all(c.inputs["x"].shape == next(f for f in fixed if f.name == c.name).inputs["x"].shape
               for c in extra)  # same shapes, other numbers
    assert not all(np.array_equal(a.inputs["x"], b.inputs["x"])
                   for a, b in zip(extra, checker.cases(seed=2)[len(fixed):], strict=True))
    memorised = notebook(IMPORTS, SCALE, _memorised_softmax(), WEIGHTS)
    assert checker.check(_exec_function(_memorised_softmax(), "softmax")).passed  # the notebook
    path = write(tmp_path, "memorised.ipynb", memorised)
    write(tmp_path, "correct.ipynb", notebook(*CORRECT))
    snapshots = []
    for _ in range(2):
        assert main(["grade", str(tmp_path / "memorised.ipynb"), str(tmp_path / "correct.ipynb"),
                     "--out", str(tmp_path / "out"), "--timeout", str(TIMEOUT),
                     "--seed", "4242"]) == 0
        snapshots.append((tmp_path / "out" / "gradebook.json").read_bytes())
    assert "Seed of this run's fresh cases: 4242" in capsys.readouterr().err
    assert snapshots[0] == snapshots[1]
    document = json.loads(snapshots[0])
    assert document["settings"]["seed"] == 4242
    by_name = {s["submission"]: s for s in document["submissions"]}
    assert by_name[path.name]["softmax"] == 0 and by_name["correct.ipynb"]["softmax"] == 1


def _exec_function(source: str, name: str) -> object:
    namespace: dict = {"np": np}
    exec(source, namespace)
    return namespace[name]


# -- measurements that decide a grade are made outside the learner's process ----------------------


FULL_MATRIX = ("import numpy as np\nimport tracemalloc\n"
               "tracemalloc.get_traced_memory = lambda: (0, 0)  # hides the peak from inside\n"
               "def blockwise_attention(Q, K, V, block_size):\n"
               "    S = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])  # the whole n × n\n"
               "    W = np.exp(S - S.max(axis=-1, keepdims=True))\n"
               "    return (W / W.sum(axis=-1, keepdims=True)) @ V")


@pytest.mark.skipif(GROUPS is None, reason="no control groups: the peak is the runner's own")
def test_a_faked_memory_peak_is_caught_by_the_kernel(tmp_path: Path) -> None:
    solution = nbformat.read(ROOT / "exercises" / "solutions" / "07_parallelism.ipynb",
                             as_version=4)
    write(tmp_path, "solution.ipynb", solution)
    solution.cells.append(nbformat.v4.new_code_cell(FULL_MATRIX))
    write(tmp_path, "faked_peak.ipynb", solution)
    graded = {g.submission: g for g in grade([tmp_path], tmp_path / "out", timeout=60, jobs=2)}
    assert graded["solution.ipynb"].results["blockwise_attention"].passed
    faked = graded["faked_peak.ipynb"].results["blockwise_attention"]
    assert not faked.passed and faked.diagnosis == "memory", faked.feedback


def test_matplotlib_inline_as_in_a_kernel(tmp_path: Path) -> None:
    """`%matplotlib inline` and a figure: as in JupyterLab (importing matplotlib takes a few
    seconds in a fresh sandbox, hence the longer limit)."""
    plot = ("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
            "plt.plot(softmax(np.arange(4.0)))\nplt.show()")
    path = write(tmp_path, "plots.ipynb", _honest(SOFTMAX, plot))
    [graded] = grade([path], tmp_path / "out", timeout=40)
    assert (graded.score, graded.status, graded.notes) == (3, "ran", [])
