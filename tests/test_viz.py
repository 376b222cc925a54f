"""The figures, checked through the data they carry (nbval does not compare images)."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import course_lib  # noqa: E402
from course_lib import viz  # noqa: E402

TOKENS = ["the", "cat", "sat"]
WEIGHTS = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])


def ticklabels(axis) -> list[str]:
    return [label.get_text() for label in axis.get_ticklabels()]


def test_attention_heatmap_shows_the_weights_with_token_labels() -> None:
    fig = viz.attention_heatmap(WEIGHTS, TOKENS, title="weights")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    [image] = ax.images
    assert np.array_equal(image.get_array(), WEIGHTS)
    assert image.get_clim() == (0.0, 1.0)
    assert ticklabels(ax.xaxis) == TOKENS and ticklabels(ax.yaxis) == TOKENS
    assert ax.get_title() == "weights"
    assert "query" in ax.get_ylabel() and "key" in ax.get_xlabel()
    assert "alpha" in fig.axes[1].get_ylabel()  # the colour bar is labelled
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{w:.2f}" for w in WEIGHTS.ravel()]


def test_heatmap_labels_rows_and_columns_separately_and_centres_signed_scores() -> None:
    M = np.array([[-1.0, 2.0], [0.5, 4.0], [0.0, 0.0]])
    fig = viz.heatmap(
        M, ["a", "b", "c"], ["x", "y"], title="t", xlabel="cols", ylabel="rows", center=0.0,
        annotate=False,
    )  # fmt: skip
    ax = fig.axes[0]
    assert ticklabels(ax.yaxis) == ["a", "b", "c"] and ticklabels(ax.xaxis) == ["x", "y"]
    assert ax.images[0].get_clim() == (-4.0, 4.0)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("cols", "rows")
    assert len(ax.texts) == 0


def test_heatmap_rejects_labels_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="labels"):
        viz.heatmap(WEIGHTS, TOKENS, TOKENS[:2], title="t", xlabel="x", ylabel="y")


def test_weight_bars_heights_labels_and_highlight() -> None:
    fig = viz.weight_bars(WEIGHTS[1], TOKENS, title="row 1")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert np.allclose(heights, WEIGHTS[1])
    assert ticklabels(ax.xaxis) == TOKENS
    assert ax.get_ylim() == (0.0, 1.0) and ax.get_title() == "row 1"
    colours = [to_hex(p.get_facecolor()) for p in ax.patches]
    assert colours[2] != colours[0] == colours[1]  # the largest weight stands out


def test_bars_of_a_signed_vector() -> None:
    fig = viz.bars(np.array([1.0, -2.0]), ["u", "v"], title="vec", xlabel="feature")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [1.0, -2.0]
    assert ax.get_xlabel() == "feature" and ax.get_ylabel() == "value"


def test_score_histogram_counts_every_score_and_gives_the_spread() -> None:
    scores = np.random.default_rng(0).standard_normal((20, 50)) * 3
    ax = viz.score_histogram(scores, title="scores", bins=25).axes[0]
    assert sum(p.get_height() for p in ax.patches) == scores.size
    [legend_text] = ax.get_legend().get_texts()
    assert legend_text.get_text() == f"std = {scores.std():.2f}"
    assert ax.get_title() == "scores" and ax.get_xlabel() and ax.get_ylabel() == "count"


def test_line_plot_one_line_per_series() -> None:
    x = np.array([2, 4, 8])
    series = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([3.0, 2.0, 1.0])}
    ax = viz.line_plot(x, series, title="t", xlabel="d_k", ylabel="y", logx=True).axes[0]
    for line, (label, y) in zip(ax.get_lines(), series.items(), strict=True):
        assert line.get_label() == label
        assert np.array_equal(line.get_xdata(), x) and np.array_equal(line.get_ydata(), y)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_fit_loglog_finds_the_exponent() -> None:
    x = 2.0 ** np.arange(1, 11)
    slope, intercept = viz.fit_loglog(x, 3 * x**2)
    assert slope == pytest.approx(2.0) and 10**intercept == pytest.approx(3.0)


def test_loglog_fit_shows_points_fitted_line_and_slope() -> None:
    x = 2.0 ** np.arange(1, 11)
    y = x * np.exp(np.random.default_rng(1).normal(0, 0.05, x.size))
    fig = viz.loglog_fit(x, y, title="variance", xlabel="d_k", ylabel="Var")
    ax = fig.axes[0]
    slope, _ = viz.fit_loglog(x, y)
    points, fitted = ax.get_lines()
    assert np.array_equal(points.get_ydata(), y)
    assert fitted.get_label() == f"fitted slope = {slope:.2f}"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("variance", "d_k", "Var")


def test_drawing_into_given_axes_and_png_bytes() -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert viz.weight_bars(WEIGHTS[0], TOKENS, ax=right) is fig
    assert len(right.patches) == 3 and len(left.patches) == 0
    assert viz.to_png(fig).startswith(b"\x89PNG")


def test_only_widgets_import_viz_or_widgets() -> None:
    """The layering rule: no course_lib module but widgets.py imports viz or widgets."""
    package = Path(course_lib.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "widgets.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = "course_lib." * (node.level > 0) + (node.module or "")
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            for name in names:
                parts = name.strip(".").split(".")
                assert not (parts[0] == "course_lib" and {"viz", "widgets"} & set(parts[1:])), (
                    f"{path.relative_to(package)} imports {name}"
                )
