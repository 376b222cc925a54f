"""Nothing one learner hands in loses the class's gradebook, and the outputs say what was graded:
issue 22, sections 2 and 4.

One batch (module fixture, through the command line with a roster and the Canvas export): each
submission is one learner's, in their own folder, and all of them are correct, so every one
must score 3 of 3 whatever else it does: a lone surrogate in an error, hundreds of exits with
long messages, 1,500 nested folders, a 1.5 MB cell of pasted data, `sys.exit(0)` at the end, a
multiprocessing pool, a notebook in nbformat 3.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from test_grading import CORRECT, GROUPS, IMPORTS, ROOT, SCALE, SOFTMAX, WEIGHTS, notebook, write

from course_lib.__main__ import main
from course_lib.checks import CHECKS
from course_lib.grading import grade, wire
from course_lib.grading.lms import read_gradebook
from course_lib.grading.submissions import MAX_NOTEBOOK_BYTES
from course_lib.grading.text import MAX_FIELD, MAX_NAME

POOL = ("from multiprocessing import Pool\n\ndef square(x):\n    return x * x\n\n"
        "with Pool(2) as pool:\n    squares = pool.map(square, range(8))\nprint(squares)")
DEEP = ("import os\nhere = os.getcwd()\nfor _ in range(1500):\n    os.mkdir('d')\n"
        "    os.chdir('d')\nos.chdir(here)")


def _nbformat_3() -> str:
    """Exercise 03, correct, as a notebook of format 3 (worksheets, `input`)."""
    v3 = nbformat.v3
    worksheet = v3.new_worksheet()
    worksheet.cells = [v3.new_code_cell(code) for code in CORRECT]
    worksheet.cells.insert(0, v3.new_text_cell("markdown", "# Exercise 03"))
    old = v3.new_notebook(worksheets=[worksheet])
    return v3.writes_json(old)


def _surrogate() -> str:
    """A cell that raises an error whose message is a lone surrogate, and a cell whose first
    line holds one (the notebook's JSON escapes it, as a browser may save it)."""
    nb = notebook(*CORRECT, "raise ValueError('\\ud800')", "# \ud800 a comment\nx = 1")
    return json.dumps(nb, ensure_ascii=True)


SUBMISSIONS: dict[str, nbformat.NotebookNode | str] = {
    "surrogate": _surrogate(),
    "many_exits": notebook(*CORRECT, *["import sys\nsys.exit('z' * 300)"] * 600, "x = 1"),
    "deep_folders": notebook(*CORRECT, DEEP),
    "pasted_data": notebook(*CORRECT, "DATA = '" + "0123456789" * 150_000 + "'"),
    "exit_at_the_end": notebook(*CORRECT, "import sys\nsys.exit(0)"),
    "pool": notebook(IMPORTS, SCALE, SOFTMAX, POOL, WEIGHTS),
    "nbformat_3": _nbformat_3(),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    roster = subs.parent / "roster.csv"
    lines = ["learner,student_id,name,email"]
    for i, (learner, nb) in enumerate(SUBMISSIONS.items()):
        (subs / learner).mkdir()
        write(subs / learner, "03.ipynb", nb)
        lines.append(f"{learner},S{i},{learner.title()},{learner}@example.org")
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["grade", str(subs), "--out", str(out), "--timeout", "30", "--jobs", "2",
                 "--seed", "22", "--roster", str(roster), "--lms", "canvas"])
    return {"code": code, "out": out,
            "json": json.loads((out / "gradebook.json").read_bytes().decode("utf-8"))}


def entry(batch: dict, learner: str) -> dict:
    return next(s for s in batch["json"]["submissions"] if s["submission"] == f"{learner}/03.ipynb")


def test_every_learner_is_graded_and_every_file_is_written(batch: dict) -> None:
    assert batch["code"] == 0
    assert {s["submission"]: s["score"] for s in batch["json"]["submissions"]} == {
        f"{learner}/03.ipynb": 3 for learner in SUBMISSIONS}
    for path in batch["out"].rglob("*"):
        if path.is_file():
            path.read_bytes().decode("utf-8")  # strict UTF-8: no lone surrogate anywhere
    rows = read_gradebook(batch["out"] / "gradebook.csv")  # Python's csv field limit holds
    assert len(rows) == len(SUBMISSIONS)
    with open(batch["out"] / "canvas.csv", encoding="utf-8", newline="") as file:
        assert len(list(csv.reader(file))) == 2 + len(SUBMISSIONS)


def test_every_field_has_a_bounded_length(batch: dict) -> None:
    with open(batch["out"] / "gradebook.csv", encoding="utf-8", newline="") as file:
        cells = [cell for row in csv.reader(file) for cell in row]
    assert max(map(len, cells)) <= max(MAX_FIELD, MAX_NAME) < 131072  # csv's field limit
    status = entry(batch, "many_exits")["status"]
    assert status.startswith("crashed: cell") and "more characters cut" in status


def test_a_lone_surrogate_is_replaced_not_fatal(batch: dict) -> None:
    notes = entry(batch, "surrogate")["notes"]
    assert any("ValueError: \ufffd" in note for note in notes), notes
    feedback = (batch["out"] / "feedback" / "surrogate__03.md").read_text(encoding="utf-8")
    assert "\ufffd" in feedback


def test_deep_folders_are_cleaned_up_and_decide_nothing(batch: dict) -> None:
    assert (entry(batch, "deep_folders")["score"], entry(batch, "deep_folders")["status"]) == (
        3, "ran")


def test_a_large_honest_cell_is_graded(batch: dict) -> None:
    e = entry(batch, "pasted_data")
    assert (e["score"], e["status"]) == (3, "ran"), e["status"]
    assert "time limit" not in json.dumps(e)


def test_job_limits_agree_with_the_notebooks_accepted() -> None:
    """Any notebook the grader accepts fits in the job, even if every byte of its code became
    a six-byte escape; the runner reads the job with that limit."""
    assert 6 * MAX_NOTEBOOK_BYTES + 2**20 <= wire.MAX_JOB_HEADER_BYTES
    cell = "\x01" * (3 * 2**20)  # 18 MiB once escaped: above the other frames' 1 MiB
    frame = wire.frame({"cells": [{"index": 0, "source": cell}]})
    [(header, _)] = wire.FrameReader(header_limit=wire.MAX_JOB_HEADER_BYTES).feed(frame)
    assert header["cells"][0]["source"] == cell
    runner = (ROOT / "course_lib" / "grading" / "runner.py").read_text()
    assert "MAX_JOB_HEADER_BYTES" in runner


def test_sys_exit_0_in_the_last_cell_is_not_a_crash(batch: dict) -> None:
    e = entry(batch, "exit_at_the_end")
    assert (e["score"], e["status"]) == (3, "ran")
    assert any("sys.exit(0)" in note for note in e["notes"])


def test_a_multiprocessing_pool_works(batch: dict) -> None:
    e = entry(batch, "pool")
    assert (e["score"], e["status"], e["notes"]) == (3, "ran", [])


def test_an_nbformat_3_notebook_is_converted(batch: dict) -> None:
    e = entry(batch, "nbformat_3")
    assert (e["exercise"], e["score"], e["status"]) == ("03_scaling_and_softmax", 3, "ran")


def test_the_feedback_says_what_was_graded(batch: dict) -> None:
    text = (batch["out"] / "feedback" / "pool__03.md").read_text(encoding="utf-8")
    shown = len(CHECKS["softmax"].cases())
    fresh = len(CHECKS["softmax"].cases(seed=22)) - shown
    assert fresh > 0
    assert f"the notebook's {shown} and {fresh} fresh ones" in text
    assert "fresh cases of the same kind" in text and "seed 22" in text
    assert "on the same cases as the notebook's check cells" not in text


# -- the memory-measured case's inputs are not there before the measurement ----------------------

PRECOMPUTE = '''import gc
import numpy as np
from course_lib.checks.parallelism import MEMORY_N
ANSWERS = {}
for holder in gc.get_objects():
    if isinstance(holder, list):
        arrays = [a for a in holder if isinstance(a, np.ndarray) and a.ndim == 2
                  and a.shape[0] == MEMORY_N] if len(holder) < 10000 else []
        for Q in (a for a in arrays if a.shape[1] == 4):
            for K in (a for a in arrays if a.shape[1] == 4 and a is not Q):
                for V in (a for a in arrays if a.shape[1] == 1):
                    S = Q @ K.T / np.sqrt(Q.shape[-1])
                    W = np.exp(S - S.max(axis=-1, keepdims=True))
                    ANSWERS[Q.tobytes() + K.tobytes() + V.tobytes()] = (
                        W / W.sum(axis=-1, keepdims=True)) @ V
_blockwise = blockwise_attention

def blockwise_attention(Q, K, V, block_size):
    key = Q.tobytes() + K.tobytes() + V.tobytes()
    if key in ANSWERS:  # computed above, outside the measured window
        return ANSWERS[key].copy()
    if Q.shape[0] == MEMORY_N:  # the whole n x n, inside the window
        S = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
        W = np.exp(S - S.max(axis=-1, keepdims=True))
        return (W / W.sum(axis=-1, keepdims=True)) @ V
    return _blockwise(Q, K, V, block_size)'''


def test_the_measured_case_cannot_be_computed_before_its_measurement(tmp_path: Path) -> None:
    """Found in the runner's memory, the measured case's inputs would let a cell compute the
    full n × n answer outside the measured window; they arrive only with the "go"."""
    solution = nbformat.read(ROOT / "exercises" / "solutions" / "07_parallelism.ipynb",
                             as_version=4)
    code = PRECOMPUTE.replace("from course_lib.checks.parallelism import MEMORY_N",
                              "MEMORY_N = 2048")
    solution.cells.append(nbformat.v4.new_code_cell(code))
    write(tmp_path, "precomputed.ipynb", solution)
    [graded] = grade([tmp_path / "precomputed.ipynb"], tmp_path / "out", timeout=60)
    result = graded.results["blockwise_attention"]
    assert not result.passed and result.diagnosis == "memory", (result.feedback, GROUPS)
