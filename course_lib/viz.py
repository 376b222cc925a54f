"""The course's figures: each function draws one kind of figure and returns the matplotlib Figure.

Figures are made with `matplotlib.figure.Figure`, not pyplot: a notebook cell shows the
figure it ends with exactly once, and widgets can turn a figure into PNG bytes (`to_png`)
without the notebook also displaying it. Every function also takes `ax=` to draw into an
existing axes (the widgets put two plots side by side); it then returns that axes' figure.

The numbers a figure shows are the data put on it (the image of a heatmap, the heights of the
bars, the fitted slope in a log-log legend), so tests check figures through that data.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "heatmap",
    "attention_heatmap",
    "bars",
    "weight_bars",
    "score_histogram",
    "line_plot",
    "fit_loglog",
    "loglog_fit",
    "to_png",
    "semilog_fit",
    "loglog_fits",
    "attention_grid",
    "patch_attention",
]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """`ax`, or the single axes of a new figure of size `figsize`."""
    if ax is not None:
        return ax
    return Figure(figsize=figsize).add_subplot()


def _label(
    ax: Axes,
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    grid: str = "major",
    legend_size: float | None = None,
) -> Figure:
    """Title, axis labels, a light grid (`grid`: "major" or "both") and the legend; the figure."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which=grid, alpha=0.3)
    ax.legend(fontsize=legend_size)
    return ax.figure


def heatmap(
    M: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colorbar_label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    center: float | None = None,
    annotate: bool = True,
    decimals: int = 2,
    ax: Axes | None = None,
) -> Figure:
    """A labelled heatmap of a matrix M of shape (rows, cols): one cell per entry M[r, c].

    Row r is labelled row_labels[r] on the y axis, column c col_labels[c] on the x axis.
    With `center`, the colour scale is symmetric about that value, which gets the middle
    colour of a diverging `cmap` (for signed scores); with `annotate`, each cell also shows
    its number rounded to `decimals`.
    """
    M = np.asarray(M, dtype=float)
    if M.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"M has shape {M.shape} but there are {len(row_labels)} row labels and "
            f"{len(col_labels)} column labels."
        )
    ax = _axes(ax, (max(4.5, 1.6 + 0.55 * M.shape[1]), 1.2 + 0.45 * M.shape[0]))
    if center is not None:  # symmetric limits: equal distances from center get equal shades
        reach = float(np.max(np.abs(M - center))) or 1.0
        vmin, vmax = center - reach, center + reach
    image = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(M.shape[1]), labels=list(col_labels), rotation=45, ha="right")
    ax.set_yticks(range(M.shape[0]), labels=list(row_labels))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label(colorbar_label)
    if annotate:
        for (r, c), value in np.ndenumerate(M):
            rgba = image.cmap(image.norm(value))
            light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
            ax.text(
                c, r, f"{value:.{decimals}f}", ha="center", va="center", fontsize=8,
                color="black" if light else "white",
            )  # fmt: skip
    return ax.figure


def attention_heatmap(
    weights: np.ndarray,
    tokens: Sequence[str],
    *,
    key_tokens: Sequence[str] | None = None,
    title: str = r"Attention weights $\alpha_{ij}$",
    annotate: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """The attention weights α (n_q, n_k) as a heatmap: row i = query token i, column j = key j.

    Colours run from 0 to 1; each row sums to 1. `key_tokens` defaults to `tokens`.
    """
    return heatmap(
        weights,
        tokens,
        tokens if key_tokens is None else key_tokens,
        title=title,
        xlabel="key token j (attended to)",
        ylabel="query token i (attending)",
        colorbar_label=r"weight $\alpha_{ij}$",
        cmap="Blues",
        vmin=0.0,
        vmax=1.0,
        annotate=annotate,
        ax=ax,
    )


def bars(
    values: np.ndarray,
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "value",
    ylim: tuple[float, float] | None = None,
    highlight: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A bar chart of a vector of shape (d,): bar r has height values[r] and label labels[r].

    `highlight` colours one bar differently (for instance the key a query attends to most).
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(labels),):
        raise ValueError(f"values has shape {values.shape} but there are {len(labels)} labels.")
    ax = _axes(ax, (max(4.0, 0.6 * len(labels) + 1.5), 3.2))
    colors = ["tab:blue"] * len(labels)
    if highlight is not None:
        colors[highlight] = "tab:orange"
    ax.bar(range(len(labels)), values, color=colors)
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.axhline(0.0, color="black", linewidth=0.8)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax.figure


def weight_bars(
    weights: np.ndarray,
    tokens: Sequence[str],
    *,
    title: str = "Attention weights of one query",
    ax: Axes | None = None,
) -> Figure:
    """One row of attention weights (α_i1, ..., α_in), shape (n,), as bars over the key tokens.

    The axis runs from 0 to 1 and the largest weight is highlighted.
    """
    weights = np.asarray(weights, dtype=float)
    return bars(
        weights,
        tokens,
        title=title,
        xlabel="key token j",
        ylabel=r"weight $\alpha_{ij}$",
        ylim=(0.0, 1.0),
        highlight=int(np.argmax(weights)),
        ax=ax,
    )


def score_histogram(
    scores: np.ndarray,
    *,
    title: str = "Distribution of the scores",
    xlabel: str = "score",
    bins: int = 40,
    ax: Axes | None = None,
) -> Figure:
    """A histogram of scores (any shape, flattened), with their standard deviation in the legend."""
    scores = np.asarray(scores, dtype=float).ravel()
    ax = _axes(ax, (5.0, 3.2))
    ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"std = {scores.std():.2f}")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend(loc="upper right")
    return ax.figure


def line_plot(
    x: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    markers: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """One line per entry of `series` (label -> y of the shape of x), against x, with a legend."""
    ax = _axes(ax, (5.5, 3.6))
    for label, y in series.items():
        ax.plot(x, y, marker="o" if markers else None, markersize=4, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    return _label(ax, title, xlabel, ylabel)


def fit_loglog(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The least-squares line log10(y) = slope · log10(x) + intercept: returns (slope, intercept).

    A slope of 1 means y grows in proportion to x (y = c · x).
    """
    slope, intercept = np.polyfit(np.log10(x), np.log10(y), 1)
    return float(slope), float(intercept)


def loglog_fit(
    x: np.ndarray,
    y: np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    label: str = "measured",
    ax: Axes | None = None,
) -> Figure:
    """The points (x, y) on log-log axes with their fitted line; the legend gives the slope.

    The fit is `fit_loglog(x, y)`; the fitted line's legend entry reads "fitted slope = 1.00".
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    slope, intercept = fit_loglog(x, y)
    ax = _axes(ax, (5.5, 3.8))
    ax.loglog(x, y, "o", label=label)
    ax.loglog(x, 10**intercept * x**slope, "--", label=f"fitted slope = {slope:.2f}")
    return _label(ax, title, xlabel, ylabel, grid="both")


def to_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (for an `ipywidgets.Image`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _two_decimals(value: float) -> str:
    """value with two decimals, and "0.00" rather than "-0.00" for a tiny negative number."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def semilog_fit(
    x: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ax: Axes | None = None,
) -> Figure:
    """Each series (label -> y of the shape of x) as points on a log y axis, with its fitted
    exponential, the least-squares line ln y = rate · x + intercept, dashed in the same colour.

    The legend gives each rate ("label: rate = -0.36 per step"): y is multiplied by e^rate per
    unit of x, so a rate of 0 is a flat line (no decay).
    """
    x = np.asarray(x, dtype=float)
    ax = _axes(ax, (6.0, 4.0))
    for label, y in series.items():
        y = np.asarray(y, dtype=float)
        rate, intercept = np.polyfit(x, np.log(y), 1)
        legend = f"{label}: rate = {_two_decimals(rate)} per step"
        (points,) = ax.semilogy(x, y, "o", markersize=3, label=legend)
        ax.semilogy(x, np.exp(intercept + rate * x), "--", color=points.get_color(), linewidth=1)
    return _label(ax, title, xlabel, ylabel, legend_size=8)


def loglog_fits(
    x: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    fit_from: float | None = None,
    vline: float | None = None,
    vline_label: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Each series (label -> y of the shape of x) as points on log-log axes (x in powers of 2)
    with its fitted power law y ≈ c · x^slope (`fit_loglog`), dashed in the same colour; the
    legend gives the slope ("label: slope = 2.00").

    With `fit_from`, only the points with x >= fit_from enter the fit (small sizes are often
    dominated by fixed costs); NaN points are skipped. With `vline`, a dotted vertical line marks
    that x (a crossover, say), labelled `vline_label`.
    """
    x = np.asarray(x, dtype=float)
    ax = _axes(ax, (6.0, 4.0))
    for label, y in series.items():
        y = np.asarray(y, dtype=float)
        use = np.isfinite(y) & (x >= (x.min() if fit_from is None else fit_from))
        slope, intercept = fit_loglog(x[use], y[use])
        legend = f"{label}: slope = {_two_decimals(slope)}"
        (points,) = ax.loglog(x, y, "o", markersize=4, label=legend)
        ax.loglog(x[use], 10**intercept * x[use] ** slope, "--", color=points.get_color(),
                  linewidth=1)
    if vline is not None:
        ax.axvline(vline, color="gray", linestyle=":", label=vline_label)
    ax.set_xscale("log", base=2)
    return _label(ax, title, xlabel, ylabel, legend_size=8)


def attention_grid(
    weights: np.ndarray,
    tokens: Sequence[str],
    *,
    titles: Sequence[str],
    suptitle: str = "",
    annotate: bool = False,
) -> Figure:
    """Several attention-weight matrices side by side, weights of shape (k, n, n).

    Panel p is `weights[p]` as a heatmap (rows = query tokens, columns = key tokens) titled
    `titles[p]`; every panel uses the same colour scale, 0 to 1, and one shared colour bar.
    For the heads of multi-head attention (k = n_heads) or the same sentence under two masks.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 3 or weights.shape[1:] != (len(tokens), len(tokens)):
        raise ValueError(
            f"weights has shape {weights.shape}; expected (k, n, n) with n = {len(tokens)} "
            "tokens."
        )
    if len(titles) != len(weights):
        raise ValueError(f"{len(weights)} panels but {len(titles)} titles.")
    k, n = weights.shape[0], len(tokens)
    side = 1.0 + 0.38 * n
    fig = Figure(figsize=(k * side + 1.2, side + 0.9), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    for p, ax in enumerate(axes):
        image = ax.imshow(weights[p], cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n), labels=list(tokens), rotation=90)
        ax.set_yticks(range(n), labels=list(tokens) if p == 0 else [])
        ax.set_title(titles[p])
        ax.set_xlabel("key token j")
        if annotate:
            for (r, c), value in np.ndenumerate(weights[p]):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
    axes[0].set_ylabel("query token i")
    colorbar = fig.colorbar(image, ax=list(axes), shrink=0.8)
    colorbar.set_label(r"weight $\alpha_{ij}$")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def patch_attention(
    image: np.ndarray,
    weights: np.ndarray,
    patch_size: int,
    query: int,
    *,
    title: str = "Attention of one patch over the image",
    ax: Axes | None = None,
) -> Figure:
    """One patch's attention weights drawn over the image they were computed on.

    `image` (H, W, 3) or (H, W) is cut into patches of `patch_size` × `patch_size` pixels,
    numbered row by row; `weights` (n_patches,) is the query patch's row of α. The left panel
    shows the image with the query patch outlined; the right panel shades each patch by its
    weight (the grid of weights, shape (H / patch_size, W / patch_size)) over a faded copy of
    the image, with the query patch outlined again.
    """
    from matplotlib.patches import Rectangle

    image = np.asarray(image, dtype=float)
    rows, cols = image.shape[0] // patch_size, image.shape[1] // patch_size
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (rows * cols,):
        raise ValueError(
            f"weights has shape {weights.shape}; the image has {rows} × {cols} = {rows * cols} "
            f"patches of {patch_size} × {patch_size} pixels."
        )
    if ax is None:
        fig = Figure(figsize=(8.4, 3.8), layout="constrained")
        left, ax = fig.subplots(1, 2)
        left.imshow(image)
        left.set_title("the image and the query patch")
    else:
        fig, left = ax.figure, None
    extent = (-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5)
    ax.imshow(image, alpha=0.35)
    grid = ax.imshow(weights.reshape(rows, cols), cmap="magma", alpha=0.75, extent=extent,
                     vmin=0.0, interpolation="nearest")
    ax.set_title(title)
    r, c = divmod(query, cols)
    for target in (left, ax):
        if target is None:
            continue
        target.add_patch(Rectangle((c * patch_size - 0.5, r * patch_size - 0.5), patch_size,
                                   patch_size, fill=False, edgecolor="cyan", linewidth=2.5))
        target.set_xticks(np.arange(0, image.shape[1] + 1, patch_size) - 0.5, labels=[])
        target.set_yticks(np.arange(0, image.shape[0] + 1, patch_size) - 0.5, labels=[])
        target.grid(True, color="white", linewidth=0.5, alpha=0.6)
        target.tick_params(length=0)
    colorbar = fig.colorbar(grid, ax=ax, shrink=0.85)
    colorbar.set_label(r"weight $\alpha_{qj}$ of patch j")
    return fig
