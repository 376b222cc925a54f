"""Lesson 13's alignment figures and scrubber, driven from Python without a browser (as
tests/test_widgets.py does): set a control, check the state it shows and the data it draws.
Offline: the maps are made up here, the example rendered by the task's own code."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import datetime  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.alignment_explorer import (  # noqa: E402
    AlignmentScrubber,
    alignment_map,
    alignment_steps,
    example_share,
    rule_mask,
    target_labels,
)
from course_lib.attention import softmax  # noqa: E402
from course_lib.translation_task import render  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXAMPLE = render(datetime.date(2097, 12, 15), article=True)  # 8 words -> "2097-12-15"
T, N = len(EXAMPLE.target) + 1, len(EXAMPLE.source)


def _snapshots(n_evals: int = 4, n_heads: int = 3, seed: int = 0) -> np.ndarray:
    """Random maps (n_evals, 1, n_heads, T, n_src), each row summing to 1."""
    rng = np.random.default_rng(seed)
    return softmax(2 * rng.standard_normal((n_evals, 1, n_heads, T, N)))


def test_rule_mask_and_labels_follow_the_example() -> None:
    rule = rule_mask(EXAMPLE)
    assert rule.shape == (11, 8) and target_labels(EXAMPLE)[-1] == "EOS"
    assert [tuple(np.flatnonzero(row)) for row in rule[:10]] == list(EXAMPLE.aligned)
    assert not rule[4].any() and not rule[7].any() and not rule[10].any()  # "-", "-", EOS
    assert rule_mask(EXAMPLE, 10)[:, 8:].sum() == 0


def test_share_is_one_on_the_rule_and_chance_when_even() -> None:
    rule = rule_mask(EXAMPLE).astype(float)
    named = np.maximum(rule.sum(axis=1, keepdims=True), 1)
    on_rule = np.where(rule.any(axis=1, keepdims=True), rule / named, 1 / N)
    assert example_share(on_rule, EXAMPLE) == pytest.approx(1.0)
    even = np.full((T, N), 1 / N)
    measured = rule.any(axis=1)
    assert example_share(even, EXAMPLE) == pytest.approx(rule.sum(1)[measured].mean() / N)
    with pytest.raises(ValueError, match="expected \\(11, 8\\)"):
        example_share(np.ones((8, 11)), EXAMPLE)


def test_map_and_steps_draw_the_given_weights_with_the_rule_framed() -> None:
    snapshots = _snapshots()
    fig = alignment_map(snapshots[0, 0, 1], EXAMPLE, title="one")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), snapshots[0, 0, 1])
    assert len(ax.patches) == int(rule_mask(EXAMPLE).sum())
    assert [t.get_text() for t in ax.get_xticklabels()] == list(EXAMPLE.source)
    fig = alignment_steps(snapshots, [0, 10, 20, 30], EXAMPLE, show=[0, 3], head=2,
                          outputs=["6", "a", "b", "2097-12-15"])
    panels = [a for a in fig.axes if a.get_title().startswith("step")]
    assert [a.get_title() for a in panels] == ["step 0\nwrites '6'", "step 30\nwrites '2097-12-15'"]
    for a, i in zip(panels, [0, 3], strict=True):
        np.testing.assert_array_equal(a.images[0].get_array(), snapshots[i, 0, 2])
    with pytest.raises(ValueError, match="n_evals = len\\(steps\\)"):
        alignment_steps(snapshots, [0, 10], EXAMPLE, show=[0])


def test_scrubber_shows_the_chosen_step_and_head(capsys: pytest.CaptureFixture[str]) -> None:
    snapshots = _snapshots()
    alignment = np.array([[[0.2, 0.2, 0.2]], [[0.3, 0.4, 0.2]], [[0.5, 0.7, 0.3]],
                          [[0.6, 0.8, 0.3]]])
    outputs = ["6", "19<pad>", "2099-12-15", "2097-12-15"]
    scrubber = AlignmentScrubber(snapshots, [0, 10, 20, 30], EXAMPLE, outputs, alignment, 0.19)
    assert scrubber.head.value == 1 and scrubber.step.value == 0  # the best head at the end
    np.testing.assert_array_equal(scrubber.weights, snapshots[0, 0, 1])
    before = (bytes(scrubber.image.value), scrubber.table.value)
    assert before[0].startswith(b"\x89PNG")

    scrubber.step.value, scrubber.head.value = 20, 2
    np.testing.assert_array_equal(scrubber.weights, snapshots[2, 0, 2])
    assert scrubber.output == "2099-12-15"
    assert scrubber.share == pytest.approx(example_share(snapshots[2, 0, 2], EXAMPLE))
    after = (bytes(scrubber.image.value), scrubber.table.value)
    assert after[0] != before[0] and "<td>0.70</td>" in after[1]
    scrubber.step.value = 10
    assert "19&lt;pad&gt;" in scrubber.table.value  # the output is escaped
    assert repr(scrubber) == "AlignmentScrubber(step=10, head=2, evaluations=4)"
    bundle = scrubber._repr_mimebundle_()
    assert bundle["text/plain"] == repr(scrubber)
    assert bundle[WIDGET_VIEW]["model_id"] == scrubber.widget.model_id
    assert capsys.readouterr().out == ""  # nothing printed into the notebook


def test_scrubber_refuses_records_that_disagree() -> None:
    with pytest.raises(ValueError, match="same evaluations"):
        AlignmentScrubber(_snapshots(), [0, 10, 20], EXAMPLE, ["a"] * 4, np.zeros((4, 1, 3)), 0.2)
