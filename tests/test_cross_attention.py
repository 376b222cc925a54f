"""Cross-attention (queries from one sequence, keys and values from another) and the decoder's
block: against a loop oracle written here, against PyTorch where installed (n_q != n_k, padding
masks), every backward pass against central differences (float64), the encoder's block
(causal=False, padding mask), dtypes, inputs left unmodified, errors in the course's words."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    cross_attention,
    cross_attention_backward,
    multi_head_self_attention,
    padding_mask,
    self_attention,
)
from course_lib.shapes import BLOCK_PARAM_NAMES
from course_lib.training import numerical_gradient, relative_error
from course_lib.transformer import (
    DECODER_PARAM_NAMES,
    causal_self_attention,
    causal_self_attention_backward,
    decoder_block,
    decoder_block_backward,
    multi_head_cross_attention,
    multi_head_cross_attention_backward,
    transformer_block,
    transformer_block_backward,
)

TOL = 1e-7


def cross_attention_loops(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    """The oracle: o_i = Σ_j α_ij v_j, α_ij = exp(q_i · k_j / √d_k) / Σ_k ..., loops over i, j,
    one sequence (no batch axes); mask (n_q, n_k), True = may attend."""
    n_q, n_k, d_k = X_q.shape[0], X_kv.shape[0], W_Q.shape[1]
    O = np.zeros((n_q, W_V.shape[1]))
    weights = np.zeros((n_q, n_k))
    for i in range(n_q):
        q_i = X_q[i] @ W_Q
        scores = [np.dot(q_i, X_kv[j] @ W_K) / math.sqrt(d_k)
                  if mask is None or mask[i, j] else -math.inf for j in range(n_k)]
        m = max(scores)
        if m == -math.inf:
            continue
        e = [math.exp(a - m) for a in scores]
        for j in range(n_k):
            weights[i, j] = e[j] / sum(e)
            O[i] += weights[i, j] * (X_kv[j] @ W_V)
    return O, weights


def _inputs(rng, n_q=3, n_k=5, d_model=4, d_k=3, d_v=2, batch=()):
    return (rng.standard_normal((*batch, n_q, d_model)),
            rng.standard_normal((*batch, n_k, d_model)),
            rng.standard_normal((d_model, d_k)), rng.standard_normal((d_model, d_k)),
            rng.standard_normal((d_model, d_v)))


def _check(loss, params, analytic):
    """Every analytic gradient within TOL of central differences (or, for a gradient that is
    itself about 0, within 1e-8 entry by entry: there the relative error measures rounding)."""
    numerical = numerical_gradient(loss, params)
    for name in params:
        error = relative_error(analytic[name], numerical[name])
        assert error < TOL or np.allclose(analytic[name], numerical[name], rtol=0, atol=1e-8), (
            name, error)


# --- cross_attention, one head -------------------------------------------------------------------


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 6), st.booleans())
@settings(max_examples=25, deadline=None)
def test_cross_attention_matches_the_loop_oracle(seed, n_q, n_k, masked) -> None:
    rng = np.random.default_rng(seed)
    X_q, X_kv, W_Q, W_K, W_V = _inputs(rng, n_q, n_k)
    mask = rng.random((n_q, n_k)) < 0.7 if masked else None
    O, weights = cross_attention(X_q, X_kv, W_Q, W_K, W_V, mask)
    O_loops, weights_loops = cross_attention_loops(X_q, X_kv, W_Q, W_K, W_V, mask)
    assert O.shape == (n_q, W_V.shape[1]) and weights.shape == (n_q, n_k)
    assert np.allclose(O, O_loops) and np.allclose(weights, weights_loops)


def test_the_rectangle_rows_sum_to_one_over_the_keys() -> None:
    rng = np.random.default_rng(1)
    _, weights = cross_attention(*_inputs(rng, n_q=2, n_k=7))
    assert weights.shape == (2, 7) and np.allclose(weights.sum(axis=-1), 1)


def test_cross_attention_of_a_sequence_with_itself_is_self_attention() -> None:
    rng = np.random.default_rng(2)
    X, _, W_Q, W_K, W_V = _inputs(rng, n_q=4)
    for a, b in zip(cross_attention(X, X, W_Q, W_K, W_V), self_attention(X, W_Q, W_K, W_V),
                    strict=True):
        assert np.allclose(a, b)


def test_a_padding_mask_blocks_the_padded_keys_of_each_sequence() -> None:
    rng = np.random.default_rng(3)
    X_q, X_kv, W_Q, W_K, W_V = _inputs(rng, n_q=3, n_k=5, batch=(2,))
    is_token = np.array([[True] * 5, [True, True, True, False, False]])
    O, weights = cross_attention(X_q, X_kv, W_Q, W_K, W_V, padding_mask(is_token))
    assert np.all(weights[1, :, 3:] == 0)
    short = cross_attention(X_q[1], X_kv[1, :3], W_Q, W_K, W_V)[0]  # the same without padding
    assert np.allclose(O[1], short)


def test_cross_attention_keeps_float32_and_leaves_its_inputs_alone() -> None:
    rng = np.random.default_rng(4)
    inputs = [a.astype(np.float32) for a in _inputs(rng, batch=(2,))]
    copies = [a.copy() for a in inputs]
    O, weights = cross_attention(*inputs)
    grads = cross_attention_backward(*inputs, np.ones_like(O))
    assert O.dtype == weights.dtype == np.float32
    assert all(g.dtype == np.float32 and g.shape == a.shape for g, a in zip(grads, inputs,
                                                                            strict=True))
    assert all(np.array_equal(a, c) for a, c in zip(inputs, copies, strict=True))


def test_cross_attention_names_the_mismatch() -> None:
    rng = np.random.default_rng(5)
    X_q, X_kv, W_Q, W_K, W_V = _inputs(rng)
    with pytest.raises(ValueError, match="same width d_model"):
        cross_attention(X_q, X_kv[:, :3], W_Q, W_K, W_V)
    with pytest.raises(ValueError, match=r"\(n_q, n_k\)"):
        cross_attention(X_q, X_kv, W_Q, W_K, W_V, np.ones((5, 3), dtype=bool))


@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 4), st.booleans(),
       st.booleans())
@settings(max_examples=15, deadline=None)
def test_cross_attention_backward_matches_central_differences(seed, n_q, n_k, batched,
                                                              shared_kv) -> None:
    rng = np.random.default_rng(seed)
    X_q, X_kv, W_Q, W_K, W_V = _inputs(rng, n_q, n_k, batch=(2,) if batched else ())
    if batched and shared_kv:
        X_kv = X_kv[0]  # one source for the whole batch: its gradient sums the copies'
    mask = rng.random((n_q, n_k)) < 0.8
    mask[:, 0] = True
    dO = rng.standard_normal(cross_attention(X_q, X_kv, W_Q, W_K, W_V)[0].shape)
    params = {"X_q": X_q, "X_kv": X_kv, "W_Q": W_Q, "W_K": W_K, "W_V": W_V}

    def loss(p):
        return np.sum(cross_attention(p["X_q"], p["X_kv"], p["W_Q"], p["W_K"], p["W_V"],
                                      mask)[0] * dO)

    analytic = dict(zip(params, cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, dO, mask),
                        strict=True))
    _check(loss, params, analytic)


# --- multi-head cross-attention, the encoder's and the decoder's blocks -------------------------


def _heads(rng, d_model=4):
    return [rng.standard_normal((d_model, d_model)) for _ in range(4)]


def test_multi_head_cross_attention_is_cross_attention_per_head() -> None:
    rng = np.random.default_rng(6)
    X_q, X_kv = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    W_Q, W_K, W_V, W_O = _heads(rng)
    O, weights = multi_head_cross_attention(X_q, X_kv, W_Q, W_K, W_V, W_O, 2)
    heads = [cross_attention(X_q, X_kv, W_Q[:, h], W_K[:, h], W_V[:, h])
             for h in (slice(0, 2), slice(2, 4))]
    assert weights.shape == (2, 3, 5)
    assert np.allclose(weights, np.stack([w for _, w in heads]))
    assert np.allclose(O, np.concatenate([o for o, _ in heads], axis=-1) @ W_O)


def test_multi_head_cross_attention_backward_matches_central_differences() -> None:
    rng = np.random.default_rng(7)
    X_q, X_kv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    W_Q, W_K, W_V, W_O = _heads(rng)
    mask = padding_mask(np.array([[True] * 5, [True, True, False, False, False]]))
    dO = rng.standard_normal((2, 3, 4))
    params = {"X_q": X_q, "X_kv": X_kv, "W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O}

    def loss(p):
        return np.sum(multi_head_cross_attention(p["X_q"], p["X_kv"], p["W_Q"], p["W_K"],
                                                 p["W_V"], p["W_O"], 2, mask)[0] * dO)

    analytic = dict(zip(params, multi_head_cross_attention_backward(
        X_q, X_kv, W_Q, W_K, W_V, W_O, 2, dO, mask), strict=True))
    _check(loss, params, analytic)


def test_without_the_causal_mask_the_block_attention_is_bidirectional() -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2, 4, 4))
    W_Q, W_K, W_V, W_O = _heads(rng)
    O, weights = causal_self_attention(X, W_Q, W_K, W_V, W_O, 2, causal=False)
    O_ref, weights_ref = multi_head_self_attention(X, W_Q, W_K, W_V, W_O, 2)
    assert np.allclose(O, O_ref) and np.allclose(weights, weights_ref)
    assert np.all(weights[..., 0, 1:] > 0)  # the first token sees the later ones


def _block(rng, names, d_model=4, d_ff=6):
    shapes = {"W_1": (d_model, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d_model)}
    params = {}
    for name in names:
        shape = shapes.get(name, (d_model,) if name.endswith(("gamma", "beta")) or name == "b_2"
                           else (d_model, d_model))
        params[name] = (float(name.endswith("gamma")) + 0.5 * rng.standard_normal(shape))
    return params


def test_the_encoder_block_with_a_padding_mask_ignores_the_padding() -> None:
    rng = np.random.default_rng(9)
    params = _block(rng, BLOCK_PARAM_NAMES)
    X = rng.standard_normal((2, 5, 4))
    is_token = np.array([[True] * 5, [True, True, True, False, False]])
    Y = transformer_block(X, params, 2, causal=False, mask=padding_mask(is_token))
    alone = transformer_block(X[1:, :3], params, 2, causal=False)
    assert np.allclose(Y[1, :3], alone[0])


def test_the_encoder_block_backward_matches_central_differences() -> None:
    rng = np.random.default_rng(10)
    params = _block(rng, BLOCK_PARAM_NAMES)
    X = rng.standard_normal((2, 4, 4))
    mask = padding_mask(np.array([[True] * 4, [True, True, False, False]]))
    dY = rng.standard_normal(X.shape)
    dX, grads = transformer_block_backward(X, params, 2, dY, causal=False, mask=mask)
    every = {"X": X, **params}

    def loss(p):
        return np.sum(transformer_block(p["X"], {k: p[k] for k in BLOCK_PARAM_NAMES}, 2,
                                        causal=False, mask=mask) * dY)

    _check(loss, every, {"X": dX, **grads})


def test_the_attention_backward_takes_the_same_mask_options() -> None:
    rng = np.random.default_rng(11)
    X = rng.standard_normal((2, 3, 4))
    W = _heads(rng)
    mask = padding_mask(np.array([[True] * 3, [True, False, False]]))
    dO = rng.standard_normal(X.shape)
    grads = causal_self_attention_backward(X, *W, 2, dO, causal=False, mask=mask)
    params = {"X": X, "W_Q": W[0], "W_K": W[1], "W_V": W[2], "W_O": W[3]}

    def loss(p):
        return np.sum(causal_self_attention(p["X"], p["W_Q"], p["W_K"], p["W_V"], p["W_O"], 2,
                                            causal=False, mask=mask)[0] * dO)

    _check(loss, params, dict(zip(params, grads, strict=True)))


def test_the_decoder_block_backward_matches_central_differences() -> None:
    rng = np.random.default_rng(12)
    params = _block(rng, DECODER_PARAM_NAMES)
    X, memory = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    mask = padding_mask(np.array([[True] * 5, [True, True, False, False, False]]))
    dY = rng.standard_normal(X.shape)
    dX, dmemory, grads = decoder_block_backward(X, memory, params, 2, dY, mask)
    every = {"X": X, "memory": memory, **params}

    def loss(p):
        return np.sum(decoder_block(p["X"], p["memory"], {k: p[k] for k in DECODER_PARAM_NAMES},
                                    2, mask) * dY)

    _check(loss, every, {"X": dX, "memory": dmemory, **grads})


def test_the_decoder_block_is_causal_on_the_target_and_sees_the_whole_source() -> None:
    rng = np.random.default_rng(13)
    params = _block(rng, DECODER_PARAM_NAMES)
    X, memory = rng.standard_normal((4, 4)), rng.standard_normal((6, 4))
    Y = decoder_block(X, memory, params, 2)
    later = X.copy()
    later[3] += 1.0  # change the last target token: the earlier rows must not move
    assert np.allclose(decoder_block(later, memory, params, 2)[:3], Y[:3])
    moved = memory.copy()
    moved[5] += 1.0  # change the last source word: every row may move
    assert not np.allclose(decoder_block(X, moved, params, 2)[0], Y[0])


def test_the_decoder_block_refuses_missing_cross_attention_parameters() -> None:
    rng = np.random.default_rng(14)
    params = _block(rng, BLOCK_PARAM_NAMES)
    with pytest.raises(ValueError, match="cross_W_Q"):
        decoder_block(rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), params, 2)


# --- against PyTorch -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip(
        "torch", reason="the PyTorch bridge needs the 'bridge' extra: pip install -e "
        "'.[bridge]' (torch==2.13.0, a CPU build)")


def test_cross_attention_agrees_with_scaled_dot_product_attention(torch) -> None:
    rng = np.random.default_rng(15)
    X_q, X_kv, W_Q, W_K, W_V = _inputs(rng, n_q=3, n_k=6, batch=(2,))
    is_token = np.array([[True] * 6, [True] * 4 + [False] * 2])
    mask = padding_mask(is_token)
    dO = rng.standard_normal((2, 3, W_V.shape[1]))
    t = {name: torch.tensor(a, requires_grad=True)
         for name, a in {"X_q": X_q, "X_kv": X_kv, "W_Q": W_Q, "W_K": W_K, "W_V": W_V}.items()}
    O_t = torch.nn.functional.scaled_dot_product_attention(
        t["X_q"] @ t["W_Q"], t["X_kv"] @ t["W_K"], t["X_kv"] @ t["W_V"],
        attn_mask=torch.from_numpy(mask))  # the same convention: True = may attend
    (O_t * torch.from_numpy(dO)).sum().backward()
    O, _ = cross_attention(X_q, X_kv, W_Q, W_K, W_V, mask)
    grads = cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, dO, mask)
    assert np.allclose(O, O_t.detach().numpy())
    for name, g in zip(t, grads, strict=True):
        assert np.allclose(g, t[name].grad.numpy()), name


def test_multi_head_cross_attention_agrees_with_multihead_attention(torch) -> None:
    rng = np.random.default_rng(16)
    d_model, n_heads = 8, 2
    X_q, X_kv = rng.standard_normal((2, 3, d_model)), rng.standard_normal((2, 6, d_model))
    W_Q, W_K, W_V, W_O = (rng.standard_normal((d_model, d_model)) for _ in range(4))
    is_token = np.array([[True] * 6, [True] * 4 + [False] * 2])
    dO = rng.standard_normal((2, 3, d_model))
    mha = torch.nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True,
                                      dtype=torch.float64)
    with torch.no_grad():  # nn.Linear computes x Wᵀ: the course's W is copied as Wᵀ
        mha.in_proj_weight.copy_(torch.from_numpy(np.concatenate([W_Q.T, W_K.T, W_V.T])))
        mha.out_proj.weight.copy_(torch.from_numpy(W_O.T))
    q = torch.tensor(X_q, requires_grad=True)
    kv = torch.tensor(X_kv, requires_grad=True)
    O_t, weights_t = mha(q, kv, kv, key_padding_mask=torch.from_numpy(~is_token),
                         average_attn_weights=False)  # True = padding: the course's inverted
    (O_t * torch.from_numpy(dO)).sum().backward()
    mask = padding_mask(is_token)
    O, weights = multi_head_cross_attention(X_q, X_kv, W_Q, W_K, W_V, W_O, n_heads, mask)
    dX_q, dX_kv, *_, dW_O = multi_head_cross_attention_backward(X_q, X_kv, W_Q, W_K, W_V, W_O,
                                                                n_heads, dO, mask)
    assert np.allclose(O, O_t.detach().numpy()) and np.allclose(weights, weights_t.detach())
    assert np.allclose(dX_q, q.grad.numpy()) and np.allclose(dX_kv, kv.grad.numpy())
    assert np.allclose(dW_O, mha.out_proj.weight.grad.numpy().T)
