"""Lesson 12's head explorer, driven from Python without a browser (as tests/test_widgets.py does):
set a control, check the state it shows and what it draws; the hover text through its CSS rules;
the grid figure through the data on its panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.attention import causal_mask, softmax  # noqa: E402
from course_lib.head_explorer import (  # noqa: E402
    HeadExplorer,
    display_token,
    head_grid,
    hover_text_html,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TOKENS = list("a <b>\nc")  # 7 characters: a space, HTML to escape, a newline


def _weights(n_layers: int = 2, n_heads: int = 3, n: int = len(TOKENS),
             seed: int = 0) -> list[np.ndarray]:
    """Random causal attention weights, one (n_heads, n, n) array per layer."""
    rng = np.random.default_rng(seed)
    scores = np.where(causal_mask(n), rng.standard_normal((n_layers, n_heads, n, n)), -np.inf)
    return list(softmax(3 * scores))


def test_explorer_shows_the_chosen_head_and_query(capsys: pytest.CaptureFixture[str]) -> None:
    weights = _weights()
    explorer = HeadExplorer(weights, TOKENS)
    assert explorer.query.value == len(TOKENS) - 1  # the last token by default
    np.testing.assert_array_equal(explorer.weights, weights[0][0])
    before = (bytes(explorer.image.value), explorer.table.value)
    assert before[0].startswith(b"\x89PNG")

    explorer.layer.value, explorer.head.value, explorer.query.value = 1, 2, 4
    np.testing.assert_array_equal(explorer.weights, weights[1][2])
    np.testing.assert_array_equal(explorer.row, weights[1][2][4])
    expected = np.argsort(-weights[1][2][4], kind="stable")[:5]
    assert [j for j, _, _ in explorer.top] == list(expected)
    assert [a for _, _, a in explorer.top] == pytest.approx(weights[1][2][4][expected])
    after = (bytes(explorer.image.value), explorer.table.value)
    assert after[0] != before[0] and after[1] != before[1]
    assert f"<td>{weights[1][2][4].max():.2f}</td>" in after[1]
    assert repr(explorer) == "HeadExplorer(layer=1, head=2, query=4, token='>')"
    assert capsys.readouterr().out == ""  # nothing printed into the notebook


def test_display_is_the_widget_with_a_stable_text() -> None:
    explorer = HeadExplorer(_weights(), TOKENS, layer=1, head=0, query=2)
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == "HeadExplorer(layer=1, head=0, query=2, token='<')"
    assert bundle[WIDGET_VIEW]["model_id"] == explorer.widget.model_id


def test_hover_rules_shade_each_key_by_its_weight() -> None:
    weights = _weights()[0][1]
    page = hover_text_html(TOKENS, weights, query=3, uid="t", threshold=0.0)
    n = len(TOKENS)
    for i, j in zip(*np.nonzero(causal_mask(n)), strict=True):
        rule = f"#t:has(.q{i}:hover) .k{j}{{background:rgba(33, 113, 181,{weights[i, j]:.2f})}}"
        assert rule in page
    defaults = re.findall(r"#t:not\(:has\(\.tok:hover\)\) \.k(\d+)\{background:[^}]*,([\d.]+)\)",
                          page)
    assert [int(j) for j, _ in defaults] == [0, 1, 2, 3]  # the query's row: keys 0 .. 3
    assert [float(a) for _, a in defaults] == pytest.approx(weights[3, :4], abs=0.005)
    assert ">&lt;</span>" in page and ">&gt;</span>" in page  # the text is escaped
    assert page.count("<br>") == 1 and "↵" in page  # the newline shown, then a line break
    assert page.count("class='tok ") == n


def test_hover_leaves_out_small_weights() -> None:
    weights = _weights()[1][0]
    page = hover_text_html(TOKENS, weights, query=0, uid="t", threshold=0.1)
    assert page.count(":has(.q") == int(np.sum(weights >= 0.1))


def test_refusals_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="expected \\(7, 7\\)"):
        hover_text_html(TOKENS, np.ones((6, 6)), 0)
    with pytest.raises(ValueError, match="query must be"):
        hover_text_html(TOKENS, np.eye(7), 7)
    with pytest.raises(ValueError, match="layer 1 has shape"):
        HeadExplorer([np.ones((2, 7, 7)), np.ones((2, 6, 6))], TOKENS)


def test_grid_has_one_panel_per_head_with_its_weights() -> None:
    weights = _weights(n_layers=2, n_heads=3)
    fig = head_grid(weights, TOKENS, title="grid")
    panels = [ax for ax in fig.axes if ax.get_title().startswith("layer")]
    assert [ax.get_title() for ax in panels] == [f"layer {l}, head {h}"
                                                for l in range(2) for h in range(3)]
    for ax, (l, h) in zip(panels, np.ndindex(2, 3), strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), weights[l][h])
    labels = [t.get_text() for t in panels[0].get_xticklabels()]
    assert labels == [display_token(t) for t in TOKENS] and labels[1] == "␣"
