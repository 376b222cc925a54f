"""The explorers, driven from Python without a browser: set a control, check state and display."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import attention, data  # noqa: E402
from course_lib.widgets import AttentionExplorer, QKVExplorer, ScalingExplorer  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def displayed(explorer) -> tuple[bytes, str]:
    """What the learner sees: the PNG in the image widget and the HTML of the table."""
    return bytes(explorer.image.value), explorer.table.value


def test_qkv_explorer_follows_the_chosen_word(capsys: pytest.CaptureFixture[str]) -> None:
    explorer = QKVExplorer(word="it")
    W_Q, W_K, W_V = data.designed_projections()
    before = displayed(explorer)
    assert before[0].startswith(b"\x89PNG")
    assert np.array_equal(explorer.vectors["q"], data.embedding("it") @ W_Q)

    explorer.word.value = "cat"

    x = data.embedding("cat")
    assert np.array_equal(explorer.vectors["x"], x)
    assert np.array_equal(explorer.vectors["q"], x @ W_Q)
    assert np.array_equal(explorer.vectors["k"], x @ W_K)
    assert np.array_equal(explorer.vectors["v"], x @ W_V)
    after = displayed(explorer)
    assert after[0] != before[0] and after[1] != before[1]
    assert "<td>2.00</td>" in after[1]  # k_cat = (2, 0, 0)
    assert repr(explorer) == "QKVExplorer(word='cat')"
    assert capsys.readouterr().out == ""  # nothing printed into the notebook


def test_qkv_explorer_says_why_a_panel_is_empty() -> None:
    """'tired' has k = 0 (W_K has no weight on 'state'): the key panel says so, in the panel."""
    explorer = QKVExplorer(word="tired")
    assert not np.any(explorer.vectors["k"]) and np.any(explorer.vectors["q"])
    assert set(explorer.notes) == {"k"}
    assert "$W_K$" in explorer.notes["k"] and "state" in explorer.notes["k"]
    panels = explorer.figure().axes  # x, q, k, v
    assert [t.get_text() for t in panels[2].texts] == [explorer.notes["k"]]
    assert all(not ax.texts for ax in (panels[0], panels[1], panels[3]))

    explorer.word.value = "because"  # only "link": nothing to look for, offer or pass on
    assert set(explorer.notes) == {"q", "k", "v"}
    assert [len(ax.texts) for ax in explorer.figure().axes] == [0, 1, 1, 1]
    explorer.word.value = "cat"
    assert explorer.notes == {} and not any(ax.texts for ax in explorer.figure().axes)


def test_qkv_explorer_offers_every_word() -> None:
    assert list(QKVExplorer().word.options) == data.vocabulary()


def test_scaling_explorer_scores_grow_without_scaling() -> None:
    explorer = ScalingExplorer(d_k=4, scaled=True)
    small = displayed(explorer)
    assert 0.7 < explorer.scores.var() < 1.3

    explorer.scaled.value = False
    explorer.d_k.value = 1024
    assert 800 < explorer.scores.var() < 1300  # Var(q · k) = d_k
    unscaled_max = explorer.weights.max()
    big = displayed(explorer)
    assert big[0] != small[0] and "d_k = 1024, not scaled" in big[1]

    explorer.scaled.value = True
    assert 0.7 < explorer.scores.var() < 1.3
    assert explorer.weights.max() < unscaled_max
    assert np.isclose(explorer.weights.sum(), 1.0)
    assert repr(explorer) == "ScalingExplorer(d_k=1024, scaled=True)"


def test_scaling_explorer_is_seeded() -> None:
    a, b = ScalingExplorer(d_k=32), ScalingExplorer(d_k=32)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.weights, b.weights)


def test_attention_explorer_shows_the_chosen_query_row() -> None:
    sentence = data.SENTENCES["pronoun"]
    tokens = data.tokenize(sentence)
    O, weights = attention.self_attention(data.embed(sentence), *data.designed_projections())
    explorer = AttentionExplorer(sentence)
    assert explorer.query.value == tokens.index("it")  # starts on the pronoun
    assert np.array_equal(explorer.weights_row, weights[tokens.index("it")])
    before = displayed(explorer)

    explorer.query.value = tokens.index("sat")

    assert np.array_equal(explorer.weights_row, weights[tokens.index("sat")])
    assert np.array_equal(explorer.output, O[tokens.index("sat")])
    after = displayed(explorer)
    assert after[0] != before[0] and after[1] != before[1]
    assert f"<td>{O[tokens.index('sat'), 0]:.2f}</td>" in after[1]
    assert repr(explorer) == "AttentionExplorer(query=2, token='sat')"


def test_attention_explorer_labels_repeated_tokens_by_position() -> None:
    explorer = AttentionExplorer(data.SENTENCES["short"])
    labels = [label for label, _ in explorer.query.options]
    assert labels == ["0: the", "1: cat", "2: sat", "3: on", "4: the", "5: mat"]
    assert explorer.query.value == 0  # no "it" in this sentence


@pytest.mark.parametrize(
    ("explorer", "text"),
    [
        (lambda: QKVExplorer(word="mat"), "QKVExplorer(word='mat')"),
        (lambda: ScalingExplorer(d_k=8, scaled=False), "ScalingExplorer(d_k=8, scaled=False)"),
        (lambda: AttentionExplorer(query=1), "AttentionExplorer(query=1, token='cat')"),
    ],
)
def test_display_is_the_widget_with_a_stable_text(explorer, text: str) -> None:
    """nbval compares text/plain (kept stable) and skips the widget view (its id is random)."""
    built = explorer()
    bundle = built._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert bundle[WIDGET_VIEW]["model_id"] == built.widget.model_id
