"""Schematic diagrams of the mechanism, with every matrix's shape in the course's notation.

Each function draws one diagram and returns a `DiagramFigure`: a matplotlib Figure that also
carries its alt text, a description in words of what the diagram shows, with the same shapes.
In a notebook the alt text is the figure's text (`text/plain`, which nbval compares, since it
does not compare images) and the `alt` of its PNG (output metadata, which nbconvert's classic
HTML template writes into the `<img>` tag).

A matrix is drawn as a box whose sides grow with its sizes (to scale, within limits), its name
above it and its shape below it. As in `course_lib.viz`, the figure's data is what is drawn on
it: each box's name and shape are text artists with the gids `name:k` and `shape:k` (k is the
box's place in the order the data flows), so tests read the diagram from the figure itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = [
    "DiagramFigure",
    "attention_pipeline_diagram",
    "multi_head_diagram",
    "transformer_block_diagram",
]

FONT = 9.0  # points, the names of the boxes
SMALL = 8.0  # points, shapes, notes and arrow labels
CHAR = 0.55 / 72  # inches per point of font size: the width of an average DejaVu Sans character
LINE = 1.25 / 72  # inches per point of font size: the height of a line of text
UNIT = 0.09  # inches per row or column of a matrix ...
SIDE = (0.30, 1.20)  # ... within these limits (inches): to scale for small sizes, scale-ish beyond
NOMINAL = {"n": 6, "d_model": 8, "d_k": 4, "d_v": 4, "d_head": 4, "n_heads": 2}  # sizes drawn
# when none are given: the shapes are then written in symbols only
COLORS = {"input": "#d9d9d9", "weight": "#f2f2f2", "qkv": "#c6dbef", "score": "#fdd0a2",
          "weights": "#fdae6b", "output": "#c7e9c0"}
HEAD_COLORS = ["#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fc9272", "#d9d9d9", "#fdd49e",
               "#c7e9c0"]


class DiagramFigure(Figure):
    """A matplotlib Figure with alt text: `alt_text` describes the diagram in words.

    In IPython it shows as its PNG (drawn by the inline backend, as every figure of the course)
    with the alt text as its `text/plain` and as the PNG's `alt` metadata.
    """

    alt_text: str = ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """The alt text as text/plain and as the PNG's alt (the inline backend adds the PNG)."""
        return {"text/plain": self.alt_text}, {"image/png": {"alt": self.alt_text}}


@dataclass(frozen=True)
class _Matrix:
    """A matrix to draw: its name, its shape in symbols and its sizes (None where unknown)."""

    name: str
    dims: tuple[str, ...]
    sizes: Mapping[str, int | None]
    color: str
    note: str = ""

    def shape(self, *, lines: bool = False) -> str:
        """"(n, d_k) = (5, 4)", or "(n, d_k)" without sizes; on two lines with `lines`."""
        symbols = f"({', '.join(self.dims)})"
        values = [self.sizes.get(d) for d in self.dims]
        if any(v is None for v in values):
            return symbols
        return f"{symbols}{chr(10) if lines else ' '}= ({', '.join(str(v) for v in values)})"

    def side(self, axis: int) -> float:
        """The box's height (axis 0: the rows) or width (axis 1: the columns), in inches."""
        dim = self.dims[-2:][axis]
        size = self.sizes.get(dim)
        size = NOMINAL.get(dim, 4) if size is None else size
        return min(max(UNIT * size, SIDE[0]), SIDE[1])

    def described(self) -> str:
        """Its name and shape for the alt text: "Q = X W_Q, shape (n, d_k) = (5, 4)"."""
        return f"{self.name}, shape {self.shape()}"


def _width(text: str, points: float) -> float:
    """The estimated width in inches of the longest line of `text` at `points`."""
    return max(len(line) for line in text.split("\n")) * points * CHAR


def _height(text: str, points: float) -> float:
    """The height in inches of `text`'s lines at `points`."""
    return (text.count("\n") + 1) * points * LINE


def _canvas(width: float, height: float) -> tuple[DiagramFigure, Axes]:
    """A figure of width × height inches whose axes fill it, one data unit per inch, no axis."""
    fig = DiagramFigure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


class _Drawing:
    """Draws boxes and arrows on an axes measured in inches; numbers each box in flow order."""

    def __init__(self, ax: Axes) -> None:
        self.ax = ax
        self.count = 0

    def matrix(self, m: _Matrix, x: float, y: float, *, height: float | None = None,
               blocks: int = 0, label: bool = True) -> tuple[float, float, float, float]:
        """Draws m as a box centred at (x, y) (with `blocks` coloured column blocks, one per
        head); with `label`, its name above and shape (and note) below. Returns the box's
        (left, right, bottom, top)."""
        w, h = m.side(1), m.side(0) if height is None else height
        left, bottom = x - w / 2, y - h / 2
        if blocks:
            for b in range(blocks):
                self.ax.add_patch(Rectangle((left + b * w / blocks, bottom), w / blocks, h,
                                            facecolor=HEAD_COLORS[b % len(HEAD_COLORS)],
                                            edgecolor="none"))
                if w / blocks > 0.12:
                    self.ax.text(left + (b + 0.5) * w / blocks, y, str(b), ha="center",
                                 va="center", fontsize=7, color="0.25")
        self.ax.add_patch(Rectangle((left, bottom), w, h, facecolor="none" if blocks else m.color,
                                    edgecolor="0.25", linewidth=1.0,
                                    gid=f"box:{self.count}" if label else None))
        if label:
            self.label(m, x, y + h / 2, y - h / 2)
        return left, left + w, bottom, bottom + h

    def label(self, m: _Matrix, x: float, top: float, bottom: float) -> None:
        """m's name above `top`, its shape (and note) below `bottom`, all centred on x."""
        k = self.count
        self.count += 1
        self.ax.text(x, top + 0.06, m.name, ha="center", va="bottom", fontsize=FONT,
                     gid=f"name:{k}")
        shape = m.shape(lines=True)
        self.ax.text(x, bottom - 0.06, shape, ha="center", va="top", fontsize=SMALL,
                     gid=f"shape:{k}")
        if m.note:
            self.ax.text(x, bottom - 0.10 - _height(shape, SMALL), m.note, ha="center",
                         va="top", fontsize=SMALL, style="italic", color="0.3", gid=f"note:{k}")

    def arrow(self, start: tuple[float, float], end: tuple[float, float], label: str = "",
              *, above: bool = True, width: float = 1.1, label_x: float | None = None,
              zorder: float = 2) -> None:
        """An arrow from start to end, with `label` above (or below) its middle (or label_x);
        drawn under the boxes (zorder 3) unless told otherwise."""
        self.ax.annotate("", xy=end, xytext=start, zorder=zorder,
                         arrowprops={"arrowstyle": "-|>", "color": "0.3", "linewidth": width,
                                     "shrinkA": 2, "shrinkB": 2}, annotation_clip=False)
        if label:
            mid = ((start[0] + end[0]) / 2 if label_x is None else label_x,
                   (start[1] + end[1]) / 2 + (0.07 if above else -0.07))
            self.ax.text(*mid, label, ha="center", va="bottom" if above else "top",
                         fontsize=SMALL, color="0.2", gid="arrow-label")


def _below(m: _Matrix, box_h: float | None = None) -> float:
    """How far a labelled box's shape and note reach below its centre (inches)."""
    h = m.side(0) if box_h is None else box_h
    return h / 2 + 0.06 + _height(m.shape(lines=True), SMALL) + (
        0.04 + _height(m.note, SMALL) if m.note else 0.0)


def _above(m: _Matrix, box_h: float | None = None) -> float:
    """How far a labelled box's name reaches above its centre (inches)."""
    return (m.side(0) if box_h is None else box_h) / 2 + 0.06 + _height(m.name, FONT)


def _footprint(m: _Matrix) -> float:
    """The width a labelled box needs: its box, its name or its shape, whichever is widest."""
    return max(m.side(1), _width(m.name, FONT), _width(m.shape(lines=True), SMALL),
               _width(m.note, SMALL) if m.note else 0.0)


def _columns(widths: Sequence[float], gaps: Sequence[float], margin: float = 0.25
             ) -> tuple[list[float], float]:
    """Centres of columns of the given widths, `gaps[i]` inches between column i and i + 1;
    and the total width with a margin on both sides."""
    centres, x = [], margin
    for i, w in enumerate(widths):
        centres.append(x + w / 2)
        x += w + (gaps[i] if i < len(gaps) else 0.0)
    return centres, x + margin


def _sizes_text(sizes: Mapping[str, int | None]) -> str:
    """"n = 5, d_model = 8" for the sizes given, "" when none is."""
    return ", ".join(f"{k} = {v}" for k, v in sizes.items() if v is not None)


def _sentence(parts: Iterable[str]) -> str:
    """The parts joined into one sentence, spaces normalised."""
    return re.sub(r"\s+", " ", " ".join(parts)).strip()


def attention_pipeline_diagram(n: int | None = None, d_model: int | None = None,
                               d_k: int | None = None, d_v: int | None = None) -> DiagramFigure:
    """Self-attention step by step, every matrix a box with its shape.

    X (n, d_model) times W_Q, W_K (d_model, d_k) and W_V (d_model, d_v) gives Q, K (n, d_k) and
    V (n, d_v); the scores A = Q Kᵀ (n, n); the scaled scores Ã = A / √d_k (n, n); the weights
    α = softmax of each row of Ã (n, n), each row summing to 1; the output O = α V (n, d_v).
    Sizes that are given are written after the symbols ("(n, d_k) = (5, 4)") and set the boxes'
    sides; without them the shapes are in symbols only.
    """
    sizes = {"n": n, "d_model": d_model, "d_k": d_k, "d_v": d_v}

    def matrix(name: str, dims: tuple[str, str], color: str, note: str = "") -> _Matrix:
        return _Matrix(name, dims, sizes, COLORS[color], note)

    X = matrix("X", ("n", "d_model"), "input")
    W = [matrix("W_Q", ("d_model", "d_k"), "weight"), matrix("W_K", ("d_model", "d_k"), "weight"),
         matrix("W_V", ("d_model", "d_v"), "weight")]
    QKV = [matrix("Q = X W_Q", ("n", "d_k"), "qkv"), matrix("K = X W_K", ("n", "d_k"), "qkv"),
           matrix("V = X W_V", ("n", "d_v"), "qkv")]
    A = matrix("A = Q Kᵀ", ("n", "n"), "score", "(n, d_k) · (d_k, n)")
    A_scaled = matrix("Ã = A / √d_k", ("n", "n"), "score")
    alpha = matrix("α = softmax(Ã)", ("n", "n"), "weights", "row-wise: each row sums to 1")
    O = matrix("O = α V", ("n", "d_v"), "output", "(n, n) · (n, d_v)")
    columns = [[X], W, QKV, [A], [A_scaled], [alpha], [O]]

    widths = [max(_footprint(m) for m in column) for column in columns]
    centres, width = _columns(widths, [0.45] * (len(columns) - 1))
    pitch = max(_below(upper) + _above(lower) for upper, lower in
                [(W[0], W[1]), (QKV[0], QKV[1]), (W[1], W[2]), (QKV[1], QKV[2])]) + 0.25
    bottom = 0.15 + max(_below(m) for m in (W[2], QKV[2], O))
    rows = [bottom + 2 * pitch, bottom + pitch, bottom]  # y of Q, K, V
    height = rows[0] + max(_above(m) for m in (W[0], QKV[0])) + 0.15
    fig, ax = _canvas(width, height)
    draw = _Drawing(ax)

    y_scores = (rows[0] + rows[1]) / 2
    x_box = draw.matrix(X, centres[0], rows[1])
    boxes_w = [draw.matrix(w, centres[1], y) for w, y in zip(W, rows, strict=True)]
    boxes_qkv = [draw.matrix(m, centres[2], y) for m, y in zip(QKV, rows, strict=True)]
    boxes_scores = [draw.matrix(m, centres[c], y_scores)
                    for c, m in zip((3, 4, 5), (A, A_scaled, alpha), strict=True)]
    box_o = draw.matrix(O, centres[6], rows[2])

    fan = centres[0] + widths[0] / 2 + 0.15  # X fans out to the three projections here
    ax.plot([x_box[1], fan], [rows[1], rows[1]], color="0.3", linewidth=1.1)
    ax.plot([fan, fan], [rows[2], rows[0]], color="0.3", linewidth=1.1)
    for box_w, y in zip(boxes_w, rows, strict=True):
        draw.arrow((fan, y), (box_w[0], y))
    for box_w, box_qkv, y in zip(boxes_w, boxes_qkv, rows, strict=True):
        draw.arrow((box_w[1], y), (box_qkv[0], y))
    for box_qk, y in zip(boxes_qkv[:2], rows[:2], strict=True):
        draw.arrow((box_qk[1], y), (boxes_scores[0][0], y_scores))
    for before, after in zip(boxes_scores, boxes_scores[1:], strict=False):
        draw.arrow((before[1], y_scores), (after[0], y_scores))
    elbow = centres[5] + widths[5] / 2 + 0.2  # α's weights turn down here, clear of its labels
    y_in = rows[2] + min(0.15, (box_o[3] - box_o[2]) / 4)
    ax.plot([boxes_scores[2][1], elbow, elbow], [y_scores, y_scores, y_in], color="0.3",
            linewidth=1.1)
    draw.arrow((elbow, y_in), (box_o[0], y_in))
    draw.arrow((boxes_qkv[2][1], 2 * rows[2] - y_in), (box_o[0], 2 * rows[2] - y_in))

    given = _sizes_text(sizes)
    fig.alt_text = _sentence([
        "Diagram of self-attention, step by step" + (f", for {given}" if given else "") + ":",
        f"the input {X.described()}, is multiplied by {W[0].described()}, {W[1].described()}",
        f"and {W[2].described()}, giving the queries {QKV[0].described()}, the keys",
        f"{QKV[1].described()}, and the values {QKV[2].described()}.",
        f"Queries times transposed keys give the scores {A.described()};",
        f"divided by the square root of d_k, the scaled scores {A_scaled.described()};",
        f"the softmax of each row gives the weights {alpha.described()}, each row summing to 1;",
        f"the weights times the values give the output {O.described()}.",
    ])
    return fig


def multi_head_diagram(n: int | None = None, d_model: int | None = None,
                       n_heads: int = 2) -> DiagramFigure:
    """Multi-head attention's reshapes: the split into heads, attention per head, the
    concatenation and W_O, with the shape after each step.

    Q = X W_Q (n, d_model), its columns in n_heads blocks of d_head = d_model / n_heads (one per
    head, in order), is reshaped to (n, n_heads, d_head) and transposed to (n_heads, n, d_head)
    (K and V the same way); each head h computes α_h = softmax(Q_h K_hᵀ / √d_head)
    (n_heads, n, n) and α_h V_h (n_heads, n, d_head); transposed back to (n, n_heads, d_head)
    and reshaped, the heads sit side by side in head order, (n, d_model); times W_O
    (d_model, d_model) they give O (n, d_model). Raises ValueError when n_heads does not divide
    d_model.
    """
    if n_heads < 1 or (d_model is not None and d_model % n_heads):
        raise ValueError(f"n_heads = {n_heads} must be a positive divisor of d_model = {d_model}: "
                         "every head gets d_model / n_heads columns.")
    d_head = None if d_model is None else d_model // n_heads
    sizes = {"n": n, "d_model": d_model, "n_heads": n_heads, "d_head": d_head}

    def matrix(name: str, dims: tuple[str, ...], color: str, note: str = "") -> _Matrix:
        return _Matrix(name, dims, sizes, COLORS[color], note)

    Q = matrix("Q = X W_Q", ("n", "d_model"), "qkv", "column block h: head h")
    Q_heads = matrix("Q_h, one per head", ("n_heads", "n", "d_head"), "qkv",
                     "K_h and V_h the same way")
    alpha = matrix("α_h", ("n_heads", "n", "n"), "weights", "each row sums to 1")
    heads = matrix("head_h = α_h V_h", ("n_heads", "n", "d_head"), "output")
    last = f"head_{n_heads - 1}"
    concat = matrix(f"[head_0, {last}]" if n_heads == 2 else "[head_0]" if n_heads == 1
                    else f"[head_0, …, {last}]", ("n", "d_model"), "output", "heads in order")
    O = matrix("O = [heads] W_O", ("n", "d_model"), "output")
    columns = [Q, Q_heads, alpha, heads, concat, O]
    arrows = ["reshape to\n(n, n_heads, d_head),\ntranspose(1, 0, 2)",
              "softmax(Q_h K_hᵀ\n/ √d_head),\neach head",
              "α_h V_h",
              "transpose(1, 0, 2)\n→ (n, n_heads, d_head),\nreshape",
              "× W_O\n(d_model, d_model)"]
    if d_model is not None:
        arrows[4] += f"\n= ({d_model}, {d_model})"

    widths = [_footprint(m) for m in columns]
    gaps = [max(0.45, _width(a, SMALL) + 0.15) for a in arrows]
    centres, width = _columns(widths, gaps)
    space = min(0.12, 0.6 / n_heads)  # between the heads of a stack, which is at most 3 inches
    stack_h = min(max(alpha.side(0), Q_heads.side(0)), (3.0 - space * (n_heads - 1)) / n_heads)
    stack_total = n_heads * stack_h + space * (n_heads - 1)
    middle = 0.15 + max([_below(m) for m in (Q, concat, O)]
                        + [_below(m, stack_total) for m in (Q_heads, alpha, heads)])
    height = middle + 0.15 + max([_above(m) for m in (Q, concat, O)]
                                 + [_above(m, stack_total) for m in (Q_heads, alpha, heads)]
                                 + [0.07 + _height(a, SMALL) for a in arrows])
    fig, ax = _canvas(width, height)
    draw = _Drawing(ax)

    box_q = draw.matrix(Q, centres[0], middle, blocks=n_heads)
    stacks = []
    for c, m in zip((1, 2, 3), (Q_heads, alpha, heads), strict=True):
        ys = [middle + stack_total / 2 - stack_h / 2 - i * (stack_h + space)
              for i in range(n_heads)]
        for i, y in enumerate(ys):
            color = HEAD_COLORS[i % len(HEAD_COLORS)]
            draw.matrix(_Matrix(m.name, m.dims, sizes, color), centres[c], y, height=stack_h,
                        label=False)
            if stack_h > 0.25:
                draw.ax.text(centres[c], y, f"h = {i}", ha="center", va="center", fontsize=7,
                             color="0.25")
        half = m.side(1) / 2
        draw.label(m, centres[c], middle + stack_total / 2, middle - stack_total / 2)
        stacks.append((centres[c] - half, centres[c] + half))
    box_concat = draw.matrix(concat, centres[4], middle, blocks=n_heads)
    box_o = draw.matrix(O, centres[5], middle)

    edges = [(box_q[1], stacks[0][0]), (stacks[0][1], stacks[1][0]), (stacks[1][1], stacks[2][0]),
             (stacks[2][1], box_concat[0]), (box_concat[1], box_o[0])]
    for i, ((start, end), label) in enumerate(zip(edges, arrows, strict=True)):
        # each label centred in the gap between the two columns' footprints
        draw.arrow((start, middle), (end, middle), label,
                   label_x=centres[i] + widths[i] / 2 + gaps[i] / 2)

    given = _sizes_text(sizes)
    fig.alt_text = _sentence([
        f"Diagram of multi-head attention with {n_heads} heads"
        + (f", for {given}" if given else "") + ":",
        f"the queries {Q.described()}, are cut into {n_heads} blocks of d_head columns, one per",
        "head in order; reshaped to (n, n_heads, d_head) and transposed, they become",
        f"{Q_heads.described()}, and the keys and values are split the same way.",
        f"Each head computes its own weights {alpha.described()}, the softmax of its scaled",
        f"scores, and its output {heads.described()}.",
        "Transposed back to (n, n_heads, d_head) and reshaped, the heads are concatenated side",
        f"by side in head order, {concat.shape()}, then multiplied by W_O",
        f"(d_model, d_model) to give the output {O.described()}.",
    ])
    return fig


def transformer_block_diagram(pre_norm: bool = True) -> DiagramFigure:
    """One Transformer block, with the residual stream (n, d_model) drawn as the main line.

    Pre-norm (GPT-2; `pre_norm=True`): H = X + MHA(LN_1(X)), Y = H + FFN(LN_2(H)): each branch
    leaves the stream, is normalised, transformed, and added back. Post-norm (the original
    Transformer of Vaswani et al. 2017): H = LN_1(X + MHA(X)), Y = LN_2(H + FFN(H)), the
    LayerNorms on the stream after each addition. MHA is causal multi-head self-attention;
    FFN(x) = gelu(x W_1 + b_1) W_2 + b_2, (n, d_model) → (n, d_ff) → (n, d_model).
    """
    boxes = {"LN_1": "LayerNorm\nover d_model", "LN_2": "LayerNorm\nover d_model",
             "causal MHA": "multi-head\nself-attention,\nmask: j ≤ i",
             "FFN": "gelu(x W_1 + b_1) W_2 + b_2\n(n, d_model) → (n, d_ff)\n→ (n, d_model)"}
    colors = {"LN_1": "weight", "LN_2": "weight", "causal MHA": "qkv", "FFN": "score"}
    box_w = max(_width(text, SMALL) for text in boxes.values()) + 0.3
    box_h = max(_height(text, SMALL) for text in boxes.values()) + 0.45
    gap, y_main, y_branch = 0.4, 0.95, 2.55
    sublayers = [("causal MHA", "LN_1", "H"), ("FFN", "LN_2", "Y")]
    fig, ax = _canvas(10.0, 4.0)  # resized to its content below
    draw = _Drawing(ax)
    stream = "(n, d_model)"

    def node(name: str, x: float, y: float, text: str, *, size: float = FONT + 2) -> None:
        """A named point of the stream (X, H, Y): its name, its shape below."""
        k = draw.count
        draw.count += 1
        ax.text(x, y + 0.1, name, ha="center", va="bottom", fontsize=size, gid=f"name:{k}")
        ax.text(x, y - 0.12, text, ha="center", va="top", fontsize=SMALL, gid=f"shape:{k}")

    def box(name: str, x: float, y: float) -> None:
        """A sub-layer drawn as a rounded box whose left edge is at x, centred on y."""
        k = draw.count
        draw.count += 1
        ax.add_patch(FancyBboxPatch((x, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor=COLORS[colors[name]], edgecolor="0.25",
                                    linewidth=1.0, zorder=3))
        ax.text(x + box_w / 2, y + box_h / 2 - 0.1, name, ha="center", va="top", fontsize=FONT,
                weight="bold", zorder=4, gid=f"name:{k}")
        ax.text(x + box_w / 2, y + box_h / 2 - 0.36, boxes[name], ha="center", va="top",
                fontsize=SMALL, zorder=4, gid=f"shape:{k}")

    def plus(x: float) -> None:
        """The residual addition: a circled + on the stream at x."""
        k = draw.count
        draw.count += 1
        ax.add_patch(FancyBboxPatch((x - 0.17, y_main - 0.17), 0.34, 0.34, boxstyle="circle,pad=0",
                                    facecolor="white", edgecolor="0.2", linewidth=1.4, zorder=3))
        ax.text(x, y_main, "+", ha="center", va="center", fontsize=FONT + 4, zorder=4,
                gid=f"name:{k}")
        ax.text(x, y_main - 0.26, "add", ha="center", va="top", fontsize=SMALL, color="0.3",
                gid=f"shape:{k}")

    node("X", 0.5, y_main, stream)
    x = 0.9
    for layer, norm, out in sublayers:
        fork = x + 0.1
        ax.plot([fork], [y_main], "o", color="0.2", markersize=6, zorder=4)
        x = fork + 0.3
        branch = [norm, layer] if pre_norm else [layer]
        ax.plot([fork, fork], [y_main, y_branch], color="0.3", linewidth=1.1)
        draw.arrow((fork, y_branch), (x, y_branch))
        for i, name in enumerate(branch):
            if i:
                draw.arrow((x - gap, y_branch), (x, y_branch))
            box(name, x, y_branch)
            x += box_w + gap
        x_plus = x + 0.1
        ax.plot([x - gap, x_plus], [y_branch, y_branch], color="0.3", linewidth=1.1)
        draw.arrow((x_plus, y_branch), (x_plus, y_main + 0.17))
        plus(x_plus)
        x = x_plus + 0.5
        if not pre_norm:
            box(norm, x, y_main)
            x += box_w + gap
        node(out, x + 0.2, y_main, stream)
        x += 0.6
    draw.arrow((0.75, y_main), (x - 0.25, y_main), width=3.0, zorder=1)  # under a post-norm's LN
    fig.set_size_inches(x + 0.3, 4.0)
    ax.set_xlim(0, x + 0.3)
    ax.text(0.25, 0.25, "the residual stream, (n, d_model) all along: the thick line",
            fontsize=SMALL, color="0.3", va="center")
    equations = ("H = X + MHA(LN_1(X)),   Y = H + FFN(LN_2(H))" if pre_norm
                 else "H = LN_1(X + MHA(X)),   Y = LN_2(H + FFN(H))")
    ax.text(fig.get_figwidth() / 2, 3.85, equations, ha="center", va="top", fontsize=FONT + 1,
            gid="equations")
    kind = ("pre-norm (GPT-2): each branch is normalised first" if pre_norm else
            "post-norm (Vaswani et al. 2017): each sum is normalised on the stream")
    branch = "LN_1 then causal multi-head self-attention" if pre_norm else \
        "causal multi-head self-attention"
    branch_2 = "LN_2 then the feed-forward network" if pre_norm else "the feed-forward network"
    fig.alt_text = _sentence([
        f"Diagram of one Transformer block, {kind}.",
        f"The residual stream runs left to right, shape {stream} all along: X {stream};",
        f"a branch leaves it through {branch} (mask j ≤ i) and is added back,",
        "" if pre_norm else "then LN_1 normalises the sum,",
        f"giving H {stream}; a second branch goes through {branch_2},",
        "FFN(x) = gelu(x W_1 + b_1) W_2 + b_2 through (n, d_ff), and is added back,",
        "" if pre_norm else "then LN_2 normalises the sum,",
        f"giving Y {stream}. In equations: {equations}.",
    ])
    return fig
