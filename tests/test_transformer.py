"""The Transformer block's pieces (course_lib.transformer): worked values, every backward pass
against central differences in float64 (hypothesis over shapes where cheap), RoPE's relative
property, dtypes, batch axes, inputs left unmodified, and errors in the course's words."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_mask, multi_head_self_attention
from course_lib.training import numerical_gradient, relative_error
from course_lib.transformer import (
    BLOCK_PARAM_NAMES,
    causal_self_attention,
    causal_self_attention_backward,
    causal_self_attention_with_cache,
    feed_forward,
    feed_forward_backward,
    gelu,
    gelu_backward,
    layer_norm,
    layer_norm_backward,
    rope,
    rope_backward,
    transformer_block,
    transformer_block_backward,
    transformer_block_with_cache,
)

TOL = 1e-7  # relative error of a correct float64 gradient against central differences (~1e-9)


def _check(loss, params: dict[str, np.ndarray], analytic: dict[str, np.ndarray]) -> None:
    """Every analytic gradient within TOL of central differences of the scalar `loss` (or, for a
    gradient that is itself about 0, as LayerNorm's dx of a row of 2, within 1e-8 entry by
    entry: there the relative error measures only the differences' rounding)."""
    numerical = numerical_gradient(loss, params)
    for name in params:
        error = relative_error(analytic[name], numerical[name])
        assert error < TOL or np.allclose(analytic[name], numerical[name], rtol=0, atol=1e-8), (
            name, error)


def _block_params(rng: np.random.Generator, d_model: int, d_ff: int,
                  dtype: type = np.float64) -> dict[str, np.ndarray]:
    """A block's parameters, random and O(1) so that every path carries gradient."""
    shapes = {"W_1": (d_model, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d_model)}
    params = {}
    for name in BLOCK_PARAM_NAMES:
        shape = shapes.get(name, (d_model, d_model) if name.startswith("W") else (d_model,))
        base = 1.0 if name.endswith("gamma") else 0.0
        params[name] = (base + 0.5 * rng.standard_normal(shape)).astype(dtype)
    return params


# --- LayerNorm -----------------------------------------------------------------------------------


def test_layer_norm_worked_example() -> None:
    """x = [1, 2, 3, 6]: μ = 3, σ² = (4 + 1 + 0 + 9) / 4 = 3.5 (biased: divided by d = 4)."""
    x = np.array([1.0, 2.0, 3.0, 6.0])
    y = layer_norm(x, np.ones(4), np.zeros(4), eps=0.5)
    np.testing.assert_allclose(y, (x - 3) / math.sqrt(3.5 + 0.5))  # ε inside the √
    gamma, beta = np.array([1.0, 2.0, 1.0, 1.0]), np.array([0.0, 0.0, 10.0, 0.0])
    y = layer_norm(x, gamma, beta, eps=1e-12)
    s = math.sqrt(3.5)
    np.testing.assert_allclose(y, [-2 / s, -2 / s, 10, 3 / s])


def test_layer_norm_rows_have_mean_zero_and_variance_one() -> None:
    x = np.random.default_rng(0).normal(5, 3, size=(2, 7, 16))
    y = layer_norm(x, np.ones(16), np.zeros(16), eps=1e-12)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 3), min_size=0, max_size=2),
       st.integers(2, 6))
def test_layer_norm_backward_matches_central_differences(seed: int, batch: list[int],
                                                         d: int) -> None:
    rng = np.random.default_rng(seed)
    x, dy = rng.standard_normal((*batch, d)), rng.standard_normal((*batch, d))
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    dx, dgamma, dbeta = layer_norm_backward(x, gamma, dy)
    _check(lambda p: np.sum(layer_norm(p["x"], p["gamma"], p["beta"]) * dy),
           {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta})


def test_layer_norm_errors_name_the_vector() -> None:
    with pytest.raises(ValueError, match="gamma.*shape \\(d,\\)"):
        layer_norm(np.ones((2, 4)), np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match="beta"):
        layer_norm(np.ones((2, 4)), np.ones(4), np.zeros(5))
    with pytest.raises(ValueError, match="dy"):
        layer_norm_backward(np.ones((2, 4)), np.ones(4), np.ones((4, 2)))


# --- GELU and the feed-forward network -----------------------------------------------------------


def test_gelu_is_close_to_x_phi_x() -> None:
    """The tanh form approximates x Φ(x) (Hendrycks and Gimpel 2016) to within 1e-3."""
    x = np.linspace(-6, 6, 241)
    phi = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(gelu(x), x * phi, atol=1e-3)
    assert gelu(np.array(0.0)) == 0.0
    np.testing.assert_allclose(gelu(np.array([-10.0, 10.0])), [0.0, 10.0], atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_gelu_backward_matches_central_differences(seed: int, shape: list[int]) -> None:
    rng = np.random.default_rng(seed)
    x, dy = 3 * rng.standard_normal(shape), rng.standard_normal(shape)
    _check(lambda p: np.sum(gelu(p["x"]) * dy), {"x": x}, {"x": gelu_backward(x, dy)})


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 3), min_size=0, max_size=1),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 6))
def test_feed_forward_backward_matches_central_differences(seed: int, batch: list[int], n: int,
                                                           d_model: int, d_ff: int) -> None:
    rng = np.random.default_rng(seed)
    params = {"X": rng.standard_normal((*batch, n, d_model)),
              "W_1": rng.standard_normal((d_model, d_ff)), "b_1": rng.standard_normal(d_ff),
              "W_2": rng.standard_normal((d_ff, d_model)), "b_2": rng.standard_normal(d_model)}
    dY = rng.standard_normal((*batch, n, d_model))
    grads = dict(zip(params, feed_forward_backward(*params.values(), dY), strict=True))
    _check(lambda p: np.sum(feed_forward(*p.values()) * dY), params, grads)


def test_feed_forward_is_the_formula_row_by_row() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 5, 4))
    W_1, b_1, W_2, b_2 = (rng.standard_normal(s) for s in ((4, 8), (8,), (8, 4), (4,)))
    Y = feed_forward(X, W_1, b_1, W_2, b_2)
    np.testing.assert_allclose(Y[1, 3], gelu(X[1, 3] @ W_1 + b_1) @ W_2 + b_2)
    with pytest.raises(ValueError, match="W_2 must be \\(8, 4\\)"):
        feed_forward(X, W_1, b_1, W_1, b_2)


# --- RoPE ----------------------------------------------------------------------------------------


def test_rope_rotates_pairs_by_position_times_frequency() -> None:
    """d = 4: θ_0 = 1, θ_1 = base^(−1/2) = 0.01; row p turns pair 0 by p rad, pair 1 by p/100."""
    X = np.tile([1.0, 0.0, 1.0, 0.0], (3, 1))
    Y = rope(X)
    np.testing.assert_allclose(Y[0], X[0])  # position 0: no rotation
    np.testing.assert_allclose(Y[2], [math.cos(2), math.sin(2), math.cos(0.02), math.sin(0.02)])
    np.testing.assert_allclose(np.linalg.norm(Y, axis=-1), np.linalg.norm(X, axis=-1))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(0, 200))
def test_rope_scores_depend_only_on_the_offset(seed: int, half_d: int, shift: int) -> None:
    """The property that makes RoPE relative: q rotated to p and k to r give the same q · k as
    at p + s and r + s, for any shift s; without RoPE's rotation of both, they would differ."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, 1, 2 * half_d))
    p, r = rng.integers(0, 100, size=2)
    score = (rope(q, [p]) @ rope(k, [r]).T).item()
    shifted = (rope(q, [p + shift]) @ rope(k, [r + shift]).T).item()
    assert shifted == pytest.approx(score, rel=1e-9, abs=1e-9)


def test_rope_is_not_the_identity_on_scores() -> None:
    """The score changes with the offset p − r (else the property above would be empty)."""
    q, k = np.random.default_rng(1).standard_normal((2, 1, 8))
    scores = [(rope(q, [5]) @ rope(k, [5 - offset]).T).item() for offset in range(4)]
    assert len({round(s, 6) for s in scores}) == 4


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 3), min_size=0, max_size=2),
       st.integers(1, 5), st.integers(1, 3))
def test_rope_backward_matches_central_differences(seed: int, batch: list[int], n: int,
                                                   half_d: int) -> None:
    rng = np.random.default_rng(seed)
    X, dY = rng.standard_normal((2, *batch, n, 2 * half_d))
    positions = rng.integers(0, 50, size=n)
    _check(lambda p: np.sum(rope(p["X"], positions) * dY), {"X": X},
           {"X": rope_backward(dY, positions)})
    np.testing.assert_allclose(rope_backward(rope(X, positions), positions), X, atol=1e-12)


def test_rope_refuses_an_odd_width() -> None:
    with pytest.raises(ValueError, match="must be even"):
        rope(np.ones((3, 5)))
    with pytest.raises(ValueError, match="positions"):
        rope(np.ones((3, 4)), positions=[0, 1])


# --- causal multi-head attention -----------------------------------------------------------------


def test_causal_attention_is_the_courses_multi_head_attention_with_a_causal_mask() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((2, 5, 8))
    W_Q, W_K, W_V, W_O = rng.standard_normal((4, 8, 8))
    O, weights = causal_self_attention(X, W_Q, W_K, W_V, W_O, 2)
    expected = multi_head_self_attention(X, W_Q, W_K, W_V, W_O, 2, causal_mask(5))
    np.testing.assert_allclose(O, expected[0], atol=1e-12)
    np.testing.assert_allclose(weights, expected[1], atol=1e-12)
    assert np.all(np.triu(weights, k=1) == 0)  # no token looks ahead


@pytest.mark.parametrize("use_rope", [False, True])
@pytest.mark.parametrize(("batch", "n", "d_model", "n_heads"),
                         [((), 4, 4, 2), ((2,), 3, 8, 4), ((2, 1), 5, 6, 1)])
def test_causal_attention_backward_matches_central_differences(
        use_rope: bool, batch: tuple[int, ...], n: int, d_model: int, n_heads: int) -> None:
    rng = np.random.default_rng(n * d_model + n_heads)
    params = {"X": rng.standard_normal((*batch, n, d_model)),
              **{name: rng.standard_normal((d_model, d_model)) for name in
                 ("W_Q", "W_K", "W_V", "W_O")}}
    dO = rng.standard_normal((*batch, n, d_model))
    grads = causal_self_attention_backward(*params.values(), n_heads, dO, rope=use_rope)
    _check(lambda p: np.sum(causal_self_attention(*p.values(), n_heads, rope=use_rope)[0] * dO),
           params, dict(zip(params, grads, strict=True)))


# --- the block -----------------------------------------------------------------------------------


def test_block_is_pre_norm_residual_composition_of_the_pieces() -> None:
    """Y = H + FFN(LN_2(H)) with H = X + MHA(LN_1(X)), written with the public pieces."""
    rng = np.random.default_rng(5)
    X, p = rng.standard_normal((2, 6, 8)), _block_params(rng, 8, 12)
    for use_rope in (False, True):
        A = causal_self_attention(layer_norm(X, p["ln1_gamma"], p["ln1_beta"]), p["W_Q"],
                                  p["W_K"], p["W_V"], p["W_O"], 2, rope=use_rope)[0]
        H = X + A
        Y = H + feed_forward(layer_norm(H, p["ln2_gamma"], p["ln2_beta"]), p["W_1"], p["b_1"],
                             p["W_2"], p["b_2"])
        np.testing.assert_allclose(transformer_block(X, p, 2, rope=use_rope), Y, atol=1e-12)


@pytest.mark.parametrize("use_rope", [False, True])
@pytest.mark.parametrize(("batch", "n", "d_model", "n_heads", "d_ff"),
                         [((), 3, 4, 2, 6), ((2,), 4, 4, 1, 3)])
def test_block_backward_matches_central_differences(use_rope: bool, batch: tuple[int, ...],
                                                    n: int, d_model: int, n_heads: int,
                                                    d_ff: int) -> None:
    rng = np.random.default_rng(n + d_ff)
    X, p = rng.standard_normal((*batch, n, d_model)), _block_params(rng, d_model, d_ff)
    dY = rng.standard_normal(X.shape)
    dX, grads = transformer_block_backward(X, p, n_heads, dY, rope=use_rope)

    def loss(q: dict[str, np.ndarray]) -> float:
        block = {name: q[name] for name in BLOCK_PARAM_NAMES}
        return np.sum(transformer_block(q["X"], block, n_heads, rope=use_rope) * dY)

    _check(loss, {"X": X, **p}, {"X": dX, **grads})


@pytest.mark.parametrize("use_rope", [False, True])
def test_block_with_past_keys_and_values_gives_the_same_rows(use_rope: bool) -> None:
    """The KV cache's step: the last rows computed with the first rows' K and V as `past`
    equal the same rows of the whole sequence."""
    rng = np.random.default_rng(6)
    X, p = rng.standard_normal((7, 8)), _block_params(rng, 8, 16)
    Y_all = transformer_block(X, p, 2, rope=use_rope)
    _, first = transformer_block_with_cache(X[:4], p, 2, rope=use_rope)
    past = (first.attention.K, first.attention.V)
    Y_rest, rest = transformer_block_with_cache(X[4:], p, 2, rope=use_rope, past=past)
    np.testing.assert_allclose(Y_rest, Y_all[4:], atol=1e-12)
    assert rest.attention.K.shape == (2, 7, 4)  # the past's 4 keys and the 3 new ones


def test_float32_in_float32_out_and_inputs_unmodified() -> None:
    rng = np.random.default_rng(7)
    X, p = rng.standard_normal((2, 5, 8)).astype(np.float32), _block_params(rng, 8, 16, np.float32)
    dY = rng.standard_normal(X.shape).astype(np.float32)
    copies = {"X": X.copy(), "dY": dY.copy(), **{k: v.copy() for k, v in p.items()}}
    for use_rope in (False, True):
        assert transformer_block(X, p, 2, rope=use_rope).dtype == np.float32
        dX, grads = transformer_block_backward(X, p, 2, dY, rope=use_rope)
        assert dX.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    g = np.ones(8, np.float32)
    assert layer_norm(X, g, g).dtype == np.float32
    assert all(a.dtype == np.float32 for a in layer_norm_backward(X, g, dY))
    assert gelu(X).dtype == gelu_backward(X, dY).dtype == np.float32
    assert rope(X).dtype == rope_backward(X).dtype == np.float32
    assert causal_self_attention_with_cache(X, *(p[n] for n in ("W_Q", "W_K", "W_V", "W_O")),
                                            2)[0].dtype == np.float32
    for name, original in copies.items():
        current = {"X": X, "dY": dY, **p}[name]
        np.testing.assert_array_equal(current, original, err_msg=name)


def test_float32_agrees_with_float64() -> None:
    rng = np.random.default_rng(8)
    X, p = rng.standard_normal((2, 5, 8)), _block_params(rng, 8, 16)
    Y32 = transformer_block(X.astype(np.float32), {k: v.astype(np.float32) for k, v in p.items()},
                            2, rope=True)
    np.testing.assert_allclose(Y32, transformer_block(X, p, 2, rope=True), rtol=1e-4, atol=1e-4)


def test_block_errors_in_the_courses_words() -> None:
    rng = np.random.default_rng(9)
    p = _block_params(rng, 8, 16)
    with pytest.raises(ValueError, match="n_heads = 3 does not divide d_model = 8"):
        transformer_block(np.ones((4, 8)), p, 3)
    with pytest.raises(ValueError, match="lack W_O"):
        transformer_block(np.ones((4, 8)), {k: v for k, v in p.items() if k != "W_O"}, 2)
    with pytest.raises(ValueError, match="W_2 must be \\(16, 8\\)"):
        transformer_block(np.ones((4, 8)), {**p, "W_2": np.ones((8, 16))}, 2)
    with pytest.raises(ValueError, match="dY"):
        transformer_block_backward(np.ones((4, 8)), p, 2, np.ones((8, 4)))
    with pytest.raises(ValueError, match="must be even"):
        transformer_block(np.ones((4, 6)), _block_params(rng, 6, 8), 2, rope=True)


def test_float16_is_computed_in_float32_and_returned_in_float16() -> None:
    """As the attention functions do (`shapes.compute_dtype`): float16 in, float16 out, the
    sums and statistics in float32, so the result is float64's rounded once (within float16's
    spacing, about 1e-3 relative)."""
    rng = np.random.default_rng(10)
    X, p = rng.standard_normal((2, 5, 8)), _block_params(rng, 8, 16)
    half = {k: v.astype(np.float16) for k, v in p.items()}
    X16 = X.astype(np.float16)
    for result, exact in [
        (layer_norm(X16, half["ln1_gamma"], half["ln1_beta"]),
         layer_norm(X16.astype(np.float64), *(half[k].astype(np.float64)
                                              for k in ("ln1_gamma", "ln1_beta")))),
        (gelu(X16), gelu(X16.astype(np.float64))),
        (rope(X16, np.arange(5) * 100), rope(X16.astype(np.float64), np.arange(5) * 100)),
        (transformer_block(X16, half, 2, rope=True),
         transformer_block(X16.astype(np.float64), {k: v.astype(np.float64) for k, v in
                                                    half.items()}, 2, rope=True)),
    ]:
        assert result.dtype == np.float16
        np.testing.assert_allclose(result, exact, rtol=5e-3, atol=5e-3)
