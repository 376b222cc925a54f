"""Lesson 05's figures and its snapshot scrubber, checked through the data they carry."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.widgets import TrainingScrubber  # noqa: E402

LOSS = np.array([2.0, 1.5, 1.0, 0.5, 0.25, 0.1])
EVAL_STEPS = np.array([0, 3, 6])
ACCURACY = np.array([0.1, 0.6, 0.97])


def test_training_curves_show_loss_per_step_and_accuracy_per_evaluation() -> None:
    fig = viz.training_curves({"run": LOSS}, EVAL_STEPS, {"run": ACCURACY}, title="t", step=3)
    assert isinstance(fig, Figure)
    loss_ax, accuracy_ax = fig.axes
    [loss_line, marker] = loss_ax.get_lines()
    np.testing.assert_array_equal(loss_line.get_xdata(), np.arange(6))
    np.testing.assert_array_equal(loss_line.get_ydata(), LOSS)
    assert loss_ax.get_yscale() == "log"
    assert list(marker.get_xdata()) == [3, 3]  # the step marked
    accuracy_line, target, accuracy_marker = accuracy_ax.get_lines()
    np.testing.assert_array_equal(accuracy_line.get_xdata(), EVAL_STEPS)
    np.testing.assert_array_equal(accuracy_line.get_ydata(), ACCURACY)
    assert list(target.get_ydata()) == [0.95, 0.95] and target.get_label() == "95%"
    assert accuracy_ax.get_ylim() == (0, 1.02)
    assert fig._suptitle.get_text() == "t"


def test_training_curves_refuse_accuracies_that_do_not_fit_the_steps() -> None:
    with pytest.raises(ValueError, match="2 accuracies for 3 evaluation steps"):
        viz.training_curves({"run": LOSS}, EVAL_STEPS, {"run": ACCURACY[:2]})


def test_saturation_histogram_counts_rows_and_names_the_saturated_fraction() -> None:
    row_max = {"scaled": np.array([0.3, 0.5, 0.6, 0.995]), "unscaled": np.array([0.999, 1.0])}
    fig = viz.saturation_histogram(row_max, title="h")
    ax = fig.axes[0]
    counts = [sum(p.get_height() for p in container) for container in ax.containers]
    assert counts == [4, 2]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["scaled: 25% of rows > 0.99", "unscaled: 100% of rows > 0.99"]


def snapshots() -> dict[int, np.ndarray]:
    uniform = np.full((1, 3, 3), 1 / 3)
    peaked = np.array([[[1, 0, 0], [0.5, 0.5, 0], [0.05, 0.9, 0.05]]])
    return {0: uniform, 10: peaked}


def test_scrubber_shows_the_saved_snapshot_of_the_chosen_step() -> None:
    scrubber = TrainingScrubber(snapshots(), ["A", "B*", "C"], LOSS, EVAL_STEPS, ACCURACY)
    assert scrubber.step.options == (0, 10)
    np.testing.assert_array_equal(scrubber.weights, np.full((3, 3), 1 / 3))
    before = bytes(scrubber.image.value)
    assert before.startswith(b"\x89PNG")
    assert "<td>0.33</td>" in scrubber.table.value

    scrubber.step.value = 10  # what dragging the slider does: no training, only the snapshot

    np.testing.assert_array_equal(scrubber.weights, snapshots()[10][0])
    assert bytes(scrubber.image.value) != before
    assert "<th>B*</th>" in scrubber.table.value and "<td>0.90</td>" in scrubber.table.value
    assert repr(scrubber) == "TrainingScrubber(step=10, steps=2)"


def test_scrubber_needs_snapshots() -> None:
    with pytest.raises(ValueError, match="snapshots is empty"):
        TrainingScrubber({}, ["A"], LOSS, EVAL_STEPS, ACCURACY)


def test_seed_accuracy_curves_draw_every_run_and_the_median() -> None:
    runs = np.array([[0.1, 0.5, 0.96], [0.1, 0.3, 0.6], [0.2, 0.7, 1.0]])
    fig = viz.seed_accuracy_curves(EVAL_STEPS, {"scaled": runs}, title="s")
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3 + 1 + 1  # three runs, their median, the target
    np.testing.assert_array_equal(lines[3].get_ydata(), np.median(runs, axis=0))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["scaled: median of 3 runs (2 reach 95%)"]
    with pytest.raises(ValueError, match="one row per run"):
        viz.seed_accuracy_curves(EVAL_STEPS, {"scaled": runs[:, :2]})


def test_gradient_vs_saturation_plots_one_point_per_sequence_on_a_log_axis() -> None:
    row_max = {"unscaled": np.array([0.3, 0.995, 0.9999])}
    fig = viz.gradient_vs_saturation(row_max, {"unscaled": np.array([0.1, 1e-4, 1e-7])})
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.collections[0].get_offsets()[:, 0], row_max["unscaled"])
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="3 rows but 2 gradient norms"):
        viz.gradient_vs_saturation(row_max, {"unscaled": np.array([0.1, 0.2])})
