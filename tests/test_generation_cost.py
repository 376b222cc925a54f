"""What generating one token costs (course_lib.generation_cost): the counts against the formulas
written out by hand, and the timers measuring what they say (shapes, the caches they start
from), never how fast."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import generation_cost as gc
from course_lib.gpt import GPTConfig, KVCache, gpt_forward, gpt_forward_cached, init_gpt

CONFIG = GPTConfig(vocab_size=11, n_ctx=16, d_model=8, n_heads=2, n_layers=3)  # d_ff = 32


def test_the_cache_holds_a_key_and_a_value_per_layer_and_token() -> None:
    assert gc.cache_numbers(CONFIG, 0) == 0
    assert gc.cache_numbers(CONFIG, 5) == 2 * 3 * 5 * 8
    # GPT-2 small at n = 1024, float32: 72 MiB
    gpt2 = GPTConfig(vocab_size=50257, n_ctx=1024, d_model=768, n_heads=12, n_layers=12)
    assert 4 * gc.cache_numbers(gpt2, 1024) == 72 * 2**20


def test_the_rnn_keeps_a_fixed_state() -> None:
    assert gc.rnn_state_numbers(64, 2) == 128 and gc.rnn_state_numbers(5) == 5


def test_flops_per_token_follow_the_formulas() -> None:
    L, d, d_ff, V, n = 3, 8, 32, 11, 5
    per_row = 8 * d * d + 4 * d * d_ff  # q, k, v, W_O; then d -> d_ff -> d
    assert gc.gpt_flops_per_token(CONFIG, n, use_cache=True) == (
        L * (per_row + 4 * n * d) + 2 * d * V)
    assert gc.gpt_flops_per_token(CONFIG, n, use_cache=False) == (
        L * (n * per_row + 4 * n * n * d) + 2 * n * d * V)
    assert gc.rnn_flops_per_step(d, L) == L * 4 * d * d


def test_with_one_token_of_context_both_ways_differ_only_by_the_full_square() -> None:
    # n = 1: one row either way, and the n × n square is the one score the row needs
    assert (gc.gpt_flops_per_token(CONFIG, 1, use_cache=True)
            == gc.gpt_flops_per_token(CONFIG, 1, use_cache=False))


def test_the_uncached_count_grows_as_n_squared_and_the_cached_one_as_n() -> None:
    ns = np.array([64, 128, 256, 512]) * 64
    cached = np.array([gc.gpt_flops_per_token(CONFIG, n, use_cache=True) for n in ns], float)
    uncached = np.array([gc.gpt_flops_per_token(CONFIG, n, use_cache=False) for n in ns], float)
    assert np.all(np.diff(cached) > 0) and np.all(uncached > cached)
    assert 1.9 < np.log2(uncached[-1] / uncached[-2]) < 2.0  # doubling n: about 4x
    assert 0.95 < np.log2(cached[-1] / cached[-2]) < 1.0  # about 2x


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_counts_refuse_a_context_that_is_not_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be"):
        gc.gpt_flops_per_token(CONFIG, bad, use_cache=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("use_cache", [True, False])
def test_time_per_token_times_one_step_at_each_length(use_cache: bool) -> None:
    params = init_gpt(CONFIG, np.random.default_rng(0))
    before = {name: value.copy() for name, value in params.items()}
    seconds = gc.time_per_token(params, CONFIG, [1, 4, CONFIG.n_ctx], use_cache=use_cache,
                                repeat=2)
    assert seconds.shape == (3,) and np.all(np.isfinite(seconds)) and np.all(seconds > 0)
    assert all(np.array_equal(before[name], params[name]) for name in params)


def test_the_cached_step_starts_from_the_same_cache_every_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    params = init_gpt(CONFIG, np.random.default_rng(0))
    seen: list[int] = []
    logits: list[np.ndarray] = []

    def spy(params: dict, config: GPTConfig, tokens: np.ndarray, cache: KVCache) -> np.ndarray:
        seen.append(cache.length)
        out = gpt_forward_cached(params, config, tokens, cache)
        logits.append(out[-1])
        return out

    monkeypatch.setattr(gc, "gpt_forward_cached", spy)
    gc.time_per_token(params, CONFIG, [6], use_cache=True, repeat=3, seed=4)
    assert seen == [0, 5, 5, 5, 5]  # the prefill of 5 tokens, a warm-up and 3 timed runs
    tokens = np.random.default_rng(4).integers(0, CONFIG.vocab_size, size=6)
    expected = gpt_forward(params, CONFIG, tokens)[-1]  # what the timed step computes
    assert all(np.allclose(row, expected, atol=1e-5) for row in logits[1:])


def test_time_rnn_token_and_prefill_and_decode_return_seconds() -> None:
    assert 0 < gc.time_rnn_token(8, 2, repeat=3) < 10
    params = init_gpt(CONFIG, np.random.default_rng(0))
    prefill, one_at_a_time = gc.time_prefill_and_decode(params, CONFIG, 8, repeat=2)
    assert 0 < prefill < 10 and 0 < one_at_a_time < 10
