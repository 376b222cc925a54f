"""An Elman recurrent network in plain numpy: the sequential model attention is compared with.

    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h),   t = 1 .. n,   h_0 = 0 by default

Shapes: X (..., n, d_in), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,), h0 (..., d_h).
Step t needs h_{t-1}: the loop over t cannot be replaced by one matrix product.

Also here: `rnn_backward` (backpropagation through time), and the gated recurrent unit of Cho
et al. (2014) with the equations and gate order (r, z, n) of `torch.nn.GRU`: `gru_forward`,
`gru_backward`.
"""

from __future__ import annotations

import numpy as np

from course_lib.shapes import (
    as_float_array,
    compute_dtype,
    float_dtype,
    sum_over_batch,
    sum_to_shape,
)

__all__ = [
    "rnn_forward", "rnn_input_jacobians", "rnn_backward", "gru_forward", "gru_update_gates",
    "gru_backward",
]


def rnn_forward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """All hidden states H = (h_1, ..., h_n) of h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h).

    Shapes: X (..., n, d_in), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,), h0 (..., d_h) or
    None for zeros. Returns H (..., n, d_h) in the inputs' float dtype; h_0 is not included.
    Raises ValueError for shapes that do not fit.
    """
    X, W_xh, W_hh, b_h, h, dtype = _check_recurrent(
        X, W_xh, W_hh, (b_h,), h0, 1, ("X", "W_xh", "W_hh", "b_h"))
    H = np.empty((*h.shape[:-1], X.shape[-2], h.shape[-1]), dtype=h.dtype)  # (..., n, d_h)
    XW = X @ W_xh + b_h  # the inputs' part of every step: independent of h, so all at once
    for t in range(X.shape[-2]):  # sequential: h_t needs h_{t-1}
        H[..., t, :] = h = np.tanh(XW[..., t, :] + h @ W_hh)  # (..., d_h)
    return H.astype(dtype, copy=False)


def rnn_input_jacobians(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """How much each hidden state h_t still depends on the first input x_1: J_t = ∂h_t/∂x_1.

    Exact, by the chain rule through the recurrence (no finite differences). With
    z_t = x_t W_xh + h_{t-1} W_hh + b_h and h_t = tanh(z_t), in the row-vector convention
    (entry [a, b] of a Jacobian is ∂h_t[a] / ∂(input)[b]):

        ∂h_1/∂x_1     = diag(1 − h_1²) W_xhᵀ
        ∂h_t/∂h_{t-1} = diag(1 − h_t²) W_hhᵀ
        J_t           = ∂h_t/∂h_{t-1} · J_{t-1}      (a product of t − 1 step Jacobians)

    Shapes: X (n, d_in) (one sequence), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,).
    Returns J of shape (n, d_h, d_in) with J[t - 1] = ∂h_t/∂x_1 (n = 0 gives an empty J).
    """
    H = rnn_forward(X, W_xh, W_hh, b_h, h0)
    if H.ndim != 2:
        raise ValueError(f"rnn_input_jacobians takes one sequence X of shape (n, d_in); "
                         f"got {np.shape(X)}.")
    W_xh, W_hh = np.asarray(W_xh, dtype=H.dtype), np.asarray(W_hh, dtype=H.dtype)
    J = np.empty((H.shape[0], H.shape[1], W_xh.shape[0]), dtype=H.dtype)
    if H.shape[0] == 0:
        return J  # an empty sequence: no x_1, no states, an empty (0, d_h, d_in) result
    J[0] = (1 - H[0] ** 2)[:, None] * W_xh.T
    for t in range(1, H.shape[0]):
        J[t] = ((1 - H[t] ** 2)[:, None] * W_hh.T) @ J[t - 1]
    return J


# --- backpropagation through time -------------------------------------------------------------


def _check_recurrent(
    X: object, W_x: object, W_h: object, b: tuple[object, ...], h0: object, gates: int,
    names: tuple[str, ...],
) -> tuple[np.ndarray, ...]:
    """Input checks shared by the RNN and GRU backward and GRU forward passes.

    `gates` is the number of d_h-wide blocks in each weight's columns (1: Elman, 3: GRU's r, z, n).
    `names` are the course's names of (X, W_x, W_h, *biases). Returns the arrays in the common
    dtype the math runs in (float32 for float16, `shapes.compute_dtype`): (X, W_x, W_h, *biases,
    h_0) with h_0 broadcast to the batch, shape (..., d_h), then the dtype of the results.
    """
    X = as_float_array(X, names[0], 2, "(n, d_in)")
    W_x = as_float_array(W_x, names[1], 2, f"(d_in, {gates}·d_h)" if gates > 1 else "(d_in, d_h)")
    W_h = as_float_array(W_h, names[2], 2, f"(d_h, {gates}·d_h)" if gates > 1 else "(d_h, d_h)")
    biases = [as_float_array(b_i, name, 1, "(d_h,)")
              for b_i, name in zip(b, names[3:], strict=True)]
    d_in, d_h = X.shape[-1], W_h.shape[0]
    width = gates * d_h
    wanted = {names[1]: (d_in, width), names[2]: (d_h, width)} | {n: (width,) for n in names[3:]}
    got = dict(zip(names[1:], (W_x.shape, W_h.shape, *(b_i.shape for b_i in biases)), strict=True))
    if got != wanted or W_x.ndim != 2 or W_h.ndim != 2:
        raise ValueError(
            f"with X of shape {X.shape} (d_in = {d_in}) and {names[2]} of shape {W_h.shape} "
            f"(d_h = {d_h}), " + ", ".join(f"{k} must be {v}" for k, v in wanted.items())
            + "; got " + ", ".join(f"{k} {v}" for k, v in got.items()) + "."
        )
    dtype = float_dtype(X, W_x, W_h, *biases)
    math_dtype = compute_dtype(dtype)
    h = np.zeros(d_h, dtype=math_dtype) if h0 is None else np.asarray(h0, dtype=math_dtype)
    if h.shape[-1:] != (d_h,):
        raise ValueError(f"h0 must have shape (..., d_h) with d_h = {d_h}; got {h.shape}.")
    batch = np.broadcast_shapes(X.shape[:-2], h.shape[:-1])
    h = np.broadcast_to(h, (*batch, d_h))
    return (*(a.astype(math_dtype, copy=False) for a in (X, W_x, W_h, *biases)), h, dtype)


def _in_dtype(dtype: np.dtype, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The results in the inputs' float dtype (float16 was computed in float32)."""
    return tuple(a.astype(dtype, copy=False) for a in arrays)


def _check_dH(dH: object, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    dH = as_float_array(dH, "dH", 2, "(n, d_h)")
    if dH.shape != shape:
        raise ValueError(f"dH must have the shape of H, {shape}; got {dH.shape}.")
    return dH.astype(dtype, copy=False)


def rnn_backward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray,
    dH: np.ndarray,
    h0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagation through time: the gradients of a scalar loss L given dH = ∂L/∂H.

    With z_t = x_t W_xh + h_{t-1} W_hh + b_h and h_t = tanh(z_t), running t = n .. 1 with a
    carry g (what h_{t+1} sends back to h_t; 0 after the last step):

        dh_t     = dH_t + g                     (the loss's own term, and what h_{t+1} sends back)
        dz_t     = dh_t ⊙ (1 − h_t²)            (tanh' at z_t, written with h_t)
        g        = dz_t W_hhᵀ                   (the share of h_{t-1}: the carry to step t − 1)
        dW_hh   += h_{t-1}ᵀ dz_t                (h_{t-1}, the state the step read, not h_t)

    and, once every dz_t is known, all at once: dX = dZ W_xhᵀ, dW_xh = Xᵀ dZ, db_h = Σ_t dz_t,
    dh0 = the last carry g. (Werbos 1990, "Backpropagation through time".)

    Shapes: X (..., n, d_in), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,), dH (..., n, d_h)
    like H, h0 (..., d_h) or None for zeros. Returns (dX, dW_xh, dW_hh, db_h, dh0), each of the
    shape of what it is the gradient of (dh0: (..., d_h) of the broadcast batch when h0 is None);
    weight gradients are summed over the batch axes. Keeps the inputs' float dtype. Raises
    ValueError for shapes that do not fit, TypeError for non-numeric input.
    """
    X, W_xh, W_hh, b_h, h_0, dtype = _check_recurrent(
        X, W_xh, W_hh, (b_h,), h0, 1, ("X", "W_xh", "W_hh", "b_h"))
    H = rnn_forward(X, W_xh, W_hh, b_h, h_0)  # (..., n, d_h)
    dH = _check_dH(dH, H.shape, H.dtype)
    H_prev = np.concatenate([h_0[..., None, :], H], axis=-2)[..., :-1, :]  # h_{t-1}, (..., n, d_h)
    dZ = np.empty_like(H)  # (..., n, d_h)
    g = np.zeros_like(h_0)  # ∂L/∂h_t through h_{t+1}: nothing after the last step
    for t in reversed(range(H.shape[-2])):  # backwards: step t needs the carry from step t + 1
        dZ[..., t, :] = (dH[..., t, :] + g) * (1 - H[..., t, :] ** 2)
        g = dZ[..., t, :] @ W_hh.T  # (..., d_h)
    dX = sum_to_shape(dZ @ W_xh.T, X.shape)  # (..., n, d_in)
    dW_xh = sum_over_batch(np.broadcast_to(X, (*H.shape[:-1], X.shape[-1])), dZ)  # (d_in, d_h)
    dW_hh = sum_over_batch(H_prev, dZ)  # (d_h, d_h)
    db_h = dZ.reshape(-1, dZ.shape[-1]).sum(axis=0)  # (d_h,)
    dh0 = g if h0 is None else sum_to_shape(g, np.shape(h0))
    return _in_dtype(dtype, dX, dW_xh, dW_hh, db_h, dh0)


# --- the GRU -----------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^(−x)), written as (1 + tanh(x/2)) / 2: no overflow, same dtype."""
    return 0.5 * (1 + np.tanh(0.5 * x))


_GRU_NAMES = ("X", "W_x", "W_h", "b_x", "b_h")


def _gru_steps(
    X: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b_x: np.ndarray, b_h: np.ndarray,
    h_0: np.ndarray,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The GRU recurrence on checked inputs: H (..., n, d_h) and, per step, the gates r | z
    (..., n, 2·d_h), the candidate n and hn = h_{t-1} W_hn + b_hn (..., n, d_h)."""
    d_h = W_h.shape[0]
    G_x = X @ W_x + b_x  # (..., n, 3·d_h): the inputs' part of all three gates, at once
    shape = (*h_0.shape[:-1], X.shape[-2], d_h)
    H, N, HN = (np.empty(shape, dtype=h_0.dtype) for _ in range(3))
    RZ = np.empty((*shape[:-1], 2 * d_h), dtype=h_0.dtype)
    h = h_0
    for t in range(X.shape[-2]):  # sequential: step t needs h_{t-1}
        g_h = h @ W_h + b_h  # (..., 3·d_h), blocks r | z | n
        RZ[..., t, :] = _sigmoid(G_x[..., t, :2 * d_h] + g_h[..., :2 * d_h])  # r and z at once
        r, z = RZ[..., t, :d_h], RZ[..., t, d_h:]
        HN[..., t, :] = g_h[..., 2 * d_h:]  # h_{t-1} W_hn + b_hn, which r scales
        N[..., t, :] = n = np.tanh(G_x[..., t, 2 * d_h:] + r * HN[..., t, :])  # candidate
        H[..., t, :] = h = n + z * (h - n)  # = (1 − z) ⊙ n + z ⊙ h_{t-1}, (..., d_h)
    return H, {"RZ": RZ, "n": N, "hn": HN}


def gru_forward(
    X: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b_x: np.ndarray,
    b_h: np.ndarray,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """All hidden states H = (h_1, ..., h_n) of a GRU, with the equations of `torch.nn.GRU`:

        r_t = σ(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)          (reset gate)
        z_t = σ(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)          (update gate)
        n_t = tanh(x_t W_in + b_in + r_t ⊙ (h_{t-1} W_hn + b_hn))  (candidate)
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    W_x = [W_ir | W_iz | W_in] (d_in, 3·d_h) and W_h = [W_hr | W_hz | W_hn] (d_h, 3·d_h) hold
    the r, z, n blocks in that order: they are the transposes of PyTorch's `weight_ih_l0` and
    `weight_hh_l0`; b_x = [b_ir | b_iz | b_in] and b_h = [b_hr | b_hz | b_hn] (3·d_h,) are its
    `bias_ih_l0` and `bias_hh_l0`. (Cho et al. 2014, "Learning phrase representations using
    RNN encoder-decoder", section 2.3; PyTorch puts r inside the candidate's bracket.)

    Shapes: X (..., n, d_in), h0 (..., d_h) or None for zeros. Returns H (..., n, d_h) in the
    inputs' float dtype; h_0 is not included. Raises ValueError for shapes that do not fit.
    """
    X, W_x, W_h, b_x, b_h, h_0, dtype = _check_recurrent(
        X, W_x, W_h, (b_x, b_h), h0, 3, _GRU_NAMES)
    return _gru_steps(X, W_x, W_h, b_x, b_h, h_0)[0].astype(dtype, copy=False)


def gru_update_gates(
    X: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b_x: np.ndarray,
    b_h: np.ndarray,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """The update gates z_t = σ(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz) of `gru_forward`, the
    share of h_{t-1} that each unit keeps at step t (h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}).

    Arguments as `gru_forward`; returns Z (..., n, d_h) in the inputs' float dtype, the gates of
    the same pass that gives H. Raises ValueError for shapes that do not fit.
    """
    X, W_x, W_h, b_x, b_h, h_0, dtype = _check_recurrent(
        X, W_x, W_h, (b_x, b_h), h0, 3, _GRU_NAMES)
    d_h = W_h.shape[0]
    RZ = _gru_steps(X, W_x, W_h, b_x, b_h, h_0)[1]["RZ"]  # (..., n, 2·d_h): r | z
    return RZ[..., d_h:].astype(dtype, copy=False)


def gru_backward(
    X: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b_x: np.ndarray,
    b_h: np.ndarray,
    dH: np.ndarray,
    h0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagation through time for `gru_forward`, given dH = ∂L/∂H.

    Running t = n .. 1 with the carry g (what h_{t+1} sends back to h_t, 0 at the end),
    dh = dH_t + g, and the saved r, z, n and hn = h_{t-1} W_hn + b_hn of step t:

        dn = dh ⊙ (1 − z),   dz = dh ⊙ (h_{t-1} − n)        (h_t = (1 − z) n + z h_{t-1})
        da_n = dn ⊙ (1 − n²),  dr = da_n ⊙ hn               (through the tanh; r scales hn)
        da_r = dr ⊙ r (1 − r), da_z = dz ⊙ z (1 − z)         (through the sigmoids)
        dG_x = [da_r | da_z | da_n],  dG_h = [da_r | da_z | da_n ⊙ r]
        g    = dh ⊙ z + dG_h W_hᵀ                            (the two paths into h_{t-1})

    then dX = dG_x W_xᵀ, dW_x = Xᵀ dG_x, db_x = Σ dG_x, dW_h = Σ_t h_{t-1}ᵀ dG_h,
    db_h = Σ dG_h, dh0 = the last g. Shapes as in `gru_forward`, dH like H; returns
    (dX, dW_x, dW_h, db_x, db_h, dh0), weight gradients summed over the batch axes.
    """
    X, W_x, W_h, b_x, b_h, h_0, dtype = _check_recurrent(
        X, W_x, W_h, (b_x, b_h), h0, 3, _GRU_NAMES)
    H, s = _gru_steps(X, W_x, W_h, b_x, b_h, h_0)
    dH = _check_dH(dH, H.shape, H.dtype)
    H_prev = np.concatenate([h_0[..., None, :], H], axis=-2)[..., :-1, :]  # h_{t-1}, (..., n, d_h)
    d_h = W_h.shape[0]
    dG_x = np.empty((*H.shape[:-1], W_x.shape[1]), dtype=H.dtype)  # (..., n, 3·d_h)
    dG_h = np.empty_like(dG_x)
    g = np.zeros_like(h_0)
    W_hT = W_h.T
    for t in reversed(range(H.shape[-2])):  # backwards: step t needs the carry from step t + 1
        r, z = s["RZ"][..., t, :d_h], s["RZ"][..., t, d_h:]
        n, hn = s["n"][..., t, :], s["hn"][..., t, :]
        dh = dH[..., t, :] + g
        dG_x[..., t, 2 * d_h:] = da_n = dh * (1 - z) * (1 - n * n)  # da_n
        dG_x[..., t, :d_h] = da_n * hn * r * (1 - r)  # da_r
        dG_x[..., t, d_h:2 * d_h] = dh * (H_prev[..., t, :] - n) * z * (1 - z)  # da_z
        dG_h[..., t, :2 * d_h] = dG_x[..., t, :2 * d_h]
        dG_h[..., t, 2 * d_h:] = da_n * r
        g = dh * z + dG_h[..., t, :] @ W_hT  # (..., d_h)
    dX = sum_to_shape(dG_x @ W_x.T, X.shape)  # (..., n, d_in)
    dW_x = sum_over_batch(np.broadcast_to(X, (*H.shape[:-1], X.shape[-1])), dG_x)  # (d_in, 3·d_h)
    dW_h = sum_over_batch(H_prev, dG_h)  # (d_h, 3·d_h)
    db_x = dG_x.reshape(-1, dG_x.shape[-1]).sum(axis=0)  # (3·d_h,)
    db_h = dG_h.reshape(-1, dG_h.shape[-1]).sum(axis=0)
    dh0 = g if h0 is None else sum_to_shape(g, np.shape(h0))
    return _in_dtype(dtype, dX, dW_x, dW_h, db_x, db_h, dh0)
