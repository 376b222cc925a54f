"""Input checks shared by the math modules, with errors in the course's words.

numpy's own errors ("matmul: Input operand 1 has a mismatch in its core dimension 0 ...")
tell a learner little. These helpers turn inputs into float arrays and check shapes, naming
the course's symbols (`X`, `W_Q`, `d_model`, `d_k`, ...) in every message. Each math function
makes one check call at its top (`check_projections`, `check_queries_keys`, ...), which also
hands back the inputs in the dtype the math runs in (`compute_dtype`: float32 for float16) and
the dtype of the result; then comes the formula. Also here: the broadcasting bookkeeping of the
backward passes (`sum_to_shape`, `sum_over_batch`).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = [
    "check_cross", "as_float_array", "check_count", "check_positive", "check_mask", "float_dtype",
    "compute_dtype", "sum_to_shape", "sum_over_batch", "check_projections",
    "check_queries_keys", "check_weights_values", "check_queries_keys_values", "check_heads",
    "check_gradient", "check_batch", "check_layer_norm", "check_feed_forward", "check_rope",
    "BLOCK_PARAM_NAMES", "check_block_params", "check_tokens", "check_block_widths",
]


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The float dtype of a result: the inputs' common float dtype, float64 for integers."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def as_float_array(x: object, name: str, min_ndim: int = 2, shape_hint: str = "") -> np.ndarray:
    """`x` as a numeric numpy array with at least `min_ndim` axes (no copy when already one).

    Integer and boolean inputs are accepted (they become float64 in the math); anything that
    is not numbers raises a `TypeError` naming `name`.
    """
    try:
        array = np.asarray(x)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{name} could not be turned into a numpy array: {error}") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers; got an array of dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}.")
    if array.ndim < min_ndim:
        expected = f" {shape_hint}" if shape_hint else ""
        raise ValueError(
            f"{name} must have at least {min_ndim} axes{expected}; got shape {array.shape}."
        )
    return array


def check_positive(value: object, name: str) -> float:
    """`value` as a Python float, or a `ValueError` if it is not a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, Real | np.number):
        raise TypeError(f"{name} must be a positive number; got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return value


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """`value` as an int, or a `ValueError` if it is not a whole number >= `minimum`.

    minimum=0 for a number of tokens (an empty sequence is allowed), 1 for a width or a size.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        wanted = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise ValueError(f"{name} must be {wanted}; got {value!r}.")
    return int(value)


def check_block_widths(d_model: int, n_heads: int, d_ff: int | None) -> int:
    """The feed-forward width of a Transformer block: d_ff, or 4 · d_model when None (GPT-2's,
    Vaswani et al.'s). Raises ValueError unless d_model, n_heads and d_ff are positive whole
    numbers and n_heads divides d_model (each head gets d_model / n_heads features)."""
    d_model, n_heads = check_count(d_model, "d_model"), check_count(n_heads, "n_heads")
    d_ff = check_count(4 * d_model if d_ff is None else d_ff, "d_ff")
    if d_model % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide d_model = {d_model}.")
    return d_ff


def check_mask(mask: object, scores_shape: tuple[int, ...]) -> np.ndarray:
    """`mask` as a boolean array that broadcasts against scores of shape `(..., n_q, n_k)`.

    The course's convention (as in PyTorch's `scaled_dot_product_attention`): `True` means
    "may attend", `False` blocks the score. Its last two axes are always read as (n_q, n_k):
    a padding mask of a batch, one row (n_k,) per sequence, is given as (B, 1, n_k)
    (`attention.padding_mask`), never as (B, n_k), which numpy would read as (n_q, n_k).
    Raises ValueError for a mask that is not boolean or does not fit, naming the fix.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be boolean (True = may attend, False = blocked); got dtype {mask.dtype}. "
            "Convert it according to what its numbers mean: 0/1 with 1 = may attend, "
            "mask.astype(bool); an additive mask of 0 and -inf (PyTorch's float attn_mask, "
            "added to the scores, e.g. from nn.Transformer.generate_square_subsequent_mask), "
            "mask == 0 (not mask.astype(bool): that makes -inf True, the mask inverted). A "
            "boolean attn_mask from torch.nn.MultiheadAttention (True = may NOT attend) becomes "
            "~attn_mask; its key_padding_mask of shape (B, n_k) (True = padding) becomes "
            "~key_padding_mask[:, None, :] (with heads: [:, None, None, :]); a mask for "
            "scaled_dot_product_attention (True = may attend) is used as it is."
        )
    try:
        np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {mask.shape} does not fit the scores of shape {scores_shape}: "
            f"its last two axes must be (n_q, n_k) = {scores_shape[-2:]} or broadcast to it."
            + _padding_hint(mask.shape, scores_shape)
        ) from None
    return mask


def _padding_hint(mask_shape: tuple[int, ...], scores_shape: tuple[int, ...]) -> str:
    """The fix when a mask looks like a batch's padding mask (B, n_k) given without its query
    axis."""
    if len(mask_shape) == 2 and len(scores_shape) >= 3 and mask_shape[-1] == scores_shape[-1]:
        return (
            f" A padding mask of a batch, one row of n_k = {mask_shape[-1]} per sequence "
            "(True = a real token), needs an axis for the queries: mask[:, None, :], of shape "
            f"{(mask_shape[0], 1, mask_shape[1])} (attention.padding_mask does this)."
        )
    return ""


# --- reduced precision and broadcasting, shared by the math modules ----------------------------


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The float dtype the math runs in for a result of `dtype`: float32 for float16.

    float16 has 11 significant bits: a running sum stops growing at 2048 (the spacing of
    float16 numbers is 2 there) and overflows past 65,504. Like FlashAttention (Dao et al.
    2022, section 3.1), the course computes reduced-precision inputs in float32 (products,
    sums, running statistics) and rounds the result to float16 once, at the end.
    """
    return np.promote_types(dtype, np.float32) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)


def sum_to_shape(gradient: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the axes that broadcasting added or stretched, back to `shape`.

    The gradient of an input that was broadcast (a shared h0, an X used by a batch of masks)
    is the sum of the gradients of all its copies.
    """
    extra = gradient.ndim - len(shape)
    gradient = gradient.sum(axis=tuple(range(extra))) if extra else gradient
    stretched = tuple(a for a, size in enumerate(shape) if size == 1 and gradient.shape[a] != 1)
    return gradient.sum(axis=stretched, keepdims=True) if stretched else gradient


def sum_over_batch(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Σ over all leading (batch) axes of Aᵀ B: (..., m, p) and (..., m, q) -> (p, q).

    A weight shared by every sequence of a batch gets the sum of their gradients, e.g.
    dW_Q = Σ_batch Xᵀ dQ.
    """
    return A.reshape(-1, A.shape[-1]).T @ B.reshape(-1, B.shape[-1])


# --- the attention functions' input checks: one call at the top of each --------------------------


def check_projections(
    X: object, W_Q: object, W_K: object, W_V: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """X (..., n, d_model) and W_Q, W_K (d_model, d_k), W_V (d_model, d_v), checked.

    Returns (X, W_Q, W_K, W_V) in the dtype the math runs in (`compute_dtype`) and the
    result's dtype. Raises ValueError naming the matrix whose shape does not fit.
    """
    X = as_float_array(X, "X", 2, "(n, d_model)")
    d_model = X.shape[-1]
    weights = {"W_Q": W_Q, "W_K": W_K, "W_V": W_V}
    for name, W in weights.items():
        width = "d_v" if name == "W_V" else "d_k"
        W = weights[name] = as_float_array(W, name, 2, f"(d_model, {width})")
        if W.ndim != 2 or W.shape[0] != d_model:
            raise ValueError(
                f"{name} has shape {W.shape} but X has shape {X.shape}: {name} must be a matrix "
                f"of shape (d_model, ...) with d_model = {d_model} rows, one per embedding "
                "dimension of X."
            )
    if weights["W_Q"].shape[1] != weights["W_K"].shape[1]:
        raise ValueError(
            f"W_Q has shape {weights['W_Q'].shape} and W_K has shape {weights['W_K'].shape}: "
            "queries and keys must have the same width d_k, or q · k is not defined."
        )
    return (*_in_compute_dtype(X, *weights.values()), float_dtype(X, *weights.values()))


def check_queries_keys(
    Q: object, K: object, mask: object = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.dtype]:
    """Q (..., n_q, d_k), K (..., n_k, d_k) and an optional boolean mask, checked.

    Returns (Q, K) in the dtype the math runs in, the mask (None, or a boolean array that
    broadcasts against the scores (..., n_q, n_k)) and the result's dtype. Raises ValueError
    when the widths differ, the batch axes do not broadcast, or the mask does not fit.
    """
    Q = as_float_array(Q, "Q", 2, "(n_q, d_k)")
    K = as_float_array(K, "K", 2, "(n_k, d_k)")
    if Q.shape[-1] != K.shape[-1]:
        raise ValueError(
            f"Q has shape {Q.shape} and K has shape {K.shape}: queries and keys must have the "
            f"same width d_k (got {Q.shape[-1]} and {K.shape[-1]})."
        )
    batch = check_batch("Q", Q, "K", K)
    if mask is not None:
        mask = check_mask(mask, (*batch, Q.shape[-2], K.shape[-2]))
    return (*_in_compute_dtype(Q, K), mask, float_dtype(Q, K))


def check_weights_values(
    weights: object, V: object
) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Attention weights (..., n_q, n_k) and values V (..., n_k, d_v), checked.

    Returns both in the dtype the math runs in, and the result's dtype.
    """
    weights = as_float_array(weights, "weights", 2, "(n_q, n_k)")
    V = as_float_array(V, "V", 2, "(n_k, d_v)")
    if weights.shape[-1] != V.shape[-2]:
        raise ValueError(
            f"weights has shape {weights.shape} and V has shape {V.shape}: each row of the "
            f"weights needs one weight per value, so n_k = {weights.shape[-1]} must equal the "
            f"number of rows of V ({V.shape[-2]})."
        )
    check_batch("weights", weights, "V", V)
    return (*_in_compute_dtype(weights, V), float_dtype(weights, V))


def check_queries_keys_values(
    Q: object, K: object, V: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """Q (..., n_q, d_k), K (..., n_k, d_k), V (..., n_k, d_v), checked, for attention
    computed from queries, keys and values. Returns them in the dtype the math runs in and
    the result's dtype."""
    Q = as_float_array(Q, "Q", 2, "(n_q, d_k)")
    K = as_float_array(K, "K", 2, "(n_k, d_k)")
    V = as_float_array(V, "V", 2, "(n_k, d_v)")
    if Q.shape[-1] != K.shape[-1] or K.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"Q {Q.shape}, K {K.shape} and V {V.shape} do not fit: Q and K need the same width "
            "d_k, and K and V the same number of rows n_k (one value per key)."
        )
    check_batch("Q", Q, "K", K)
    check_batch("K", K, "V", V)
    return (*_in_compute_dtype(Q, K, V), float_dtype(Q, K, V))


def check_heads(d_model: int, n_heads: object, W_Q: np.ndarray, W_K: np.ndarray,
                W_V: np.ndarray, W_O: object) -> tuple[int, np.ndarray]:
    """n_heads divides d_model, and W_Q, W_K, W_V, W_O are (d_model, d_model).

    Returns (n_heads, W_O as an array). Raises ValueError naming the fix.
    """
    n_heads = check_count(n_heads, "n_heads")
    if d_model % n_heads:
        raise ValueError(
            f"n_heads = {n_heads} does not divide d_model = {d_model}: every head gets "
            f"d_model / n_heads columns, so choose n_heads among the divisors of {d_model}."
        )
    W_O = as_float_array(W_O, "W_O", 2, "(d_model, d_model)")
    if W_O.shape != (d_model, d_model):
        raise ValueError(f"W_O must have shape (d_model, d_model) = {(d_model, d_model)}; "
                         f"got {W_O.shape}.")
    if W_Q.shape[-1] != d_model or W_V.shape[-1] != d_model:
        raise ValueError(f"W_Q, W_K and W_V must have shape (d_model, d_model) = "
                         f"{(d_model, d_model)}; got {W_Q.shape}, {W_K.shape}, {W_V.shape}.")
    return n_heads, W_O


def check_gradient(gradient: object, name: str, shape: tuple[int, ...], of: str) -> np.ndarray:
    """An upstream gradient such as dO = ∂L/∂O, which must have the shape of `of` (O)."""
    gradient = as_float_array(gradient, name, 1)
    if gradient.shape != shape:
        raise ValueError(
            f"{name} has shape {gradient.shape} but {of} has shape {shape}: {name} = ∂L/∂{of} "
            f"has one entry per entry of {of}, so the shapes must be equal."
        )
    return gradient


def check_batch(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> tuple[int, ...]:
    """The broadcast batch axes of two operands (..., r, c), or a clear error when the
    leading (batch) axes cannot broadcast."""
    try:
        return np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{name_a} has shape {a.shape} and {name_b} has shape {b.shape}: their leading "
            f"(batch) axes {a.shape[:-2]} and {b.shape[:-2]} do not match."
        ) from None


def _in_compute_dtype(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays in the dtype the math runs in (no copy when they already are)."""
    dtype = compute_dtype(float_dtype(*arrays))
    return tuple(a.astype(dtype, copy=False) for a in arrays)


# --- the Transformer block's and the GPT's input checks (course_lib.transformer, course_lib.gpt) --


def check_layer_norm(
    x: object, gamma: object, beta: object | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.dtype]:
    """x (..., d), gamma (d,) and beta (d,) (or None, for the backward pass), checked.

    Returns (x, gamma, beta) in the dtype the math runs in (beta None when not given) and
    the result's dtype. Raises ValueError naming the vector whose length is not d.
    """
    x = as_float_array(x, "x", 1, "(..., d)")
    d = x.shape[-1]
    vectors = {"gamma": gamma} if beta is None else {"gamma": gamma, "beta": beta}
    for name, v in vectors.items():
        v = vectors[name] = as_float_array(v, name, 1, "(d,)")
        if v.shape != (d,):
            raise ValueError(
                f"{name} has shape {v.shape} but x has shape {x.shape}: LayerNorm's {name} holds "
                f"one number per feature, so it must have shape (d,) = ({d},)."
            )
    dtype = float_dtype(x, *vectors.values())
    x, gamma, *rest = _in_compute_dtype(x, *vectors.values())
    return x, gamma, (rest[0] if rest else None), dtype


def check_feed_forward(
    X: object, W_1: object, b_1: object, W_2: object, b_2: object
) -> tuple[np.ndarray, ...]:
    """X (..., n, d_model), W_1 (d_model, d_ff), b_1 (d_ff,), W_2 (d_ff, d_model), b_2 (d_model,).

    Returns (X, W_1, b_1, W_2, b_2) in the dtype the math runs in and the result's dtype.
    Raises ValueError listing the shapes wanted and got.
    """
    X = as_float_array(X, "X", 1, "(..., n, d_model)")
    W_1 = as_float_array(W_1, "W_1", 2, "(d_model, d_ff)")
    d_model, d_ff = X.shape[-1], W_1.shape[-1]
    arrays = {"W_1": W_1, "b_1": b_1, "W_2": W_2, "b_2": b_2}
    wanted = {"W_1": (d_model, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d_model), "b_2": (d_model,)}
    arrays = {name: as_float_array(a, name, 1) for name, a in arrays.items()}
    got = {name: a.shape for name, a in arrays.items()}
    if got != wanted:
        raise ValueError(
            f"with X of shape {X.shape} (d_model = {d_model}) and W_1 of shape {W_1.shape} "
            f"(d_ff = {d_ff}), " + ", ".join(f"{k} must be {v}" for k, v in wanted.items())
            + "; got " + ", ".join(f"{k} {v}" for k, v in got.items()) + "."
        )
    return (*_in_compute_dtype(X, *arrays.values()), float_dtype(X, *arrays.values()))


def check_rope(X: object, positions: object) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """X (..., n, d) with d even, and positions (n,) (None: 0, 1, ..., n − 1), checked.

    Returns X in the dtype the math runs in, the positions as a float64 array (n,) and the
    result's dtype. Raises ValueError for an odd d or positions that are not one per row.
    """
    X = as_float_array(X, "X", 2, "(..., n, d)")
    n, d = X.shape[-2:]
    if d % 2:
        raise ValueError(
            f"X has shape {X.shape}: RoPE rotates pairs of features (2i, 2i + 1), so the width "
            f"d = {d} must be even (with heads: d_head = d_model / n_heads must be even)."
        )
    positions = np.arange(n) if positions is None else np.asarray(positions)
    if positions.shape != (n,) or not np.issubdtype(positions.dtype, np.number):
        raise ValueError(f"positions must hold one number per row of X, shape (n,) = ({n},); "
                         f"got shape {positions.shape} and dtype {positions.dtype}.")
    return (*_in_compute_dtype(X), positions.astype(np.float64), float_dtype(X))


BLOCK_PARAM_NAMES = ("ln1_gamma", "ln1_beta", "W_Q", "W_K", "W_V", "W_O",
                     "ln2_gamma", "ln2_beta", "W_1", "b_1", "W_2", "b_2")


def check_block_params(X: object, params: object, n_heads: object) -> tuple[np.ndarray, int]:
    """X (..., n, d_model), a block's parameters (a mapping with `BLOCK_PARAM_NAMES`) and
    n_heads, checked: the names, the shapes (d_model from X, d_ff from W_1) and that n_heads
    divides d_model. Returns (X as a float array, n_heads)."""
    X = as_float_array(X, "X", 2, "(..., n, d_model)")
    missing = [name for name in BLOCK_PARAM_NAMES if name not in params]  # type: ignore[operator]
    if missing:
        raise ValueError(f"the block's parameters lack {', '.join(missing)}; a block needs "
                         f"{', '.join(BLOCK_PARAM_NAMES)}.")
    d_model = X.shape[-1]
    d_ff = np.shape(params["W_1"])[-1]  # type: ignore[index]
    wanted = {"ln1_gamma": (d_model,), "ln1_beta": (d_model,), "W_Q": (d_model, d_model),
              "W_K": (d_model, d_model), "W_V": (d_model, d_model), "W_O": (d_model, d_model),
              "ln2_gamma": (d_model,), "ln2_beta": (d_model,), "W_1": (d_model, d_ff),
              "b_1": (d_ff,), "W_2": (d_ff, d_model), "b_2": (d_model,)}
    wrong = {name: np.shape(params[name]) for name, shape in wanted.items()  # type: ignore[index]
             if np.shape(params[name]) != shape}  # type: ignore[index]
    if wrong:
        raise ValueError(
            f"with X of shape {X.shape} (d_model = {d_model}, d_ff = {d_ff} from W_1), "
            + ", ".join(f"{name} must be {wanted[name]}, got {shape}"
                        for name, shape in wrong.items()) + "."
        )
    n_heads = check_count(n_heads, "n_heads")
    if d_model % n_heads:
        raise ValueError(f"n_heads = {n_heads} does not divide d_model = {d_model}: every head "
                         f"gets d_model / n_heads columns.")
    return X, n_heads


def check_tokens(tokens: object, vocab_size: int, n_ctx: int, name: str = "tokens") -> np.ndarray:
    """Token ids, an integer array (T,) or (B, T) with 1 <= T <= n_ctx and 0 <= id < vocab_size.

    Returns them as an int64 array. Raises ValueError (TypeError for non-integers) in words.
    """
    tokens = np.asarray(tokens)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"{name} must be integer token ids; got dtype {tokens.dtype}.")
    if tokens.ndim not in (1, 2) or tokens.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (T,) or (B, T) with T >= 1; "
                         f"got {tokens.shape}.")
    if tokens.shape[-1] > n_ctx:
        raise ValueError(f"{name} has T = {tokens.shape[-1]} positions but the model's context "
                         f"is n_ctx = {n_ctx}: crop to the last n_ctx tokens.")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"{name} must lie in 0 .. vocab_size − 1 = {vocab_size - 1}; got ids "
                         f"from {tokens.min()} to {tokens.max()}.")
    return tokens.astype(np.int64, copy=False)


def check_cross(
    X_q: object, X_kv: object, W_Q: object, W_K: object, W_V: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """X_q (..., n_q, d_model), X_kv (..., n_k, d_model) and the projections, checked: the
    same d_model on both sides, batch axes that broadcast. Returns them in the dtype the math
    runs in, and the result's dtype."""
    X_q, W_Q, W_K, W_V, dtype_q = check_projections(X_q, W_Q, W_K, W_V)  # names X_q "X"
    X_kv = as_float_array(X_kv, "X_kv", 2, "(n_k, d_model)")
    if X_kv.shape[-1] != X_q.shape[-1]:
        raise ValueError(
            f"X_q has shape {X_q.shape} and X_kv has shape {X_kv.shape}: both sequences must "
            f"have the same width d_model (got {X_q.shape[-1]} and {X_kv.shape[-1]}), since "
            "W_K and W_V read X_kv's rows as W_Q reads X_q's."
        )
    check_batch("X_q", X_q, "X_kv", X_kv)
    dtype = float_dtype(np.empty(0, dtype_q), X_kv)  # the result's dtype (float16 stays float16)
    run = compute_dtype(dtype)
    return (*(a.astype(run, copy=False) for a in (X_q, X_kv, W_Q, W_K, W_V)), dtype)
