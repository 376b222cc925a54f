"""Lesson 12's explorer of a trained GPT's heads: every layer x head, and where each token looks.

`HeadExplorer(weights, tokens)` takes the attention weights α of one text (one array per layer,
(n_heads, T, T), from `gpt.gpt_attention_weights`) and the text's tokens as strings. Its controls
pick a layer, a head and a query token; it shows:

- `explorer.image`: that head's weights as a heatmap (rows = query tokens i, columns = keys j),
  the chosen query's row framed;
- `explorer.table`: the text itself, each character shaded by how much the chosen query puts
  on it, and **hovering a character with the mouse shades the text by where that character
  looks** instead (pure CSS, the `:has()` selector: no JavaScript, no network, works in any
  current browser); below it, the query's five largest weights as numbers.

State after each redraw, for the tests and for a reader in Python: `self.weights` (T, T) of the
chosen head, `self.row` (T,) the query's weights, `self.top` [(j, token, α_ij), ...] largest first.
`head_grid` draws every head of every layer at once (a static figure for the committed notebook,
which shows no live widget). Presentation layer: built on `widgets` (the explorers' plumbing) and
matplotlib; computes nothing about the model.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib.widgets import Explorer, html_table

__all__ = ["display_token", "hover_text_html", "head_grid", "HeadExplorer"]

_COLOUR = "33, 113, 181"  # a blue of matplotlib's "Blues", as "r, g, b"
_ids = itertools.count()


def display_token(token: str) -> str:
    """A character as a label a reader can see: a space as "␣", a newline as "↵", a tab as "⇥"."""
    return {" ": "␣", "\n": "↵", "\t": "⇥"}.get(token, token)


def _check_weights(weights: Sequence[np.ndarray], n_tokens: int) -> list[np.ndarray]:
    """The layers' weights as float arrays (n_heads, T, T) with T = n_tokens, or ValueError."""
    checked = [np.asarray(layer, dtype=float) for layer in weights]
    if not checked:
        raise ValueError("weights is empty: give one (n_heads, T, T) array per layer.")
    for l, layer in enumerate(checked):
        if layer.ndim != 3 or layer.shape[1:] != (n_tokens, n_tokens):
            raise ValueError(f"weights of layer {l} has shape {layer.shape}; expected "
                             f"(n_heads, {n_tokens}, {n_tokens}) for {n_tokens} tokens.")
    return checked


def hover_text_html(tokens: Sequence[str], weights: np.ndarray, query: int, *,
                    uid: str = "hx", threshold: float = 0.01) -> str:
    """The text as HTML, shaded by attention, with hover: one head's weights (T, T).

    Each token is a span of classes q{i} (as a query) and k{i} (as a key). CSS rules shade key
    j by α_ij while token i is hovered (`#uid:has(.q{i}:hover) .k{j}`), and by α_{query, j}
    while nothing is hovered; weights of 0 or below `threshold` are left unshaded (fewer rules). The
    query's own token is underlined. `uid` names the block, so that several can share a page.
    """
    weights = np.asarray(weights, dtype=float)
    n = len(tokens)
    if weights.shape != (n, n):
        raise ValueError(f"weights has shape {weights.shape}; expected ({n}, {n}).")
    if not 0 <= query < n:
        raise ValueError(f"query must be a position 0 .. {n - 1}; got {query}.")
    root = f"#{uid}"
    rules = [
        f"{root} .tok{{white-space:pre;font-family:monospace;font-size:15px;padding:1px 0;"
        f"border-radius:2px;cursor:default}}",
        f"{root} .tok:hover{{outline:2px solid rgb(230,85,13)}}",
        f"{root}:not(:has(.tok:hover)) .q{query}{{text-decoration:underline 2px}}",
    ]
    for (i, j), alpha in np.ndenumerate(weights):
        if alpha <= 0 or alpha < threshold:
            continue
        shade = f"background:rgba({_COLOUR},{alpha:.2f})"
        rules.append(f"{root}:has(.q{i}:hover) .k{j}{{{shade}}}")
        if i == query:
            rules.append(f"{root}:not(:has(.tok:hover)) .k{j}{{{shade}}}")
    spans = []
    for i, token in enumerate(tokens):
        shown = html.escape(display_token(token) if token in " \t" else token.replace("\n", "↵"))
        span = f"<span class='tok q{i} k{i}' title='{i}: {html.escape(repr(token))}'>{shown}</span>"
        spans.append(span + ("<br>" if token == "\n" else ""))
    legend = ("<p style='margin:4px 0'>Shaded: where the chosen query token looks. "
              "Hover a character to see where <i>it</i> looks.</p>")
    return (f"<style>{''.join(rules)}</style><div id='{uid}'>{legend}"
            f"<div style='line-height:1.9'>{''.join(spans)}</div></div>")


def head_grid(weights: Sequence[np.ndarray], tokens: Sequence[str], *,
              title: str = "") -> Figure:
    """Every head's weights on one text: a grid of heatmaps, a row per layer, a column per head.

    weights: one (n_heads, T, T) array per layer; tokens: T strings. Panel (l, h) is α of head h
    of layer l (rows = query tokens, columns = keys), colours 0 to 1, one shared colour bar.
    """
    labels = [display_token(t) for t in tokens]
    layers = _check_weights(weights, len(labels))
    n_layers, n_heads = len(layers), layers[0].shape[0]
    fig = Figure(figsize=(2.6 * n_heads + 1.0, 2.6 * n_layers + 0.6), layout="constrained")
    axes = fig.subplots(n_layers, n_heads, squeeze=False)
    for (l, h), ax in np.ndenumerate(axes):
        image = ax.imshow(layers[l][h], cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(labels)), labels=labels, fontsize=5, family="monospace")
        ax.set_yticks(range(len(labels)), labels=labels if h == 0 else [], fontsize=5,
                      family="monospace")
        ax.tick_params(length=0)
        ax.set_title(f"layer {l}, head {h}", fontsize=9)
    colorbar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    colorbar.set_label(r"weight $\alpha_{ij}$")
    if title:
        fig.suptitle(title)
    return fig


class HeadExplorer(Explorer):
    """Pick a layer, a head and a query token of a text; see where the trained head looks.

    weights: one (n_heads, T, T) array per layer (`gpt.gpt_attention_weights` on one text);
    tokens: the text's T tokens as strings. query defaults to the last token. State:
    `self.weights` (T, T), `self.row` (T,), `self.top` (the five largest α of the row).
    """

    def __init__(self, weights: Sequence[np.ndarray], tokens: Sequence[str], *, layer: int = 0,
                 head: int = 0, query: int | None = None) -> None:
        self.tokens = list(tokens)
        self.layers = _check_weights(weights, len(self.tokens))
        n = len(self.tokens)
        self.uid = f"head-explorer-{next(_ids)}"
        self.layer = w.Dropdown(options=[(f"layer {l}", l) for l in range(len(self.layers))],
                                value=layer, description="layer")
        self.head = w.Dropdown(options=[(f"head {h}", h) for h in range(self.layers[0].shape[0])],
                               value=head, description="head")
        self.query = w.IntSlider(value=n - 1 if query is None else query, min=0, max=n - 1,
                                 description="query i")
        self.weights = np.empty((n, n))
        self.row = np.empty(n)
        self.top: list[tuple[int, str, float]] = []
        self._display_widgets([self.layer, self.head, self.query])

    def __repr__(self) -> str:
        i = self.query.value
        return (f"HeadExplorer(layer={self.layer.value}, head={self.head.value}, query={i}, "
                f"token={self.tokens[i]!r})")

    def figure(self) -> Figure:
        """The chosen head's weights as a heatmap, the query's row framed."""
        l, h, i = self.layer.value, self.head.value, self.query.value
        labels = [display_token(t) for t in self.tokens]
        fig = Figure(figsize=(7.5, 6.4), layout="constrained")
        ax = fig.subplots()
        image = ax.imshow(self.weights, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(labels)), labels=labels, fontsize=6, family="monospace")
        ax.set_yticks(range(len(labels)), labels=labels, fontsize=6, family="monospace")
        ax.tick_params(length=0)
        ax.add_patch(Rectangle((-0.5, i - 0.5), len(labels), 1, fill=False, edgecolor="C1",
                               linewidth=1.5))
        ax.set_xlabel("key token j (attended to)")
        ax.set_ylabel("query token i (attending)")
        ax.set_title(f"layer {l}, head {h}: weights α; query i = {i} ({labels[i]!r}) framed")
        fig.colorbar(image, ax=ax, shrink=0.8).set_label(r"weight $\alpha_{ij}$")
        return fig

    def _redraw(self) -> None:
        i = self.query.value
        self.weights = self.layers[self.layer.value][self.head.value]
        self.row = self.weights[i]
        order = np.argsort(-self.row, kind="stable")[:5]
        self.top = [(int(j), self.tokens[j], float(self.row[j])) for j in order]
        names = [f"{j}: {display_token(t)!r}" for j, t, _ in self.top]
        self._show(self.figure(),
                   hover_text_html(self.tokens, self.weights, i, uid=self.uid)
                   + f"<p>The five largest weights of query {i}:</p>"
                   + html_table([f"α_{i}j"], names, [[a for _, _, a in self.top]]))
