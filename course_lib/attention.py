"""Scaled dot-product self-attention in plain numpy, in the course's notation.

A sequence of n tokens is a matrix X of shape (n, d_model), one row per token; leading batch
axes (..., n, d_model) are allowed everywhere. Step by step:

    Q = X W_Q,  K = X W_K,  V = X W_V           queries, keys, values   (n, d_k), (n, d_k), (n, d_v)
    A = Q Kᵀ,   a_ij = q_i · k_j                raw scores              (n, n)
    Ã = A / √d_k                                scaled scores           (n, n)
    α_ij = exp(ã_ij) / Σ_k exp(ã_ik)            weights, rows sum to 1  (n, n)
    O = α V,    o_i = Σ_j α_ij v_j              outputs                 (n, d_v)

Every function keeps the input's float dtype (float32 in, float32 out; integers become
float64) and never modifies its inputs. A mask is boolean with True = "may attend"; a blocked
score becomes −∞ before the softmax. A row with no finite score (every position blocked, a
score that overflowed to −∞, or no keys at all) gets weights 0 and output 0, on every path
(vectorized, loops, blockwise, heads), never NaN. An empty sequence (n = 0) gives empty
results of the right shapes; a width of 0 (d_k = 0) is refused. float16 inputs are computed
in float32 (products, sums, running statistics) and the result rounded to float16 once, as
FlashAttention does (`shapes.compute_dtype`).

Each function makes one input check call at its top (`course_lib.shapes`), then writes out
the formula with the shape of each line.
"""

from __future__ import annotations

import math

import numpy as np

from course_lib.shapes import (
    as_float_array,
    check_count,
    check_cross,
    check_gradient,
    check_heads,
    check_mask,
    check_positive,
    check_projections,
    check_queries_keys,
    check_queries_keys_values,
    check_weights_values,
    compute_dtype,
    float_dtype,
    sum_over_batch,
    sum_to_shape,
)

__all__ = [
    "project_qkv",
    "attention_scores",
    "scale_scores",
    "softmax",
    "attention_weights",
    "weighted_sum",
    "self_attention",
    "causal_mask",
    "padding_mask",
    "attention_loops",
    "blockwise_attention",
    "sinusoidal_positions",
    "split_heads",
    "merge_heads",
    "multi_head_self_attention",
    "softmax_backward",
    "self_attention_backward",
    "cross_attention",
    "cross_attention_backward",
]


def project_qkv(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project the embeddings into queries, keys and values: Q = X W_Q, K = X W_K, V = X W_V.

    Shapes: X (..., n, d_model); W_Q and W_K (d_model, d_k); W_V (d_model, d_v).
    Returns (Q, K, V) of shapes (..., n, d_k), (..., n, d_k), (..., n, d_v), in the inputs'
    common float dtype. Raises ValueError when a matrix does not fit X or d_k differs.
    """
    X, W_Q, W_K, W_V, dtype = check_projections(X, W_Q, W_K, W_V)
    Q = X @ W_Q  # (..., n, d_k)
    K = X @ W_K  # (..., n, d_k)
    V = X @ W_V  # (..., n, d_v)
    return Q.astype(dtype, copy=False), K.astype(dtype, copy=False), V.astype(dtype, copy=False)


def attention_scores(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Raw attention scores A = Q Kᵀ, that is a_ij = q_i · k_j, over the last two axes.

    Shapes: Q (..., n_q, d_k), K (..., n_k, d_k) -> A (..., n_q, n_k). Raises ValueError when
    the widths d_k differ or the batch axes do not broadcast.
    """
    Q, K, _, dtype = check_queries_keys(Q, K)
    A = Q @ np.swapaxes(K, -1, -2)  # (..., n_q, n_k)
    return A.astype(dtype, copy=False)


def scale_scores(A: np.ndarray, d_k: float) -> np.ndarray:
    """Scaled scores Ã = A / √d_k, which keeps the scores' variance near 1 whatever d_k is.

    Shapes: A (..., n_q, n_k) -> (..., n_q, n_k); d_k is the width of the queries and keys.
    """
    A = as_float_array(A, "A", 0)
    d_k = check_positive(d_k, "d_k")
    return (A / math.sqrt(d_k)).astype(float_dtype(A), copy=False)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis`: exp(x - max) / Σ exp(x - max).

    Subtracting each row's maximum changes nothing mathematically but keeps exp from
    overflowing (scores of 1000) or underflowing to an all-zero row (rows far below others).
    A row that is entirely −∞ (every position blocked) gives zeros, not NaN.
    Shape: any; the result has the shape and float dtype of x and sums to 1 along `axis` (an
    axis of length 0 gives an empty result). Raises ValueError for a scalar.
    """
    x = as_float_array(x, "x", 0)
    if x.ndim == 0:
        raise ValueError("softmax needs at least one axis; got a scalar.")
    dtype = float_dtype(x)
    weights = _softmax_inplace(x.astype(compute_dtype(dtype), copy=True), axis)  # our own copy
    return weights.astype(dtype, copy=False)


def attention_weights(Q: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Attention weights α = softmax(Q Kᵀ / √d_k) along each row, with `mask` applied first.

    Shapes: Q (..., n_q, d_k), K (..., n_k, d_k), mask (n_q, n_k) or broadcastable, boolean,
    True = may attend (a batch of padded sequences: `padding_mask`, (B, 1, n_k)). Returns α
    (..., n_q, n_k), each row summing to 1 (a row whose every position is blocked is all
    zeros). Raises ValueError for shapes or a mask that do not fit.
    """
    Q, K, mask, dtype = check_queries_keys(Q, K, mask)
    # Ã = Q Kᵀ / √d_k = (Q / √d_k) Kᵀ: scaling the n x d_k queries is cheaper than the n x n scores
    A = (Q * _inverse_sqrt(Q.shape[-1], Q.dtype)) @ np.swapaxes(K, -1, -2)  # (..., n_q, n_k)
    if mask is not None:
        if np.broadcast_shapes(mask.shape, A.shape) != A.shape:  # the mask adds batch axes
            A = np.broadcast_to(A, np.broadcast_shapes(mask.shape, A.shape)).copy()
        np.copyto(A, -np.inf, where=~mask)  # blocked: exp(−∞) = 0 after the softmax
    return _softmax_inplace(A, axis=-1).astype(dtype, copy=False)  # α, (..., n_q, n_k)


def weighted_sum(weights: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Outputs O = α V, that is o_i = Σ_j α_ij v_j: each output a weighted average of values.

    Shapes: weights (..., n_q, n_k), V (..., n_k, d_v) -> O (..., n_q, d_v). Raises
    ValueError when n_k differs or the batch axes do not broadcast.
    """
    weights, V, dtype = check_weights_values(weights, V)
    O = weights @ V  # (..., n_q, d_v)
    return O.astype(dtype, copy=False)


def self_attention(
    X: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled dot-product self-attention: O = softmax(Q Kᵀ / √d_k) V with Q, K, V = X W_{Q,K,V}.

    Shapes: X (..., n, d_model); W_Q, W_K (d_model, d_k); W_V (d_model, d_v); mask (n, n) or
    broadcastable, True = may attend. Returns (O, weights) of shapes (..., n, d_v), (..., n, n).
    """
    Q, K, V = project_qkv(X, W_Q, W_K, W_V)
    weights = attention_weights(Q, K, mask)
    return weighted_sum(weights, V), weights


def causal_mask(n: int, past: int = 0) -> np.ndarray:
    """The causal (GPT-style) mask: True on and below the diagonal, so token i sees j <= i.

    Shape: (n, n), dtype bool (n = 0 gives an empty (0, 0) mask). With `past` tokens before
    the n new ones (a KV cache), the rows of the new tokens only: row i is position past + i
    and sees every key j <= past + i, shape (n, past + n), built in O(n · (past + n)).
    """
    n, past = check_count(n, "n", minimum=0), check_count(past, "past", minimum=0)
    return np.arange(past + n) <= np.arange(past, past + n)[:, None]  # j <= past + i


def padding_mask(is_token: np.ndarray) -> np.ndarray:
    """The mask of a batch of padded sequences: any query may attend to key j of its
    sequence when j is a real token, never to padding.

    is_token (B, n_k), boolean, True for a real token and False for padding. Returns
    is_token[:, None, :] of shape (B, 1, n_k): the axis of the queries added, so that it
    broadcasts against scores (B, n_q, n_k) and, in `multi_head_self_attention`, against every
    head. (A (B, n_k) mask given as it is would be read as (n_q, n_k), the wrong axes.)
    Combine it with a causal mask by `&`. PyTorch's key_padding_mask is the opposite
    (True = padding): `padding_mask(~key_padding_mask)`. Raises ValueError for a mask that is
    not boolean or not (B, n_k).
    """
    is_token = np.asarray(is_token)
    if is_token.dtype != np.bool_ or is_token.ndim != 2:
        raise ValueError(
            "is_token must be a boolean array of shape (B, n_k), True for a real token and "
            f"False for padding; got dtype {is_token.dtype} and shape {is_token.shape}."
        )
    return is_token[:, None, :]  # (B, 1, n_k)


def attention_loops(
    X: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-attention with explicit loops over i and j, line for line with the formulas.

    The teaching version and the tests' independent oracle: no matrix of scores is ever
    formed by a matrix product. It computes in float64 and returns the input's float dtype.
    Same arguments and results as `self_attention`: (O, weights) of shapes (..., n, d_v),
    (..., n, n).
    """
    X = as_float_array(X, "X", 2, "(n, d_model)")
    project_qkv(X[..., :1, :], W_Q, W_K, W_V)  # the same checks as the vectorized version
    dtype = float_dtype(X, *(np.asarray(W) for W in (W_Q, W_K, W_V)))
    W_Q, W_K, W_V = (np.asarray(W, dtype=np.float64) for W in (W_Q, W_K, W_V))
    *batch, n, _ = X.shape
    d_k, d_v = W_Q.shape[1], W_V.shape[1]
    _inverse_sqrt(d_k, dtype)  # the same refusal of d_k = 0 as the vectorized version
    if mask is not None:
        mask = np.broadcast_to(check_mask(mask, (*batch, n, n)), (*batch, n, n))
    O = np.zeros((*batch, n, d_v))
    weights = np.zeros((*batch, n, n))
    for b in np.ndindex(*batch):  # one sequence at a time (a single () when there is no batch)
        x = X[b].astype(np.float64)
        for i in range(n):
            q_i = x[i] @ W_Q  # the query of token i
            # scaled scores ã_ij = (q_i · k_j) / √d_k, −∞ where token i may not attend to j
            a = np.full(n, -np.inf)
            for j in range(n):
                if mask is None or mask[b][i, j]:
                    k_j = x[j] @ W_K
                    a[j] = np.dot(q_i, k_j) / math.sqrt(d_k)
            # α_ij = exp(ã_ij - m) / Σ_k exp(ã_ik - m), with m the row maximum for stability
            m = max(a)
            if m == -np.inf:
                continue  # every position blocked: the weights and the output stay 0
            e = [math.exp(a[j] - m) for j in range(n)]
            total = sum(e)
            for j in range(n):
                weights[b][i, j] = e[j] / total
            # o_i = Σ_j α_ij v_j
            for j in range(n):
                v_j = x[j] @ W_V
                O[b][i] += weights[b][i, j] * v_j
    return O.astype(dtype), weights.astype(dtype)


def blockwise_attention(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, block_size: int = 128
) -> np.ndarray:
    """O = softmax(Q Kᵀ / √d_k) V computed one block of keys at a time (the online softmax).

    Never holds an n_q x n_k array: for each block of `block_size` keys it computes the block's
    scaled scores S, and keeps per query row a running maximum m, a running sum
    l = Σ_j exp(ã_ij − m) and a running unnormalised output o = Σ_j exp(ã_ij − m) v_j. When a
    block raises the maximum from m to m', what was summed so far is rescaled by exp(m − m').
    At the end O = o / l. The largest temporary is (..., n_q, block_size). (Milakov and
    Gimelshein 2018, "Online normalizer calculation for softmax"; Dao et al. 2022,
    FlashAttention, algorithm 1.) The running m, l and o of float16 inputs are float32: in
    float16, l would stop growing at 2048 while o goes on.

    While a row has seen no finite score (m' = −∞: its scores so far overflowed to −∞), 0 is
    subtracted instead of m', since −∞ − (−∞) is NaN; a row that never sees one (or n_k = 0)
    gets O = 0, as `attention_weights(Q, K) @ V` gives.

    Shapes: Q (..., n_q, d_k), K (..., n_k, d_k), V (..., n_k, d_v) -> O (..., n_q, d_v).
    Raises ValueError for shapes that do not fit or a block_size that is not a positive int.
    """
    Q, K, V, dtype = check_queries_keys_values(Q, K, V)
    block_size = check_count(block_size, "block_size")
    rows = (*np.broadcast_shapes(Q.shape[:-2], K.shape[:-2], V.shape[:-2]), Q.shape[-2])
    Q_scaled = Q * _inverse_sqrt(Q.shape[-1], Q.dtype)  # Q / √d_k, (..., n_q, d_k)
    m = np.full((*rows, 1), -np.inf, dtype=Q.dtype)  # running row maximum, (..., n_q, 1)
    l = np.zeros((*rows, 1), dtype=Q.dtype)  # running Σ exp(ã_ij − m), (..., n_q, 1)
    o = np.zeros((*rows, V.shape[-1]), dtype=Q.dtype)  # running Σ exp(ã_ij − m) v_j, (.., n_q, d_v)
    for start in range(0, K.shape[-2], block_size):
        keys = slice(start, start + block_size)
        S = Q_scaled @ np.swapaxes(K[..., keys, :], -1, -2)  # (..., n_q, block)
        m_new = np.maximum(m, S.max(axis=-1, keepdims=True))  # (..., n_q, 1)
        shift = np.where(m_new == -np.inf, 0, m_new)  # no finite score yet: subtract nothing
        correction = np.exp(m - shift)  # rescales the sums made under the old maximum
        S -= shift
        P = np.exp(S, out=S)  # exp(ã_ij − m'), in place of the scores, (..., n_q, block)
        l = l * correction + P.sum(axis=-1, keepdims=True)
        o = o * correction + P @ V[..., keys, :]
        m = m_new
    O = np.divide(o, l, out=o, where=l > 0)  # o / l; a row with l = 0 keeps o = 0
    return O.astype(dtype, copy=False)


def sinusoidal_positions(n: int, d_model: int) -> np.ndarray:
    """The sine/cosine position encodings of Vaswani et al. (2017), one row per position.

        PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
        PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))

    Each pair of columns is a clock of its own frequency, from one turn every 2π positions
    (i = 0) to one every 10000 · 2π. Shape: (n, d_model), float64; add it to X (n = 0 gives
    an empty (0, d_model) array).
    """
    n, d_model = check_count(n, "n", minimum=0), check_count(d_model, "d_model")
    pos = np.arange(n)[:, None]  # (n, 1)
    two_i = np.arange(0, d_model, 2)[None, :]  # (1, ceil(d_model / 2))
    angle = pos / 10000 ** (two_i / d_model)
    PE = np.empty((n, d_model))
    PE[:, 0::2] = np.sin(angle)
    PE[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return PE


def split_heads(M: np.ndarray, n_heads: int) -> np.ndarray:
    """(..., n, d_model) -> (..., n_heads, n, d_head), d_head = d_model / n_heads: head h gets
    the columns h·d_head .. (h+1)·d_head − 1 (a reshape, then the head axis moved forward)."""
    d_head = M.shape[-1] // n_heads
    return np.swapaxes(M.reshape(*M.shape[:-1], n_heads, d_head), -2, -3)


def merge_heads(M: np.ndarray) -> np.ndarray:
    """(..., n_heads, n, d_head) -> (..., n, n_heads · d_head): the heads side by side, in head
    order (the inverse of `split_heads`)."""
    n_heads, n, d_head = M.shape[-3:]
    return np.swapaxes(M, -2, -3).reshape(*M.shape[:-3], n, n_heads * d_head)


def multi_head_self_attention(
    X: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    W_O: np.ndarray,
    n_heads: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention: split into heads, attend per head, concatenate, project.

    With d_head = d_model / n_heads, head h uses the columns h·d_head .. (h+1)·d_head − 1 of
    W_Q, W_K and W_V:  head_h = softmax(Q_h K_hᵀ / √d_head) V_h,  and
    O = concat(head_0, ..., head_{n_heads−1}) W_O.  (Vaswani et al. 2017, section 3.2.2.)

    Shapes: X (..., n, d_model); W_Q, W_K, W_V, W_O (d_model, d_model); mask (n, n) or
    (..., n, n), or a batch's padding mask (B, 1, n), shared by every head, True = may attend.
    Returns (O, weights) of shapes (..., n, d_model) and (..., n_heads, n, n). Raises
    ValueError when n_heads does not divide d_model or a matrix is not (d_model, d_model).
    """
    X, W_Q, W_K, W_V, dtype = check_projections(X, W_Q, W_K, W_V)
    n_heads, W_O = check_heads(X.shape[-1], n_heads, W_Q, W_K, W_V, W_O)
    if mask is not None and np.ndim(mask) > 2:
        mask = np.expand_dims(mask, -3)  # (..., n, n) -> (..., 1, n, n): the same for every head
    Q, K, V = (split_heads(X @ W, n_heads) for W in (W_Q, W_K, W_V))  # (..., n_heads, n, d_head)
    weights = attention_weights(Q, K, mask)  # (..., n_heads, n, n)
    heads = weights @ V  # (..., n_heads, n, d_head)
    concat = merge_heads(heads)  # (..., n, d_model)
    O = concat @ W_O.astype(concat.dtype, copy=False)  # (..., n, d_model)
    return O.astype(dtype, copy=False), weights.astype(dtype, copy=False)

def softmax_backward(
    weights: np.ndarray, d_weights: np.ndarray, axis: int = -1
) -> np.ndarray:
    """The softmax's backward pass: d_scores = α ⊙ (dα − Σ_j α_j dα_j) along `axis`.

    With α = softmax(ã) the Jacobian is ∂α_j/∂ã_k = α_j (δ_jk − α_k), that is
    diag(α) − α αᵀ (the matrix lesson 03 measured). Given dα = ∂L/∂α, the chain rule gives
    dã_k = Σ_j dα_j α_j (δ_jk − α_k) = α_k (dα_k − Σ_j α_j dα_j): the vector-Jacobian
    product, without ever forming the n x n Jacobian.

    Shapes: weights α and d_weights dα of the same shape (any, at least one axis); returns
    d_scores of that shape, in their common float dtype. Where α is 0 (a blocked position, or
    a row whose every position is blocked) the gradient is 0. Raises ValueError when the
    shapes differ.
    """
    weights = as_float_array(weights, "weights", 1)
    d_weights = check_gradient(d_weights, "d_weights", weights.shape, "weights")
    dtype = float_dtype(weights, d_weights)
    weights, d_weights = (a.astype(compute_dtype(dtype), copy=False) for a in (weights, d_weights))
    inner = np.sum(weights * d_weights, axis=axis, keepdims=True)  # Σ_j α_j dα_j, (..., 1, ...)
    d_scores = weights * (d_weights - inner)  # α ⊙ (dα − Σ_j α_j dα_j), the shape of α
    return d_scores.astype(dtype, copy=False)


def self_attention_backward(
    X: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    dO: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a scalar loss L through O = self_attention(X, W_Q, W_K, W_V, mask)[0].

    Given dO = ∂L/∂O, back through each step of the forward pass (backpropagation):

        O = α V            ->  dV = αᵀ dO,            dα = dO Vᵀ
        α = softmax(Ã)     ->  dÃ = α ⊙ (dα − Σ_j α_ij dα_ij)        (softmax_backward)
        Ã = Q Kᵀ / √d_k    ->  dQ = dÃ K / √d_k,      dK = dÃᵀ Q / √d_k
        Q, K, V = X W_*    ->  dX = dQ W_Qᵀ + dK W_Kᵀ + dV W_Vᵀ      (X feeds all three)
                               dW_Q = Xᵀ dQ,  dW_K = Xᵀ dK,  dW_V = Xᵀ dV

    A blocked position has α_ij = 0, so dÃ_ij = 0: no gradient flows through it, and a row
    whose every position is blocked gives zeros (never NaN).

    Shapes: X (..., n, d_model); W_Q, W_K (d_model, d_k); W_V (d_model, d_v); dO (..., n, d_v),
    the shape of O; mask (n, n) or broadcastable, True = may attend. Returns
    (dX, dW_Q, dW_K, dW_V) with the shapes of (X, W_Q, W_K, W_V): the projections are shared
    by every sequence of a batch, so dW_* are summed over the batch axes. The common float
    dtype of the inputs is kept. Raises ValueError when the shapes do not fit (dO must have the
    shape of O). Source: the chain rule through Vaswani et al. (2017), eq. 1. Computed as
    `cross_attention_backward` of X with itself.
    """
    # Self-attention is cross-attention of X with itself (X_q = X_kv = X): the same backward
    # pass, and X's gradient is the sum of its three paths, dX_q (via Q) + dX_kv (via K and V).
    dX_q, dX_kv, dW_Q, dW_K, dW_V = cross_attention_backward(X, X, W_Q, W_K, W_V, dO, mask)
    return dX_q + dX_kv, dW_Q, dW_K, dW_V


def cross_attention(
    X_q: np.ndarray,
    X_kv: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-attention: queries from one sequence, keys and values from another.

        Q = X_q W_Q,  K = X_kv W_K,  V = X_kv W_V      (n_q, d_k), (n_k, d_k), (n_k, d_v)
        α = softmax(Q Kᵀ / √d_k), row by row           (n_q, n_k): one row per query, over the keys
        O = α V                                        (n_q, d_v): one output per query

    The formula of self-attention; only the rectangle is new: n_q rows (the sequence that asks,
    a decoder's tokens) and n_k columns (the sequence asked, an encoder's outputs), each row
    summing to 1 over the n_k keys, and d_k the width of the queries and keys (W_Q's columns).
    A mask is (n_q, n_k) or broadcastable, True = may attend; padded keys of a batch:
    `padding_mask(is_token)` (B, 1, n_k). (A causal mask belongs to a decoder's
    self-attention, not here: every query may see the whole source.)

    Shapes: X_q (..., n_q, d_model), X_kv (..., n_k, d_model), the batch axes broadcasting;
    W_Q, W_K (d_model, d_k); W_V (d_model, d_v). Returns (O, weights) of shapes (..., n_q, d_v)
    and (..., n_q, n_k), in the inputs' common float dtype. Raises ValueError for shapes that do
    not fit. Source: Vaswani et al. (2017), section 3.2.3 ("encoder-decoder attention");
    Bahdanau et al. (2014).
    """
    X_q, X_kv, W_Q, W_K, W_V, dtype = check_cross(X_q, X_kv, W_Q, W_K, W_V)
    Q = X_q @ W_Q  # (..., n_q, d_k)
    K = X_kv @ W_K  # (..., n_k, d_k)
    V = X_kv @ W_V  # (..., n_k, d_v)
    weights = attention_weights(Q, K, mask)  # α, (..., n_q, n_k); checks the mask
    O = weights @ V  # (..., n_q, d_v)
    return O.astype(dtype, copy=False), weights.astype(dtype, copy=False)


def cross_attention_backward(
    X_q: np.ndarray,
    X_kv: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    dO: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a scalar loss L through O = cross_attention(X_q, X_kv, W_Q, W_K, W_V, mask)[0].

    The steps of `self_attention_backward`; only the last one differs, since the queries come
    from X_q and the keys and values from X_kv:

        O = α V            ->  dV = αᵀ dO,            dα = dO Vᵀ
        α = softmax(Ã)     ->  dÃ = α ⊙ (dα − Σ_j α_ij dα_ij)        (softmax_backward)
        Ã = Q Kᵀ / √d_k    ->  dQ = dÃ K / √d_k,      dK = dÃᵀ Q / √d_k
        Q = X_q W_Q        ->  dX_q = dQ W_Qᵀ,        dW_Q = X_qᵀ dQ
        K, V = X_kv W_K, V ->  dX_kv = dK W_Kᵀ + dV W_Vᵀ  (two paths),  dW_K = X_kvᵀ dK, ...

    A blocked key gets no gradient (α_ij = 0, so dÃ_ij = 0 and it adds nothing to dK, dV).

    Shapes: as `cross_attention`, dO (..., n_q, d_v), the shape of O. Returns
    (dX_q, dX_kv, dW_Q, dW_K, dW_V) with the shapes of (X_q, X_kv, W_Q, W_K, W_V), the weights'
    gradients summed over the batch axes (and an X broadcast over a batch gets the sum of its
    copies' gradients), in the inputs' common float dtype.
    """
    X_q, X_kv, W_Q, W_K, W_V, dtype = check_cross(X_q, X_kv, W_Q, W_K, W_V)
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V  # the forward pass again
    weights = attention_weights(Q, K, mask)  # α, (..., n_q, n_k); checks the mask
    dO = check_gradient(dO, "dO", (*weights.shape[:-1], V.shape[-1]), "O").astype(Q.dtype)
    scale = _inverse_sqrt(Q.shape[-1], Q.dtype)
    dV = np.swapaxes(weights, -1, -2) @ dO  # αᵀ dO, (..., n_k, d_v)
    d_weights = dO @ np.swapaxes(V, -1, -2)  # dO Vᵀ, (..., n_q, n_k)
    d_scores = softmax_backward(weights, d_weights)  # dÃ, (..., n_q, n_k); 0 where blocked
    dQ = (d_scores @ K) * scale  # dÃ K / √d_k, (..., n_q, d_k)
    dK = (np.swapaxes(d_scores, -1, -2) @ Q) * scale  # dÃᵀ Q / √d_k, (..., n_k, d_k)
    dX_q = dQ @ W_Q.T  # (..., n_q, d_model)
    dX_kv = dK @ W_K.T + dV @ W_V.T  # the two paths into X_kv, (..., n_k, d_model)
    X_q_all = np.broadcast_to(X_q, (*dQ.shape[:-1], X_q.shape[-1]))  # one X_q per sequence
    X_kv_all = np.broadcast_to(X_kv, (*dK.shape[:-1], X_kv.shape[-1]))
    dW_Q = sum_over_batch(X_q_all, dQ)  # Σ X_qᵀ dQ, (d_model, d_k)
    dW_K, dW_V = sum_over_batch(X_kv_all, dK), sum_over_batch(X_kv_all, dV)  # Σ X_kvᵀ dK, dV
    return tuple(g.astype(dtype, copy=False)  # type: ignore[return-value]
                 for g in (sum_to_shape(dX_q, X_q.shape), sum_to_shape(dX_kv, X_kv.shape),
                           dW_Q, dW_K, dW_V))


def _inverse_sqrt(d_k: int, dtype: np.dtype) -> np.generic:
    """1 / √d_k in `dtype`, the scale of the scores; d_k = 0 is refused in the course's words."""
    if d_k == 0:
        raise ValueError(
            "the queries and keys have width d_k = 0: each needs at least one number, and the "
            "scale 1 / √d_k is undefined. Check the shapes of Q and K (or of W_Q and W_K)."
        )
    return dtype.type(1 / math.sqrt(d_k))


def _softmax_inplace(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax of a float array along `axis`, overwriting it (no copy of an n x n matrix)."""
    if x.shape[axis] == 0:
        return x  # no positions to weigh (n_k = 0): an empty result, nothing to normalise
    m = np.max(x, axis=axis, keepdims=True)
    m[m == -np.inf] = 0  # a row of −∞ only: subtract nothing, its exps are all 0
    x -= m
    np.exp(x, out=x)
    total = np.sum(x, axis=axis, keepdims=True)
    # an all-zero row (every score −∞) stays zero rather than 0 / 0 = NaN
    inverse = np.divide(1, total, out=np.zeros_like(total), where=total > 0)
    x *= inverse  # one multiplication per weight is cheaper than a division
    return x
