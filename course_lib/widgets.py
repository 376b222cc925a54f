"""The lessons' interactive explorers, built on ipywidgets.

Each explorer is a small class: its controls are attributes (`explorer.word`, `explorer.d_k`,
...), and it draws into widgets it owns: `explorer.image` (an `ipywidgets.Image` holding the
PNG of a figure from `viz`) and `explorer.table` (an `ipywidgets.HTML` with the numbers).
Moving a control only updates those widgets' values, so nothing is printed into the notebook.
A cell that ends with the explorer displays `explorer.widget`; its plain-text form is a short,
stable description such as `QKVExplorer(word='it')`.

Setting a control from Python (`explorer.word.value = "cat"`) redraws exactly as a click does:
that is how the tests check the explorers without a browser.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from course_lib import attention, data, viz

__all__ = ["Explorer", "html_table", "QKVExplorer", "ScalingExplorer", "AttentionExplorer",
           "TrainingScrubber"]


def html_table(row_names: Sequence[str], col_names: Sequence[str], rows: Sequence[Sequence]) -> str:
    """An HTML table: a header of column names, then one named row of numbers per entry."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["", *col_names])
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
        + "".join(f"<td>{value:.2f}</td>" for value in row)
        + "</tr>"
        for name, row in zip(row_names, rows, strict=True)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class Explorer:
    """Shared plumbing: `widget` is what a cell displays; `_redraw` fills `image` and `table`."""

    widget: w.Widget
    image: w.Image
    table: w.HTML

    def _display_widgets(self, controls: Sequence[w.Widget]) -> None:
        self.image = w.Image(format="png")
        self.table = w.HTML()
        self.widget = w.VBox([w.HBox(list(controls)), self.image, self.table])
        for control in controls:
            control.observe(lambda _change: self._redraw(), names="value")
        self._redraw()

    def _show(self, fig: Figure, table_html: str) -> None:
        self.image.value = viz.to_png(fig)
        self.table.value = table_html

    def _redraw(self) -> None:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle


class QKVExplorer(Explorer):
    """Pick a word; see its embedding x (d_model,) and its q = x W_Q, k = x W_K, v = x W_V.

    Uses the course's embedding table and, unless given, its designed projections.
    State after each redraw: `self.vectors` = {"x": x, "q": q, "k": k, "v": v}, and
    `self.notes` = {name: text} for each of q, k, v that is all zeros: an empty panel says
    why it is empty (which rows of the projection are 0), written in the panel itself.
    """

    _PROJECTION = {"q": "W_Q", "k": "W_K", "v": "W_V"}
    _ROLE = {"q": "looks for", "k": "offers", "v": "passes on"}

    def __init__(
        self,
        word: str = "it",
        projections: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.W_Q, self.W_K, self.W_V = projections or data.designed_projections()
        self.word = w.Dropdown(options=data.vocabulary(), value=word, description="word")
        E = data.embedding_table()
        everything = np.concatenate([E, E @ self.W_Q, E @ self.W_K, E @ self.W_V], axis=1)
        self._ylim = (min(0.0, everything.min()) - 0.2, everything.max() + 0.2)
        self.vectors: dict[str, np.ndarray] = {}
        self.notes: dict[str, str] = {}
        self._display_widgets([self.word])

    def __repr__(self) -> str:
        return f"QKVExplorer(word={self.word.value!r})"

    def _zero_notes(self) -> dict[str, str]:
        """Why each all-zero q, k or v is zero: the word's embedding dimensions and their rows."""
        x, word = self.vectors["x"], self.word.value
        dims = [data.EMBEDDING_DIMS[r] for r in np.flatnonzero(x)]
        matrices = {"q": self.W_Q, "k": self.W_K, "v": self.W_V}
        notes = {}
        for name, W in matrices.items():
            if np.any(self.vectors[name]):
                continue
            W_name = f"${self._PROJECTION[name]}$"
            if not np.any(W[np.flatnonzero(x)]):
                why = f"the rows of {W_name} for\n{', '.join(dims)} are all 0"
            else:
                why = f"the rows of {W_name} for\n{', '.join(dims)} cancel out"
            role = self._ROLE[name]
            notes[name] = f"{name} = 0, not a fault:\n{why},\nso {word!r} {role}\nnothing"
        return notes

    def figure(self) -> Figure:
        """The figure the explorer shows for the current word: four panels of bars, x, q, k, v."""
        labels = {
            "x": data.EMBEDDING_DIMS,
            "q": data.QK_FEATURES,
            "k": data.QK_FEATURES,
            "v": data.VALUE_FEATURES,
        }
        titles = {
            "x": "embedding $x$",
            "q": "query $q = x\\,W_Q$\n(looks for)",
            "k": "key $k = x\\,W_K$\n(offers)",
            "v": "value $v = x\\,W_V$\n(passes on)",
        }
        fig = Figure(figsize=(11, 3.4), layout="constrained")
        axes = fig.subplots(1, 4, width_ratios=[7, 3, 3, 4], sharey=True)
        for ax, name in zip(axes, self.vectors, strict=True):
            viz.bars(
                self.vectors[name], labels[name], title=titles[name], xlabel="", ylim=self._ylim,
                ax=ax,
            )  # fmt: skip
            if name in self.notes:
                ax.text(0.5, 0.55, self.notes[name], transform=ax.transAxes, ha="center",
                        va="center", fontsize=8.5, color="dimgray")
        fig.suptitle(f"The word {self.word.value!r}: its embedding and its query, key, value")
        return fig

    def _redraw(self) -> None:
        x = data.embedding(self.word.value)
        self.vectors = {"x": x, "q": x @ self.W_Q, "k": x @ self.W_K, "v": x @ self.W_V}
        self.notes = self._zero_notes()
        rows = [
            html_table(["x"], data.EMBEDDING_DIMS, [x]),
            html_table(["q", "k"], data.QK_FEATURES, [self.vectors["q"], self.vectors["k"]]),
            html_table(["v"], data.VALUE_FEATURES, [self.vectors["v"]]),
        ]
        self._show(self.figure(), "".join(rows))


class ScalingExplorer(Explorer):
    """Choose d_k and whether to divide by √d_k; see the scores and one row of weights.

    Left: the histogram of q · k (or q · k / √d_k) over `n_pairs` random pairs whose components
    are independent standard normals. Right: the softmax weights of one query over `n_keys`
    random keys. The random numbers are drawn once (seeded), for the largest d_k; a smaller
    d_k uses their first d_k components. State: `self.scores` (n_pairs,), `self.weights`
    (n_keys,).
    """

    D_K_OPTIONS: tuple[int, ...] = tuple(2**p for p in range(1, 11))  # 2 .. 1024

    def __init__(
        self, d_k: int = 64, scaled: bool = True, n_pairs: int = 1000, n_keys: int = 10,
        seed: int = 0,
    ) -> None:  # fmt: skip
        rng = np.random.default_rng(seed)
        d_max = max(self.D_K_OPTIONS)
        self._q_pairs, self._k_pairs = rng.standard_normal((2, n_pairs, d_max))
        self._query = rng.standard_normal(d_max)
        self._keys = rng.standard_normal((n_keys, d_max))
        self.d_k = w.SelectionSlider(options=self.D_K_OPTIONS, value=d_k, description="d_k")
        self.scaled = w.Checkbox(value=scaled, description="divide by √d_k")
        self.scores = np.empty(n_pairs)
        self.weights = np.empty(n_keys)
        self._display_widgets([self.d_k, self.scaled])

    def __repr__(self) -> str:
        return f"ScalingExplorer(d_k={self.d_k.value}, scaled={self.scaled.value})"

    def _redraw(self) -> None:
        d_k, scaled = self.d_k.value, self.scaled.value
        divisor = math.sqrt(d_k) if scaled else 1.0
        self.scores = np.sum(self._q_pairs[:, :d_k] * self._k_pairs[:, :d_k], axis=1) / divisor
        row = self._keys[:, :d_k] @ self._query[:d_k] / divisor
        self.weights = attention.softmax(row)
        name = r"$q \cdot k / \sqrt{d_k}$" if scaled else r"$q \cdot k$ (not scaled)"
        fig = Figure(figsize=(10, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2)
        viz.score_histogram(self.scores, title=f"{name}, $d_k$ = {d_k}", xlabel="score", ax=left)
        keys = [f"key {j + 1}" for j in range(len(self.weights))]
        viz.weight_bars(self.weights, keys, title="softmax of one row of scores", ax=right)
        self._show(
            fig,
            f"<p>d_k = {d_k}, {'scaled' if scaled else 'not scaled'}: the scores' variance is "
            f"{self.scores.var():.2f}; the largest weight of the row is "
            f"{self.weights.max():.2f}.</p>",
        )


class AttentionExplorer(Explorer):
    """Pick a query token of a sentence; see its weights α_i over the sentence and its output.

    o_i = Σ_j α_ij v_j, computed with `course_lib.attention.self_attention` on the embedded
    sentence and the given (default: designed) projections. State: `self.weights_row` (n,)
    and `self.output` (d_v,).
    """

    def __init__(
        self,
        sentence: str = data.SENTENCES["pronoun"],
        query: int | None = None,
        projections: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        value_labels: Sequence[str] = data.VALUE_FEATURES,
    ) -> None:
        self.tokens = data.tokenize(sentence)
        W_Q, W_K, W_V = projections or data.designed_projections()
        self.O, self.all_weights = attention.self_attention(data.embed(sentence), W_Q, W_K, W_V)
        self.value_labels = list(value_labels)
        options = [(f"{i}: {token}", i) for i, token in enumerate(self.tokens)]
        if query is None:
            query = self.tokens.index("it") if "it" in self.tokens else 0
        self.query = w.Dropdown(options=options, value=query, description="query token")
        self._ylim = (min(0.0, self.O.min()) - 0.1, max(1.0, self.O.max()) + 0.1)
        self.weights_row = np.empty(len(self.tokens))
        self.output = np.empty(self.O.shape[1])
        self._display_widgets([self.query])

    def __repr__(self) -> str:
        i = self.query.value
        return f"AttentionExplorer(query={i}, token={self.tokens[i]!r})"

    def _redraw(self) -> None:
        i = self.query.value
        self.weights_row, self.output = self.all_weights[i], self.O[i]
        fig = Figure(figsize=(11, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[len(self.tokens), len(self.value_labels)])
        labels = [f"{j}: {token}" for j, token in enumerate(self.tokens)]
        viz.weight_bars(
            self.weights_row, labels, title=f"weights of query {i}: {self.tokens[i]!r}", ax=left
        )
        title = rf"its output $o_{{{i}}} = \sum_j \alpha_{{{i}j}} v_j$"
        viz.bars(
            self.output, self.value_labels, title=title, xlabel="value feature", ylim=self._ylim,
            ax=right,
        )  # fmt: skip
        self._show(
            fig,
            html_table([f"α_{i}j"], labels, [self.weights_row])
            + html_table([f"o_{i}"], self.value_labels, [self.output]),
        )


class TrainingScrubber(Explorer):
    """Scrub through the attention weights saved during training, one saved step at a time.

    Nothing is trained here: the slider only picks among `snapshots` (step -> the weights α
    of one fixed example, shape (n, n) or (1, n, n)), saved by the training loop. Left: α at
    that step as a heatmap, rows = query tokens (the last row is the one read out); right: the
    loss and held-out accuracy curves with the step marked. State: `self.weights` (n, n), the
    weights shown.
    """

    def __init__(
        self,
        snapshots: Mapping[int, np.ndarray],
        tokens: Sequence[str],
        loss: np.ndarray,
        eval_steps: np.ndarray,
        accuracy: np.ndarray,
        step: int | None = None,
    ) -> None:
        if not snapshots:
            raise ValueError("snapshots is empty: train with snapshot_steps=... to save some.")
        self.snapshots = {int(k): np.asarray(v).reshape(len(tokens), len(tokens))
                          for k, v in sorted(snapshots.items())}
        self.tokens = list(tokens)
        self.loss, self.eval_steps, self.accuracy = loss, eval_steps, accuracy
        steps = list(self.snapshots)
        self.step = w.SelectionSlider(options=steps, value=steps[0] if step is None else step,
                                      description="step")
        self.weights = np.empty((len(tokens), len(tokens)))
        self._display_widgets([self.step])

    def __repr__(self) -> str:
        return f"TrainingScrubber(step={self.step.value}, steps={len(self.snapshots)})"

    def _redraw(self) -> None:
        step = self.step.value
        self.weights = self.snapshots[step]
        fig = Figure(figsize=(13, 3.8), layout="constrained")
        heat, loss_ax, accuracy_ax = fig.subplots(1, 3, width_ratios=[1.2, 1, 1])
        viz.attention_heatmap(self.weights, self.tokens, title=f"weights α at step {step}",
                              annotate=False, ax=heat)
        viz.training_curves({"loss": self.loss}, self.eval_steps, {"accuracy": self.accuracy},
                            step=step, axes=(loss_ax, accuracy_ax))
        last = len(self.tokens) - 1
        self._show(fig, f"<p>step {step}: the last token's weights</p>"
                   + html_table([f"α_{last}j"], self.tokens, [self.weights[last]]))
