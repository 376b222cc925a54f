"""The figures, checked through the data they carry (nbval does not compare images)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import course_lib  # noqa: E402
from course_lib import fitting, viz  # noqa: E402

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


def test_line_plot_ylim_shows_the_whole_range_from_zero() -> None:
    x = np.array([2, 4, 8])
    falling = {"norm": np.array([0.3, 0.2, 0.1])}
    ax = viz.line_plot(x, falling, title="t", xlabel="x", ylabel="y", ylim=(0, None)).axes[0]
    bottom, top = ax.get_ylim()
    assert bottom == 0.0 and top >= 0.3  # autoscaled, it would start near 0.1
    auto = viz.line_plot(x, falling, title="t", xlabel="x", ylabel="y").axes[0]
    assert auto.get_ylim()[0] > 0.05


def test_line_plot_legend_outside_sits_right_of_the_axes() -> None:
    x = np.arange(10.0)
    series = {f"clock {i}": np.sin(x / (i + 1)) for i in range(3)}
    fig = viz.line_plot(x, series, title="t", xlabel="p", ylabel="P", legend_outside=True)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # entirely to the right: no data under it
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(series)


def test_loglog_plot_one_series_shows_points_fitted_line_and_slope() -> None:
    x = 2.0 ** np.arange(1, 11)
    y = x * np.exp(np.random.default_rng(1).normal(0, 0.05, x.size))
    fig = viz.loglog_plot(x, {"measured": y}, title="variance", xlabel="d_k", ylabel="Var")
    ax = fig.axes[0]
    slope, c = fitting.fit_power_law(x, y)
    points, fitted = ax.get_lines()
    assert np.array_equal(points.get_ydata(), y)
    np.testing.assert_allclose(fitted.get_ydata(), c * x**slope)  # the same fit as the number
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"measured: slope = {slope:.2f}"]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("variance", "d_k", "Var")


def test_one_name_per_figure_and_no_fit_of_its_own() -> None:
    """viz draws; the fits live in course_lib.fitting (the old duplicates are gone)."""
    for old in ("fit_loglog", "loglog_fit", "loglog_fits"):
        assert not hasattr(viz, old), f"viz.{old} is back: use viz.loglog_plot / fitting"
    assert "polyfit" not in Path(viz.__file__).read_text()


def test_drawing_into_given_axes_and_png_bytes() -> None:
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert viz.weight_bars(WEIGHTS[0], TOKENS, ax=right) is fig
    assert len(right.patches) == 3 and len(left.patches) == 0
    assert viz.to_png(fig).startswith(b"\x89PNG")


PRESENTATION = {"viz.py", "widgets.py", "head_explorer.py", "alignment_explorer.py", "diagrams.py"}
"""The presentation layer (COURSE.md): figures, diagrams and explorers, which may build on viz."""


def test_only_the_presentation_layer_imports_viz_or_widgets() -> None:
    """The layering rule: no course_lib module below the presentation layer (the math, data,
    experiments, checkers, tooling) imports viz or widgets."""
    package = Path(course_lib.__file__).parent
    for path in package.rglob("*.py"):
        if path.name in PRESENTATION and path.parent == package:
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


def test_semilog_fit_shows_points_fitted_exponentials_and_rates() -> None:
    x = np.arange(1.0, 11.0)
    series = {"fast": 2.0 * np.exp(-0.5 * x), "flat": np.full(x.size, 0.1)}
    ax = viz.semilog_fit(x, series, title="decay", xlabel="distance", ylabel="norm").axes[0]
    fast_points, fast_fit, flat_points, flat_fit = ax.get_lines()
    assert np.array_equal(fast_points.get_ydata(), series["fast"])
    np.testing.assert_allclose(fast_fit.get_ydata(), series["fast"])  # the fit is exact here
    np.testing.assert_allclose(flat_fit.get_ydata(), 0.1)
    assert fast_fit.get_color() == fast_points.get_color() != flat_points.get_color()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["fast: rate = -0.50 per step", "flat: rate = 0.00 per step"]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("decay", "distance", "norm")


def test_loglog_plot_fits_each_series_from_a_size_on() -> None:
    x = np.array([8.0, 16.0, 32.0, 64.0, 128.0])
    quadratic = 1e-6 * x**2 + np.array([1e-3, 0, 0, 0, 0])  # a fixed cost spoils the first point
    partial = np.array([1.0, 2.0, 4.0, np.nan, np.nan])  # measured for small sizes only
    fig = viz.loglog_plot(x, {"quadratic": quadratic, "partial": partial}, title="t", xlabel="n",
                          ylabel="s", fit_from=16, vline=20, vline_label="crossover")
    ax = fig.axes[0]
    q_points, q_fit, p_points, p_fit, marker = ax.get_lines()
    assert np.array_equal(q_points.get_xdata(), x) and np.array_equal(q_fit.get_xdata(), x[1:])
    np.testing.assert_allclose(q_fit.get_ydata(), quadratic[1:])
    np.testing.assert_array_equal(p_fit.get_xdata(), [16.0, 32.0])  # NaNs and x < 16 left out
    assert list(marker.get_xdata()) == [20, 20]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["quadratic: slope = 2.00", "partial: slope = 1.00", "crossover"]
    assert ax.get_xscale() == ax.get_yscale() == "log"


def test_attention_grid_one_panel_per_matrix_with_a_shared_scale() -> None:
    stacked = np.stack([WEIGHTS, WEIGHTS.T / WEIGHTS.T.sum(axis=1, keepdims=True)])
    fig = viz.attention_grid(stacked, TOKENS, titles=["head 0", "head 1"])
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["head 0", "head 1"]
    for ax, weights in zip(panels, stacked, strict=True):
        [image] = ax.images
        assert np.array_equal(image.get_array(), weights)
        assert image.get_clim() == (0.0, 1.0)
        assert ticklabels(ax.xaxis) == TOKENS
    assert ticklabels(panels[0].yaxis) == TOKENS
    assert "alpha" in fig.axes[-1].get_ylabel()  # one shared, labelled colour bar
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="titles"):
        viz.attention_grid(stacked, TOKENS, titles=["only one"])
    with pytest.raises(ValueError, match="expected"):
        viz.attention_grid(WEIGHTS, TOKENS, titles=["2-D"])


def test_patch_attention_draws_the_weights_grid_over_the_image() -> None:
    image = np.zeros((8, 12, 3))
    image[:4, :4] = (1.0, 0.0, 0.0)
    weights = np.arange(6.0) / 15  # 2 x 3 patches of 4 pixels
    fig = viz.patch_attention(image, weights, 4, query=4, title="patch 4")
    left, right = fig.axes[:2]
    assert np.array_equal(left.images[0].get_array(), image)
    faded, grid = right.images
    assert np.array_equal(faded.get_array(), image)
    assert np.array_equal(grid.get_array(), weights.reshape(2, 3))
    assert right.get_title() == "patch 4"
    [outline] = [p for p in right.patches if not p.get_fill()]
    assert outline.get_xy() == (4 - 0.5, 4 - 0.5) and outline.get_width() == 4  # row 1, col 1
    with pytest.raises(ValueError, match="patches"):
        viz.patch_attention(image, weights[:5], 4, query=0)


FIGURE_TEXTS = {"title", "xlabel", "ylabel", "colorbar_label", "suptitle", "titles", "vline_label"}
PLAIN_SUBSCRIPT = re.compile(r"[^\W\d]\w*_\w")  # a_ij, d_k, W_Q written as plain text


def _figure_texts(source: str) -> list[str]:
    """The string pieces passed as titles and labels to `viz.*(...)` calls in a code cell."""
    code = "".join(line for line in source.splitlines(True) if not line.lstrip().startswith("%"))
    texts = []
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "viz"):
            for keyword in node.keywords:
                if keyword.arg in FIGURE_TEXTS:
                    texts += [piece.value for piece in ast.walk(keyword.value)
                              if isinstance(piece, ast.Constant) and isinstance(piece.value, str)]
    return texts


def test_lesson_figures_write_subscripts_as_math() -> None:
    """One notation on the figures: a_ij is $a_{ij}$ (mathtext), never the raw text "a_ij"."""
    root = Path(course_lib.__file__).parents[1]
    notebooks = [*sorted(root.glob("notebooks/*.ipynb")),
                 *sorted(root.glob("exercises/solutions/*.ipynb"))]
    assert notebooks
    raw = []
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                raw += [(path.name, text) for text in _figure_texts(cell.source)
                        if PLAIN_SUBSCRIPT.search(re.sub(r"\$[^$]*\$", "", text))]
    assert raw == [], f"write these subscripts as $...$ (mathtext): {raw}"


def test_the_subscript_scan_catches_plain_text_and_accepts_mathtext() -> None:
    old = 'viz.heatmap(A, t, t, title=f"Raw scores a_ij for {s}", colorbar_label="score a_ij")'
    new = r'viz.heatmap(A, t, t, title=f"Raw scores $a_{{ij}}$ for {s}", colorbar_label="$a_{ij}$")'
    assert [PLAIN_SUBSCRIPT.search(re.sub(r"\$[^$]*\$", "", s)) is not None
            for s in _figure_texts(old)] == [True, True]
    assert not any(PLAIN_SUBSCRIPT.search(re.sub(r"\$[^$]*\$", "", s)) for s in _figure_texts(new))


def test_heatmap_panels_share_one_symmetric_scale_and_keep_blanks() -> None:
    left = np.array([[1.0, np.nan], [-2.0, 0.5]])
    right = np.array([[0.5, 3.0], [0.0, -1.0]])
    fig = viz.heatmap_panels([left, right], ["sinusoidal", "RoPE"], xlabel="key j",
                             ylabel="query i", colorbar_label="score", tick_every=1)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["sinusoidal", "RoPE"]
    for ax, M in zip(panels, (left, right), strict=True):
        [image] = ax.images
        np.testing.assert_array_equal(image.get_array().filled(np.nan), M)  # NaN stays blank
        assert image.get_clim() == (-3.0, 3.0)  # one scale: the largest |entry| of both
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("key j", "query i")
    assert fig.axes[-1].get_ylabel() == "score" and len(fig.axes) == 3
    with pytest.raises(ValueError, match="titles"):
        viz.heatmap_panels([left, right], ["one"], xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="one shape"):
        viz.heatmap_panels([left[0]], ["one"], xlabel="x", ylabel="y")  # a row, not a matrix


def test_labelled_scatter_one_labelled_point_per_item_with_error_bars() -> None:
    x, y = np.array([0.38, 0.38, 0.1]), np.array([0.72, 0.36, 0.02])
    err = np.array([0.07, 0.04, 0.0])
    fig = viz.labelled_scatter(x, y, ["0.2", "0.3", "1.0"], yerr=err, title="t",
                               xlabel="previous-token score", ylabel="loss increase")
    ax = fig.axes[0]
    points = ax.get_lines()[0]  # then the caps of the error bars
    assert np.array_equal(points.get_xdata(), x) and np.array_equal(points.get_ydata(), y)
    [bars_] = ax.collections  # one vertical error bar per point, y ± err
    segments = [np.asarray(s) for s in bars_.get_segments()]
    np.testing.assert_allclose([s[:, 1] for s in segments], np.stack([y - err, y + err], axis=1))
    assert [t.get_text() for t in ax.texts] == ["0.2", "0.3", "1.0"]
    assert [t.xy for t in ax.texts] == list(zip(x, y, strict=True))
    assert ax.get_ylim()[0] == 0.0
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("t", "previous-token score",
                                                                  "loss increase")
    with pytest.raises(ValueError, match="one per label"):
        viz.labelled_scatter(x[:2], y, ["a", "b", "c"], title="t", xlabel="x", ylabel="y")


def test_median_band_plot_draws_the_median_and_the_range_of_the_draws() -> None:
    x = np.array([1.0, 2.0, 4.0])
    draws = np.array([[1.0, 2.0, 4.0], [0.1, 0.3, 0.2], [1e-3, 1e-2, 1e-4]])  # (len(x), 3 draws)
    fig = viz.median_band_plot(x, {"without": draws}, title="t", xlabel="L", ylabel="ratio",
                               logx=True, logy=True)
    ax = fig.axes[0]
    [line] = ax.get_lines()
    assert np.array_equal(line.get_xdata(), x)
    np.testing.assert_allclose(line.get_ydata(), [2.0, 0.2, 1e-3])
    [band] = ax.collections
    edge = band.get_paths()[0].vertices
    for k, xk in enumerate(x):  # the band spans exactly [min, max] of the draws at each x
        at_x = edge[np.isclose(edge[:, 0], xk), 1]
        np.testing.assert_allclose([at_x.min(), at_x.max()], [draws[k].min(), draws[k].max()])
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ticklabels(ax.xaxis)[:3] == ["1", "2", "4"]
    [legend] = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == "without: median of 3 draws, band = range"
    with pytest.raises(ValueError, match="one row per x"):
        viz.median_band_plot(x, {"bad": draws.T[:2]}, title="t", xlabel="L", ylabel="r")
