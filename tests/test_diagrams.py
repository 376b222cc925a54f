"""The schematic diagrams, checked through the data they carry (nbval does not compare images).

Each box's name and shape are text artists with the gids `name:k` and `shape:k` (k in flow
order); the shapes drawn are compared with the shapes of the arrays the course's reference
computes for the same sizes, so a wrong shape label (K drawn as (d_k, n), say) fails.
"""

from __future__ import annotations

import re
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from course_lib import attention, diagrams, viz  # noqa: E402

N, D_MODEL, D_K, D_V = 5, 8, 4, 3  # all different, so a swapped symbol shows as a wrong number


def texts(fig: Figure, kind: str) -> dict[int, object]:
    """The text artists of one kind ("name", "shape", "note") by their flow index k."""
    found = {}
    for text in fig.axes[0].texts:
        gid = text.get_gid() or ""
        if gid.startswith(kind + ":"):
            found[int(gid.split(":")[1])] = text
    return found


def drawn(fig: Figure) -> list[tuple[str, str]]:
    """(name, shape) of every box in flow order; a shape's lines joined by one space."""
    names, shapes = texts(fig, "name"), texts(fig, "shape")
    assert sorted(names) == list(range(len(names))) and sorted(shapes) == sorted(names)
    return [(names[k].get_text(), " ".join(shapes[k].get_text().split())) for k in sorted(names)]


def numbers(shape: str) -> tuple[int, ...]:
    """(5, 4) from "(n, d_k) = (5, 4)"."""
    match = re.fullmatch(r"\(([\w, ]+)\) = \(([\d, ]+)\)", shape)
    assert match, f"not a shape with sizes: {shape!r}"
    return tuple(int(v) for v in match.group(2).split(","))


def symbols(shape: str) -> tuple[str, ...]:
    """("n", "d_k") from "(n, d_k) = (5, 4)" or "(n, d_k)"."""
    return tuple(s.strip() for s in shape.split(")")[0].strip("(").split(","))


def wrong_shapes(fig: Figure, arrays: dict[str, tuple[int, ...]],
                 sizes: dict[str, int]) -> list[str]:
    """The boxes whose drawn shape differs from their array's shape, in numbers or in symbols."""
    wrong = []
    for name, shape in drawn(fig):
        symbol = name.split(" =")[0]
        if symbol not in arrays:
            continue
        in_symbols = tuple(sizes[s] for s in symbols(shape))
        if numbers(shape) != arrays[symbol] or in_symbols != arrays[symbol]:
            wrong.append(f"{symbol}: drawn {shape}, computed {arrays[symbol]}")
    return wrong


def pipeline_arrays() -> dict[str, tuple[int, ...]]:
    """The shapes of every matrix of self-attention, computed by the reference."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D_MODEL))
    W_Q, W_K = rng.standard_normal((D_MODEL, D_K)), rng.standard_normal((D_MODEL, D_K))
    W_V = rng.standard_normal((D_MODEL, D_V))
    Q, K, V = attention.project_qkv(X, W_Q, W_K, W_V)
    A = attention.attention_scores(Q, K)
    scaled = attention.scale_scores(A, D_K)
    alpha = attention.softmax(scaled)
    O = attention.weighted_sum(alpha, V)
    return {"X": X.shape, "W_Q": W_Q.shape, "W_K": W_K.shape, "W_V": W_V.shape, "Q": Q.shape,
            "K": K.shape, "V": V.shape, "A": A.shape, "Ã": scaled.shape, "α": alpha.shape,
            "O": O.shape}


PIPELINE_SIZES = {"n": N, "d_model": D_MODEL, "d_k": D_K, "d_v": D_V}


def test_pipeline_draws_every_step_in_order_with_the_reference_shapes() -> None:
    fig = diagrams.attention_pipeline_diagram(N, D_MODEL, D_K, D_V)
    assert isinstance(fig, Figure)
    assert [name for name, _ in drawn(fig)] == [
        "X", "W_Q", "W_K", "W_V", "Q = X W_Q", "K = X W_K", "V = X W_V", "A = Q Kᵀ",
        "Ã = A / √d_k", "α = softmax(Ã)", "O = α V"]
    assert [shape for _, shape in drawn(fig)] == [
        "(n, d_model) = (5, 8)", "(d_model, d_k) = (8, 4)", "(d_model, d_k) = (8, 4)",
        "(d_model, d_v) = (8, 3)", "(n, d_k) = (5, 4)", "(n, d_k) = (5, 4)", "(n, d_v) = (5, 3)",
        "(n, n) = (5, 5)", "(n, n) = (5, 5)", "(n, n) = (5, 5)", "(n, d_v) = (5, 3)"]
    assert wrong_shapes(fig, pipeline_arrays(), PIPELINE_SIZES) == []
    notes = {k: t.get_text() for k, t in texts(fig, "note").items()}
    assert notes[7] == "(n, d_k) · (d_k, n)" and "each row sums to 1" in notes[9]


def test_a_wrong_shape_label_is_caught() -> None:
    """K drawn as (d_k, n), or with its numbers swapped: the shape check names K."""
    for wrong in ["(d_k, n) = (4, 5)", "(n, d_k) = (4, 5)", "(n, d_v) = (5, 3)"]:
        fig = diagrams.attention_pipeline_diagram(N, D_MODEL, D_K, D_V)
        texts(fig, "shape")[5].set_text(wrong)  # box 5 is K
        assert [w.split(":")[0] for w in wrong_shapes(fig, pipeline_arrays(), PIPELINE_SIZES)] \
            == ["K"]


def test_pipeline_flows_left_to_right_and_its_boxes_are_drawn_to_scale() -> None:
    fig = diagrams.attention_pipeline_diagram(N, D_MODEL, D_K, D_V)
    names = texts(fig, "name")
    x = [names[k].get_position()[0] for k in sorted(names)]
    columns = [[0], [1, 2, 3], [4, 5, 6], [7], [8], [9], [10]]
    centres = [x[c[0]] for c in columns]
    assert all(x[k] == pytest.approx(x[c[0]]) for c in columns for k in c)
    assert centres == sorted(centres) and len(set(centres)) == len(centres)
    y = [names[k].get_position()[1] for k in (4, 5, 6)]
    assert y[0] > y[1] > y[2]  # Q above K above V
    boxes = {int(p.get_gid().split(":")[1]): p for p in fig.axes[0].patches
             if isinstance(p, Rectangle) and (p.get_gid() or "").startswith("box:")}
    assert sorted(boxes) == list(range(11))
    X, Q = boxes[0], boxes[4]  # inside the size limits: sides in proportion
    assert X.get_width() / X.get_height() == pytest.approx(D_MODEL / N)
    assert X.get_width() / Q.get_width() == pytest.approx(D_MODEL / D_K)


def test_pipeline_without_sizes_writes_symbols_only() -> None:
    shapes = [shape for _, shape in drawn(diagrams.attention_pipeline_diagram())]
    assert shapes[0] == "(n, d_model)" and shapes[5] == "(n, d_k)" and shapes[-1] == "(n, d_v)"
    assert not any("=" in s for s in shapes)


def test_alt_text_is_specific_and_shown_as_the_figures_text() -> None:
    fig = diagrams.attention_pipeline_diagram(N, D_MODEL, D_K, D_V)
    alt = fig.alt_text
    for name, shape in drawn(fig):  # every box, with its shape, in the order drawn
        assert f"{name}, shape {shape}" in alt
    positions = [alt.index(f"{name}, shape {shape}") for name, shape in drawn(fig)]
    assert positions == sorted(positions)
    assert "n = 5, d_model = 8, d_k = 4, d_v = 3" in alt and "each row summing to 1" in alt
    assert diagrams.attention_pipeline_diagram(6, D_MODEL, D_K, D_V).alt_text != alt
    data, metadata = fig._repr_mimebundle_()
    assert data == {"text/plain": alt} and metadata == {"image/png": {"alt": alt}}


def multi_head_arrays(n: int, d_model: int, n_heads: int) -> dict[str, tuple[int, ...]]:
    """The shapes multi-head attention goes through, from the reference and its reshapes."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d_model))
    W_Q, W_K, W_V, W_O = (rng.standard_normal((d_model, d_model)) for _ in range(4))
    O, weights = attention.multi_head_self_attention(X, W_Q, W_K, W_V, W_O, n_heads)
    d_head = d_model // n_heads
    Q_heads = (X @ W_Q).reshape(n, n_heads, d_head).transpose(1, 0, 2)
    heads = weights @ (X @ W_V).reshape(n, n_heads, d_head).transpose(1, 0, 2)
    concat = heads.transpose(1, 0, 2).reshape(n, d_model)
    return {"Q": (X @ W_Q).shape, "Q_h, one per head": Q_heads.shape, "α_h": weights.shape,
            "head_h": heads.shape, f"[head_0, head_{n_heads - 1}]": concat.shape, "O": O.shape}


def test_multi_head_draws_split_attend_concatenate_project_with_the_reference_shapes() -> None:
    fig = diagrams.multi_head_diagram(10, 8, 2)
    assert drawn(fig) == [
        ("Q = X W_Q", "(n, d_model) = (10, 8)"),
        ("Q_h, one per head", "(n_heads, n, d_head) = (2, 10, 4)"),
        ("α_h", "(n_heads, n, n) = (2, 10, 10)"),
        ("head_h = α_h V_h", "(n_heads, n, d_head) = (2, 10, 4)"),
        ("[head_0, head_1]", "(n, d_model) = (10, 8)"),
        ("O = [heads] W_O", "(n, d_model) = (10, 8)"),
    ]
    sizes = {"n": 10, "d_model": 8, "n_heads": 2, "d_head": 4}
    assert wrong_shapes(fig, multi_head_arrays(10, 8, 2), sizes) == []
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "arrow-label"]
    assert len(labels) == 5
    assert "reshape" in labels[0] and "(n, n_heads, d_head)" in labels[0]
    assert labels[0].index("reshape") < labels[0].index("transpose(1, 0, 2)")
    assert "√d_head" in labels[1] and "transpose(1, 0, 2)" in labels[3]
    assert labels[3].index("transpose") < labels[3].index("reshape")
    assert "W_O" in labels[4] and "(d_model, d_model)" in labels[4] and "(8, 8)" in labels[4]
    block_labels = [t.get_text() for t in fig.axes[0].texts if t.get_gid() is None]
    assert block_labels.count("h = 0") == 3 and block_labels.count("h = 1") == 3  # 3 stacks
    assert block_labels.count("0") == 2 and block_labels.count("1") == 2  # Q and the concatenation


def test_multi_head_alt_text_and_bad_head_counts() -> None:
    fig = diagrams.multi_head_diagram(6, 12, 3)
    sizes = {"n": 6, "d_model": 12, "n_heads": 3, "d_head": 4}
    arrays = multi_head_arrays(6, 12, 3)
    arrays["[head_0, …, head_2]"] = arrays.pop("[head_0, head_2]")
    assert wrong_shapes(fig, arrays, sizes) == []
    for name, shape in drawn(fig):
        assert f"{name}, shape {shape}" in fig.alt_text or shape in fig.alt_text
    assert "3 heads" in fig.alt_text and "d_head = 4" in fig.alt_text
    assert "transposed" in fig.alt_text and "W_O" in fig.alt_text
    for n_heads in (0, 5):
        with pytest.raises(ValueError, match="divisor of d_model"):
            diagrams.multi_head_diagram(6, 12, n_heads)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_block_draws_the_residual_stream_and_its_two_branches_in_order(pre_norm: bool) -> None:
    fig = diagrams.transformer_block_diagram(pre_norm=pre_norm)
    names = [name for name, _ in drawn(fig)]
    if pre_norm:
        assert names == ["X", "LN_1", "causal MHA", "+", "H", "LN_2", "FFN", "+", "Y"]
    else:
        assert names == ["X", "causal MHA", "+", "LN_1", "H", "FFN", "+", "LN_2", "Y"]
    positions = [t.get_position() for _, t in sorted(texts(fig, "name").items())]
    x = [p[0] for p in positions]
    assert x == sorted(x)  # the data flows left to right
    y_stream = positions[0][1]
    on_branch = {"causal MHA", "FFN"} | ({"LN_1", "LN_2"} if pre_norm else set())
    for name, (_, y) in zip(names, positions, strict=True):
        assert (y > y_stream + 0.5) == (name in on_branch), name
    shapes = dict(drawn(fig))
    assert shapes["X"] == shapes["H"] == shapes["Y"] == "(n, d_model)"
    assert "(n, d_ff)" in shapes["FFN"] and "gelu" in shapes["FFN"]
    assert "j ≤ i" in shapes["causal MHA"]
    [equations] = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "equations"]
    expected = ("H = X + MHA(LN_1(X)),   Y = H + FFN(LN_2(H))" if pre_norm
                else "H = LN_1(X + MHA(X)),   Y = LN_2(H + FFN(H))")
    assert equations == expected
    assert ("pre-norm (GPT-2)" if pre_norm else "post-norm") in fig.alt_text
    assert " ".join(expected.split()) in fig.alt_text and "(n, d_ff)" in fig.alt_text


FIGURES = {
    "pipeline 5, 8, 4, 3": lambda: diagrams.attention_pipeline_diagram(N, D_MODEL, D_K, D_V),
    "pipeline of lesson 04": lambda: diagrams.attention_pipeline_diagram(10, 7, 3, 4),
    "pipeline, symbols": diagrams.attention_pipeline_diagram,
    "pipeline, large": lambda: diagrams.attention_pipeline_diagram(128, 512, 64, 64),
    "multi-head of lesson 08": lambda: diagrams.multi_head_diagram(10, 8, 2),
    "multi-head, 8 heads": lambda: diagrams.multi_head_diagram(16, 64, 8),
    "multi-head, 1 head": lambda: diagrams.multi_head_diagram(4, 4, 1),
    "multi-head, 16 heads": lambda: diagrams.multi_head_diagram(32, 256, 16),
    "multi-head, symbols": diagrams.multi_head_diagram,
    "block, pre-norm": diagrams.transformer_block_diagram,
    "block, post-norm": lambda: diagrams.transformer_block_diagram(pre_norm=False),
}


@pytest.mark.parametrize("make", FIGURES.values(), ids=list(FIGURES))
def test_no_text_overlaps_another_or_leaves_the_figure(make) -> None:
    fig = make()
    assert fig.alt_text and viz.to_png(fig).startswith(b"\x89PNG")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    bounds = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.axes[0].texts
             if t.get_text().strip()]
    for text, box in boxes:
        assert bounds.x0 <= box.x0 and box.x1 <= bounds.x1 and bounds.y0 <= box.y0 \
            and box.y1 <= bounds.y1, f"{text!r} leaves the figure"
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
