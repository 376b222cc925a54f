"""The course in a real JupyterLab, in a real (headless) browser, as a learner uses it.

nbval proves that the kernel side runs; this test proves that JupyterLab opens the notebooks,
shows their figures, renders their widgets and responds when a learner drags a slider or
solves an exercise. It starts JupyterLab the way `make lab` does, on a copy of the course, and
drives Debian's Chromium with Playwright. Screenshots of every step go to test-artifacts/browser/.

Run it alone with `.venv/bin/python -m pytest -m browser tests/test_browser.py`; `make test`
runs it too when Chromium is installed (`apt-get install chromium`), and skips it otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browser_support as lab_ui
import pytest
from browser_support import ARTIFACTS, ROOT

pytestmark = pytest.mark.browser

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STREAMS = ("application/vnd.jupyter.stdout", "application/vnd.jupyter.stderr")
SCALING_LESSON = "03_scaling_and_softmax"  # its explorer's d_k slider is dragged too
EXERCISE_03 = "exercises/03_scaling_and_softmax.ipynb"

SOFTMAX_CORRECT = """\
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)"""

SOFTMAX_NO_MAX_SUBTRACTION = """\
def softmax(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[lab_ui.LabServer, Any]]:
    """JupyterLab serving a temporary copy of the course, and a headless Chromium.

    Both are stopped when the module's tests end, whether they passed or failed.
    """
    reason = lab_ui.why_not_runnable()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    tmp = tmp_path_factory.mktemp("browser")
    root = lab_ui.copy_course(tmp / "course")
    with (
        lab_ui.jupyter_lab(root, ARTIFACTS / "jupyterlab.log") as server,
        lab_ui.chromium(tmp / "chromium-profile") as browser,
    ):
        yield server, browser


@pytest.fixture
def page(lab: tuple[lab_ui.LabServer, Any], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab; afterwards it is closed and every kernel it started is shut down.

    When the test failed, the tab's last state is saved as FAILED-<test>.png first.
    """
    server, browser = lab
    tab = browser.new_page()
    crashes: list[str] = []
    tab.on("pageerror", lambda error: crashes.append(str(error)))
    failed_before = request.session.testsfailed
    try:
        yield tab
        assert not crashes, f"JavaScript errors in JupyterLab: {crashes}"
    finally:
        try:
            if request.session.testsfailed > failed_before:
                name = re.sub(r"[^\w.-]+", "_", request.node.name)
                lab_ui.screenshot(tab, f"FAILED-{name}")
        finally:
            tab.close()
            server.shut_down_kernels()


def saved_outputs(path: Path) -> list[list[set[str]]]:
    """Per cell, the MIME types of each output saved in the notebook (the committed outputs)."""
    notebook = json.loads(path.read_text())
    return [
        [set(output.get("data", {})) for output in cell.get("outputs", [])]
        for cell in notebook["cells"]
    ]


def run_lesson(page: Any, server: lab_ui.LabServer, lesson: Path) -> list[dict]:
    """Open the lesson's copy, restart the kernel and run all cells; return what the page shows."""
    lab_ui.open_notebook(page, server, f"notebooks/{lesson.name}")
    lab_ui.restart_and_run_all(page)
    return lab_ui.cells(page)


def assert_lesson_rendered(lesson: Path, shown: list[dict]) -> None:
    """Every cell ran without an error; every figure is an image; every widget has controls."""
    saved = saved_outputs(lesson)
    assert len(shown) == len(saved), f"{len(shown)} cells on the page, {len(saved)} in the file"
    for cell, outputs in zip(shown, saved, strict=True):
        where = f"{lesson.name}, cell {cell['index']} ({cell['source'][:50]!r})"
        if not cell["code"]:
            continue
        # a cell whose input is collapsed (a maintainer check) shows no prompt; had it failed, its
        # error would show below as an output, which is checked next
        if not cell["hidden"]:
            assert re.fullmatch(r"\[\d+\]:", cell["prompt"]), (
                f"{where} did not run: {cell['prompt']}"
            )
        for out in cell["outputs"]:
            assert "error" not in out["mime"] and out["mime"] != STREAMS[1], (
                f"{where} shows an error or a warning:\n{out['text'][-1500:]}"
            )
            if out["mime"] not in STREAMS:
                assert not lab_ui.TEXT_FALLBACK.search(out["text"]), (
                    f"{where} shows a text fallback instead of a rendering: {out['text'][:300]!r}"
                )
        figures = [out for out in cell["outputs"] if out["mime"] == "image/png"]
        expected_figures = sum("image/png" in mimes for mimes in outputs)
        assert len(figures) == expected_figures, (
            f"{where}: {len(figures)} figures on the page, {expected_figures} expected"
        )
        for figure in figures:
            assert [image["loaded"] for image in figure["images"]] == [True], (
                f"{where}: a figure is not a loaded image: {figure['images']}"
            )
        widgets = [out for out in cell["outputs"] if out["widgets"]]
        expected_widgets = sum(WIDGET_MIME in mimes for mimes in outputs)
        assert len(widgets) == expected_widgets, (
            f"{where}: {len(widgets)} widgets on the page, {expected_widgets} expected "
            f"(outputs: {[out['text'][:80] for out in cell['outputs']]})"
        )
        for widget in widgets:
            assert widget["controls"] >= 1, f"{where}: a widget without controls: {widget}"
            assert all(image["loaded"] for image in widget["images"]), (
                f"{where}: a widget's image did not load: {widget['images']}"
            )


def last_visual_output(page: Any, shown: list[dict]) -> Any:
    """The last figure or widget of the notebook (else its last cell): what to screenshot."""
    visual = [c["index"] for c in shown if any(o["images"] or o["widgets"] for o in c["outputs"])]
    if not visual:
        return lab_ui.cell_locator(page, shown[-1]["index"])
    return lab_ui.cell_locator(page, visual[-1]).locator(".jp-OutputArea-output").last


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.stem for lesson in LESSONS])
def test_lesson_runs_and_renders_in_jupyterlab(
    lab: tuple[lab_ui.LabServer, Any], page: Any, lesson: Path
) -> None:
    server, _ = lab
    shown = run_lesson(page, server, lesson)
    lab_ui.scroll_to(page, last_visual_output(page, shown))
    lab_ui.screenshot(page, f"lesson-{lesson.stem}")
    assert_lesson_rendered(server.root_dir / "notebooks" / lesson.name, shown)
    lab_ui.assert_clean_page(page)
    if lesson.stem == SCALING_LESSON:
        drag_the_d_k_slider(page, lesson, shown)


def drag_the_d_k_slider(page: Any, lesson: Path, shown: list[dict]) -> None:
    """In lesson 03, drag the ScalingExplorer's d_k slider: its readout, figure and text follow."""
    explorers = [c["index"] for c in shown if "ScalingExplorer(" in c["source"]]
    assert explorers, f"{lesson.name} has no ScalingExplorer cell"
    cell = lab_ui.cell_locator(page, explorers[-1])
    output = cell.locator(".jp-OutputArea-output").first
    slider = output.locator(".widget-slider", has=page.locator("label", has_text="d_k"))
    readout, image = slider.locator(".widget-readout"), output.locator("img.widget-image")
    table = output.locator(".widget-html-content")
    lab_ui.scroll_to(page, output)
    before = (readout.inner_text().strip(), image.get_attribute("src"), table.inner_text())

    # Drag the handle past the left end of its track, as a learner does with the mouse.
    handle, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-base")
    end = track.bounding_box()
    assert handle and end, "the d_k slider is not visible"
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] - 20, end["y"] + end["height"] / 2, steps=10)
    page.mouse.up()

    smallest = "2"  # ScalingExplorer.D_K_OPTIONS[0]
    page.wait_for_function(
        "([out, d_k, src]) => out.querySelector('.widget-readout').innerText.trim() === d_k"
        "  && out.querySelector('img.widget-image').getAttribute('src') !== src"
        "  && out.querySelector('.widget-html-content').innerText.includes(`d_k = ${d_k},`)",
        arg=[output.element_handle(), smallest, before[1]],
        timeout=lab_ui.OUTPUT_TIMEOUT_MS,
    )
    lab_ui.wait_for_idle_kernel(page)
    lab_ui.scroll_to(page, output)
    lab_ui.screenshot(page, f"lesson-{lesson.stem}-2-d_k-slider-moved-to-{smallest}")
    after = (readout.inner_text().strip(), image.get_attribute("src"), table.inner_text())
    assert before[0] != smallest and after[0] == smallest, (before[0], after[0])
    assert after[1] != before[1], "the explorer's figure did not change"
    assert after[2] != before[2] and f"d_k = {smallest}," in after[2], (before[2], after[2])
    assert lab_ui.cells(page)[explorers[-1]]["outputs"][0]["images"][0]["loaded"]
    lab_ui.assert_clean_page(page)


def check_result(page: Any, stub: int, check: int, code: str) -> str:
    """Type `code` into the stub cell, run it, run the check cell; return the check's text."""
    typed = lab_ui.type_into_cell(page, stub, code)
    assert typed == code, f"the editor holds\n{typed}\ninstead of\n{code}"
    check_cell = lab_ui.cell_locator(page, check)
    prompt_before = check_cell.locator(".jp-InputPrompt").inner_text().strip()
    lab_ui.run_cell(page, stub)
    lab_ui.run_cell(page, check)
    page.wait_for_function(
        "([cell, before]) => {"
        "  const prompt = cell.querySelector('.jp-InputPrompt').textContent.trim();"
        "  return prompt !== before && /\\[\\d+\\]/.test(prompt)"
        "    && cell.querySelector('.jp-OutputArea-output');"
        "}",
        arg=[check_cell.element_handle(), prompt_before],
        timeout=lab_ui.OUTPUT_TIMEOUT_MS,
    )
    lab_ui.wait_for_idle_kernel(page)
    shown = lab_ui.cells(page)
    for index in (stub, check):
        for out in shown[index]["outputs"]:
            assert "error" not in out["mime"] and out["mime"] != STREAMS[1], (
                f"cell {index} shows an error or a warning:\n{out['text'][-1500:]}"
            )
    lab_ui.scroll_to(page, check_cell)
    return check_cell.locator(".jp-OutputArea-output").first.inner_text().strip()


def test_exercise_03_checker_gives_feedback_in_jupyterlab(
    lab: tuple[lab_ui.LabServer, Any], page: Any
) -> None:
    server, _ = lab
    notebook = json.loads((ROOT / EXERCISE_03).read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"]]
    stub = next(
        i for i, source in enumerate(sources)
        if source.startswith("def softmax(") and "NotImplementedError" in source
    )  # fmt: skip
    check = next(
        i for i, source in enumerate(sources) if source.strip() == "check_softmax(softmax)"
    )

    lab_ui.open_notebook(page, server, EXERCISE_03)
    lab_ui.restart_and_run_all(page)
    lab_ui.scroll_to(page, lab_ui.cell_locator(page, check))
    lab_ui.screenshot(page, "exercise-03-1-stub")
    text = lab_ui.cells(page)[check]["outputs"][0]["text"]
    assert text.startswith("✗ softmax") and "not implemented" in text, text

    passed = check_result(page, stub, check, SOFTMAX_CORRECT)
    lab_ui.screenshot(page, "exercise-03-2-correct-softmax")
    assert passed.startswith("✓ softmax"), passed
    lab_ui.assert_clean_page(page)

    failed = check_result(page, stub, check, SOFTMAX_NO_MAX_SUBTRACTION)
    lab_ui.screenshot(page, "exercise-03-3-softmax-without-max-subtraction")
    assert failed.startswith("✗ softmax"), failed
    assert "Hint:" in failed and "max" in failed.split("Hint:", 1)[1], failed
    lab_ui.assert_clean_page(page)
