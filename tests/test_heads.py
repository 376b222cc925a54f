"""Lesson 12's measurements (course_lib.heads): the head scores on weights whose answer is known,
the ablated forward pass against the model with the head's slice of W_O zeroed (an independent
oracle), and the losses against `gpt.causal_lm_loss`."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import heads
from course_lib.attention import causal_mask
from course_lib.gpt import (
    GPTConfig,
    causal_lm_loss,
    gpt_attention_weights,
    gpt_forward,
    init_gpt,
)

TINY = {"vocab_size": 11, "n_ctx": 8, "d_model": 8, "n_heads": 2, "n_layers": 2}


def _model(positions: str = "learned", seed: int = 0) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """A tiny float64 model moved off its initialisation, so that every head matters."""
    config = GPTConfig(**TINY, positions=positions)
    rng = np.random.default_rng(seed)
    params = init_gpt(config, rng, dtype=np.float64)
    return config, {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}


def _uniform(n: int) -> np.ndarray:
    """Causal weights spread evenly: row i is 1 / (i + 1) on 0 .. i."""
    mask = causal_mask(n).astype(float)
    return mask / mask.sum(axis=1, keepdims=True)


def _shifted(n: int, offset: int) -> np.ndarray:
    """Row i all on token i − offset (on token 0 while i < offset)."""
    W = np.zeros((n, n))
    W[np.arange(n), np.maximum(np.arange(n) - offset, 0)] = 1.0
    return W


def test_previous_token_score_is_one_for_the_pattern_and_chance_for_uniform() -> None:
    n = 6
    layer = np.stack([_shifted(n, 1), _uniform(n), _shifted(n, 0)])  # (H=3, n, n)
    batch = np.stack([layer, layer])  # (B=2, H, n, n)
    scores = heads.previous_token_scores([batch, batch[:, ::-1]])
    assert scores.shape == (2, 3)
    chance = heads.previous_token_chance(n)
    assert chance == pytest.approx(np.mean([1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6]))
    np.testing.assert_allclose(scores, [[1.0, chance, 0.0], [0.0, chance, 1.0]])


def test_induction_score_reads_the_token_after_the_first_occurrence() -> None:
    L = 4
    n = 2 * L
    induction = np.zeros((n, n))
    induction[np.arange(n), np.arange(n)] = 1.0  # elsewhere: on itself
    i = np.arange(L, n)
    induction[i] = 0.0
    induction[i, i - L + 1] = 1.0
    duplicate = _shifted(n, L)  # on the first occurrence itself: not induction
    scores = heads.induction_scores([np.stack([induction, _uniform(n), duplicate])], L)
    np.testing.assert_allclose(scores, [[1.0, heads.induction_chance(L), 0.0]])
    assert heads.induction_chance(L) == pytest.approx(np.mean(1 / (i + 1)))
    with pytest.raises(ValueError, match="2 · length"):
        heads.induction_scores([np.stack([induction])], L + 1)


def test_repeated_random_tokens_repeat_and_are_seeded() -> None:
    a = heads.repeated_random_tokens(11, 5, 3, np.random.default_rng(1))
    b = heads.repeated_random_tokens(11, 5, 3, np.random.default_rng(1))
    assert a.shape == (3, 10) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :5], a[:, 5:])
    assert a.min() >= 1 and a.max() <= 10


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_nothing_ablated_is_the_model(positions: str) -> None:
    config, params = _model(positions)
    tokens = np.random.default_rng(2).integers(0, 11, (3, 8))
    np.testing.assert_allclose(heads.gpt_forward_ablated(params, config, tokens),
                               gpt_forward(params, config, tokens), rtol=1e-10, atol=1e-12)
    outputs = heads.head_outputs(params, config, tokens)
    assert [o.shape for o in outputs] == [(3, 2, 8, 4)] * 2


@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize(("layer", "head"), [(0, 0), (0, 1), (1, 1)])
def test_zero_ablation_is_the_model_without_that_head_of_W_O(positions: str, layer: int,
                                                            head: int) -> None:
    """o_h W_O[rows of h] is head h's whole contribution: zeroing those rows removes it."""
    config, params = _model(positions)
    tokens = np.random.default_rng(3).integers(0, 11, (2, 8))
    oracle = dict(params)
    W_O = params[f"blocks.{layer}.W_O"].copy()
    W_O[head * 4:(head + 1) * 4] = 0.0  # d_head = 8 / 2 = 4
    oracle[f"blocks.{layer}.W_O"] = W_O
    ablated = heads.gpt_forward_ablated(params, config, tokens, [(layer, head)])
    np.testing.assert_allclose(ablated, gpt_forward(oracle, config, tokens), rtol=1e-10,
                               atol=1e-12)
    assert not np.allclose(ablated, gpt_forward(params, config, tokens))


def test_mean_ablation_uses_each_heads_mean_output() -> None:
    config, params = _model()
    tokens = np.random.default_rng(4).integers(0, 11, (4, 8))
    outputs = heads.head_outputs(params, config, tokens)
    means = [o.mean(axis=(0, 2)) for o in outputs]  # over batch and positions: (H, d_head)
    by_default = heads.gpt_forward_ablated(params, config, tokens, [(1, 0)], mode="mean")
    given = heads.gpt_forward_ablated(params, config, tokens, [(1, 0)], mode="mean", means=means)
    np.testing.assert_allclose(by_default, given, rtol=1e-12)
    zeros = [np.zeros_like(m) for m in means]
    np.testing.assert_allclose(
        heads.gpt_forward_ablated(params, config, tokens, [(1, 0)], mode="mean", means=zeros),
        heads.gpt_forward_ablated(params, config, tokens, [(1, 0)]), rtol=1e-12)
    assert not np.allclose(by_default, heads.gpt_forward_ablated(params, config, tokens, [(1, 0)]))


def test_ablation_losses_against_the_models_loss() -> None:
    config, params = _model()
    rng = np.random.default_rng(5)
    inputs, targets = rng.integers(0, 11, (5, 8)), rng.integers(0, 11, (5, 8))
    result = heads.ablation_losses(params, config, inputs, targets)
    assert result.full.shape == (5,) and result.ablated.shape == (2, 2, 5)
    loss, _ = causal_lm_loss(gpt_forward(params, config, inputs), targets)
    assert result.full_loss == pytest.approx(loss, rel=1e-10)  # equal windows: mean of means
    for layer, head in np.ndindex(2, 2):
        logits = heads.gpt_forward_ablated(params, config, inputs, [(layer, head)])
        assert result.loss[layer, head] == pytest.approx(causal_lm_loss(logits, targets)[0])
    difference = result.ablated - result.full
    np.testing.assert_allclose(result.increase, difference.mean(axis=-1))
    np.testing.assert_allclose(result.standard_error,
                               difference.std(axis=-1, ddof=1) / np.sqrt(5))
    assert heads.ablation_losses(params, config, inputs, targets, mode="mean").mode == "mean"


def test_repeated_sequence_losses_score_each_copy() -> None:
    config, params = _model()
    sequences = heads.repeated_random_tokens(11, 4, 3, np.random.default_rng(6))
    first, second = heads.repeated_sequence_losses(params, config, sequences)
    logits = gpt_forward(params, config, sequences[:, :-1])
    assert first.mean() == pytest.approx(causal_lm_loss(logits[:, :3], sequences[:, 1:4])[0])
    assert second.mean() == pytest.approx(causal_lm_loss(logits[:, 4:], sequences[:, 5:])[0])
    without = heads.gpt_forward_ablated(
        params, config, sequences[:, :-1], [(1, 0)], mode="mean")
    first_1, second_1 = heads.repeated_sequence_losses(params, config, sequences, [(1, 0)],
                                                       mode="mean")
    assert second_1.mean() == pytest.approx(causal_lm_loss(without[:, 4:], sequences[:, 5:])[0])
    assert first_1.mean() == pytest.approx(
        causal_lm_loss(without[:, :3], sequences[:, 1:4])[0])
    assert not np.allclose(second_1, second), "the head mattered"



def test_repeated_passages_write_a_passage_of_the_text_twice() -> None:
    text = np.arange(50, 150)
    sequences = heads.repeated_passages(text, 6, 20, np.random.default_rng(2))
    assert sequences.shape == (20, 12) and sequences.dtype == np.int64
    assert np.array_equal(sequences[:, :6], sequences[:, 6:])
    assert np.all(np.diff(sequences[:, :6], axis=1) == 1), "consecutive tokens of the text"
    assert sequences.min() >= 50 and sequences.max() <= 149
    assert len(set(sequences[:, 0])) > 5, "from random places"
    with pytest.raises(ValueError, match="at least length = 6"):
        heads.repeated_passages(np.arange(5), 6, 2, np.random.default_rng(0))


@pytest.mark.parametrize("n_layers", [1, 2])
def test_induction_summary_names_the_strongest_head_after_the_first_layer(n_layers: int) -> None:
    config = GPTConfig(**(TINY | {"n_layers": n_layers, "n_heads": 4}))
    rng = np.random.default_rng(8)
    params = {k: v + 0.5 * rng.standard_normal(v.shape)
              for k, v in init_gpt(config, rng, dtype=np.float64).items()}
    sequences = heads.repeated_random_tokens(11, 4, 16, rng)  # (16, 8)
    summary = heads.induction_summary(params, config, sequences)
    scores = heads.induction_scores(gpt_attention_weights(params, config, sequences), 4)
    later = scores[1:] if n_layers > 1 else scores
    layer, head = summary.head
    assert layer == (1 if n_layers > 1 else 0)
    assert summary.score == pytest.approx(later.max()) == pytest.approx(scores[layer, head])
    assert summary.chance == pytest.approx(heads.induction_chance(4))
    first, second = heads.repeated_sequence_losses(params, config, sequences)
    assert (summary.first_copy_loss, summary.second_copy_loss) == pytest.approx(
        (first.mean(), second.mean()))
    recorded = summary.to_json()
    assert recorded["head"] == [layer, head] and recorded["score"] == round(summary.score, 4)


def test_refusals_say_what_is_wrong() -> None:
    config, params = _model()
    tokens = np.zeros((1, 8), dtype=np.int64)
    with pytest.raises(ValueError, match=r"head \(2, 0\) does not exist"):
        heads.gpt_forward_ablated(params, config, tokens, [(2, 0)])
    with pytest.raises(ValueError, match="mode"):
        heads.gpt_forward_ablated(params, config, tokens, [(0, 0)], mode="drop")  # type: ignore
    with pytest.raises(ValueError, match="2 tokens or more"):
        heads.previous_token_scores([np.ones((1, 1, 1))])
