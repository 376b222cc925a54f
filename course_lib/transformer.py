"""The Transformer block around attention, forward and backward, in plain numpy.

A pre-norm block (GPT-2; Radford et al. 2019, section 2.3), X of shape (..., n, d_model):

    H = X + MHA(LN_1(X))          attention, with a residual connection     (..., n, d_model)
    Y = H + FFN(LN_2(H))          the position-wise network, with a residual (..., n, d_model)

Its pieces, each with its backward pass (the gradient of a scalar loss L given dY = ∂L/∂Y):

    LN(x)   = γ ⊙ (x − μ) / √(σ² + ε) + β       over the last axis; μ, σ² the mean and biased
                                                variance of x's d features (Ba et al. 2016)
    GELU(z) = ½ z (1 + tanh(√(2/π) (z + 0.044715 z³)))     GPT-2's tanh approximation of
                                                z Φ(z) (Hendrycks and Gimpel 2016)
    FFN(X)  = GELU(X W_1 + b_1) W_2 + b_2       d_model -> d_ff -> d_model, row by row
    MHA(X)  = concat(head_0, ..., head_{h−1}) W_O,
              head_h = softmax(Q_h K_hᵀ / √d_head, causal mask) V_h
    RoPE    rotates each pair of features (2i, 2i + 1) of a query or key at position p by the
            angle p θ_i, θ_i = base^(−2i / d) (Su et al. 2021, RoFormer); then q_p · k_r
            depends on p and r only through p − r.

The residual connections make the backward pass a sum: dX = dH + LN_1'ᵀ MHA'ᵀ dH with
dH = dY + LN_2'ᵀ FFN'ᵀ dY. Every function keeps the input's float dtype (float32 in, float32
out; float16 is computed in float32), accepts leading batch axes, never modifies its inputs,
makes one input check call at its top (`course_lib.shapes`), then writes out the formula with
the shape of each line. The attention reuses `course_lib.attention`: `attention_weights`,
`causal_mask`, `softmax_backward`.

For training, `transformer_block_with_cache` returns with Y what the backward pass needs
(`BlockCache`), so that `transformer_block_backward_cached` recomputes nothing;
`transformer_block` and `transformer_block_backward` are the plain forms. A block's
parameters are a dict with the names `BLOCK_PARAM_NAMES` (no biases in the attention, as in
`attention.multi_head_self_attention`).

The encoder-decoder's pieces (Vaswani et al. 2017, section 3.1; `course_lib.seq2seq`): with
causal=False and a padding mask, the same block is an encoder's (every word sees every word,
none sees padding); `multi_head_cross_attention` takes its queries from one sequence and its
keys and values from another; `decoder_block` adds it between the causal self-attention and
the feed-forward network:  H_1 = X + MHA(LN_1(X)),  H_2 = H_1 + CrossMHA(LN_x(H_1), memory),
Y = H_2 + FFN(LN_2(H_2)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from course_lib.attention import (
    attention_weights,
    causal_mask,
    merge_heads,
    softmax_backward,
    split_heads,
)
from course_lib.shapes import (
    BLOCK_PARAM_NAMES,
    as_float_array,
    check_block_params,
    check_cross,
    check_feed_forward,
    check_gradient,
    check_heads,
    check_layer_norm,
    check_positive,
    check_projections,
    check_rope,
    compute_dtype,
    float_dtype,
    sum_over_batch,
    sum_to_shape,
)

__all__ = [
    "BLOCK_PARAM_NAMES",
    "layer_norm",
    "layer_norm_backward",
    "gelu",
    "gelu_backward",
    "feed_forward",
    "feed_forward_backward",
    "rope",
    "rope_backward",
    "causal_self_attention",
    "causal_self_attention_backward",
    "transformer_block",
    "transformer_block_backward",
    "LayerNormCache",
    "layer_norm_with_cache",
    "layer_norm_backward_cached",
    "AttentionCache",
    "BlockCache",
    "causal_self_attention_with_cache",
    "causal_self_attention_backward_cached",
    "transformer_block_with_cache",
    "transformer_block_backward_cached",
    "CrossAttentionCache",
    "multi_head_cross_attention",
    "multi_head_cross_attention_with_cache",
    "multi_head_cross_attention_backward",
    "multi_head_cross_attention_backward_cached",
    "CROSS_PARAM_NAMES",
    "DECODER_PARAM_NAMES",
    "DecoderBlockCache",
    "decoder_block",
    "decoder_block_with_cache",
    "decoder_block_backward",
    "decoder_block_backward_cached",
]

BlockParams = Mapping[str, np.ndarray]

GELU_C = math.sqrt(2 / math.pi)  # √(2/π), a Python float: keeps float32 arrays float32
GELU_A = 0.044715


# --- LayerNorm -------------------------------------------------------------------------------


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis: y = γ ⊙ (x − μ) / √(σ² + ε) + β.

    μ = mean of x's d features, σ² = their biased variance (divided by d, not d − 1), ε inside
    the square root, as torch.nn.LayerNorm (Ba, Kiros and Hinton 2016). Each row (token) is
    normalised on its own; γ and β (d,) are learned, shared by every row.
    Shapes: x (..., d), gamma and beta (d,) -> y (..., d). Raises ValueError for shapes that
    do not fit.
    """
    y, _ = layer_norm_with_cache(x, gamma, beta, eps)
    return y.astype(float_dtype(np.asarray(x), np.asarray(gamma), np.asarray(beta)), copy=False)


@dataclass
class LayerNormCache:
    """What LayerNorm's backward pass needs: x̂ = (x − μ) / √(σ² + ε) (..., d) and
    1 / √(σ² + ε) (..., 1)."""

    x_hat: np.ndarray
    inv_std: np.ndarray


def layer_norm_with_cache(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                          eps: float = 1e-5) -> tuple[np.ndarray, LayerNormCache]:
    """`layer_norm`, also returning its `LayerNormCache`; y in the dtype the math runs in."""
    x, gamma, beta, _ = check_layer_norm(x, gamma, beta)
    eps = check_positive(eps, "eps")
    mu = x.mean(axis=-1, keepdims=True)  # μ, (..., 1)
    centred = x - mu  # x − μ, (..., d)
    var = np.mean(centred * centred, axis=-1, keepdims=True)  # σ², biased, (..., 1)
    inv_std = 1 / np.sqrt(var + eps)  # 1 / √(σ² + ε), (..., 1)
    x_hat = centred * inv_std  # (..., d)
    y = gamma * x_hat + beta  # (..., d)
    return y, LayerNormCache(x_hat, inv_std)


def layer_norm_backward(
    x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of a scalar loss L through y = layer_norm(x, gamma, beta, eps).

    With x̂ = (x − μ) / √(σ² + ε), y = γ ⊙ x̂ + β and dy = ∂L/∂y, per row of d features:

        dβ = Σ_rows dy,     dγ = Σ_rows dy ⊙ x̂,     dx̂ = dy ⊙ γ
        dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / √(σ² + ε)

    The two means are the paths through μ and σ²: every feature of a row moves the row's mean
    and variance, so each gets back a share of every other feature's gradient. (β does not
    enter the gradients: it is not an argument.)
    Shapes: x (..., d), gamma (d,), dy (..., d) -> (dx (..., d), dgamma (d,), dbeta (d,)),
    dgamma and dbeta summed over every row. Source: the chain rule through Ba et al. (2016).
    """
    x, gamma, _, dtype = check_layer_norm(x, gamma)
    dy = check_gradient(dy, "dy", x.shape, "y").astype(x.dtype, copy=False)
    _, cache = layer_norm_with_cache(x, gamma, np.zeros_like(gamma), eps)  # β: no effect
    return _in_dtype(dtype, *layer_norm_backward_cached(cache, gamma, dy))


def layer_norm_backward_cached(
    cache: LayerNormCache, gamma: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm's backward from the forward's cache: (dx, dγ, dβ), the formulas of
    `layer_norm_backward`, in the dtype the forward computed in."""
    x_hat, inv_std = cache.x_hat, cache.inv_std
    d = x_hat.shape[-1]
    dbeta = dy.reshape(-1, d).sum(axis=0)  # Σ dy, (d,)
    dgamma = (dy * x_hat).reshape(-1, d).sum(axis=0)  # Σ dy ⊙ x̂, (d,)
    dx_hat = dy * gamma  # (..., d)
    dx = (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
          - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True)) * inv_std  # (..., d)
    return dx, dgamma, dbeta


# --- GELU and the feed-forward network -------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, GPT-2's tanh approximation: ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))).

    A smooth ReLU: about x for large x, about 0 for very negative x, and x Φ(x) in between
    (Φ the standard normal CDF; Hendrycks and Gimpel 2016). torch's GELU(approximate="tanh").
    Shape: any -> the same shape and float dtype.
    """
    x = as_float_array(x, "x", 0)
    dtype = float_dtype(x)
    x = x.astype(compute_dtype(dtype), copy=False)
    t = np.tanh(GELU_C * (x + GELU_A * x * x * x))  # (...)
    y = 0.5 * x * (1 + t)  # (...)
    return y.astype(dtype, copy=False)


def gelu_backward(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy ⊙ GELU'(x), with u = √(2/π) (x + 0.044715 x³), t = tanh(u):

        GELU'(x) = ½ (1 + t) + ½ x (1 − t²) √(2/π) (1 + 3 · 0.044715 x²)

    Shapes: x and dy of the same shape -> dx of that shape, in their common float dtype.
    """
    x = as_float_array(x, "x", 0)
    dy = check_gradient(dy, "dy", x.shape, "y") if x.ndim else np.asarray(dy)
    dtype = float_dtype(x, dy)
    x, dy = (a.astype(compute_dtype(dtype), copy=False) for a in (x, dy))
    x2 = x * x  # x², (...)
    t = np.tanh(GELU_C * x * (1 + GELU_A * x2))  # tanh(u), (...)
    du = GELU_C * (1 + 3 * GELU_A * x2)  # u'(x), (...)
    slope = 0.5 * (1 + t + x * (1 - t * t) * du)  # GELU'(x), (...)
    return (dy * slope).astype(dtype, copy=False)


def feed_forward(
    X: np.ndarray, W_1: np.ndarray, b_1: np.ndarray, W_2: np.ndarray, b_2: np.ndarray
) -> np.ndarray:
    """The position-wise feed-forward network: Y = GELU(X W_1 + b_1) W_2 + b_2.

    The same two-layer network applied to every token (row) on its own (Vaswani et al. 2017,
    section 3.3, with GPT-2's GELU). Shapes: X (..., n, d_model), W_1 (d_model, d_ff),
    b_1 (d_ff,), W_2 (d_ff, d_model), b_2 (d_model,) -> Y (..., n, d_model).
    """
    X, W_1, b_1, W_2, b_2, dtype = check_feed_forward(X, W_1, b_1, W_2, b_2)
    Z = X @ W_1 + b_1  # (..., n, d_ff)
    Y = gelu(Z) @ W_2 + b_2  # (..., n, d_model)
    return Y.astype(dtype, copy=False)


def feed_forward_backward(
    X: np.ndarray, W_1: np.ndarray, b_1: np.ndarray, W_2: np.ndarray, b_2: np.ndarray,
    dY: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradients through Y = feed_forward(X, W_1, b_1, W_2, b_2), given dY = ∂L/∂Y.

    With Z = X W_1 + b_1 and G = GELU(Z):

        db_2 = Σ dY,   dW_2 = Σ Gᵀ dY,   dG = dY W_2ᵀ
        dZ = dG ⊙ GELU'(Z)
        db_1 = Σ dZ,   dW_1 = Σ Xᵀ dZ,   dX = dZ W_1ᵀ

    Shapes: as `feed_forward`, dY (..., n, d_model). Returns (dX, dW_1, db_1, dW_2, db_2) with
    the shapes of (X, W_1, b_1, W_2, b_2), the weights' gradients summed over batch axes.
    """
    X, W_1, b_1, W_2, b_2, dtype = check_feed_forward(X, W_1, b_1, W_2, b_2)
    dY = check_gradient(dY, "dY", X.shape, "Y").astype(X.dtype, copy=False)
    Z = X @ W_1 + b_1  # (..., n, d_ff)
    return _in_dtype(dtype, *_feed_forward_backward(X, Z, gelu(Z), W_1, W_2, dY))


def _feed_forward_backward(
    X: np.ndarray, Z: np.ndarray, G: np.ndarray, W_1: np.ndarray, W_2: np.ndarray,
    dY: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The feed-forward backward pass from the forward's Z and G = GELU(Z)."""
    db_2 = dY.reshape(-1, dY.shape[-1]).sum(axis=0)  # (d_model,)
    dW_2 = sum_over_batch(G, dY)  # Σ Gᵀ dY, (d_ff, d_model)
    dZ = gelu_backward(Z, dY @ W_2.T)  # dG ⊙ GELU'(Z), (..., n, d_ff)
    db_1 = dZ.reshape(-1, dZ.shape[-1]).sum(axis=0)  # (d_ff,)
    dW_1 = sum_over_batch(X, dZ)  # Σ Xᵀ dZ, (d_model, d_ff)
    dX = dZ @ W_1.T  # (..., n, d_model)
    return dX, dW_1, db_1, dW_2, db_2


# --- rotary position embeddings ----------------------------------------------------------------


def rope(X: np.ndarray, positions: np.ndarray | None = None, base: float = 10000.0) -> np.ndarray:
    """Rotary position embedding: rotate each pair of features (2i, 2i + 1) of row p by p θ_i.

        θ_i = base^(−2i / d),   i = 0 .. d/2 − 1
        [y_2i, y_2i+1] = [x_2i cos(p θ_i) − x_2i+1 sin(p θ_i),  x_2i sin(p θ_i) + x_2i+1 cos(p θ_i)]

    Applied to the queries and the keys (never the values), per head. A rotation by p θ of q
    and by r θ of k changes q · k into a function of q, k and p − r only: the scores see the
    offset between tokens, not where they are (Su et al. 2021, RoFormer, section 3.2). (GPT-NeoX
    and Hugging Face's LLaMA pair feature i with i + d/2 instead: the same rotations on
    permuted features.) Shapes: X (..., n, d) with d even; positions (n,), the position p of
    each row (None: 0, 1, ..., n − 1) -> (..., n, d). Raises ValueError for an odd d.
    """
    X, positions, dtype = check_rope(X, positions)
    return _rotate(X, positions, base, sign=1).astype(dtype, copy=False)


def rope_backward(
    dY: np.ndarray, positions: np.ndarray | None = None, base: float = 10000.0
) -> np.ndarray:
    """The gradient through Y = rope(X, positions, base): dX = the inverse rotation of dY.

    A rotation R is orthogonal, so the gradient of Y = X R is dX = dY Rᵀ = dY R⁻¹: each pair
    turned back by −p θ_i. Shapes: as `rope`.
    """
    dY, positions, dtype = check_rope(dY, positions)
    return _rotate(dY, positions, base, sign=-1).astype(dtype, copy=False)


def _rotate(X: np.ndarray, positions: np.ndarray, base: float, sign: int) -> np.ndarray:
    """Turn each pair (2i, 2i + 1) of row p by sign · p θ_i (RoPE's formula, or its inverse)."""
    base = check_positive(base, "base")
    d = X.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)  # θ_i, (d/2,)
    angle = positions[:, None] * theta  # p θ_i, (n, d/2)
    cos, sin = np.cos(angle).astype(X.dtype), (sign * np.sin(angle)).astype(X.dtype)
    x_even, x_odd = X[..., 0::2], X[..., 1::2]  # (..., n, d/2) each
    Y = np.empty_like(X)  # (..., n, d)
    Y[..., 0::2] = x_even * cos - x_odd * sin
    Y[..., 1::2] = x_even * sin + x_odd * cos
    return Y


# --- causal multi-head attention ---------------------------------------------------------------


@dataclass
class AttentionCache:
    """What causal multi-head attention's forward pass keeps for its backward pass.

    X (..., n, d_model), the input; Q, K, V (..., n_heads, n_k, d_head), split into heads, Q
    and K after RoPE when `rope`; K and V include the `past` tokens' (n_k = past + n), which is
    what a KV cache keeps; weights α (..., n_heads, n, n_k); concat (..., n, d_model), the
    heads' outputs side by side; start, the position of X's first row (the past's length).
    """

    X: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    weights: np.ndarray
    concat: np.ndarray
    rope: bool
    start: int


def causal_self_attention(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray,
    n_heads: int, *, rope: bool = False, causal: bool = True, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Causal multi-head self-attention, optionally with RoPE on the queries and keys.

    As `attention.multi_head_self_attention` with the causal mask (token i sees j <= i):
    head_h = softmax(Q_h K_hᵀ / √d_head, causal) V_h, O = concat(head_0, ...) W_O; with
    rope=True, Q_h and K_h are rotated by `rope` at positions 0 .. n − 1 before the scores.
    Shapes: X (..., n, d_model); W_Q, W_K, W_V, W_O (d_model, d_model) -> (O (..., n, d_model),
    weights (..., n_heads, n, n)).

    causal=False drops the causal mask (an encoder's, BERT's bidirectional attention); mask, a
    boolean (n, n) or a batch's key-padding mask (B, 1, n) (`attention.padding_mask`), True =
    may attend, shared by every head, is combined with the causal mask by `&`.
    """
    O, cache = causal_self_attention_with_cache(X, W_Q, W_K, W_V, W_O, n_heads, rope=rope,
                                                causal=causal, mask=mask)
    return O, cache.weights


def causal_self_attention_with_cache(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray,
    n_heads: int, *, rope: bool = False, past: tuple[np.ndarray, np.ndarray] | None = None,
    causal: bool = True, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, AttentionCache]:
    """`causal_self_attention`, also returning its `AttentionCache`; with `past`, new tokens only.

    past: the keys and values (K, V) of the tokens before X, each (..., n_heads, t, d_head),
    already rotated (a KV cache): X's rows are then positions t .. t + n − 1, each attending to
    every past token and to the new ones up to itself. Returns (O (..., n, d_model), cache);
    cache.K and cache.V are the past's with X's appended.
    """
    X, W_Q, W_K, W_V, dtype = check_projections(X, W_Q, W_K, W_V)
    n, d_model = X.shape[-2:]
    n_heads, W_O = check_heads(d_model, n_heads, W_Q, W_K, W_V, W_O)
    start = 0 if past is None else past[0].shape[-2]
    Q = split_heads(X @ W_Q, n_heads)  # (..., n_heads, n, d_head)
    K = split_heads(X @ W_K, n_heads)  # (..., n_heads, n, d_head)
    V = split_heads(X @ W_V, n_heads)  # (..., n_heads, n, d_head)
    if rope:
        positions = np.arange(start, start + n)
        Q, K = _rope_heads(Q, positions), _rope_heads(K, positions)  # (..., n_heads, n, d_head)
    if past is not None:
        K = np.concatenate([past[0].astype(K.dtype, copy=False), K], axis=-2)  # (.., start + n, ..)
        V = np.concatenate([past[1].astype(V.dtype, copy=False), V], axis=-2)
    mask = _head_mask(causal_mask(n, past=start) if causal else None,  # row i (position
                      mask)  # start + i) sees j <= start + i; & the given mask, for every head
    weights = attention_weights(Q, K, mask)  # α, (..., n_heads, n, start + n)
    concat = merge_heads(weights @ V)  # (..., n, d_model)
    O = concat @ W_O.astype(concat.dtype, copy=False)  # (..., n, d_model)
    cache = AttentionCache(X, Q, K, V, weights, concat, rope, start)
    return O.astype(dtype, copy=False), cache


def causal_self_attention_backward(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray,
    n_heads: int, dO: np.ndarray, *, rope: bool = False, causal: bool = True,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradients through O = causal_self_attention(X, W_Q, W_K, W_V, W_O, n_heads, rope,
    causal, mask)[0].

    Shapes: as the forward, dO (..., n, d_model). Returns (dX, dW_Q, dW_K, dW_V, dW_O), the
    weights' gradients summed over batch axes. The steps: `causal_self_attention_backward_cached`.
    """
    O, cache = causal_self_attention_with_cache(X, W_Q, W_K, W_V, W_O, n_heads, rope=rope,
                                                causal=causal, mask=mask)
    dO = check_gradient(dO, "dO", O.shape, "O")
    grads = causal_self_attention_backward_cached(cache, W_Q, W_K, W_V, W_O, dO)
    return _in_dtype(O.dtype, *grads)


def causal_self_attention_backward_cached(
    cache: AttentionCache, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray,
    dO: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Back through causal multi-head attention from its forward's cache, given dO = ∂L/∂O:

        O = concat W_O        ->  dW_O = Σ concatᵀ dO,  d concat = dO W_Oᵀ  (split into heads)
        head_h = α_h V_h      ->  dV_h = α_hᵀ d head_h,  dα_h = d head_h V_hᵀ
        α_h = softmax(Ã_h)    ->  dÃ_h = softmax_backward(α_h, dα_h)   (0 where masked)
        Ã_h = Q_h K_hᵀ / √d   ->  dQ_h = dÃ_h K_h / √d,  dK_h = dÃ_hᵀ Q_h / √d
        RoPE (when used)      ->  dQ_h, dK_h turned back by rope_backward
        Q, K, V = X W_{Q,K,V} ->  dX = dQ W_Qᵀ + dK W_Kᵀ + dV W_Vᵀ,  dW_Q = Σ Xᵀ dQ, ...

    Returns (dX, dW_Q, dW_K, dW_V, dW_O) in the dtype the forward computed in. Refuses a cache
    made with `past` (a KV cache is for generation; training sees whole sequences).
    """
    if cache.start:
        raise ValueError("the backward pass needs a forward without past keys and values: "
                         "train on whole sequences, use the KV cache only to generate.")
    X = cache.X
    dO = dO.astype(X.dtype, copy=False)
    dQ, dK, dV, dW_O = _heads_backward(cache.Q, cache.K, cache.V, cache.weights, cache.concat,
                                       W_O, dO)  # (..., n_heads, n, d_head) each
    if cache.rope:
        positions = np.arange(X.shape[-2])
        dQ, dK = _rope_heads(dQ, positions, True), _rope_heads(dK, positions, True)
    dQ, dK, dV = merge_heads(dQ), merge_heads(dK), merge_heads(dV)  # (..., n, d_model) each
    dX = dQ @ W_Q.T + dK @ W_K.T + dV @ W_V.T  # the three paths into X, (..., n, d_model)
    dW_Q, dW_K, dW_V = (sum_over_batch(X, dM) for dM in (dQ, dK, dV))  # Σ Xᵀ dM
    return dX.astype(X.dtype, copy=False), dW_Q, dW_K, dW_V, dW_O


def _heads_backward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, weights: np.ndarray, concat: np.ndarray,
    W_O: np.ndarray, dO: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Back from dO to the heads' queries, keys and values (self- or cross-attention alike):

        O = concat W_O        ->  dW_O = Σ concatᵀ dO,  d concat = dO W_Oᵀ  (split into heads)
        head_h = α_h V_h      ->  dV_h = α_hᵀ d head_h,  dα_h = d head_h V_hᵀ
        α_h = softmax(Ã_h)    ->  dÃ_h = softmax_backward(α_h, dα_h)   (0 where masked)
        Ã_h = Q_h K_hᵀ / √d   ->  dQ_h = dÃ_h K_h / √d,  dK_h = dÃ_hᵀ Q_h / √d

    Q (..., n_heads, n_q, d_head), K and V (..., n_heads, n_k, d_head), weights
    (..., n_heads, n_q, n_k), concat (..., n_q, d_model). Returns (dQ, dK, dV) split into heads
    and dW_O (d_model, d_model).
    """
    n_heads = Q.shape[-3]
    dW_O = sum_over_batch(concat, dO)  # Σ concatᵀ dO, (d_model, d_model)
    d_heads = split_heads(dO @ W_O.T.astype(dO.dtype), n_heads)  # (..., n_heads, n_q, d_head)
    dV = np.swapaxes(weights, -1, -2) @ d_heads  # αᵀ d head, (..., n_heads, n_k, d_head)
    d_weights = d_heads @ np.swapaxes(V, -1, -2)  # d head Vᵀ, (..., n_heads, n_q, n_k)
    d_scores = softmax_backward(weights, d_weights)  # dÃ, (..., n_heads, n_q, n_k)
    scale = 1 / math.sqrt(Q.shape[-1])  # 1 / √d_head, a Python float
    dQ = (d_scores @ K) * scale  # (..., n_heads, n_q, d_head)
    dK = (np.swapaxes(d_scores, -1, -2) @ Q) * scale  # (..., n_heads, n_k, d_head)
    return dQ, dK, dV, dW_O


def _head_mask(causal: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
    """The mask every head shares: the causal mask (n, n) (or None) & `mask` ((n_q, n_k), or a
    batch's (B, 1, n_k) padding mask, given an axis for the heads: (B, 1, 1, n_k))."""
    if mask is None:
        return causal
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be boolean (True = may attend); got dtype {mask.dtype}.")
    if mask.ndim > 2:
        mask = np.expand_dims(mask, -3)  # (..., n_q, n_k) -> (..., 1, n_q, n_k): every head
    return mask if causal is None else causal & mask


def _rope_heads(M: np.ndarray, positions: np.ndarray, inverse: bool = False) -> np.ndarray:
    """`rope` (or `rope_backward`) on every head of M (..., n_heads, n, d_head). (In the callers,
    the flag `rope` hides the function of that name.)"""
    return rope_backward(M, positions) if inverse else rope(M, positions)


# --- the block -------------------------------------------------------------------------------


@dataclass
class BlockCache:
    """What a block's forward pass keeps for its backward pass: the input X, the two
    LayerNorms' caches, the attention's cache, and the feed-forward network's input LN_2(H),
    pre-activation Z = LN_2(H) W_1 + b_1 and G = GELU(Z)."""

    X: np.ndarray
    ln1: LayerNormCache
    attention: AttentionCache
    ln2: LayerNormCache
    ffn_in: np.ndarray
    Z: np.ndarray
    G: np.ndarray


def transformer_block(
    X: np.ndarray, params: BlockParams, n_heads: int, *, rope: bool = False,
    causal: bool = True, mask: np.ndarray | None = None,
) -> np.ndarray:
    """A pre-norm Transformer block (GPT-2): H = X + MHA(LN_1(X)), Y = H + FFN(LN_2(H)).

    MHA is causal multi-head attention (`causal_self_attention`, RoPE on its queries and keys
    when rope=True), FFN the GELU network (`feed_forward`). The residual stream X -> H -> Y
    is never normalised itself: each half reads a normalised copy and adds its result back.
    Shapes: X (..., n, d_model); params a dict with `BLOCK_PARAM_NAMES` (W_Q, W_K, W_V, W_O
    (d_model, d_model), W_1 (d_model, d_ff), ...) -> Y (..., n, d_model).
    causal=False makes it an encoder's block (bidirectional attention); mask, as in
    `causal_self_attention` (a batch's padding mask (B, 1, n)), is combined with it.
    """
    Y = transformer_block_with_cache(X, params, n_heads, rope=rope, causal=causal, mask=mask)[0]
    return Y.astype(float_dtype(np.asarray(X), *(np.asarray(p) for p in params.values())),
                    copy=False)


def transformer_block_with_cache(
    X: np.ndarray, params: BlockParams, n_heads: int, *, rope: bool = False,
    past: tuple[np.ndarray, np.ndarray] | None = None, causal: bool = True,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, BlockCache]:
    """`transformer_block`, also returning its `BlockCache` (for the backward pass, and with
    cache.attention.K, .V, the keys and values a KV cache keeps); `past`, `causal` and `mask` as
    in `causal_self_attention_with_cache`."""
    X, n_heads = check_block_params(X, params, n_heads)
    p = _block_params_in(X.dtype, params)
    X = X.astype(_result_dtype(X, *p.values()), copy=False)
    attention_in, ln1 = layer_norm_with_cache(X, p["ln1_gamma"], p["ln1_beta"])  # LN_1(X)
    A, attention = causal_self_attention_with_cache(
        attention_in, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, rope=rope,
        past=past, causal=causal, mask=mask)  # MHA(LN_1(X)), (..., n, d_model)
    H = X + A  # (..., n, d_model)
    Y, ln2, ffn_in, Z, G = _ffn_half(H, p)  # H + FFN(LN_2(H)), (..., n, d_model)
    return Y, BlockCache(X, ln1, attention, ln2, ffn_in, Z, G)


def _ffn_half(H: np.ndarray, p: Mapping[str, np.ndarray]) -> tuple[
        np.ndarray, LayerNormCache, np.ndarray, np.ndarray, np.ndarray]:
    """The block's second half, Y = H + FFN(LN_2(H)), and what its backward needs:
    (Y, LN_2's cache, LN_2(H), Z = LN_2(H) W_1 + b_1, G = GELU(Z))."""
    ffn_in, ln2 = layer_norm_with_cache(H, p["ln2_gamma"], p["ln2_beta"])  # LN_2(H)
    Z = ffn_in @ p["W_1"] + p["b_1"]  # (..., n, d_ff)
    G = gelu(Z)  # (..., n, d_ff)
    Y = H + G @ p["W_2"] + p["b_2"]  # H + FFN(LN_2(H)), (..., n, d_model)
    return Y, ln2, ffn_in, Z, G


def _ffn_half_backward(cache: BlockCache | DecoderBlockCache, p: Mapping[str, np.ndarray],
                       dY: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Back through Y = H + FFN(LN_2(H)): dH = dY + LN_2ᵀ(FFNᵀ(dY)), and the half's gradients
    (ln2_gamma, ln2_beta, W_1, b_1, W_2, b_2)."""
    dX_ffn, dW_1, db_1, dW_2, db_2 = _feed_forward_backward(
        cache.ffn_in, cache.Z, cache.G, p["W_1"], p["W_2"], dY)  # FFNᵀ(dY)
    d_ln2, dg2, db2 = layer_norm_backward_cached(cache.ln2, p["ln2_gamma"], dX_ffn)  # LN_2ᵀ(...)
    return dY + d_ln2, {"ln2_gamma": dg2, "ln2_beta": db2, "W_1": dW_1, "b_1": db_1,
                        "W_2": dW_2, "b_2": db_2}


def transformer_block_backward(
    X: np.ndarray, params: BlockParams, n_heads: int, dY: np.ndarray, *, rope: bool = False,
    causal: bool = True, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The gradients through Y = transformer_block(X, params, n_heads, rope=rope, causal=causal,
    mask=mask), given dY.

    Shapes: X, dY (..., n, d_model). Returns (dX, grads) with grads a dict of the gradients of
    every parameter, keyed like `params` and summed over batch axes. The steps:
    `transformer_block_backward_cached`.
    """
    Y, cache = transformer_block_with_cache(X, params, n_heads, rope=rope, causal=causal,
                                            mask=mask)
    dY = check_gradient(dY, "dY", Y.shape, "Y")
    return transformer_block_backward_cached(cache, params, dY)


def transformer_block_backward_cached(
    cache: BlockCache, params: BlockParams, dY: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Back through a block from its forward's cache. A residual passes its gradient through
    unchanged and adds the branch's:

        Y = H + FFN(LN_2(H))  ->  dH = dY + LN_2ᵀ(FFNᵀ(dY))
        H = X + MHA(LN_1(X))  ->  dX = dH + LN_1ᵀ(MHAᵀ(dH))

    (Mᵀ(d): the backward pass of M given the gradient d of its output.) Returns (dX, grads).
    """
    p = _block_params_in(cache.X.dtype, params)
    dY = dY.astype(cache.X.dtype, copy=False)
    dH, grads = _ffn_half_backward(cache, p, dY)  # dY + LN_2ᵀ(FFNᵀ(dY)), (..., n, d_model)
    dA_in, dW_Q, dW_K, dW_V, dW_O = causal_self_attention_backward_cached(
        cache.attention, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], dH)  # MHAᵀ(dH)
    d_ln1, dg1, db1 = layer_norm_backward_cached(cache.ln1, p["ln1_gamma"], dA_in)  # LN_1ᵀ(...)
    dX = dH + d_ln1  # (..., n, d_model)
    grads |= {"ln1_gamma": dg1, "ln1_beta": db1, "W_Q": dW_Q, "W_K": dW_K, "W_V": dW_V,
              "W_O": dW_O}
    return dX, {name: grads[name] for name in BLOCK_PARAM_NAMES}


def _block_params_in(dtype: np.dtype, params: BlockParams) -> dict[str, np.ndarray]:
    """The block's parameters as arrays in the dtype the math runs in (no copy when they are)."""
    arrays = {name: np.asarray(params[name]) for name in BLOCK_PARAM_NAMES}
    common = _result_dtype(np.empty(0, dtype), *arrays.values())
    return {name: a.astype(common, copy=False) for name, a in arrays.items()}


def _result_dtype(*arrays: np.ndarray) -> np.dtype:
    """The common float dtype the math runs in: float64 for integers, float32 for float16."""
    return compute_dtype(float_dtype(*arrays))


def _in_dtype(dtype: np.dtype, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The results in the inputs' float dtype (float16 was computed in float32)."""
    return tuple(a.astype(dtype, copy=False) for a in arrays)


# --- cross-attention and the decoder's block (an encoder-decoder; Vaswani et al. 2017) -------


@dataclass
class CrossAttentionCache:
    """What multi-head cross-attention's forward pass keeps for its backward pass: X_q
    (..., n_q, d_model) and X_kv (..., n_k, d_model), the inputs; Q (..., n_heads, n_q, d_head),
    K and V (..., n_heads, n_k, d_head); weights α (..., n_heads, n_q, n_k); concat
    (..., n_q, d_model)."""

    X_q: np.ndarray
    X_kv: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    V: np.ndarray
    weights: np.ndarray
    concat: np.ndarray


def multi_head_cross_attention(
    X_q: np.ndarray, X_kv: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray,
    W_O: np.ndarray, n_heads: int, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head cross-attention: the queries from X_q, the keys and values from X_kv.

        Q_h = (X_q W_Q)_h,  K_h = (X_kv W_K)_h,  V_h = (X_kv W_V)_h     head h's columns
        head_h = softmax(Q_h K_hᵀ / √d_head) V_h                        (..., n_q, d_head)
        O = concat(head_0, ..., head_{n_heads−1}) W_O                   (..., n_q, d_model)

    `attention.cross_attention` per head, as `attention.multi_head_self_attention` is
    self-attention per head. No causal mask: every query may see every key (a decoder's token
    reads the whole source); mask (n_q, n_k) or a batch's key-padding mask (B, 1, n_k)
    (`attention.padding_mask`), shared by every head, True = may attend.
    Shapes: X_q (..., n_q, d_model), X_kv (..., n_k, d_model); W_Q, W_K, W_V, W_O
    (d_model, d_model) -> (O (..., n_q, d_model), weights (..., n_heads, n_q, n_k)).
    """
    O, cache = multi_head_cross_attention_with_cache(X_q, X_kv, W_Q, W_K, W_V, W_O, n_heads,
                                                     mask)
    return O, cache.weights


def multi_head_cross_attention_with_cache(
    X_q: np.ndarray, X_kv: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray,
    W_O: np.ndarray, n_heads: int, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, CrossAttentionCache]:
    """`multi_head_cross_attention`, also returning its `CrossAttentionCache`."""
    X_q, X_kv, W_Q, W_K, W_V, dtype = check_cross(X_q, X_kv, W_Q, W_K, W_V)
    n_heads, W_O = check_heads(X_q.shape[-1], n_heads, W_Q, W_K, W_V, W_O)
    Q = split_heads(X_q @ W_Q, n_heads)  # (..., n_heads, n_q, d_head)
    K = split_heads(X_kv @ W_K, n_heads)  # (..., n_heads, n_k, d_head)
    V = split_heads(X_kv @ W_V, n_heads)  # (..., n_heads, n_k, d_head)
    weights = attention_weights(Q, K, _head_mask(None, mask))  # α, (..., n_heads, n_q, n_k)
    concat = merge_heads(weights @ V)  # (..., n_q, d_model)
    O = concat @ W_O.astype(concat.dtype, copy=False)  # (..., n_q, d_model)
    return O.astype(dtype, copy=False), CrossAttentionCache(X_q, X_kv, Q, K, V, weights, concat)


def multi_head_cross_attention_backward(
    X_q: np.ndarray, X_kv: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray,
    W_O: np.ndarray, n_heads: int, dO: np.ndarray, mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gradients through O = multi_head_cross_attention(X_q, X_kv, ..., n_heads, mask)[0].

    Shapes: as the forward, dO (..., n_q, d_model). Returns (dX_q, dX_kv, dW_Q, dW_K, dW_V,
    dW_O) with the shapes of the inputs, the weights' gradients summed over batch axes. The
    steps: `multi_head_cross_attention_backward_cached`.
    """
    O, cache = multi_head_cross_attention_with_cache(X_q, X_kv, W_Q, W_K, W_V, W_O, n_heads,
                                                     mask)
    dO = check_gradient(dO, "dO", O.shape, "O")
    dX_q, dX_kv, *dWs = multi_head_cross_attention_backward_cached(cache, W_Q, W_K, W_V, W_O,
                                                                   dO)
    dX_kv = sum_to_shape(dX_kv, np.shape(X_kv))  # an X_kv shared by a batch: Σ its copies
    return _in_dtype(O.dtype, dX_q, dX_kv, *dWs)  # type: ignore[return-value]


def multi_head_cross_attention_backward_cached(
    cache: CrossAttentionCache, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray,
    W_O: np.ndarray, dO: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Back through multi-head cross-attention from its forward's cache, given dO = ∂L/∂O:
    the heads' steps of `causal_self_attention_backward_cached` (`_heads_backward`), then

        Q = X_q W_Q           ->  dX_q = dQ W_Qᵀ,               dW_Q = Σ X_qᵀ dQ
        K, V = X_kv W_K, W_V  ->  dX_kv = dK W_Kᵀ + dV W_Vᵀ,    dW_K = Σ X_kvᵀ dK, dW_V = Σ X_kvᵀ dV

    Returns (dX_q, dX_kv, dW_Q, dW_K, dW_V, dW_O) in the dtype the forward computed in; dX_kv
    has the batch axes of dO (sum it over any X_kv broadcast over a batch).
    """
    X_q, X_kv = cache.X_q, cache.X_kv
    dO = dO.astype(X_q.dtype, copy=False)
    dQ, dK, dV, dW_O = _heads_backward(cache.Q, cache.K, cache.V, cache.weights, cache.concat,
                                       W_O, dO)
    dQ, dK, dV = merge_heads(dQ), merge_heads(dK), merge_heads(dV)  # (..., n_q | n_k, d_model)
    dX_q = dQ @ W_Q.T  # (..., n_q, d_model)
    dX_kv = dK @ W_K.T + dV @ W_V.T  # the two paths into X_kv, (..., n_k, d_model)
    X_kv_all = np.broadcast_to(X_kv, (*dK.shape[:-1], X_kv.shape[-1]))
    dW_Q = sum_over_batch(np.broadcast_to(X_q, dX_q.shape), dQ)  # Σ X_qᵀ dQ
    dW_K, dW_V = sum_over_batch(X_kv_all, dK), sum_over_batch(X_kv_all, dV)
    return dX_q.astype(X_q.dtype, copy=False), dX_kv, dW_Q, dW_K, dW_V, dW_O


CROSS_PARAM_NAMES = ("cross_ln_gamma", "cross_ln_beta", "cross_W_Q", "cross_W_K", "cross_W_V",
                     "cross_W_O")
DECODER_PARAM_NAMES = BLOCK_PARAM_NAMES + CROSS_PARAM_NAMES
"""A decoder block's parameters: the block's (`BLOCK_PARAM_NAMES`, its causal self-attention
and feed-forward network) and the cross-attention's LayerNorm and projections."""


@dataclass
class DecoderBlockCache:
    """What a decoder block's forward pass keeps for its backward pass: as `BlockCache`, and
    the cross-attention's LayerNorm (`cross_ln`) and attention (`cross`) caches."""

    X: np.ndarray
    ln1: LayerNormCache
    attention: AttentionCache
    cross_ln: LayerNormCache
    cross: CrossAttentionCache
    ln2: LayerNormCache
    ffn_in: np.ndarray
    Z: np.ndarray
    G: np.ndarray


def decoder_block(
    X: np.ndarray, memory: np.ndarray, params: BlockParams, n_heads: int,
    memory_mask: np.ndarray | None = None,
) -> np.ndarray:
    """A pre-norm decoder block of an encoder-decoder (Vaswani et al. 2017, section 3.1, with
    GPT-2's pre-norm): three residual halves,

        H_1 = X + MHA(LN_1(X))                        causal self-attention over the target
        H_2 = H_1 + CrossMHA(LN_x(H_1), memory)       queries from the target, keys and values
                                                      from the encoder's outputs (the memory)
        Y   = H_2 + FFN(LN_2(H_2))

    Shapes: X (..., n_q, d_model), the target's tokens so far; memory (..., n_k, d_model), the
    encoder's outputs; memory_mask (n_q, n_k) or the source's key-padding mask (B, 1, n_k),
    True = may attend; params a dict with `DECODER_PARAM_NAMES` -> Y (..., n_q, d_model).
    """
    Y = decoder_block_with_cache(X, memory, params, n_heads, memory_mask)[0]
    return Y.astype(float_dtype(np.asarray(X), np.asarray(memory),
                                *(np.asarray(p) for p in params.values())), copy=False)


def decoder_block_with_cache(
    X: np.ndarray, memory: np.ndarray, params: BlockParams, n_heads: int,
    memory_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, DecoderBlockCache]:
    """`decoder_block`, also returning its `DecoderBlockCache` (cache.cross.weights: the
    cross-attention maps, (..., n_heads, n_q, n_k))."""
    X, n_heads = check_block_params(X, params, n_heads)
    memory = _check_memory(X, memory, params)
    names = DECODER_PARAM_NAMES
    arrays = {name: np.asarray(params[name]) for name in names}
    common = _result_dtype(X, memory, *arrays.values())
    p = {name: a.astype(common, copy=False) for name, a in arrays.items()}
    X, memory = X.astype(common, copy=False), memory.astype(common, copy=False)
    attention_in, ln1 = layer_norm_with_cache(X, p["ln1_gamma"], p["ln1_beta"])  # LN_1(X)
    A, attention = causal_self_attention_with_cache(
        attention_in, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads)  # (..., n_q, d_model)
    H_1 = X + A  # (..., n_q, d_model)
    cross_in, cross_ln = layer_norm_with_cache(H_1, p["cross_ln_gamma"], p["cross_ln_beta"])
    C, cross = multi_head_cross_attention_with_cache(
        cross_in, memory, p["cross_W_Q"], p["cross_W_K"], p["cross_W_V"], p["cross_W_O"],
        n_heads, memory_mask)  # CrossMHA(LN_x(H_1), memory), (..., n_q, d_model)
    H_2 = H_1 + C  # (..., n_q, d_model)
    Y, ln2, ffn_in, Z, G = _ffn_half(H_2, p)  # H_2 + FFN(LN_2(H_2)), (..., n_q, d_model)
    return Y, DecoderBlockCache(X, ln1, attention, cross_ln, cross, ln2, ffn_in, Z, G)


def decoder_block_backward(
    X: np.ndarray, memory: np.ndarray, params: BlockParams, n_heads: int, dY: np.ndarray,
    memory_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The gradients through Y = decoder_block(X, memory, params, n_heads, memory_mask), given
    dY (..., n_q, d_model). Returns (dX, dmemory, grads): dmemory of memory's shape (summed over
    a batch that shares it), grads keyed by `DECODER_PARAM_NAMES`, summed over batch axes.
    The steps: `decoder_block_backward_cached`."""
    Y, cache = decoder_block_with_cache(X, memory, params, n_heads, memory_mask)
    dY = check_gradient(dY, "dY", Y.shape, "Y")
    dX, dmemory, grads = decoder_block_backward_cached(cache, params, dY)
    return dX, sum_to_shape(dmemory, np.shape(memory)), grads


def decoder_block_backward_cached(
    cache: DecoderBlockCache, params: BlockParams, dY: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Back through a decoder block from its forward's cache, one residual half at a time:

        Y = H_2 + FFN(LN_2(H_2))             ->  dH_2 = dY + LN_2ᵀ(FFNᵀ(dY))
        H_2 = H_1 + CrossMHA(LN_x(H_1), M)   ->  dH_1 = dH_2 + LN_xᵀ(CrossMHAᵀ_q(dH_2)),
                                                 dM = CrossMHAᵀ_kv(dH_2)   (to the encoder)
        H_1 = X + MHA(LN_1(X))               ->  dX = dH_1 + LN_1ᵀ(MHAᵀ(dH_1))

    Returns (dX, dmemory, grads) in the dtype the forward computed in; dmemory has the batch
    axes of dY.
    """
    arrays = {name: np.asarray(params[name]) for name in DECODER_PARAM_NAMES}
    p = {name: a.astype(cache.X.dtype, copy=False) for name, a in arrays.items()}
    dY = dY.astype(cache.X.dtype, copy=False)
    dH_2, grads = _ffn_half_backward(cache, p, dY)  # (..., n_q, d_model)
    dC_in, dmemory, dWx_Q, dWx_K, dWx_V, dWx_O = multi_head_cross_attention_backward_cached(
        cache.cross, p["cross_W_Q"], p["cross_W_K"], p["cross_W_V"], p["cross_W_O"], dH_2)
    d_lnx, dgx, dbx = layer_norm_backward_cached(cache.cross_ln, p["cross_ln_gamma"], dC_in)
    dH_1 = dH_2 + d_lnx  # (..., n_q, d_model)
    dA_in, dW_Q, dW_K, dW_V, dW_O = causal_self_attention_backward_cached(
        cache.attention, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], dH_1)  # MHAᵀ(dH_1)
    d_ln1, dg1, db1 = layer_norm_backward_cached(cache.ln1, p["ln1_gamma"], dA_in)
    dX = dH_1 + d_ln1  # (..., n_q, d_model)
    grads |= {"ln1_gamma": dg1, "ln1_beta": db1, "W_Q": dW_Q, "W_K": dW_K, "W_V": dW_V,
              "W_O": dW_O, "cross_ln_gamma": dgx, "cross_ln_beta": dbx, "cross_W_Q": dWx_Q,
              "cross_W_K": dWx_K, "cross_W_V": dWx_V, "cross_W_O": dWx_O}
    return dX, dmemory, {name: grads[name] for name in DECODER_PARAM_NAMES}


def _check_memory(X: np.ndarray, memory: object, params: BlockParams) -> np.ndarray:
    """The encoder's outputs (..., n_k, d_model) and the cross-attention's parameters, checked
    against X's d_model."""
    memory = as_float_array(memory, "memory", 2, "(..., n_k, d_model)")
    d_model = X.shape[-1]
    missing = [name for name in CROSS_PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"the decoder block's parameters lack {', '.join(missing)}; it needs "
                         f"{', '.join(DECODER_PARAM_NAMES)}.")
    wanted = {name: (d_model,) if "_ln_" in name else (d_model, d_model)
              for name in CROSS_PARAM_NAMES}
    wrong = [f"{name} must be {shape}, got {np.shape(params[name])}"
             for name, shape in wanted.items() if np.shape(params[name]) != shape]
    if memory.shape[-1] != d_model:
        wrong.append(f"memory must have d_model = {d_model} columns, got shape {memory.shape}")
    if wrong:
        raise ValueError(f"with X of shape {X.shape} (d_model = {d_model}), "
                         + ", ".join(wrong) + ".")
    return memory
