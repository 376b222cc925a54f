"""The figure of lesson 06's trained comparison (viz.accuracy_vs_distance), checked by its data."""

from __future__ import annotations

import numpy as np

from course_lib import viz


def test_accuracy_vs_distance_draws_the_data_and_a_reference_chance_line() -> None:
    distances = [2, 8, 32]
    accuracy = {"rnn": np.array([1.0, 0.9, 0.12]), "attention": np.array([1.0, 1.0, 1.0])}
    spread = {"rnn": np.array([[1.0, 0.8, 0.1], [1.0, 1.0, 0.14]])}
    fig = viz.accuracy_vs_distance(distances, accuracy, chance=1 / 8, spread=spread)
    ax = fig.axes[0]
    data = [line for line in ax.get_lines() if line.get_gid() != "chance"]
    assert [line.get_label() for line in data] == ["rnn", "attention"]
    for line, y in zip(data, accuracy.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), distances)
        np.testing.assert_array_equal(line.get_ydata(), y)
    # chance: one horizontal reference line at 1/8, labelled on the axes, not a legend entry
    (chance,) = [line for line in ax.get_lines() if line.get_gid() == "chance"]
    assert np.allclose(chance.get_ydata(), 1 / 8) and chance.get_linestyle() == ":"
    legend = ax.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["rnn", "attention"]
    assert any(text.get_text() == "chance (0.125)" for text in ax.texts)
    # the legend sits below the axes, off the data; the whole accuracy range is shown
    assert legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).y1 < 0
    assert ax.get_ylim() == (0, 1.05) and ax.get_xscale() == "log"
    assert len(ax.collections) == 1  # one band: the spread given for "rnn"


def test_gradient_vs_distance_pairs_before_and_after_in_one_colour() -> None:
    distances = [2, 8, 32]
    before = {"rnn": np.array([1e-1, 1e-3, 1e-8]), "attention": np.array([1.5, 0.6, 0.2])}
    after = {"rnn": np.array([1e-2, 2e-2, 3e-6])}
    ax = viz.gradient_vs_distance(distances, before, after).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"rnn, before training", "rnn, after training",
                          "attention, before training"}
    np.testing.assert_array_equal(lines["rnn, after training"].get_ydata(), after["rnn"])
    np.testing.assert_array_equal(lines["attention, before training"].get_ydata(),
                                  before["attention"])
    assert lines["rnn, before training"].get_color() == lines["rnn, after training"].get_color()
    assert lines["rnn, after training"].get_linestyle() == "--"
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).y1 < 0


def test_coinciding_accuracy_lines_stay_visible() -> None:
    # two models at 1.0 everywhere: the later line is drawn thinner with a smaller marker
    ax = viz.accuracy_vs_distance([2, 8], {"gru": np.ones(2), "attention": np.ones(2)},
                                  chance=0.125).axes[0]
    gru, attention = (line for line in ax.get_lines() if line.get_gid() != "chance")
    assert attention.get_linewidth() < gru.get_linewidth()
    assert attention.get_markersize() < gru.get_markersize()
    assert gru.get_marker() != attention.get_marker()
