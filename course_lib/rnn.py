"""An Elman recurrent network in plain numpy: the sequential model attention is compared with.

    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h),   t = 1 .. n,   h_0 = 0 by default

Shapes: X (..., n, d_in), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,), h0 (..., d_h).
Step t needs h_{t-1}: the loop over t cannot be replaced by one matrix product.
"""

from __future__ import annotations

import numpy as np

from course_lib.shapes import as_float_array, float_dtype

__all__ = ["rnn_forward", "rnn_input_jacobians"]


def rnn_forward(
    X: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """All hidden states H = (h_1, ..., h_n) of h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h).

    Shapes: X (..., n, d_in), W_xh (d_in, d_h), W_hh (d_h, d_h), b_h (d_h,), h0 (..., d_h) or
    None for zeros. Returns H (..., n, d_h); h_0 is not included.
    """
    X = as_float_array(X, "X", 2, "(n, d_in)")
    W_xh = as_float_array(W_xh, "W_xh", 2, "(d_in, d_h)")
    W_hh = as_float_array(W_hh, "W_hh", 2, "(d_h, d_h)")
    b_h = as_float_array(b_h, "b_h", 1, "(d_h,)")
    d_in, d_h = X.shape[-1], W_hh.shape[0]
    if W_xh.shape != (d_in, d_h) or W_hh.shape != (d_h, d_h) or b_h.shape != (d_h,):
        raise ValueError(
            f"with X of shape {X.shape} (d_in = {d_in}) and W_hh of shape {W_hh.shape} "
            f"(d_h = {d_h}), W_xh must be {(d_in, d_h)}, W_hh {(d_h, d_h)} and b_h {(d_h,)}; "
            f"got W_xh {W_xh.shape}, W_hh {W_hh.shape}, b_h {b_h.shape}."
        )
    dtype = float_dtype(X, W_xh, W_hh, b_h)
    *batch, n, _ = X.shape
    h = np.zeros((*batch, d_h), dtype=dtype) if h0 is None else np.array(h0, dtype=dtype)
    if h.shape[-1:] != (d_h,):
        raise ValueError(f"h0 must have shape (..., d_h) with d_h = {d_h}; got {h.shape}.")
    H = np.empty((*np.broadcast_shapes(tuple(batch), h.shape[:-1]), n, d_h), dtype=dtype)
    XW = X @ W_xh + b_h  # the inputs' part of every step: independent of h, so all at once
    for t in range(n):  # sequential: h_t needs h_{t-1}
        h = np.tanh(XW[..., t, :] + h @ W_hh).astype(dtype, copy=False)
        H[..., t, :] = h
    return H


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
    Returns J of shape (n, d_h, d_in) with J[t - 1] = ∂h_t/∂x_1.
    """
    H = rnn_forward(X, W_xh, W_hh, b_h, h0)
    if H.ndim != 2:
        raise ValueError(f"rnn_input_jacobians takes one sequence X of shape (n, d_in); "
                         f"got {np.shape(X)}.")
    W_xh, W_hh = np.asarray(W_xh, dtype=H.dtype), np.asarray(W_hh, dtype=H.dtype)
    J = np.empty((H.shape[0], H.shape[1], W_xh.shape[0]), dtype=H.dtype)
    J[0] = (1 - H[0] ** 2)[:, None] * W_xh.T
    for t in range(1, H.shape[0]):
        J[t] = ((1 - H[t] ** 2)[:, None] * W_hh.T) @ J[t - 1]
    return J
