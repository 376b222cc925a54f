"""The tiny GPT (course_lib.gpt): configuration, initialisation, the forward pass and its
causality, the loss and every gradient against central differences, the KV cache against full
recomputation, and sampling (deterministic for a seed; temperature 0 and top_k = 1 are argmax)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.gpt import (
    GPTConfig,
    KVCache,
    block_params,
    causal_lm_loss,
    generate,
    gpt_attention_weights,
    gpt_forward,
    gpt_forward_cached,
    gpt_loss_and_gradients,
    init_gpt,
    sample_next,
)
from course_lib.training import numerical_gradient, relative_error
from course_lib.transformer import BLOCK_PARAM_NAMES, transformer_block

TINY = {"vocab_size": 7, "n_ctx": 6, "d_model": 8, "n_heads": 2, "n_layers": 2}
POSITIONS = ("learned", "rope")


def _model(positions: str = "learned", seed: int = 0, dtype: type = np.float64,
           noise: float = 0.3, **overrides: int) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """A tiny model whose parameters are moved off GPT-2's initialisation (γ = 1, biases 0,
    weights 0.02) by `noise`, so that every path carries a gradient worth checking."""
    config = GPTConfig(**{**TINY, **overrides}, positions=positions)
    rng = np.random.default_rng(seed)
    params = init_gpt(config, rng, np.float64)
    params = {k: (v + noise * rng.standard_normal(v.shape)).astype(dtype)
              for k, v in params.items()}
    return config, params


# --- configuration and initialisation ------------------------------------------------------------


def test_config_defaults_and_checks() -> None:
    config = GPTConfig(vocab_size=50, n_ctx=32)
    assert (config.d_model, config.n_heads, config.n_layers, config.d_ff) == (64, 4, 2, 256)
    assert config.positions == "learned" and not config.rope
    assert GPTConfig(**dataclasses.asdict(config)) == config  # a checkpoint's JSON rebuilds it
    with pytest.raises(ValueError, match="must divide"):
        GPTConfig(vocab_size=5, n_ctx=4, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="positions"):
        GPTConfig(vocab_size=5, n_ctx=4, positions="sinusoidal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="even"):
        GPTConfig(vocab_size=5, n_ctx=4, d_model=6, n_heads=2, positions="rope")


@pytest.mark.parametrize("positions", POSITIONS)
def test_init_names_shapes_and_gpt2_scales(positions: str) -> None:
    config = GPTConfig(vocab_size=30, n_ctx=16, d_model=32, n_heads=4, n_layers=3,
                       positions=positions)
    params = init_gpt(config, np.random.default_rng(0))
    expected = {"wte": (30, 32), "ln_f_gamma": (32,), "ln_f_beta": (32,)}
    if positions == "learned":
        expected["wpe"] = (16, 32)
    for layer in range(3):
        block = {"W_1": (32, 128), "b_1": (128,), "W_2": (128, 32)}
        for name in BLOCK_PARAM_NAMES:
            default = (32, 32) if name.startswith("W") else (32,)
            expected[f"blocks.{layer}.{name}"] = block.get(name, default)
    assert {k: v.shape for k, v in params.items()} == expected
    assert all(v.dtype == np.float32 for v in params.values())
    assert params["wte"].std() == pytest.approx(0.02, rel=0.1)
    assert params["blocks.1.W_O"].std() == pytest.approx(0.02 / math.sqrt(6), rel=0.1)
    assert params["blocks.2.W_2"].std() == pytest.approx(0.02 / math.sqrt(6), rel=0.1)
    np.testing.assert_array_equal(params["blocks.0.ln1_gamma"], 1)
    np.testing.assert_array_equal(params["blocks.0.b_1"], 0)
    again = init_gpt(config, np.random.default_rng(0))
    assert all(np.array_equal(params[k], again[k]) for k in params)  # a seed fixes the model
    assert init_gpt(config, np.random.default_rng(0), np.float64)["wte"].dtype == np.float64


# --- the forward pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("positions", POSITIONS)
def test_forward_is_embedding_blocks_final_norm_and_tied_head(positions: str) -> None:
    config, params = _model(positions)
    tokens = np.array([[1, 4, 0, 6, 2], [3, 3, 5, 1, 0]])
    X = params["wte"][tokens] + (params["wpe"][:5] if positions == "learned" else 0)
    for layer in range(config.n_layers):
        X = transformer_block(X, block_params(params, layer), 2, rope=config.rope)
    mu, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    final = params["ln_f_gamma"] * (X - mu) / np.sqrt(var + 1e-5) + params["ln_f_beta"]
    logits = gpt_forward(params, config, tokens)
    assert logits.shape == (2, 5, 7)
    np.testing.assert_allclose(logits, final @ params["wte"].T, atol=1e-12)
    np.testing.assert_allclose(gpt_forward(params, config, tokens[1]), logits[1], atol=1e-12)


@pytest.mark.parametrize("positions", POSITIONS)
def test_forward_is_causal(positions: str) -> None:
    """Changing token 3 changes no logits before position 3."""
    config, params = _model(positions)
    a, b = np.array([1, 2, 3, 4, 5, 6]), np.array([1, 2, 3, 0, 0, 0])
    la, lb = gpt_forward(params, config, a), gpt_forward(params, config, b)
    np.testing.assert_allclose(la[:3], lb[:3], atol=1e-12)
    assert not np.allclose(la[3], lb[3])


def test_forward_float32_and_params_unmodified() -> None:
    config, params = _model(dtype=np.float32)
    copies = {k: v.copy() for k, v in params.items()}
    tokens, targets = np.array([[1, 2, 3]]), np.array([[2, 3, 4]])
    assert gpt_forward(params, config, tokens).dtype == np.float32
    loss, grads = gpt_loss_and_gradients(params, config, tokens, targets)
    assert isinstance(loss, float)
    assert all(grads[k].dtype == np.float32 and grads[k].shape == params[k].shape
               for k in params)
    assert set(grads) == set(params)
    assert all(np.array_equal(params[k], copies[k]) for k in params)


def test_forward_refuses_what_the_model_cannot_read() -> None:
    config, params = _model()
    with pytest.raises(ValueError, match="n_ctx = 6"):
        gpt_forward(params, config, np.zeros(7, dtype=int))
    with pytest.raises(ValueError, match="vocab_size"):
        gpt_forward(params, config, np.array([0, 7]))
    with pytest.raises(TypeError, match="integer"):
        gpt_forward(params, config, np.array([0.0, 1.0]))


def test_attention_weights_per_layer_are_causal_rows_of_one() -> None:
    config, params = _model("rope")
    weights = gpt_attention_weights(params, config, np.array([[1, 2, 3, 4], [4, 3, 2, 1]]))
    assert len(weights) == 2 and weights[0].shape == (2, 2, 4, 4)
    for w in weights:
        np.testing.assert_allclose(w.sum(-1), 1)
        assert np.all(np.triu(w, k=1) == 0)


# --- the loss and the gradients ------------------------------------------------------------------


def test_loss_of_uniform_logits_is_log_vocab_size() -> None:
    loss, dlogits = causal_lm_loss(np.zeros((2, 3, 5)), np.array([[0, 1, 2], [3, 4, 0]]))
    assert loss == pytest.approx(math.log(5))
    np.testing.assert_allclose(dlogits.sum(-1), 0, atol=1e-15)  # softmax − onehot sums to 0
    assert dlogits[0, 1, 1] == pytest.approx((0.2 - 1) / 6)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 4), st.integers(2, 5))
def test_loss_gradient_matches_central_differences(seed: int, B: int, T: int, V: int) -> None:
    rng = np.random.default_rng(seed)
    logits, targets = 3 * rng.standard_normal((B, T, V)), rng.integers(0, V, (B, T))
    loss, dlogits = causal_lm_loss(logits, targets)
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert loss == pytest.approx(-np.mean(np.take_along_axis(log_p, targets[..., None], -1)))
    numerical = numerical_gradient(lambda p: causal_lm_loss(p["z"], targets)[0], {"z": logits})
    assert relative_error(dlogits, numerical["z"]) < 1e-7


def test_loss_is_stable_for_huge_logits() -> None:
    loss, dlogits = causal_lm_loss(np.array([[1000.0, 0.0, -1000.0]]), np.array([0]))
    assert loss == pytest.approx(0.0) and np.all(np.isfinite(dlogits))


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("shape", [(2, 5), (4,)])
def test_every_gradient_matches_central_differences(positions: str,
                                                    shape: tuple[int, ...]) -> None:
    config, params = _model(positions, seed=len(shape), d_ff=8)
    rng = np.random.default_rng(1)
    tokens, targets = rng.integers(0, 7, shape), rng.integers(0, 7, shape)
    tokens.flat[0] = tokens.flat[-1]  # a token seen twice: its embedding gradients add up
    loss, grads = gpt_loss_and_gradients(params, config, tokens, targets)
    assert loss == pytest.approx(causal_lm_loss(gpt_forward(params, config, tokens), targets)[0])
    numerical = numerical_gradient(
        lambda p: causal_lm_loss(gpt_forward(p, config, tokens), targets)[0], params)
    for name in params:
        assert relative_error(grads[name], numerical[name]) < 1e-6, name
    if positions == "learned":  # positions beyond T get no gradient
        np.testing.assert_array_equal(grads["wpe"][shape[-1]:], 0)


# --- the KV cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", POSITIONS)
def test_cached_logits_equal_recomputed_ones(positions: str) -> None:
    """Prefill 3 tokens, then decode 3 one at a time: the same logits as the whole sequence."""
    config, params = _model(positions)
    tokens = np.array([5, 1, 4, 4, 0, 2])
    full = gpt_forward(params, config, tokens)
    cache = KVCache()
    rows = [gpt_forward_cached(params, config, tokens[:3], cache)]
    rows += [gpt_forward_cached(params, config, tokens[t:t + 1], cache) for t in range(3, 6)]
    np.testing.assert_allclose(np.vstack(rows), full, atol=1e-12)
    assert cache.length == 6
    assert [k.shape for k in cache.keys] == [(2, 6, 4)] * 2  # (n_heads, length, d_head) per layer
    with pytest.raises(ValueError, match="n_ctx"):
        gpt_forward_cached(params, config, np.array([1]), cache)  # the context is full


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.7, 3), (1.5, None), (0, None)])
def test_generate_with_and_without_cache_give_the_same_tokens(positions: str,
                                                              temperature: float,
                                                              top_k: int | None) -> None:
    """Within n_ctx and beyond it (the context then cropped to its last n_ctx tokens)."""
    config, params = _model(positions, dtype=np.float32)
    prompt = np.array([1, 2, 3])
    runs = [generate(params, config, prompt, 12, temperature=temperature, top_k=top_k,
                     rng=np.random.default_rng(7), use_cache=use_cache)
            for use_cache in (True, False)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].shape == (15,) and np.array_equal(runs[0][:3], prompt)


def test_generate_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    config, params = _model(noise=1.0)
    runs = [generate(params, config, np.array([0]), 20, rng=np.random.default_rng(seed))
            for seed in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_generate_greedy_is_repeated_argmax() -> None:
    config, params = _model()
    out = generate(params, config, np.array([2]), 8, temperature=0, rng=np.random.default_rng(0))
    for t in range(1, 9):
        context = out[max(0, t - config.n_ctx):t]
        assert out[t] == np.argmax(gpt_forward(params, config, context)[-1])


def test_generate_a_long_prompt_is_cropped_to_n_ctx() -> None:
    config, params = _model()
    prompt = np.array([1, 2, 3, 4, 5, 6, 0, 1, 2])  # 9 tokens, n_ctx = 6
    out = generate(params, config, prompt, 1, temperature=0, rng=np.random.default_rng(0))
    assert out[-1] == np.argmax(gpt_forward(params, config, prompt[-6:])[-1])
    np.testing.assert_array_equal(generate(params, config, prompt, 0, rng=np.random.default_rng(0)),
                                  prompt)


# --- sampling ------------------------------------------------------------------------------------


def test_sample_next_deterministic_for_a_seed() -> None:
    logits = np.random.default_rng(0).standard_normal(20)
    draws = [[sample_next(logits, 1.0, None, rng) for _ in range(30)]
             for rng in (np.random.default_rng(1), np.random.default_rng(1))]
    assert draws[0] == draws[1] and len(set(draws[0])) > 3


def test_temperature_zero_small_and_top_k_one_are_argmax() -> None:
    logits = np.array([0.1, 2.0, 1.99, -3.0])
    rng = np.random.default_rng(0)
    assert all(sample_next(logits, 0, None, rng) == 1 for _ in range(20))
    assert all(sample_next(logits, 1e-4, None, rng) == 1 for _ in range(200))
    assert all(sample_next(logits, 1e-300, None, rng) == 1 for _ in range(20))  # no overflow
    assert all(sample_next(logits, 5.0, 1, rng) == 1 for _ in range(200))


def test_top_k_samples_only_the_k_most_likely() -> None:
    logits = np.array([3.0, -1.0, 2.0, 0.0, 2.5])
    rng = np.random.default_rng(0)
    assert {sample_next(logits, 10.0, 3, rng) for _ in range(500)} == {0, 2, 4}


def test_temperature_divides_the_logits_before_the_softmax() -> None:
    """With one draw u, the token is the first whose cumulative probability exceeds u, where
    p = softmax(logits / T). Logits [0, log 3] at T = 2: p = softmax([0, log 3 / 2]) =
    [1 / (1 + √3), √3 / (1 + √3)] = [0.366, 0.634] (softmax first, then a power 1/T, would
    be the same here; dividing the probabilities instead, p / T, would not be a distribution)."""
    logits = np.array([0.0, math.log(3)])
    u = np.random.default_rng(5).random()  # the draw sample_next makes with this seed
    expected = 0 if u < 1 / (1 + math.sqrt(3)) else 1
    assert sample_next(logits, 2.0, None, np.random.default_rng(5)) == expected
    counts = np.bincount([sample_next(logits, 2.0, None, np.random.default_rng(s))
                          for s in range(2000)], minlength=2)
    assert counts[0] / 2000 == pytest.approx(1 / (1 + math.sqrt(3)), abs=0.04)


def test_sample_next_refuses_a_negative_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample_next(np.zeros(3), -1.0, None, np.random.default_rng(0))
