"""Lesson 13's figures and scrubber of cross-attention maps: where the decoder looks in the source.

A cross-attention map of one sentence pair is a rectangle α (T, n_src): row t is the target
token the decoder predicts at position t (the characters of "YYYY-MM-DD", then EOS), column j
is source word j, and each row sums to 1 over the source words. The task's alignment rule
(`translation_task.Example.aligned`) names the words each character comes from; the figures
frame those cells, so a reader sees at once whether the weight sits where the rule says.

- `alignment_map(weights, example)`: one map as a heatmap, the rule's cells framed;
- `alignment_steps(snapshots, steps, example, ...)`: the map of one head at a few evaluations
  of training side by side (a static figure for the committed notebook);
- `example_share(weights, example)`: the share of the weight on the rule's words, this one
  example's version of `seq2seq_training.alignment_share` (mean over the rows the rule names
  words for of Σ_j α_tj over those words);
- `AlignmentScrubber`: a slider over the evaluations saved during training and a choice of
  head; it shows the map at that step, the greedy translation the model wrote then, and every
  head's alignment share over training with the step marked.

Presentation layer: numpy, matplotlib and the explorers' plumbing of `widgets`; it draws what
training recorded (`seq2seq_training.Seq2SeqRun`'s snapshots, outputs and alignment) and
computes nothing about the model.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib.translation_task import Example
from course_lib.widgets import Explorer, html_table

__all__ = ["target_labels", "rule_mask", "example_share", "alignment_map", "alignment_steps",
           "AlignmentScrubber"]


def target_labels(example: Example) -> list[str]:
    """The labels of a map's rows: the target's characters, then "EOS" (T = len(target) + 1)."""
    return [*example.target, "EOS"]


def rule_mask(example: Example, n_src: int | None = None) -> np.ndarray:
    """The alignment rule as a boolean (T, n_src) array: True where target token t comes from
    source word j (rows of "-" and EOS all False). n_src defaults to the source's length; a
    longer n_src (a padded batch) leaves the extra columns False."""
    n_src = len(example.source) if n_src is None else n_src
    mask = np.zeros((len(example.target) + 1, n_src), dtype=bool)
    for t, positions in enumerate(example.aligned):
        mask[t, list(positions)] = True
    return mask


def _check_map(weights: np.ndarray, example: Example) -> np.ndarray:
    """weights as a float (T, n_src) array for this example, or ValueError."""
    weights = np.asarray(weights, dtype=float)
    expected = (len(example.target) + 1, len(example.source))
    if weights.shape != expected:
        raise ValueError(f"weights has shape {weights.shape}; expected {expected}: one row per "
                         "target token (with EOS), one column per source word.")
    return weights


def example_share(weights: np.ndarray, example: Example) -> float:
    """The share of a map's weight on the words the rule names: the mean over the rows t the
    rule names words for of Σ_j α_tj over those words j. 1: it looks only where the rule says;
    even attention over the n_src words scores the mean of (words named) / n_src."""
    weights = _check_map(weights, example)
    rule = rule_mask(example)
    measured = rule.any(axis=1)
    return float((weights * rule).sum(axis=1)[measured].mean())


def alignment_map(weights: np.ndarray, example: Example, *, title: str = "",
                  ax: Axes | None = None, colorbar: bool = True) -> Figure:
    """One cross-attention map (T, n_src) of `example` as a heatmap: rows = target tokens the
    decoder predicts, columns = source words, colours 0 to 1, the rule's cells framed."""
    weights = _check_map(weights, example)
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.6 * weights.shape[1], 4.2), layout="constrained")
        ax = fig.subplots()
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(example.source)), labels=list(example.source), rotation=60,
                  ha="right", fontsize=8)
    ax.set_yticks(range(weights.shape[0]), labels=target_labels(example), fontsize=8,
                  family="monospace")
    ax.tick_params(length=0)
    for t, j in zip(*np.nonzero(rule_mask(example)), strict=True):
        ax.add_patch(Rectangle((j - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="C1",
                               linewidth=1.5))
    ax.set_xlabel("source word j (key)")
    ax.set_ylabel("target token t (query)")
    if title:
        ax.set_title(title, fontsize=9)
    figure = ax.get_figure()
    if colorbar:
        figure.colorbar(image, ax=ax, shrink=0.8).set_label(r"weight $\alpha_{tj}$")
    return figure


def alignment_steps(snapshots: np.ndarray, steps: Sequence[int], example: Example, *,
                    show: Sequence[int], layer: int = 0, head: int = 0,
                    outputs: Sequence[str] | None = None, title: str = "") -> Figure:
    """One head's map at a few evaluations side by side.

    snapshots: (n_evals, n_layers, n_heads, T, n_src), the maps recorded during training;
    steps: the step of each evaluation; show: the indices of the evaluations to draw; outputs:
    the greedy translation at each evaluation, written in the panel's title when given.
    """
    snapshots = np.asarray(snapshots, dtype=float)
    if snapshots.ndim != 5 or len(snapshots) != len(steps):
        raise ValueError(f"snapshots has shape {snapshots.shape}; expected (n_evals, n_layers, "
                         f"n_heads, T, n_src) with n_evals = len(steps) = {len(steps)}.")
    fig = Figure(figsize=(3.3 * len(show) + 0.8, 4.4), layout="constrained")
    axes = fig.subplots(1, len(show), squeeze=False)[0]
    for k, (ax, i) in enumerate(zip(axes, show, strict=True)):
        written = "" if outputs is None else f"\nwrites {outputs[i]!r}"
        alignment_map(snapshots[i, layer, head], example, ax=ax,
                      title=f"step {steps[i]}{written}", colorbar=k == len(show) - 1)
        if k:
            ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    return fig


class AlignmentScrubber(Explorer):
    """Scrub through the cross-attention maps saved during training, one evaluation at a time.

    Nothing is trained here: the slider picks among the recorded evaluations. snapshots
    (n_evals, n_layers, n_heads, T, n_src) and outputs (n_evals strings) are the maps and the
    greedy translations of `example` at each step of `steps`; alignment (n_evals, n_layers,
    n_heads) is every head's share measured on held-out examples, chance its even-attention
    level. Left: the chosen head's map with the rule's cells framed; right: the share of every
    head against the step, the chosen head bold, the step marked. State after each redraw:
    `self.weights` (T, n_src), `self.output` (the translation at that step), `self.share`
    (`example_share` of the map shown).
    """

    def __init__(self, snapshots: np.ndarray, steps: Sequence[int], example: Example,
                 outputs: Sequence[str], alignment: np.ndarray, chance: float, *,
                 layer: int = 0, head: int | None = None, step: int | None = None) -> None:
        self.snapshots = np.asarray(snapshots, dtype=float)
        self.steps = [int(s) for s in steps]
        self.alignment = np.asarray(alignment, dtype=float)
        n_evals = len(self.steps)
        if (self.snapshots.ndim != 5 or len(self.snapshots) != n_evals
                or len(outputs) != n_evals or self.alignment.shape != self.snapshots.shape[:3]):
            raise ValueError(
                f"snapshots {self.snapshots.shape}, outputs ({len(outputs)}), alignment "
                f"{self.alignment.shape} and steps ({n_evals}) must describe the same "
                "evaluations: (n_evals, n_layers, n_heads, T, n_src), n_evals, (n_evals, "
                "n_layers, n_heads).")
        _check_map(self.snapshots[0, 0, 0], example)
        self.example, self.outputs, self.chance, self.layer = example, list(outputs), chance, layer
        best = int(np.argmax(self.alignment[-1, layer])) if head is None else head
        self.step = w.SelectionSlider(options=self.steps,
                                      value=self.steps[0] if step is None else step,
                                      description="step")
        self.head = w.Dropdown(options=[(f"head {h}", h)
                                        for h in range(self.snapshots.shape[2])],
                               value=best, description="head")
        self.weights = np.empty(self.snapshots.shape[3:])
        self.output, self.share = "", 0.0
        self._display_widgets([self.step, self.head])

    def __repr__(self) -> str:
        return (f"AlignmentScrubber(step={self.step.value}, head={self.head.value}, "
                f"evaluations={len(self.steps)})")

    def figure(self) -> Figure:
        """The map at the chosen step and head, and the heads' shares over training."""
        i, h = self.steps.index(self.step.value), self.head.value
        fig = Figure(figsize=(12, 4.4), layout="constrained")
        heat, curve = fig.subplots(1, 2, width_ratios=[1, 1.2])
        alignment_map(self.weights, self.example, ax=heat,
                      title=f"step {self.step.value}, head {h}: writes {self.output!r}")
        for other in range(self.alignment.shape[2]):
            curve.plot(self.steps, self.alignment[:, self.layer, other],
                       linewidth=2.5 if other == h else 1.0, label=f"head {other}")
        curve.axhline(self.chance, color="grey", linestyle=":", label="even attention")
        curve.axvline(self.step.value, color="C3", linewidth=1)
        curve.plot([self.step.value], [self.alignment[i, self.layer, h]], "o", color="C3")
        curve.set_ylim(0, 1)
        curve.set_xlabel("training step")
        curve.set_ylabel("alignment share (held-out examples)")
        curve.set_title("weight on the words the rule names")
        curve.legend(fontsize=8, loc="lower right")
        return fig

    def _redraw(self) -> None:
        i, h = self.steps.index(self.step.value), self.head.value
        self.weights = self.snapshots[i, self.layer, h]
        self.output = self.outputs[i]
        self.share = example_share(self.weights, self.example)
        heads = [f"head {k}" for k in range(self.alignment.shape[2])]
        self._show(self.figure(),
                   f"<p>step {self.step.value}: the model writes "
                   f"<code>{html.escape(self.output)}</code> for "
                   f"<i>{' '.join(self.example.source)}</i> (target "
                   f"<code>{self.example.target}</code>); head {h}'s share on this example: "
                   f"{self.share:.2f}</p>"
                   + html_table(["share (held-out)"], heads, [self.alignment[i, self.layer]]))
