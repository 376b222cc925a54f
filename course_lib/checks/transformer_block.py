"""Checkers of exercise 09, the Transformer block: `layer_norm(x, gamma, beta, eps=1e-5)`,
`layer_norm_backward(x, gamma, dy, eps=1e-5) -> (dx, dgamma, dbeta)` and
`transformer_block(X, ln1_gamma, ln1_beta, W_Q, W_K, W_V, W_O, ln2_gamma, ln2_beta, W_1, b_1,
W_2, b_2, n_heads) -> Y`, a pre-norm block (GPT-2) with causal multi-head attention.

The block takes its parameters one by one, in the order of `BLOCK_PARAM_NAMES` (a learner
calls it with a dict as `transformer_block(X, **params, n_heads=2)`): a case's inputs are
plain arrays, which is all the grader's sandbox passes to a learner's function.

Besides its known mistakes, the block's checker tests causality directly: two of its cases
are the same sequence except for the last token, and a causal block gives the same outputs
for every earlier token. When they differ, the hint says which token saw the future, whatever
else is wrong.

Reference: course_lib/transformer.py. Exercise: exercises/09_transformer_block.ipynb.
Tests: tests/test_checks_transformer_block.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from course_lib import attention, transformer
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.judging import Judged
from course_lib.checks.result import CheckResult
from course_lib.checks.tolerances import allclose, case_tolerance

__all__ = [
    "LAYER_NORM",
    "LAYER_NORM_BACKWARD",
    "TRANSFORMER_BLOCK",
    "check_layer_norm",
    "check_layer_norm_backward",
    "check_transformer_block",
]


# -- layer_norm(x, gamma, beta, eps=1e-5) -------------------------------------------------------


def _ln_case(name: str, x: Any, gamma: Any, beta: Any, **kwargs: Any) -> Case:
    return Case(name, (("x", np.asarray(x)), ("gamma", np.asarray(gamma)),
                       ("beta", np.asarray(beta))), kwargs)


def _ln_random(name: str, seed: int, *shape: int, offset: float = 0.0, dtype: Any = float,
               **kwargs: Any) -> Case:
    d = shape[-1]
    x = (random_normal(seed, *shape, scale=2.0) + offset).astype(dtype)
    gamma = (1 + random_normal(seed + 1, d, scale=0.5)).astype(dtype)
    return _ln_case(name, x, gamma, random_normal(seed + 2, d, scale=0.5, dtype=dtype), **kwargs)


def _ln_cases() -> list[Case]:
    ones, zeros = np.ones(4), np.zeros(4)
    nearly_constant = np.array([[3.0, 3.01, 2.99, 3.02], [-1.0, -1.02, -0.99, -1.01]])
    return [
        _ln_case("hand-worked, 2 tokens, d = 4, γ = 1, β = 0",
                 [[1.0, 2.0, 3.0, 6.0], [0.0, -2.0, 2.0, 4.0]], ones, zeros),
        _ln_random("random, 3 tokens, d = 4", 900, 3, 4),
        _ln_random("random, 4 tokens, d = 4 (square)", 905, 4, 4),
        _ln_random("random, 2 tokens, d = 6, eps = 0.5 given", 910, 2, 6, eps=0.5),
        _ln_case("nearly constant rows (σ² about 1e-4, close to ε), d = 4",
                 nearly_constant, [1.0, 2.0, 0.5, -1.0], [0.1, 0.0, -0.2, 0.3]),
        _ln_case("a constant row (σ² = 0: only ε keeps it finite), d = 4",
                 [[2.0, 2.0, 2.0, 2.0], [1.0, -1.0, 0.5, 3.0]], [1.0, 2.0, 0.5, -1.0],
                 [0.1, 0.0, -0.2, 0.3]),
        _ln_random("rows far from 0 (mean about 50), 3 tokens, d = 5", 915, 3, 5, offset=50.0),
        _ln_random("float32, 3 tokens, d = 8", 920, 3, 8, dtype=np.float32),
        _ln_random("a batch of 2 sequences of 3 tokens, d = 4", 925, 2, 3, 4),
    ]


def _ln_harder() -> list[Case]:
    return [
        _ln_random("one token, x of shape (d,) = (5,)", 930, 5),
        _ln_random("a batch of 2 × 2 sequences of 3 tokens, d = 4", 935, 2, 2, 3, 4),
    ]


def _ln(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5, *,
        axis: int | None = -1, var_axis: int | None = -1, keepdims: bool = True, ddof: int = 0,
        eps_at: str = "inside", centre: bool = True, swap: bool = False,
        sqrt: bool = True, affine: bool = True) -> np.ndarray:
    """LayerNorm, right or with one known mistake (the keyword arguments): axis/var_axis None =
    over the whole array; eps_at "inside" √(σ² + ε), "outside" √σ² + ε, "none"; affine False:
    x̂ returned, γ and β left out."""
    mu = np.mean(x, axis=axis, keepdims=keepdims)
    var = np.var(x, axis=var_axis, keepdims=keepdims, ddof=ddof)
    root = {"inside": var + eps, "outside": var, "none": var}[eps_at]
    std = np.sqrt(root) if sqrt else root
    if eps_at == "outside":
        std = std + eps
    x_hat = (x - mu if centre else x) / std
    if not affine:
        return x_hat
    return beta * x_hat + gamma if swap else gamma * x_hat + beta


_LN_WRONG_AXIS = (
    "your mean or variance runs over the wrong axis: LayerNorm normalises each token (each "
    "row) over its own d features, the last axis: `x.mean(axis=-1, keepdims=True)` and "
    "`x.var(axis=-1, keepdims=True)`. (BatchNorm normalises each feature over the tokens, "
    "axis 0: that is another layer.)"
)
_LN_KEEPDIMS = (
    "your mean or variance lost its axis: x.mean(axis=-1) has shape (n,), and x - it lines it up "
    "with the features, not the rows (wrong values on a square array, an error on others). "
    "Keep the axis: `x.mean(axis=-1, keepdims=True)`."
)
_LN_EPS_OUTSIDE = (
    "your ε sits outside the square root; LayerNorm divides by √(σ² + ε), not √σ² + ε "
    "(nor the standard deviation plus ε). The two differ where σ² is close to ε, as on a nearly "
    "constant row; torch.nn.LayerNorm and the course add ε to the variance: "
    "`np.sqrt(var + eps)`."
)
_LN_NO_EPS = (
    "your function adds no ε (or does not use it): on a row whose features are all equal, "
    "σ² = 0 and "
    "(x − μ) / √σ² is 0 / 0 = NaN. Divide by √(σ² + ε), with the `eps` you are given."
)
_LN_EPS_IGNORED = (
    "your function ignores the `eps` it is given: it always uses 1e-5. Use the parameter "
    "eps (its default is 1e-5): a caller may pass another, as the check does."
)
_LN_NOT_CENTRED = (
    "you did not subtract the mean; x̂ = (x − μ) / √(σ² + ε). Dividing x itself by the standard "
    "deviation scales the row but leaves it off-centre, so a row far from 0 stays far from "
    "0. Subtract each row's mean first."
)
_LN_UNBIASED = (
    "your variance is the unbiased one, divided by d − 1 (ddof=1, as torch.var and "
    "pandas' .var() compute by default). LayerNorm uses the biased variance, divided by d: "
    "`np.var(x, axis=-1, keepdims=True)` (ddof=0, numpy's default), as torch.nn.LayerNorm does."
)
_LN_SWAPPED = (
    "your γ and β are swapped; γ scales, β shifts: y = γ ⊙ x̂ + β. (With γ = 1 and β = 0, as "
    "at initialisation, LayerNorm returns x̂ itself.)"
)
_LN_NO_AFFINE = (
    "your output is x̂, the normalised rows: apply γ and β, y = γ ⊙ x̂ + β (γ scales each "
    "feature, β shifts it; they are what LayerNorm learns, and only with γ = 1 and β = 0 is "
    "y = x̂)."
)
_LN_WHOLE = (
    "you normalised the whole array with one mean and one variance; LayerNorm normalises "
    "each token (row) on its own, over its d features: the mean and variance along axis=-1, "
    "keepdims=True, one per row."
)
_LN_NO_SQRT = (
    "you divided by the variance σ² + ε; divide by its square root, the standard deviation: "
    "x̂ = (x − μ) / √(σ² + ε), so that each row of x̂ has variance 1."
)

LAYER_NORM = Checker(
    function="layer_norm",
    outputs=("y",),
    reference=transformer.layer_norm,
    make_cases=_ln_cases,
    make_harder=_ln_harder,
    mistakes=(
        Mistake("wrong-axis", _LN_WRONG_AXIS, partial(_ln, axis=0, var_axis=0)),
        Mistake("wrong-axis", _LN_WRONG_AXIS, partial(_ln, var_axis=0)),
        Mistake("wrong-axis", _LN_WRONG_AXIS, partial(_ln, axis=-2, var_axis=-2)),
        Mistake("no-keepdims", _LN_KEEPDIMS, partial(_ln, keepdims=False)),
        Mistake("eps-outside-sqrt", _LN_EPS_OUTSIDE, partial(_ln, eps_at="outside")),
        Mistake("no-eps", _LN_NO_EPS, partial(_ln, eps_at="none")),
        Mistake("eps-ignored", _LN_EPS_IGNORED,
                lambda x, gamma, beta, eps=1e-5: _ln(x, gamma, beta)),
        Mistake("mean-not-subtracted", _LN_NOT_CENTRED, partial(_ln, centre=False)),
        Mistake("unbiased-variance", _LN_UNBIASED, partial(_ln, ddof=1)),
        Mistake("gamma-beta-swapped", _LN_SWAPPED, partial(_ln, swap=True)),
        Mistake("gamma-beta-missing", _LN_NO_AFFINE, partial(_ln, affine=False)),
        Mistake("whole-array", _LN_WHOLE, partial(_ln, axis=None, var_axis=None)),
        Mistake("no-sqrt", _LN_NO_SQRT, partial(_ln, sqrt=False)),
    ),
    hint="for each row: μ = its mean and σ² = its (biased) variance over the last axis, "
    "x̂ = (x − μ) / √(σ² + ε), y = γ ⊙ x̂ + β; the means with keepdims=True so that they "
    "line up with the rows.",
    nan_hint="your result contains NaN or inf: on a row whose features are all equal, σ² = 0, "
    "so only ε keeps the division finite: divide by √(σ² + ε).",
)


def check_layer_norm(
    layer_norm: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT, harder: bool = False
) -> CheckResult:
    """Check a learner's `layer_norm(x, gamma, beta, eps=1e-5)`, which must return
    γ ⊙ (x − μ) / √(σ² + ε) + β over the last axis (biased variance).

    With `harder=True`, also a single token (x of shape (d,)) and two batch axes.
    """
    return LAYER_NORM.check(layer_norm, timeout=timeout, harder=harder)


# -- layer_norm_backward(x, gamma, dy, eps=1e-5) -> (dx, dgamma, dbeta) ------------------------


def _lnb_case(name: str, x: Any, gamma: Any, dy: Any, **kwargs: Any) -> Case:
    return Case(name, (("x", np.asarray(x)), ("gamma", np.asarray(gamma)),
                       ("dy", np.asarray(dy))), kwargs)


def _lnb_random(name: str, seed: int, *shape: int, dtype: Any = float, **kwargs: Any) -> Case:
    d = shape[-1]
    return _lnb_case(name, random_normal(seed, *shape, scale=2.0, dtype=dtype),
                     (1 + random_normal(seed + 1, d, scale=0.5)).astype(dtype),
                     random_normal(seed + 2, *shape, dtype=dtype), **kwargs)


def _lnb_cases() -> list[Case]:
    return [
        _lnb_case("hand-worked, one token, d = 4, γ = 1, dy = (1, 0, 0, 0)",
                  [[1.0, 2.0, 3.0, 6.0]], np.ones(4), [[1.0, 0.0, 0.0, 0.0]]),
        _lnb_random("random, 3 tokens, d = 4", 950, 3, 4),
        _lnb_random("random, 4 tokens, d = 4 (square)", 955, 4, 4),
        _lnb_random("random, 2 tokens, d = 5, eps = 0.5 given", 960, 2, 5, eps=0.5),
        _lnb_random("float32, 3 tokens, d = 6", 965, 3, 6, dtype=np.float32),
        _lnb_random("a batch of 2 sequences of 3 tokens, d = 4", 970, 2, 3, 4),
    ]


def _lnb_harder() -> list[Case]:
    return [
        _lnb_random("one token, x of shape (d,) = (5,)", 975, 5),
        _lnb_random("a batch of 2 × 2 sequences of 3 tokens, d = 4", 980, 2, 2, 3, 4),
    ]


def _lnb(x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float = 1e-5, *,
         mean_term: bool = True, var_term: bool = True, use_gamma: bool = True,
         dgamma_of: str = "x_hat", reduce: str = "all") -> tuple[np.ndarray, ...]:
    """layer_norm_backward, right or with one known mistake (the keyword arguments): reduce
    "all" (sum over every row), "first" (over axis 0 only), "none", "mean"."""
    mu = x.mean(axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    x_hat = (x - mu) * inv_std
    g = dy * gamma if use_gamma else dy  # dx̂
    dx = g
    if mean_term:
        dx = dx - g.mean(axis=-1, keepdims=True)
    if var_term:
        dx = dx - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    dx = dx * inv_std
    per_row = {"x_hat": dy * x_hat, "x": dy * x}[dgamma_of], dy
    d = x.shape[-1]
    if reduce == "none":
        return dx, *per_row
    if reduce == "first":
        return dx, *(p.sum(axis=0) for p in per_row)
    if reduce == "mean":
        return dx, *(p.reshape(-1, d).mean(axis=0) for p in per_row)
    return dx, *(p.reshape(-1, d).sum(axis=0) for p in per_row)


_LNB_NO_MEAN = (
    "your dx misses the term through the mean: μ depends on every feature of the row, so "
    "each x_j also moves x̂ through μ. That path subtracts the row's mean of dx̂ "
    "(dx̂ = dy ⊙ γ): dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / √(σ² + ε), the means over "
    "the row's features (axis=-1, keepdims=True)."
)
_LNB_NO_VAR = (
    "your dx misses the term through the variance: σ² depends on every feature of the "
    "row, so each x_j also moves x̂ through √(σ² + ε). That path subtracts "
    "x̂ ⊙ mean(dx̂ ⊙ x̂): dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / √(σ² + ε), the means "
    "over the row's features (axis=-1, keepdims=True)."
)
_LNB_CONSTANTS = (
    "you treated μ and σ² as constants: dx = dx̂ / √(σ² + ε) misses the two paths through "
    "them. Both depend on every feature of the row: "
    "dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / √(σ² + ε), with dx̂ = dy ⊙ γ and the means "
    "over the row's features."
)
_LNB_NO_GAMMA = (
    "your dx forgets γ; y = γ ⊙ x̂ + β, so the gradient reaching x̂ is dx̂ = dy ⊙ γ, and "
    "the formula for dx uses dx̂, not dy."
)
_LNB_DGAMMA_X = (
    "your dgamma uses x; γ multiplies the normalised x̂, so dgamma = Σ_rows dy ⊙ x̂, with "
    "x̂ = (x − μ) / √(σ² + ε)."
)
_LNB_NOT_SUMMED = (
    "your dgamma and dbeta are not summed over all the rows; γ and β (d,) are shared by every "
    "token of every sequence, so each is one (d,) vector, the sum over every row of "
    "dy ⊙ x̂ (of dy): `dy.reshape(-1, dy.shape[-1]).sum(axis=0)` for dbeta, whatever the "
    "number of batch axes."
)
_LNB_MEAN = (
    "your dgamma and dbeta are divided by the number of rows (a mean); each token adds its own "
    "share to ∂L/∂γ, so they are sums over the rows, not means. If the loss is a mean, that "
    "1/n is already inside dy."
)

LAYER_NORM_BACKWARD = Checker(
    function="layer_norm_backward",
    outputs=("dx", "dgamma", "dbeta"),
    reference=transformer.layer_norm_backward,
    make_cases=_lnb_cases,
    make_harder=_lnb_harder,
    mistakes=(
        Mistake("constant-statistics", _LNB_CONSTANTS,
                partial(_lnb, mean_term=False, var_term=False)),
        Mistake("no-mean-term", _LNB_NO_MEAN, partial(_lnb, mean_term=False)),
        Mistake("no-variance-term", _LNB_NO_VAR, partial(_lnb, var_term=False)),
        Mistake("gamma-forgotten", _LNB_NO_GAMMA, partial(_lnb, use_gamma=False)),
        Mistake("dgamma-from-x", _LNB_DGAMMA_X, partial(_lnb, dgamma_of="x")),
        Mistake("not-summed-over-rows", _LNB_NOT_SUMMED, partial(_lnb, reduce="none")),
        Mistake("not-summed-over-rows", _LNB_NOT_SUMMED, partial(_lnb, reduce="first")),
        Mistake("mean-over-rows", _LNB_MEAN, partial(_lnb, reduce="mean")),
    ),
    hint="with x̂ = (x − μ) / √(σ² + ε) and dx̂ = dy ⊙ γ: dbeta = Σ_rows dy, "
    "dgamma = Σ_rows dy ⊙ x̂ (each (d,), summed over every row), "
    "dx = (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)) / √(σ² + ε), the means over each row's "
    "features (axis=-1, keepdims=True).",
)


def check_layer_norm_backward(
    layer_norm_backward: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `layer_norm_backward(x, gamma, dy, eps=1e-5)`, which must return
    (dx, dgamma, dbeta), dgamma and dbeta summed over every row."""
    return LAYER_NORM_BACKWARD.check(layer_norm_backward, timeout=timeout, harder=harder)


# -- transformer_block(X, ln1_gamma, ..., b_2, n_heads) -> Y ------------------------------------

PARAM_NAMES = transformer.BLOCK_PARAM_NAMES
"""The block's parameters, in the order the learner's function takes them after X."""

CHANGED = ", its last token changed"
"""The end of the name of a case that repeats another with a new last token."""


def block_reference(
    X: np.ndarray, ln1_gamma: np.ndarray, ln1_beta: np.ndarray, W_Q: np.ndarray,
    W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray, ln2_gamma: np.ndarray,
    ln2_beta: np.ndarray, W_1: np.ndarray, b_1: np.ndarray, W_2: np.ndarray, b_2: np.ndarray,
    n_heads: int,
) -> np.ndarray:
    """`transformer.transformer_block` with its parameters one by one (the exercise's form):
    H = X + MHA(LN_1(X)) with the causal mask, Y = H + FFN(LN_2(H))."""
    values = (ln1_gamma, ln1_beta, W_Q, W_K, W_V, W_O, ln2_gamma, ln2_beta, W_1, b_1, W_2, b_2)
    return transformer.transformer_block(X, dict(zip(PARAM_NAMES, values, strict=True)), n_heads)


def _block_case(name: str, seed: int, n: int, d_model: int, n_heads: int, d_ff: int,
                dtype: Any = float, batch: tuple[int, ...] = ()) -> Case:
    def draw(offset: int, *shape: int, scale: float = 0.5, mean: float = 0.0) -> np.ndarray:
        return (mean + random_normal(seed + offset, *shape, scale=scale)).astype(dtype)

    shapes = {
        "ln1_gamma": (d_model,), "ln1_beta": (d_model,), "W_Q": (d_model, d_model),
        "W_K": (d_model, d_model), "W_V": (d_model, d_model), "W_O": (d_model, d_model),
        "ln2_gamma": (d_model,), "ln2_beta": (d_model,), "W_1": (d_model, d_ff),
        "b_1": (d_ff,), "W_2": (d_ff, d_model), "b_2": (d_model,),
    }
    params = tuple(
        (p, draw(i + 1, *shapes[p], mean=1.0 if p.endswith("gamma") else 0.0,
                 scale=0.3 if p.endswith("gamma") else 0.5))
        for i, p in enumerate(PARAM_NAMES))
    X = draw(0, *batch, n, d_model, scale=1.5, mean=0.5)
    return Case(name, (("X", X), *params, ("n_heads", n_heads)))


def _last_token_changed(case: Case, seed: int) -> Case:
    """The same case with a new last token (last row of X): a causal block's outputs for the
    earlier tokens do not change."""
    X = case.inputs["X"].copy()
    X[..., -1, :] = random_normal(seed, *X.shape[:-2], X.shape[-1], scale=1.5) + 0.5
    return Case(case.name + CHANGED, (("X", X), *case.args[1:]), case.kwargs)


def _block_cases() -> list[Case]:
    base = _block_case("random, n = 4, d_model = 4, 2 heads, d_ff = 8", 1000, 4, 4, 2, 8)
    return [
        _block_case("one token, n = 1, d_model = 4, 2 heads, d_ff = 8", 1020, 1, 4, 2, 8),
        _block_case("random, n = 3, d_model = 4, 2 heads, d_ff = 8", 1040, 3, 4, 2, 8),
        base,
        _last_token_changed(base, 1019),
        _block_case("one head, n = 3, d_model = 4, d_ff = 6", 1060, 3, 4, 1, 6),
        _block_case("random, n = 5, d_model = 6, 3 heads, d_ff = 12", 1080, 5, 6, 3, 12),
        _block_case("float32, n = 4, d_model = 4, 2 heads, d_ff = 8", 1100, 4, 4, 2, 8,
                    dtype=np.float32),
        _block_case("a batch of 3 sequences, n = 2, d_model = 4, 2 heads, d_ff = 8", 1140,
                    2, 4, 2, 8, batch=(3,)),
    ]


def _block_harder() -> list[Case]:
    batch = _block_case("a batch of 2 sequences, n = 3, d_model = 4, 2 heads, d_ff = 8", 1120,
                        3, 4, 2, 8, batch=(2,))
    return [batch, _last_token_changed(batch, 1139)]


@dataclasses.dataclass(frozen=True)
class _Pieces:
    """A block's sublayers on one case's parameters (for the wrong variants)."""

    p: dict[str, np.ndarray]
    n_heads: int

    def ln1(self, Z: np.ndarray) -> np.ndarray:
        return transformer.layer_norm(Z, self.p["ln1_gamma"], self.p["ln1_beta"])

    def ln2(self, Z: np.ndarray) -> np.ndarray:
        return transformer.layer_norm(Z, self.p["ln2_gamma"], self.p["ln2_beta"])

    def mha(self, Z: np.ndarray, mask: str = "causal") -> np.ndarray:
        n = Z.shape[-2]
        allowed = {"causal": attention.causal_mask(n), "none": None,
                   "future": attention.causal_mask(n).T,
                   "d_model": attention.causal_mask(Z.shape[-1]),
                   "first-axis": attention.causal_mask(Z.shape[0])}[mask]
        p = self.p
        return attention.multi_head_self_attention(Z, p["W_Q"], p["W_K"], p["W_V"], p["W_O"],
                                                   self.n_heads, allowed)[0]

    def ffn(self, Z: np.ndarray) -> np.ndarray:
        p = self.p
        return transformer.feed_forward(Z, p["W_1"], p["b_1"], p["W_2"], p["b_2"])


def _variant(build: Callable[[np.ndarray, _Pieces], np.ndarray]) -> Callable[..., np.ndarray]:
    """A wrong block with the learner's signature, from `build(X, pieces)`."""

    def compute(X: np.ndarray, *args: Any) -> np.ndarray:
        *params, n_heads = args
        return build(X, _Pieces(dict(zip(PARAM_NAMES, params, strict=True)), n_heads))

    return compute


def _pre_norm(X: np.ndarray, s: _Pieces, *, mask: str = "causal", first: str = "X",
              second: str = "H", ffn_reads: str = "H", ln1: bool = True,
              ln2: bool = True, swap_ln: bool = False) -> np.ndarray:
    """The pre-norm block with its residuals or norms changed (the keyword arguments): the
    stream each residual adds back ("X", "H", "LN": the normalised copy, "none"), what the
    feed-forward half reads ("H", "X"), a LayerNorm left out, LN_1 and LN_2 swapped."""
    norm1, norm2 = (s.ln2, s.ln1) if swap_ln else (s.ln1, s.ln2)
    A_in = norm1(X) if ln1 else X
    A = s.mha(A_in, mask)
    H = {"X": X, "LN": A_in, "none": 0}[first] + A
    F_in = {"H": H, "X": X}[ffn_reads]
    F_in = norm2(F_in) if ln2 else F_in
    F = s.ffn(F_in)
    return {"H": H, "X": X, "LN": F_in, "none": 0}[second] + F


def _post_norm(X: np.ndarray, s: _Pieces) -> np.ndarray:
    """The original Transformer's post-norm block (Vaswani et al. 2017): LN(X + sublayer(X))."""
    H = s.ln1(X + s.mha(X))
    return s.ln2(H + s.ffn(H))


def _norm_inside_residual(X: np.ndarray, s: _Pieces) -> np.ndarray:
    """X + LN(MHA(X)): the LayerNorm after the sublayer, on the branch."""
    H = X + s.ln1(s.mha(X))
    return H + s.ln2(s.ffn(H))


_NO_MASK = (
    "your block has no causal mask; each token's output must depend only on the tokens up to "
    "it (a GPT predicts token i + 1 from tokens 0 .. i; seeing the next token would be "
    "copying the answer). Pass the causal mask to the attention, "
    "`np.tril(np.ones((n, n), dtype=bool))` with n = X.shape[-2], True = may attend."
)
_FUTURE_MASK = (
    "your mask is the wrong triangle: `np.triu` lets token i see the tokens j >= i, the "
    "future. The causal mask keeps j <= i, on and below the diagonal: "
    "`np.tril(np.ones((n, n), dtype=bool))`."
)
_MASK_SIZE = (
    "your causal mask does not have the size of the sequence: it is (n, n) with n the number "
    "of tokens, `n = X.shape[-2]`, the second axis from the end. X.shape[-1] is d_model, and "
    "X.shape[0] is the batch when there is one."
)
_POST_NORM = (
    "your block is the post-norm block of the original Transformer, LN(X + MHA(X)); the exercise "
    "asks for the pre-norm block of GPT-2: each sublayer reads a normalised copy, and the "
    "residual adds its result to the stream unnormalised: H = X + MHA(LN_1(X)), "
    "Y = H + FFN(LN_2(H)). (Pre-norm trains deep stacks without a warm-up: the stream X → H "
    "→ Y is never squeezed through a LayerNorm.)"
)
_NORM_ON_BRANCH = (
    "your LayerNorm is applied to the sublayer's output, X + LN(MHA(X)); in a pre-norm block "
    "it is applied to the sublayer's input: H = X + MHA(LN_1(X)), Y = H + FFN(LN_2(H))."
)
_RESIDUAL_FROM_LN = (
    "your residual adds back the normalised copy, LN_1(X) + MHA(LN_1(X)); it adds the "
    "stream itself: H = X + MHA(LN_1(X)) (and Y = H + FFN(LN_2(H))). The LayerNorm only "
    "feeds the sublayer; the residual path carries X unchanged."
)
_NO_RESIDUAL = (
    "your block misses a residual connection; each half adds its result to its input, "
    "H = X + MHA(LN_1(X)) and Y = H + FFN(LN_2(H)). Without the X + (or H +) the block "
    "replaces the stream instead of adding to it, and gradients lose their direct path "
    "through a deep stack."
)
_SKIPS_H = (
    "your second residual adds X; it must add H, the stream after attention: Y = H + FFN(LN_2(H)). "
    "With Y = X + FFN(...) the attention's result reaches Y only through the feed-forward "
    "network."
)
_PARALLEL = (
    "your feed-forward half reads X; it must read H, the stream after the attention has added "
    "its result: Y = H + FFN(LN_2(H)). (Attention and FFN side by side on the same X is "
    "the 'parallel' block of GPT-J and PaLM: another design, not the one asked.)"
)
_NO_NORM = (
    "your block misses a LayerNorm; each sublayer reads a normalised copy of the stream, "
    "MHA(LN_1(X)) and FFN(LN_2(H))."
)
_LN_PARAMS = (
    "your two LayerNorms' parameters are mixed up: LN_1 (before the attention) uses "
    "ln1_gamma, ln1_beta; LN_2 (before the feed-forward network) uses ln2_gamma, ln2_beta."
)


def _leak_hint(token: int, pair: str) -> str:
    return (
        f"your block lets a token see the future: on the cases [{pair}] and [{pair}{CHANGED}], "
        f"which differ only in the last token, your output for token {token} changed. Each "
        "token's output may depend only on the tokens up to it (a GPT predicts token i + 1 "
        "from tokens 0 .. i). Is the causal mask missing or wrong? Pass "
        "`np.tril(np.ones((n, n), dtype=bool))` (n = X.shape[-2], True = may attend) to the "
        "attention. (Anything else that mixes tokens leaks too, such as a LayerNorm over the "
        "whole array instead of each row.)"
    )


class _CausalChecker(Checker):
    """A checker that also tests causality on its pairs of cases that differ only in the last
    token: a block whose outputs for earlier tokens change there sees the future."""

    def _report(self, judged: Sequence[Judged], graded: bool = False) -> CheckResult:
        result = super()._report(judged, graded)
        if result.passed or result.diagnosis == "future-mask":
            return result
        leak = _leak(self, judged)
        if leak is None:
            return result
        return dataclasses.replace(result, hint=_leak_hint(*leak), diagnosis="no-causal-mask")


def _leak(checker: Checker, judged: Sequence[Judged]) -> tuple[int, str] | None:
    """(the first token whose output changed, the case's name) on the first pair of cases
    that differ only in X's last row, where the learner's outputs for the earlier tokens
    differ; None when no pair shows a leak."""
    returned = [(j.case, checker.structure(j.outcome.value)[0]) for j in judged
                if j.outcome.returned]
    for case, got in returned:
        if got is None:
            continue
        for other, got_other in returned:
            if got_other is None or other is case or not _differ_in_last_token(case, other):
                continue
            Y, Y_other = got[0], got_other[0]
            if Y.shape != case.inputs["X"].shape or Y_other.shape != Y.shape:
                continue
            rtol, atol = case_tolerance(case)
            for token in range(Y.shape[-2] - 1):
                if not allclose(Y[..., token, :], Y_other[..., token, :], rtol, atol):
                    return token, case.name.removesuffix(CHANGED)
    return None


def _differ_in_last_token(a: Case, b: Case) -> bool:
    """Whether the two cases have the same inputs except the last row of X."""
    X, X_b = a.inputs["X"], b.inputs["X"]
    if X.shape != X_b.shape or X.dtype != X_b.dtype or X.shape[-2] < 2:
        return False
    if not np.array_equal(X[..., :-1, :], X_b[..., :-1, :]):
        return False
    rest, rest_b = a.args[1:], b.args[1:]
    return len(rest) == len(rest_b) and all(
        name == name_b and np.array_equal(value, value_b)
        for (name, value), (name_b, value_b) in zip(rest, rest_b, strict=True))


TRANSFORMER_BLOCK = _CausalChecker(
    function="transformer_block",
    outputs=("Y",),
    reference=block_reference,
    make_cases=_block_cases,
    make_harder=_block_harder,
    mistakes=(
        Mistake("no-causal-mask", _NO_MASK, _variant(partial(_pre_norm, mask="none"))),
        Mistake("future-mask", _FUTURE_MASK, _variant(partial(_pre_norm, mask="future"))),
        Mistake("mask-size", _MASK_SIZE, _variant(partial(_pre_norm, mask="d_model"))),
        Mistake("mask-size", _MASK_SIZE, _variant(partial(_pre_norm, mask="first-axis"))),
        Mistake("post-norm", _POST_NORM, _variant(_post_norm)),
        Mistake("norm-on-branch", _NORM_ON_BRANCH, _variant(_norm_inside_residual)),
        Mistake("residual-from-normalised", _RESIDUAL_FROM_LN,
                _variant(partial(_pre_norm, first="LN", second="LN"))),
        Mistake("residual-from-normalised", _RESIDUAL_FROM_LN,
                _variant(partial(_pre_norm, first="LN"))),
        Mistake("residual-from-normalised", _RESIDUAL_FROM_LN,
                _variant(partial(_pre_norm, second="LN"))),
        Mistake("no-residual", _NO_RESIDUAL,
                _variant(partial(_pre_norm, first="none", second="none"))),
        Mistake("no-residual", _NO_RESIDUAL, _variant(partial(_pre_norm, first="none"))),
        Mistake("no-residual", _NO_RESIDUAL, _variant(partial(_pre_norm, second="none"))),
        Mistake("second-residual-adds-X", _SKIPS_H, _variant(partial(_pre_norm, second="X"))),
        Mistake("parallel-block", _PARALLEL,
                _variant(partial(_pre_norm, ffn_reads="X", second="H"))),
        Mistake("missing-layer-norm", _NO_NORM,
                _variant(partial(_pre_norm, ln1=False, ln2=False))),
        Mistake("missing-layer-norm", _NO_NORM, _variant(partial(_pre_norm, ln1=False))),
        Mistake("missing-layer-norm", _NO_NORM, _variant(partial(_pre_norm, ln2=False))),
        Mistake("layer-norm-parameters", _LN_PARAMS, _variant(partial(_pre_norm, swap_ln=True))),
    ),
    hint="H = X + MHA(LN_1(X)) with the causal mask, then Y = H + FFN(LN_2(H)): each half "
    "reads a normalised copy of the stream and adds its result back. (Your block uses your "
    "layer_norm: make sure it passes its own check first.)",
)


def check_transformer_block(
    transformer_block: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `transformer_block(X, ln1_gamma, ln1_beta, W_Q, W_K, W_V, W_O,
    ln2_gamma, ln2_beta, W_1, b_1, W_2, b_2, n_heads)`, which must return the pre-norm block
    Y = H + FFN(LN_2(H)), H = X + MHA(LN_1(X)) with causal multi-head attention.

    The cases include a batch of sequences (X of shape (3, 2, d_model)), as the task allows;
    with `harder=True`, also a batch of 2 sequences and the same batch with a new last token
    (causality on a batch).
    """
    return TRANSFORMER_BLOCK.check(transformer_block, timeout=timeout, harder=harder)
