"""The course's figures: each function draws one kind of figure and returns the matplotlib Figure.

Figures are made with `matplotlib.figure.Figure`, not pyplot: a notebook cell shows the
figure it ends with exactly once, and widgets can turn a figure into PNG bytes (`to_png`)
without the notebook also displaying it. Every function also takes `ax=` to draw into an
existing axes (the widgets put two plots side by side); it then returns that axes' figure.

The numbers a figure shows are the data put on it (the image of a heatmap, the heights of the
bars, the fitted slope in a log-log legend), so tests check figures through that data. The fits
themselves are computed in `course_lib.fitting`, the same functions the lessons' numbers use.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_lib.fitting import fit_exponential, fit_power_law

__all__ = [
    "heatmap",
    "attention_heatmap",
    "bars",
    "weight_bars",
    "score_histogram",
    "line_plot",
    "to_png",
    "semilog_fit",
    "loglog_plot",
    "attention_grid",
    "patch_attention",
    "accuracy_vs_distance",
    "gradient_vs_distance",
    "speedup_plot",
    "training_step_plot",
    "training_curves",
    "saturation_histogram",
    "seed_accuracy_curves",
    "gradient_vs_saturation",
    "heatmap_panels",
    "labelled_scatter",
    "median_band_plot",
]


def _one_per(x: np.ndarray, y: Any, label: str, values: str, per: tuple[str, str]
             ) -> np.ndarray:
    """y as a float array with one value per point of x (`per`: what a point is, singular and
    plural); ValueError otherwise."""
    y = np.asarray(y, dtype=float)
    if y.shape != x.shape:
        raise ValueError(f"{label!r} has {y.size} {values} for {x.size} {per[1]}: give one per "
                         f"{per[0]}.")
    return y


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
    ylim: tuple[float | None, float | None] | None = None,
    legend_outside: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """One line per entry of `series` (label -> y of the shape of x), against x, with a legend.

    `ylim` = (bottom, top) fixes the y axis (None leaves that end automatic): (0, None) shows
    the whole range from 0, so a fall to a third looks like a fall to a third. With
    `legend_outside`, the legend sits to the right of the axes, off the data (for lines that
    fill the whole plot).
    """
    ax = _axes(ax, (5.5, 3.6))
    for label, y in series.items():
        ax.plot(x, y, marker="o" if markers else None, markersize=4, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    fig = _label(ax, title, xlabel, ylabel)
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)
    return fig


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
    exponential y ≈ c · e^(rate · x) (`fitting.fit_exponential`), dashed in the same colour.

    The legend gives each rate ("label: rate = -0.36 per step"): y is multiplied by e^rate per
    unit of x, so a rate of 0 is a flat line (no decay).
    """
    x = np.asarray(x, dtype=float)
    ax = _axes(ax, (6.0, 4.0))
    for label, y in series.items():
        y = np.asarray(y, dtype=float)
        rate, c = fit_exponential(x, y)
        legend = f"{label}: rate = {_two_decimals(rate)} per step"
        (points,) = ax.semilogy(x, y, "o", markersize=3, label=legend)
        ax.semilogy(x, c * np.exp(rate * x), "--", color=points.get_color(), linewidth=1)
    return _label(ax, title, xlabel, ylabel, legend_size=8)


def loglog_plot(
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
    with its fitted power law y ≈ c · x^slope (`fitting.fit_power_law`), dashed in the same
    colour; the legend gives the slope ("label: slope = 2.00"). One series is the same call
    with a one-entry mapping, `{"measured": y}`.

    With `fit_from`, only the points with x >= fit_from enter the fit (small sizes are often
    dominated by fixed costs); NaN points are skipped. With `vline`, a dotted vertical line marks
    that x (a crossover, say), labelled `vline_label`.
    """
    x = np.asarray(x, dtype=float)
    ax = _axes(ax, (6.0, 4.0))
    for label, y in series.items():
        y = np.asarray(y, dtype=float)
        use = np.isfinite(y) & (x >= (x.min() if fit_from is None else fit_from))
        slope, c = fit_power_law(x[use], y[use])
        legend = f"{label}: slope = {_two_decimals(slope)}"
        (points,) = ax.loglog(x, y, "o", markersize=4, label=legend)
        ax.loglog(x[use], c * x[use] ** slope, "--", color=points.get_color(), linewidth=1)
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


def speedup_plot(
    workers: Sequence[int],
    speedups: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str = "workers (threads, one per core)",
    ylabel: str = "speed-up over 1 worker",
    ax: Axes | None = None,
) -> Figure:
    """Each series (label -> speed-up t(1) / t(w), one per entry of `workers`) against the
    number of workers w, with the ideal line, speed-up = w, dashed in grey: w workers that
    share the work evenly and never wait for each other.

    The y axis starts at 0 and the x axis shows each number of workers measured (a machine
    with 2 cores gives the points 1 and 2 only). Raises ValueError when a series does not have
    one value per number of workers.
    """
    workers = np.asarray(workers, dtype=float)
    ax = _axes(ax, (5.5, 3.6))
    ax.plot(workers, workers, "--", color="gray", linewidth=1, label="ideal: speed-up = workers")
    for label, speedup in speedups.items():
        speedup = _one_per(workers, speedup, label, "speed-ups",
                           ("number of workers", "numbers of workers"))
        ax.plot(workers, speedup, marker="o", markersize=5, label=label)
    ax.set_xticks(workers, labels=[str(int(w)) for w in workers])
    top = max([workers.max(), *(np.max(s) for s in speedups.values())])
    ax.set_ylim(0, 1.1 * top)
    return _label(ax, title, xlabel, ylabel, legend_size=8)


def training_step_plot(
    ns: Sequence[int],
    seconds: Mapping[str, np.ndarray],
    cores: Sequence[int],
    *,
    title: str,
    xlabel: str = "sequence length n",
    ylabel: str = "seconds per training step",
    ax: Axes | None = None,
) -> Figure:
    """The time of one training step against n on log-log axes: for each model (label ->
    seconds of shape (len(ns), len(cores))), one line per number of cores, one colour per
    model, solid for cores[0] and dashed, dotted ... for the next ones; the legend says
    "model, c core(s)". Raises ValueError when a model's times do not have that shape.
    """
    ns_array = np.asarray(ns, dtype=float)
    ax = _axes(ax, (5.5, 3.6))
    styles = ["-", "--", ":", "-."]
    for m, (label, times) in enumerate(seconds.items()):
        times = np.asarray(times, dtype=float)
        if times.shape != (len(ns_array), len(cores)):
            raise ValueError(f"{label!r} has times of shape {times.shape}: give one per length "
                             f"and number of cores, {(len(ns_array), len(cores))}.")
        for k, c in enumerate(cores):
            ax.plot(ns_array, times[:, k], styles[k % len(styles)], marker="o", markersize=4,
                    color=f"C{m}", label=f"{label}, {c} core{'s' if c != 1 else ''}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return _label(ax, title, xlabel, ylabel, legend_size=8)


def training_curves(
    loss: Mapping[str, np.ndarray],
    eval_steps: np.ndarray,
    accuracy: Mapping[str, np.ndarray],
    *,
    title: str = "",
    target: float | None = 0.95,
    step: int | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Two panels: the training loss against the step, and the held-out accuracy.

    loss: label -> loss per step (shape (steps,), step 0 first), drawn on a log axis;
    accuracy: label -> accuracy at each of `eval_steps` (the same steps for every series),
    from 0 to 1, with a dashed line at `target`. `step` marks one step on both panels (the
    step a widget shows). `axes`: two axes to draw into (loss, accuracy), or None for a new
    figure. Raises ValueError when an accuracy series does not fit `eval_steps`.
    """
    eval_steps = np.asarray(eval_steps, dtype=float)
    if axes is None:
        fig = Figure(figsize=(10, 3.4), layout="constrained")
        axes = fig.subplots(1, 2)
    ax_loss, ax_accuracy = axes
    for label, y in loss.items():
        y = np.asarray(y, dtype=float)
        ax_loss.plot(np.arange(y.size), y, linewidth=1, label=label)
    ax_loss.set_yscale("log")
    for label, y in accuracy.items():
        y = _one_per(eval_steps, y, label, "accuracies",
                     ("evaluation step", "evaluation steps"))
        ax_accuracy.plot(eval_steps, y, marker="o", markersize=3, label=label)
    if target is not None:
        ax_accuracy.axhline(target, color="gray", linestyle="--", linewidth=1,
                            label=f"{target:.0%}")
    ax_accuracy.set_ylim(0, 1.02)
    if step is not None:
        for ax in (ax_loss, ax_accuracy):
            ax.axvline(step, color="tab:red", linewidth=1.2)
    _label(ax_loss, "training loss (each step's batch)", "step", "cross-entropy",
           legend_size=8)
    fig = _label(ax_accuracy, "accuracy on held-out sequences", "step", "accuracy",
                 legend_size=8)
    if title:
        fig.suptitle(title)
    return fig


def saturation_histogram(
    row_max: Mapping[str, np.ndarray],
    *,
    title: str = "How saturated the softmax rows are",
    threshold: float = 0.99,
    ax: Axes | None = None,
) -> Figure:
    """Histograms of the largest weight of each softmax row, one per series, on [0, 1].

    row_max: label -> the largest weight max_j α_ij of each row (any shape, flattened). A row
    whose largest weight is near 1 is saturated (almost one-hot); the legend gives the
    fraction of rows above `threshold`, and a dotted line marks it.
    """
    ax = _axes(ax, (5.5, 3.4))
    bins = np.linspace(0, 1, 41)
    for label, values in row_max.items():
        values = np.asarray(values, dtype=float).ravel()
        above = np.mean(values > threshold)
        ax.hist(values, bins=bins, alpha=0.6, label=f"{label}: {above:.0%} of rows > {threshold}")
    ax.axvline(threshold, color="gray", linestyle=":", linewidth=1)
    return _label(ax, title, r"largest weight of a row, $\max_j \alpha_{ij}$", "rows",
                  legend_size=8)


def seed_accuracy_curves(
    eval_steps: np.ndarray,
    accuracy: Mapping[str, np.ndarray],
    *,
    title: str = "",
    target: float = 0.95,
    ax: Axes | None = None,
) -> Figure:
    """The held-out accuracy of many runs: one thin line per seed and the median, per series.

    accuracy: label -> array (seeds, len(eval_steps)), one row per run. The legend gives, per
    series, how many runs reach `target` (dashed line) by the last evaluation step.
    """
    eval_steps = np.asarray(eval_steps, dtype=float)
    ax = _axes(ax, (6.5, 3.6))
    for k, (label, runs) in enumerate(accuracy.items()):
        runs = np.asarray(runs, dtype=float)
        if runs.ndim != 2 or runs.shape[1] != eval_steps.size:
            raise ValueError(f"{label!r}: give one row per run and one column per evaluation "
                             f"step ({eval_steps.size}); got shape {runs.shape}.")
        color = f"C{k}"
        for run in runs:
            ax.plot(eval_steps, run, color=color, linewidth=0.7, alpha=0.35)
        reached = int(np.sum(runs.max(axis=1) >= target))
        ax.plot(eval_steps, np.median(runs, axis=0), color=color, linewidth=2.5,
                label=f"{label}: median of {len(runs)} runs ({reached} reach {target:.0%})")
    ax.axhline(target, color="gray", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.02)
    return _label(ax, title, "step", "held-out accuracy", legend_size=8)


def gradient_vs_saturation(
    row_max: Mapping[str, np.ndarray],
    grad_norm: Mapping[str, np.ndarray],
    *,
    threshold: float = 0.99,
    title: str = "",
    ylabel: str = "gradient norm of one sequence",
    ax: Axes | None = None,
) -> Figure:
    """Per sequence: the largest weight of its softmax row (x) against the gradient it sends (y).

    row_max, grad_norm: label -> one value per sequence (the same keys, the same shapes). The y
    axis is logarithmic (gradients span orders of magnitude); a dotted line marks `threshold`,
    above which a row counts as saturated.
    """
    ax = _axes(ax, (6.5, 3.6))
    for label, x in row_max.items():
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(grad_norm[label], dtype=float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"{label!r}: {x.size} rows but {y.size} gradient norms.")
        ax.scatter(x, y, s=4, alpha=0.35, label=label)
    ax.set_yscale("log")
    ax.axvline(threshold, color="gray", linestyle=":", linewidth=1)
    return _label(ax, title, r"largest weight of the row, $\max_j \alpha_{nj}$", ylabel,
                  legend_size=8)

def accuracy_vs_distance(
    distances: Sequence[int],
    accuracy: Mapping[str, np.ndarray],
    *,
    chance: float,
    spread: Mapping[str, np.ndarray] | None = None,
    title: str = "Accuracy after training, against the distance",
    xlabel: str = "distance to the marked token (tokens)",
    ylabel: str = "test accuracy",
    ax: Axes | None = None,
) -> Figure:
    """One line per model (label -> accuracy per distance) on a log₂ distance axis, with the
    chance level as a labelled grey reference line (not a data series, not in the legend).

    spread: label -> (2, len(distances)), the min and max over seeds, drawn as a band. The y
    axis shows the whole range [0, 1.05]; the legend sits below the axes, off the data.
    """
    ax = _axes(ax, (6.0, 4.2))
    x = np.asarray(distances, dtype=float)
    for k, (label, y) in enumerate(accuracy.items()):
        # equal values (1.0 for two models) would hide a line: each later line is thinner,
        # with its own marker, so every series stays visible where they coincide
        (line,) = ax.plot(x, y, marker="osD^v"[k % 5], markersize=7 - 1.5 * (k % 3),
                          linewidth=3.5 - (k % 3), label=label)
        if spread is not None and label in spread:
            low, high = np.asarray(spread[label], dtype=float)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    reference = ax.axhline(chance, color="gray", linestyle=":", linewidth=1.2)
    reference.set_gid("chance")
    ax.annotate(f"chance ({chance:.3g})", xy=(0.0, chance), xycoords=("axes fraction", "data"),
                xytext=(4, 3), textcoords="offset points", ha="left", va="bottom",
                color="gray", fontsize=8)
    _distance_axis(ax, distances)
    ax.set_ylim(0, 1.05)
    fig = _label(ax, title, xlabel, ylabel, legend_size=8)
    _legend_below(ax, len(accuracy))
    return fig


def _distance_axis(ax: Axes, distances: Sequence[int]) -> None:
    """A log₂ x axis with a tick at each distance, labelled with the plain number."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(np.asarray(distances, dtype=float), [str(int(d)) for d in distances])


def _legend_below(ax: Axes, ncol: int) -> None:
    """The legend in a row below the axes, off the data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol,
              frameon=False)
    ax.figure.tight_layout()


def gradient_vs_distance(
    distances: Sequence[int],
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    *,
    title: str = "How much the far token moves the state read out",
    ylabel: str = r"$\|\partial r / \partial x_{far}\|$ (median over seeds)",
    ax: Axes | None = None,
) -> Figure:
    """Per model, a norm at the far token against the distance on log-log axes: `before`
    training (solid) and `after` training (dashed, same colour). Models missing from `after`
    get only the solid line. The legend sits below the axes."""
    ax = _axes(ax, (6.0, 4.4))
    x = np.asarray(distances, dtype=float)
    for label, y in before.items():
        (line,) = ax.plot(x, y, marker="o", markersize=4, label=f"{label}, before training")
        if label in after:
            ax.plot(x, after[label], marker="s", markersize=4, linestyle="--",
                    color=line.get_color(), label=f"{label}, after training")
    ax.set_yscale("log")
    _distance_axis(ax, distances)
    fig = _label(ax, title, "distance (tokens)", ylabel, legend_size=8)
    _legend_below(ax, 2)
    return fig


def heatmap_panels(
    matrices: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    xlabel: str,
    ylabel: str,
    colorbar_label: str = "",
    tick_every: int = 10,
    cmap: str = "RdBu_r",
) -> Figure:
    """Matrices of one shape (rows, cols) side by side as heatmaps on one colour scale.

    Panel p is `matrices[p]` (row r at the top, column c to the right) titled `titles[p]`. The
    scale is symmetric about 0 and reaches the largest |entry| of all panels, so one colour is
    one number in every panel; NaN entries (pairs left out) are left blank. Rows and columns are
    labelled with their index every `tick_every`. Raises ValueError when the shapes or the
    number of titles do not fit.
    """
    stack = np.asarray([np.asarray(M, dtype=float) for M in matrices])
    if stack.ndim != 3:
        raise ValueError(f"give matrices of one shape (rows, cols); got shape {stack.shape}.")
    if len(titles) != len(stack):
        raise ValueError(f"{len(stack)} panels but {len(titles)} titles.")
    reach = float(np.nanmax(np.abs(stack))) or 1.0
    fig = Figure(figsize=(4.2 * len(stack) + 1.0, 4.2), layout="constrained")
    axes = fig.subplots(1, len(stack), squeeze=False)[0]
    for ax, M, title in zip(axes, stack, titles, strict=True):
        image = ax.imshow(M, cmap=cmap, vmin=-reach, vmax=reach, interpolation="nearest")
        ax.set_xticks(np.arange(0, M.shape[1], tick_every))
        ax.set_yticks(np.arange(0, M.shape[0], tick_every))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    colorbar = fig.colorbar(image, ax=list(axes), shrink=0.85)
    colorbar.set_label(colorbar_label)
    return fig


def labelled_scatter(
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    yerr: np.ndarray | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One point per item at (x[k], y[k]), labelled labels[k] beside it (a head "0.2", say).

    x, y (and `yerr`, the half-width of a vertical error bar per point) are flattened and need
    one value per label. The y axis starts at 0 when every y - yerr is at least 0.
    """
    x = np.asarray(x, dtype=float).ravel()
    if x.shape != (len(labels),):
        raise ValueError(f"{x.size} x values for {len(labels)} labels: give one per label.")
    y = _one_per(x, np.ravel(y), "y", "values", ("label", "labels"))
    err = None if yerr is None else _one_per(x, np.ravel(yerr), "yerr", "values",
                                             ("label", "labels"))
    ax = _axes(ax, (5.5, 4.0))
    ax.errorbar(x, y, yerr=err, fmt="o", markersize=6, capsize=3, color="tab:blue")
    for xk, yk, label in zip(x, y, labels, strict=True):
        ax.annotate(label, (xk, yk), xytext=(6, 4), textcoords="offset points", fontsize=9)
    ax.margins(x=0.1)  # room for the labels of the points at the right edge
    if np.all(y - (0 if err is None else err) >= 0):
        ax.set_ylim(0, None)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return ax.figure


def median_band_plot(
    x: np.ndarray,
    runs: Mapping[str, np.ndarray],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Per series (label -> values of shape (len(x), draws), one column per draw), the median
    over the draws as a line and the range from the smallest to the largest draw as a band in
    the same colour; the legend says how many draws. With `logx`, x is on a log₂ axis with a
    tick at each x. Raises ValueError when a series does not have one row per x.
    """
    x = np.asarray(x, dtype=float)
    ax = _axes(ax, (5.5, 3.6))
    for label, values in runs.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[0] != x.size:
            raise ValueError(f"{label!r}: give one row per x ({x.size}) and one column per "
                             f"draw; got shape {values.shape}.")
        (line,) = ax.plot(x, np.median(values, axis=1), marker="o", markersize=4,
                          label=f"{label}: median of {values.shape[1]} draws, band = range")
        ax.fill_between(x, values.min(axis=1), values.max(axis=1), color=line.get_color(),
                        alpha=0.2, linewidth=0)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
    if logy:
        ax.set_yscale("log")
    return _label(ax, title, xlabel, ylabel, legend_size=8)
