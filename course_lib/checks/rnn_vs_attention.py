"""Checkers of exercise 06, RNN versus attention: `rnn_forward`, the Elman recurrence, and
`rnn_backward`, backpropagation through time.

    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h),   t = 1 .. n,   H = (h_1, ..., h_n)
    dz_t = (dH_t + dz_{t+1} W_hhᵀ) ⊙ (1 − h_t²),  t = n .. 1

Lesson: notebooks/06_rnn_vs_attention.ipynb. Exercise: exercises/06_rnn_vs_attention.ipynb.
Tests: tests/test_checks_rnn_vs_attention.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from course_lib import rnn
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = ["RNN_FORWARD", "check_rnn_forward", "RNN_BACKWARD", "check_rnn_backward"]


# -- the cases -----------------------------------------------------------------------------------


def _case(
    name: str, X: Any, W_xh: Any, W_hh: Any, b_h: Any, h0: Any = None, dtype: Any = np.float64
) -> Case:
    args = [("X", X), ("W_xh", W_xh), ("W_hh", W_hh), ("b_h", b_h)]
    if h0 is not None:
        args.append(("h0", h0))
    return Case(name, tuple((key, np.asarray(value, dtype=dtype)) for key, value in args))


def _random_case(
    seed: int, n: int, d_in: int, d_h: int, with_h0: bool, dtype: Any = np.float64,
    batch: tuple[int, ...] = (),
) -> Case:
    """Weights of a moderate size: tanh bends (it is not linear), and nothing saturates."""
    X = random_normal(seed, *batch, n, d_in, dtype=dtype)
    W_xh = random_normal(seed + 1, d_in, d_h, scale=0.6, dtype=dtype)
    W_hh = random_normal(seed + 2, d_h, d_h, scale=0.6, dtype=dtype)  # not symmetric
    b_h = random_normal(seed + 3, d_h, scale=0.5, dtype=dtype)
    h0 = random_normal(seed + 4, *batch, d_h, scale=0.6, dtype=dtype) if with_h0 else None
    shape = " × ".join(str(s) for s in (*batch, n, d_in))
    name = f"random, X {shape}, d_h = {d_h}, " + ("h0 given" if with_h0 else "h0 = None")
    if np.dtype(dtype) != np.float64:
        name = f"{np.dtype(dtype).name}, {name}"
    return _case(name, X, W_xh, W_hh, b_h, h0, dtype)


def _cases() -> list[Case]:
    return [
        _case(
            "hand-worked, n = 3 tokens, d_in = 1, d_h = 2, h0 = None",
            [[1.0], [0.5], [-1.0]],
            [[0.5, -1.0]],
            [[0.5, 1.0], [-0.5, 0.5]],
            [0.1, -0.2],
        ),
        _random_case(501, n=4, d_in=2, d_h=3, with_h0=False),
        _random_case(506, n=3, d_in=3, d_h=2, with_h0=True),
        _random_case(511, n=5, d_in=2, d_h=4, with_h0=True),
        _random_case(516, n=4, d_in=3, d_h=3, with_h0=False, dtype=np.float32),
        _random_case(521, n=7, d_in=1, d_h=2, with_h0=False),
    ]


def _harder() -> list[Case]:
    return [
        _random_case(531, n=4, d_in=2, d_h=3, with_h0=False, batch=(2,)),
        _random_case(536, n=3, d_in=3, d_h=2, with_h0=True, batch=(3,)),
    ]


# -- the known mistakes --------------------------------------------------------------------------


def _states(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray, h0: Any = None,
    *,
    step: Callable[..., np.ndarray] | None = None,
    inputs: Callable[[int, int], int] | None = None,
    carry: bool = True,
    steps: range | None = None,
) -> list[np.ndarray]:
    """The states of a (possibly wrong) recurrence: step(x_t, h_{t-1}) from h_0.

    inputs(t, n) is the index of the input used at step t; `carry=False` feeds h_0 to every
    step instead of the previous state; `steps` the loop's range.
    """
    h_start = np.zeros((*X.shape[:-2], W_hh.shape[0])) if h0 is None else np.asarray(h0)
    if step is None:
        def step(x: np.ndarray, h: np.ndarray) -> np.ndarray:
            return np.tanh(x @ W_xh + h @ W_hh + b_h)
    n = X.shape[-2]
    h, states = h_start, []
    for t in steps if steps is not None else range(n):
        x = X[..., inputs(t, n) if inputs else t, :]
        h = step(x, h if carry else h_start)
        states.append(h)
    return states


def _stack(states: list[np.ndarray]) -> np.ndarray:
    return np.stack(states, axis=-2)


def _variant(**options: Any) -> Callable[..., np.ndarray]:
    return lambda X, W_xh, W_hh, b_h, h0=None: _stack(_states(X, W_xh, W_hh, b_h, h0, **options))


def _with_step(make_step: Callable[..., Callable[..., np.ndarray]]) -> Callable[..., np.ndarray]:
    def compute(X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray,
                h0: Any = None) -> np.ndarray:
        return _stack(_states(X, W_xh, W_hh, b_h, h0, step=make_step(W_xh, W_hh, b_h)))

    return compute


def _h0_first(X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray,
              h0: Any = None, keep_last: bool = True) -> np.ndarray:
    """(h_0, h_1, ..., h_n), or (h_0, ..., h_{n-1}) without the last."""
    H = rnn.rnn_forward(X, W_xh, W_hh, b_h, h0)
    h_start = np.zeros_like(H[..., 0, :]) if h0 is None else np.broadcast_to(h0, H[..., 0, :].shape)
    full = np.concatenate([h_start[..., None, :], H], axis=-2)
    return full if keep_last else full[..., :-1, :]


def _loop_over_first_axis(X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray,
                          h0: Any = None) -> np.ndarray:
    """`for t in range(len(X))` with X[t]: the tokens of one sequence, but the sequences of a
    batch X of shape (B, n, d_in) (each a step, the state carried from one to the next), their
    states stacked along the first axis."""
    return np.array(_states(np.moveaxis(X, 0, -2), W_xh, W_hh, b_h, h0))  # X[..., t, :] = X[t]


_OFF_BY_ONE_HINT = (
    "your inputs are off by one step: state h_t (row t − 1 of H in Python's 0-based indexing) "
    "reads x_t, row t − 1 of X. Loop `for t in range(n)` and use X[t] at step t: the first "
    "state reads the first token, and every token is read once, in order."
)
_H0_INCLUDED_HINT = (
    "your H includes the initial state h_0: H holds h_1, ..., h_n, one row per token "
    "(shape (n, d_h)), starting with the state after reading the first token. Append each "
    "state after computing it, not before."
)
_LAST_ONLY_HINT = (
    "you returned only the last state h_n; rnn_forward returns all of them, H = (h_1, ..., "
    "h_n) of shape (n, d_h): keep each h_t in a list (or a row of an array) as you go, and "
    "stack them at the end."
)

RNN_FORWARD = Checker(
    function="rnn_forward",
    outputs=("H",),
    reference=rnn.rnn_forward,
    make_cases=_cases,
    make_harder=_harder,
    mistakes=(
        Mistake(
            "no-tanh",
            "no tanh: each state is h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h). Without the "
            "tanh the recurrence is linear and its states can grow without bound.",
            _with_step(lambda W_xh, W_hh, b_h: lambda x, h: x @ W_xh + h @ W_hh + b_h),
        ),
        Mistake(
            "state-not-carried",
            "your state is not carried from one step to the next: every step starts again "
            "from h_0. Step t must use the previous state h_{t−1}: update the variable, "
            "`h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)`, so the next step reads the new h.",
            _variant(carry=False),
        ),
        Mistake("h0-included", _H0_INCLUDED_HINT, _h0_first),
        Mistake(
            "h0-included", _H0_INCLUDED_HINT,
            lambda X, W_xh, W_hh, b_h, h0=None: _h0_first(X, W_xh, W_hh, b_h, h0, False),
        ),
        Mistake(
            "h0-ignored",
            "your function ignores h0: when h0 is given, the recurrence starts from it "
            "(h_1 = tanh(x_1 W_xh + h0 W_hh + b_h)); only when h0 is None does it start from "
            "zeros, np.zeros(d_h) with d_h = W_hh.shape[0].",
            lambda X, W_xh, W_hh, b_h, h0=None: rnn.rnn_forward(X, W_xh, W_hh, b_h),
        ),
        Mistake("last-only", _LAST_ONLY_HINT, lambda *args: rnn.rnn_forward(*args)[..., -1, :]),
        Mistake("last-only", _LAST_ONLY_HINT, lambda *args: rnn.rnn_forward(*args)[..., -1:, :]),
        Mistake(
            "same-state-repeated",
            "every row of your H is the last state: you stored the same array n times and "
            "then changed it in place (`h[:] = ...` or `h += ...`). Store a new array at each "
            "step: `h = np.tanh(...)` creates one.",
            lambda X, W_xh, W_hh, b_h, h0=None: np.repeat(
                rnn.rnn_forward(X, W_xh, W_hh, b_h, h0)[..., -1:, :], X.shape[-2], axis=-2
            ),
        ),
        Mistake(
            "no-bias",
            "the bias b_h is missing: h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h), add b_h "
            "inside the tanh at every step.",
            _with_step(lambda W_xh, W_hh, b_h: lambda x, h: np.tanh(x @ W_xh + h @ W_hh)),
        ),
        Mistake(
            "bias-outside-tanh",
            "you added the bias after the tanh; it goes inside: h_t = tanh(x_t W_xh + "
            "h_{t−1} W_hh + b_h).",
            _with_step(lambda W_xh, W_hh, b_h: lambda x, h: np.tanh(x @ W_xh + h @ W_hh) + b_h),
        ),
        Mistake(
            "W_hh-wrong-side",
            "W_hh is applied on the wrong side: in the course's row-vector convention the "
            "state is a row and the matrix comes after it, h_{t−1} W_hh (h @ W_hh), not "
            "W_hh h_{t−1} (W_hh @ h, which is h @ W_hh.T).",
            _with_step(
                lambda W_xh, W_hh, b_h: lambda x, h: np.tanh(
                    x @ W_xh + h @ np.swapaxes(W_hh, -1, -2) + b_h
                )
            ),
        ),
        Mistake(
            "loop-over-batch",
            "with a batch, your loop runs over the sequences instead of the tokens: X has "
            "shape (B, n, d_in), so len(X) is B and X[t] is a whole sequence. The tokens are "
            "the axis −2: loop over t in range(X.shape[-2]), read token t of every sequence "
            "at once, X[..., t, :], start from a state of shape (B, d_h), and stack the "
            "states along axis −2, so that H has shape (B, n, d_h).",
            _loop_over_first_axis,
        ),
        # X[t - 1] at step t (the first step reads the last token), X[t + 1] (IndexError)
        Mistake("off-by-one", _OFF_BY_ONE_HINT, _variant(inputs=lambda t, n: t - 1)),
        Mistake("off-by-one", _OFF_BY_ONE_HINT, _variant(inputs=lambda t, n: t + 1)),
        # one step too few: the last token, or the first, never read
        Mistake(
            "off-by-one", _OFF_BY_ONE_HINT,
            lambda X, W_xh, W_hh, b_h, h0=None: _stack(
                _states(X, W_xh, W_hh, b_h, h0, steps=range(X.shape[-2] - 1))
            ),
        ),
        Mistake(
            "off-by-one", _OFF_BY_ONE_HINT,
            lambda X, W_xh, W_hh, b_h, h0=None: _stack(
                _states(X, W_xh, W_hh, b_h, h0, steps=range(1, X.shape[-2]))
            ),
        ),
    ),
    hint="loop over the tokens in order: start from h = h0 (zeros of shape (d_h,) when h0 is "
    "None), and at each step t compute h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h) and keep it; "
    "return the n states stacked into H of shape (n, d_h).",
    nan_hint="your states contain NaN or inf: without the tanh (or with it in the wrong place) "
    "the states can grow without bound. Each state is h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h).",
)


def check_rnn_forward(
    rnn_forward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `rnn_forward(X, W_xh, W_hh, b_h, h0=None)`, which must return all the
    states H = (h_1, ..., h_n) of h_t = tanh(x_t W_xh + h_{t−1} W_hh + b_h), h_0 = h0 or zeros.

    With `harder=True`, also a batch of sequences X of shape (b, n, d_in).
    """
    return RNN_FORWARD.check(rnn_forward, timeout=timeout, harder=harder)


# -- rnn_backward(X, W_xh, W_hh, b_h, dH, h0=None) -> (dX, dW_xh, dW_hh, db_h, dh0) --------------


def _backward_case(
    seed: int, n: int, d_in: int, d_h: int, with_h0: bool, *, dtype: Any = np.float64,
    batch: tuple[int, ...] = (), last_only: bool = False,
) -> Case:
    """A forward case of `_random_case` and an upstream gradient dH: random for every state,
    or (`last_only`) only for h_n, as when a loss reads the last state."""
    forward = _random_case(seed, n, d_in, d_h, with_h0, dtype, batch)
    dH = random_normal(seed + 5, *batch, n, d_h, dtype=dtype)
    if last_only:
        dH[..., :-1, :] = 0
    args = dict(forward.args)
    h0 = args.pop("h0", None)
    name = forward.name + (", dH only for h_n" if last_only else ", random dH")
    return _case_with(name, (*args.items(), ("dH", dH)), h0)


def _case_with(name: str, args: tuple[tuple[str, Any], ...], h0: Any) -> Case:
    return Case(name, args + ((("h0", h0),) if h0 is not None else ()))


def _backward_cases() -> list[Case]:
    return [
        _case_with(
            "hand-worked, n = 2 tokens, d_in = 1, d_h = 2, h0 = None",
            (("X", np.array([[1.0], [-0.5]])), ("W_xh", np.array([[0.5, -1.0]])),
             ("W_hh", np.array([[0.5, 1.0], [-0.5, 0.5]])), ("b_h", np.array([0.1, -0.2])),
             ("dH", np.array([[1.0, 0.0], [0.5, -1.0]]))),
            None,
        ),
        _backward_case(541, n=3, d_in=2, d_h=3, with_h0=False),
        _backward_case(546, n=4, d_in=3, d_h=2, with_h0=True),
        _backward_case(551, n=5, d_in=2, d_h=3, with_h0=True, last_only=True),
        _backward_case(556, n=4, d_in=2, d_h=4, with_h0=False, dtype=np.float32),
        _backward_case(561, n=6, d_in=1, d_h=3, with_h0=True),
    ]


def _backward_harder() -> list[Case]:
    return [
        _backward_case(571, n=3, d_in=2, d_h=3, with_h0=False, batch=(2,)),
        _backward_case(576, n=4, d_in=3, d_h=2, with_h0=True, batch=(3,)),
    ]


def _bptt(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray, dH: np.ndarray,
    h0: Any = None, *, derivative: str = "h_t", carry: str = "through-tanh",
    transpose: bool = True, dW_hh: str = "h_prev-dz", backwards: bool = True,
    accumulate: bool = True,
) -> tuple[np.ndarray, ...]:
    """Backpropagation through time, right by default, or with one of the classic mistakes:

    derivative: where tanh' = 1 − (·)² is taken: "h_t" (right), "h_prev", "z" (the
    pre-activation) or "none" (tanh' forgotten); carry: "through-tanh" (right), "none" (the
    gradient from h_{t+1} never reaches h_t) or "past-tanh" (added after tanh');
    transpose=False: the carry is dz W_hh instead of dz W_hhᵀ; dW_hh: "h_prev-dz" (right,
    Σ h_{t−1}ᵀ dz_t), "h_t-dz" (from the step's own state) or "dz-h_prev" (transposed);
    backwards=False: the loop runs t = 1 .. n; accumulate=False: the weight gradients are
    overwritten at each step (`=` for `+=`), so only the last step visited counts.
    """
    H = rnn.rnn_forward(X, W_xh, W_hh, b_h, h0)
    h_start = np.zeros_like(H[..., 0, :]) if h0 is None else np.broadcast_to(h0, H[..., 0, :].shape)
    H_prev = np.concatenate([h_start[..., None, :], H], axis=-2)[..., :-1, :]
    Z = X @ W_xh + H_prev @ W_hh + b_h
    slope = {"h_t": 1 - H**2, "h_prev": 1 - H_prev**2, "z": 1 - Z**2,
             "none": np.ones_like(H)}[derivative]
    W_back = np.swapaxes(W_hh, -1, -2) if transpose else W_hh
    dZ = np.zeros_like(H)
    g = np.zeros_like(h_start)
    n = X.shape[-2]
    order = list(reversed(range(n)) if backwards else range(n))
    for t in order:
        dh = dH[..., t, :] + (g if carry == "through-tanh" else 0)
        dZ[..., t, :] = dh * slope[..., t, :] + (g if carry == "past-tanh" else 0)
        g = dZ[..., t, :] @ W_back
    steps = slice(None) if accumulate else slice(order[-1], order[-1] + 1)
    X_seen = np.broadcast_to(X, (*H.shape[:-1], X.shape[-1]))[..., steps, :]
    source = (H if dW_hh == "h_t-dz" else H_prev)[..., steps, :]
    dX = dZ @ np.swapaxes(W_xh, -1, -2)
    flat = dZ[..., steps, :].reshape(-1, dZ.shape[-1])
    dW_xh = X_seen.reshape(-1, X.shape[-1]).T @ flat
    dW_hh_ = source.reshape(-1, H.shape[-1]).T @ flat
    return dX, dW_xh, dW_hh_.T if dW_hh == "dz-h_prev" else dW_hh_, flat.sum(axis=0), g


_TANH_DERIVATIVE_HINT = (
    "the tanh derivative is taken at the wrong quantity: h_t = tanh(z_t) gives ∂h_t/∂z_t = "
    "1 − tanh(z_t)² = 1 − h_t², with h_t the state this step computed (H[t]), not the state it "
    "read (H[t − 1]) and not the pre-activation z_t. So dz_t = dh_t ⊙ (1 − H[t]²)."
)

RNN_BACKWARD = Checker(
    function="rnn_backward",
    outputs=("dX", "dW_xh", "dW_hh", "db_h", "dh0"),
    reference=rnn.rnn_backward,
    make_cases=_backward_cases,
    make_harder=_backward_harder,
    mistakes=(
        Mistake("tanh-derivative", _TANH_DERIVATIVE_HINT, partial(_bptt, derivative="h_prev")),
        Mistake("tanh-derivative", _TANH_DERIVATIVE_HINT, partial(_bptt, derivative="z")),
        Mistake(
            "no-carry",
            "the gradient does not flow back through time: h_t also feeds h_{t+1}, so "
            "dh_t = dH[t] + (what step t + 1 sends back, dz_{t+1} W_hhᵀ). Keep that carry in a "
            "variable, add it to dH[t] at each step, and update it to dz_t @ W_hh.T; with only "
            "dH[t], a loss on the last state never reaches the early tokens.",
            partial(_bptt, carry="none"),
        ),
        Mistake(
            "W_hh-not-transposed",
            "W_hh is not transposed on the way back: the forward step multiplies h_{t−1} @ W_hh, "
            "so the gradient goes back with the transpose, dh_{t−1} gets dz_t @ W_hh.T (in the "
            "row-vector convention, as dX = dZ @ W_xh.T).",
            partial(_bptt, transpose=False),
        ),
        Mistake(
            "dW_hh-from-h_t",
            "dW_hh is built from the wrong states: the step t computes z_t = x_t W_xh + h_{t−1} "
            "W_hh + b_h, so dW_hh = Σ_t h_{t−1}ᵀ dz_t, with the state it read (h_0 = h0 or zeros "
            "at the first step), not the state h_t it produced.",
            partial(_bptt, dW_hh="h_t-dz"),
        ),
        Mistake(
            "no-tanh-derivative",
            "the tanh's derivative is missing: h_t = tanh(z_t), so the gradient of the state "
            "passes through ∂h_t/∂z_t = 1 − h_t² before it reaches z_t, and from there the "
            "weights, the input and the previous state: dz_t = dh_t ⊙ (1 − h_t²), with dh_t "
            "= dH[t] + the carry from step t + 1.",
            partial(_bptt, derivative="none"),
        ),
        Mistake(
            "carry-past-tanh",
            "the carry skips the tanh's derivative: what step t + 1 sends back is part of the "
            "gradient of the state h_t, like dH[t], so the whole sum goes through tanh', "
            "dz_t = (dH[t] + carry) ⊙ (1 − h_t²), not dH[t] ⊙ (1 − h_t²) + carry.",
            partial(_bptt, carry="past-tanh"),
        ),
        Mistake(
            "dW_hh-transposed",
            "your dW_hh is transposed: z_t = x_t W_xh + h_{t−1} W_hh + b_h, so entry (i, j) of "
            "W_hh joins h_{t−1}[i] to z_t[j], and dW_hh = Σ_t h_{t−1}ᵀ dz_t, the state on the "
            "left, as in dW_xh = Σ_t x_tᵀ dz_t. An outer product np.outer(a, b) has a[i] b[j] "
            "at (i, j): the state goes first.",
            partial(_bptt, dW_hh="dz-h_prev"),
        ),
        Mistake(
            "gradients-overwritten",
            "your weight gradients keep only one step: W_xh, W_hh and b_h are used at every "
            "step t, so their gradients are sums over all the steps, dW_xh = Σ_t x_tᵀ dz_t "
            "(and so on). Assigning them inside the loop (`=`) replaces what the steps before "
            "gave; start from zeros before the loop and add each step's share (`+=`).",
            partial(_bptt, accumulate=False),
        ),
        Mistake(
            "loop-forwards",
            "your loop runs forwards in time: the gradient of h_t needs the carry from step "
            "t + 1, so backpropagation through time runs backwards, `for t in reversed(range(n))`, "
            "starting with a zero carry after the last step.",
            partial(_bptt, backwards=False),
        ),
    ),
    hint="recompute H with the forward pass, then loop over the rows t = n − 1, ..., 0 with a "
    "carry g (zeros at the start): dz_t = (dH[t] + g) * (1 − H[t]²), g = dz_t @ W_hh.T, "
    "dW_hh += outer(H_prev[t], dz_t) with H_prev[t] = H[t − 1] (h0, or zeros, for t = 0), "
    "dW_xh += outer(X[t], dz_t), db_h += dz_t, dX[t] = dz_t @ W_xh.T; at the end dh0 = g.",
    nan_hint="your gradients contain NaN or inf: check that you multiply by 1 − H[t]², which "
    "lies between 0 and 1, and that nothing is divided.",
)


def check_rnn_backward(
    rnn_backward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `rnn_backward(X, W_xh, W_hh, b_h, dH, h0=None)`, which must return
    (dX, dW_xh, dW_hh, db_h, dh0), the gradients of a loss L given dH = ∂L/∂H for the states
    H = rnn_forward(X, W_xh, W_hh, b_h, h0): backpropagation through time.

    With `harder=True`, also a batch of sequences X of shape (b, n, d_in) (the weight
    gradients summed over the batch).
    """
    return RNN_BACKWARD.check(rnn_backward, timeout=timeout, harder=harder)
