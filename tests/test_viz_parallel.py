"""The figure of lesson 07's speed-ups on several cores, checked through the data it carries."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402

WORKERS = [1, 2, 3, 4]
SPEEDUPS = {
    "attention, query rows": np.array([1.0, 1.9, 2.7, 3.4]),
    "RNN, time steps": np.array([1.0, 0.98, 0.97, 0.95]),
}


def test_speedup_plot_draws_each_series_and_the_ideal_line() -> None:
    ax = viz.speedup_plot(WORKERS, SPEEDUPS, title="Speed-up").axes[0]
    ideal, *measured = ax.get_lines()
    np.testing.assert_array_equal(ideal.get_xdata(), WORKERS)
    np.testing.assert_array_equal(ideal.get_ydata(), WORKERS)  # speed-up = workers
    assert ideal.get_linestyle() == "--"
    assert [line.get_label() for line in measured] == list(SPEEDUPS)
    for line, speedup in zip(measured, SPEEDUPS.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), WORKERS)
        np.testing.assert_array_equal(line.get_ydata(), speedup)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["ideal: speed-up = workers", *SPEEDUPS]
    assert ax.get_title() == "Speed-up" and "workers" in ax.get_xlabel()


def test_speedup_plot_axes_start_at_zero_and_show_each_worker_count() -> None:
    ax = viz.speedup_plot([1, 2], {"flat": np.array([1.0, 1.0])}, title="t").axes[0]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 2  # the ideal line fits
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "2"]
    assert list(ax.get_xticks()) == [1, 2]
    above = viz.speedup_plot([1, 2], {"superlinear": np.array([1.0, 2.6])}, title="t").axes[0]
    assert above.get_ylim()[1] >= 2.6  # a measured point above the ideal line stays visible


def test_speedup_plot_refuses_a_series_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="one per number of workers"):
        viz.speedup_plot([1, 2, 3], {"short": np.array([1.0, 2.0])}, title="t")


def test_speedup_plot_draws_into_given_axes() -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert viz.speedup_plot(WORKERS, SPEEDUPS, title="t", ax=right) is fig
    assert len(right.get_lines()) == 3 and not left.get_lines()


# ---------------------------------------------------------------------------------------------
# training_step_plot: one line per model and number of cores
def test_training_step_plot_draws_one_line_per_model_and_core_count() -> None:
    ns, cores = [64, 256, 1024], [1, 2]
    seconds = {"attention": np.array([[1e-4, 9e-5], [2e-3, 1e-3], [4e-2, 2e-2]]),
               "RNN": np.array([[1e-3, 1e-3], [4e-3, 4e-3], [1.6e-2, 1.7e-2]])}
    ax = viz.training_step_plot(ns, seconds, cores, title="Training step").axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        "attention, 1 core", "attention, 2 cores", "RNN, 1 core", "RNN, 2 cores"]
    for line, (times, k) in zip(lines, [(t, k) for t in seconds.values() for k in range(2)],
                                strict=True):
        np.testing.assert_array_equal(line.get_xdata(), ns)
        np.testing.assert_array_equal(line.get_ydata(), times[:, k])
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_title() == "Training step"


def test_training_step_plot_refuses_times_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="one per length and number of cores"):
        viz.training_step_plot([64, 128], {"RNN": np.ones((2, 1))}, [1, 2], title="t")
