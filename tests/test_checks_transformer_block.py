"""Catalogues for the checkers of exercise 09: layer_norm, layer_norm_backward and
transformer_block. Every known mistake, written as a learner would write it, is rejected with
its own hint; unusual valid solutions are accepted; the block's causality test names the
token that saw the future, whatever else is wrong."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib import transformer
from course_lib.checks import transformer_block as tb
from course_lib.checks.calling import call_learner
from course_lib.checks.transformer_block import (
    check_layer_norm,
    check_layer_norm_backward,
    check_transformer_block,
)

CHECKERS = (tb.LAYER_NORM, tb.LAYER_NORM_BACKWARD, tb.TRANSFORMER_BLOCK)


@pytest.mark.parametrize("function", [checker.function for checker in CHECKERS])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


# -- layer_norm --------------------------------------------------------------------------------


def ln_numpy(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_moments(x, gamma, beta, eps=1e-5):
    """σ² = mean(x²) − μ²: another formula for the same variance, float32 kept."""
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.mean(x * x, axis=-1, keepdims=True) - mu * mu
    return gamma * ((x - mu) / np.sqrt(var + eps)) + beta


def ln_in_float32(x, gamma, beta, eps=1e-5):
    """Everything in float32, whatever the inputs' precision."""
    x, gamma, beta = (np.asarray(a, dtype=np.float32) for a in (x, gamma, beta))
    return ln_numpy(x, gamma, beta, np.float32(eps))


def ln_loops(x, gamma, beta, eps=1e-5):
    """One row at a time, one feature at a time, with Python's math."""
    y = np.zeros(x.shape)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index]
        d = len(row)
        mu = sum(row) / d
        var = sum((v - mu) ** 2 for v in row) / d
        for j in range(d):
            y[index + (j,)] = gamma[j] * (row[j] - mu) / math.sqrt(var + eps) + beta[j]
    return y


def ln_moveaxis_std(x, gamma, beta, eps=1e-5):
    """With np.std and the features moved to the front."""
    z = np.moveaxis(x, -1, 0)
    centred = z - z.mean(axis=0)
    x_hat = centred / np.sqrt(np.std(z, axis=0) ** 2 + eps)
    return np.moveaxis(x_hat, 0, -1) * gamma + beta


@pytest.mark.parametrize("fn", [ln_numpy, ln_moments, ln_in_float32, ln_loops, ln_moveaxis_std],
                         ids=name_of)
def test_layer_norm_accepts(fn):
    result = check_layer_norm(fn, harder=True)
    assert result.passed, result.feedback


def ln_var_axis_0(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=0, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_batchnorm(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(axis=0), x.var(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_eps_outside(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / (x.std(axis=-1, keepdims=True) + eps) + beta


def ln_not_centred(x, gamma, beta, eps=1e-5):
    return gamma * x / np.sqrt(x.var(axis=-1, keepdims=True) + eps) + beta


def ln_unbiased(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True, ddof=1)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_swapped(x, gamma, beta, eps=1e-5):
    return beta * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + gamma


def ln_whole(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean()) / np.sqrt(x.var() + eps) + beta


def ln_no_keepdims(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(axis=-1), x.var(axis=-1)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def ln_no_eps(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / x.std(axis=-1, keepdims=True) + beta


def ln_no_sqrt(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / (x.var(axis=-1, keepdims=True) + eps) + beta


def ln_no_gamma_beta(x, gamma, beta, eps=1e-5):
    """γ and β left out: x̂ itself (right where γ = 1 and β = 0)."""
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)


def ln_eps_ignored(x, gamma, beta, eps=1e-5):
    return ln_numpy(x, gamma, beta)


def ln_without_eps_parameter(x, gamma, beta):
    return ln_numpy(x, gamma, beta)


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (ln_var_axis_0, "wrong-axis", "runs over the wrong axis"),
        (ln_batchnorm, "wrong-axis", "BatchNorm normalises each feature"),
        (ln_eps_outside, "eps-outside-sqrt", "your ε sits outside the square root;"),
        (ln_not_centred, "mean-not-subtracted", "you did not subtract the mean"),
        (ln_unbiased, "unbiased-variance", "divided by d − 1 (ddof=1"),
        (ln_swapped, "gamma-beta-swapped", "γ and β are swapped"),
        (ln_whole, "whole-array", "you normalised the whole array"),
        (ln_no_keepdims, "no-keepdims", "lost its axis"),
        (ln_no_eps, "no-eps", "your function adds no ε"),
        (ln_no_gamma_beta, "gamma-beta-missing", "your output is x̂, the normalised rows"),
        (ln_no_sqrt, "no-sqrt", "divide by its square root"),
        (ln_eps_ignored, "eps-ignored", "ignores the `eps` it is given"),
        (ln_without_eps_parameter, "eps-parameter", "needs the parameter `eps=1e-05`"),
    ],
    ids=name_of,
)
def test_layer_norm_rejects(fn, key, hint):
    assert_rejected(check_layer_norm, fn, key, hint)


def test_eps_outside_the_root_shows_only_where_the_variance_is_small():
    """ε outside the square root is within float32's tolerance on rows of variance about 1;
    the nearly constant rows (σ² about 1e-4, close to ε) and the given eps = 0.5 catch it."""
    result = check_layer_norm(ln_eps_outside)
    assert "nearly constant rows" in result.feedback or "eps = 0.5" in result.feedback, (
        result.feedback)


# -- layer_norm_backward --------------------------------------------------------------------------


def _stats(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    return (x - mu) * inv_std, inv_std


def lnb_formula(x, gamma, dy, eps=1e-5):
    x_hat, inv_std = _stats(x, eps)
    g = dy * gamma
    dx = (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True)) * inv_std
    d = x.shape[-1]
    return dx, (dy * x_hat).reshape(-1, d).sum(0), dy.reshape(-1, d).sum(0)


def lnb_through_mu_and_var(x, gamma, dy, eps=1e-5):
    """The chain rule one node at a time: x̂ from x − μ and σ², each of them from x."""
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    dx_hat = dy * gamma
    dvar = np.sum(dx_hat * (x - mu), axis=-1, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = -np.sum(dx_hat, axis=-1, keepdims=True) / np.sqrt(var + eps) + dvar * np.mean(
        -2 * (x - mu), axis=-1, keepdims=True)
    dx = dx_hat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / d + dmu / d
    batch = tuple(range(x.ndim - 1))
    return dx, np.sum(dy * x_hat, axis=batch), np.sum(dy, axis=batch)


def lnb_jacobian(x, gamma, dy, eps=1e-5):
    """The full d × d Jacobian of each row, times dy (fine for small d)."""
    x_hat, inv_std = _stats(x, eps)
    d = x.shape[-1]
    dx = np.zeros(x.shape)
    for index in np.ndindex(x.shape[:-1]):
        h, s = x_hat[index], inv_std[index][0]
        J = gamma[:, None] * s * (np.eye(d) - 1 / d - np.outer(h, h) / d)  # ∂y_i/∂x_j
        dx[index] = J.T @ dy[index]
    rows_dy, rows_x_hat = dy.reshape(-1, d), x_hat.reshape(-1, d)
    return dx, np.einsum("rd,rd->d", rows_dy, rows_x_hat), np.einsum("rd->d", rows_dy)


def lnb_float32(x, gamma, dy, eps=1e-5):
    return tuple(g.astype(np.float32) for g in lnb_formula(x, gamma, dy, eps))


@pytest.mark.parametrize("fn", [lnb_formula, lnb_through_mu_and_var, lnb_jacobian, lnb_float32],
                         ids=name_of)
def test_layer_norm_backward_accepts(fn):
    result = check_layer_norm_backward(fn, harder=True)
    assert result.passed, result.feedback


def _lnb_wrong(mistake):
    def fn(x, gamma, dy, eps=1e-5):
        x_hat, inv_std = _stats(x, eps)
        g = dy if mistake == "gamma" else dy * gamma
        dx = g
        if mistake not in ("mean", "both"):
            dx = dx - g.mean(-1, keepdims=True)
        if mistake not in ("var", "both"):
            dx = dx - x_hat * (g * x_hat).mean(-1, keepdims=True)
        dx = dx * inv_std
        dgamma, dbeta = dy * (x if mistake == "dgamma x" else x_hat), dy
        if mistake == "not summed":
            return dx, dgamma, dbeta
        if mistake == "axis 0":
            return dx, dgamma.sum(axis=0), dbeta.sum(axis=0)
        rows = [g.reshape(-1, x.shape[-1]) for g in (dgamma, dbeta)]
        if mistake == "mean rows":
            return dx, *(r.mean(axis=0) for r in rows)
        return dx, *(r.sum(axis=0) for r in rows)

    fn.__name__ = "lnb_" + mistake.replace(" ", "_")
    return fn


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_lnb_wrong("mean"), "no-mean-term", "your dx misses the term through the mean"),
        (_lnb_wrong("var"), "no-variance-term", "your dx misses the term through the variance"),
        (_lnb_wrong("both"), "constant-statistics", "you treated μ and σ² as constants"),
        (_lnb_wrong("gamma"), "gamma-forgotten", "your dx forgets γ"),
        (_lnb_wrong("dgamma x"), "dgamma-from-x", "dgamma uses x"),
        (_lnb_wrong("not summed"), "not-summed-over-rows", "not summed over all the rows"),
        (_lnb_wrong("axis 0"), "not-summed-over-rows", "not summed over all the rows"),
        (_lnb_wrong("mean rows"), "mean-over-rows", "divided by the number of rows"),
    ],
    ids=name_of,
)
def test_layer_norm_backward_rejects(fn, key, hint):
    assert_rejected(check_layer_norm_backward, fn, key, hint)


# -- transformer_block ----------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mha(X, W_Q, W_K, W_V, W_O, n_heads, mask=None, blocked=-np.inf):
    d_head = X.shape[-1] // n_heads

    def split(M):
        return np.swapaxes(M.reshape(*M.shape[:-1], n_heads, d_head), -2, -3)

    Q, K, V = split(X @ W_Q), split(X @ W_K), split(X @ W_V)
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(d_head)
    if mask is not None:
        scores = np.where(mask, scores, blocked)
    heads = _softmax(scores) @ V
    return np.swapaxes(heads, -2, -3).reshape(X.shape) @ W_O


def _ffn(X, W_1, b_1, W_2, b_2):
    Z = X @ W_1 + b_1
    return 0.5 * Z * (1 + np.tanh(math.sqrt(2 / math.pi) * (Z + 0.044715 * Z**3))) @ W_2 + b_2


def _block(X, ln1_gamma, ln1_beta, W_Q, W_K, W_V, W_O, ln2_gamma, ln2_beta, W_1, b_1, W_2, b_2,
           n_heads, *, wrong="", norm=ln_numpy):
    """A learner's block, right or with the mistake named by `wrong`."""
    n = X.shape[-2]
    mask = {"no mask": None, "triu": np.triu(np.ones((n, n), bool)),
            "mask of d_model": np.tril(np.ones((X.shape[-1],) * 2, bool)),
            "mask of shape[0]": np.tril(np.ones((X.shape[0],) * 2, bool))}.get(
        wrong, np.tril(np.ones((n, n), bool)))

    def attend(Z):
        return _mha(Z, W_Q, W_K, W_V, W_O, n_heads, mask)

    def ffn(Z):
        return _ffn(Z, W_1, b_1, W_2, b_2)

    def ln1(Z):
        return norm(Z, *((ln2_gamma, ln2_beta) if wrong == "ln swapped" else (ln1_gamma, ln1_beta)))

    def ln2(Z):
        return norm(Z, *((ln1_gamma, ln1_beta) if wrong == "ln swapped" else (ln2_gamma, ln2_beta)))

    if wrong in ("post-norm", "post-norm no mask"):
        if wrong == "post-norm no mask":
            def attend(Z):
                return _mha(Z, W_Q, W_K, W_V, W_O, n_heads)
        H = ln1(X + attend(X))
        return ln2(H + ffn(H))
    if wrong == "norm on branch":
        H = X + ln1(attend(X))
        return H + ln2(ffn(H))
    if wrong == "residual from ln":
        A_in = ln1(X)
        H = A_in + attend(A_in)
        return H + ffn(ln2(H))
    if wrong == "no residual":
        return ffn(ln2(attend(ln1(X))))
    if wrong == "parallel":
        return X + attend(ln1(X)) + ffn(ln2(X))
    if wrong == "second adds X":
        return X + ffn(ln2(X + attend(ln1(X))))
    if wrong == "no ln":
        H = X + attend(X)
        return H + ffn(H)
    H = X + attend(ln1(X))
    return H + ffn(ln2(H))


def block_solution(X, *args):
    return _block(X, *args)


def block_large_negative(X, *args):
    """The mask applied with −1e9 instead of −∞: the same on a causal mask (no row is fully
    blocked)."""
    *params, n_heads = args
    W_Q, W_K, W_V, W_O = params[2:6]
    n = X.shape[-2]

    def attend(Z):
        return _mha(Z, W_Q, W_K, W_V, W_O, n_heads, np.tril(np.ones((n, n), bool)), blocked=-1e9)

    H = X + attend(ln_numpy(X, params[0], params[1]))
    return H + _ffn(ln_numpy(H, params[6], params[7]), *params[8:])


def block_token_by_token(X, ln1_gamma, ln1_beta, W_Q, W_K, W_V, W_O, ln2_gamma, ln2_beta, W_1,
                         b_1, W_2, b_2, n_heads):
    """No mask at all: token i attends over the slice of tokens 0 .. i (causal by slicing)."""
    A_in = ln_loops(X, ln1_gamma, ln1_beta)
    A = np.zeros(X.shape)
    for i in range(X.shape[-2]):
        A[..., i, :] = _mha(A_in[..., : i + 1, :], W_Q, W_K, W_V, W_O, n_heads)[..., i, :]
    H = X + A
    return H + _ffn(ln_moments(H, ln2_gamma, ln2_beta), W_1, b_1, W_2, b_2)


def block_course_lib(X, *args):
    """With the course's own pieces (as a learner at home may)."""
    return tb.block_reference(X, *args)


@pytest.mark.parametrize(
    "fn", [block_solution, block_large_negative, block_token_by_token, block_course_lib],
    ids=name_of)
def test_transformer_block_accepts(fn):
    result = check_transformer_block(fn, harder=True)
    assert result.passed, result.feedback


def _block_wrong(mistake, norm=ln_numpy):
    def fn(X, *args):
        return _block(X, *args, wrong=mistake, norm=norm)

    fn.__name__ = "block_" + re.sub(r"\W+", "_", mistake)
    return fn


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_block_wrong("no mask"), "no-causal-mask", "your output for token 0 changed"),
        (_block_wrong("triu"), "future-mask", "your mask is the wrong triangle"),
        (_block_wrong("mask of d_model"), "mask-size", "`n = X.shape[-2]`"),
        (_block_wrong("post-norm"), "post-norm", "the post-norm block of the original"),
        (_block_wrong("norm on branch"), "norm-on-branch", "applied to the sublayer's output"),
        (_block_wrong("residual from ln"), "residual-from-normalised",
         "your residual adds back the normalised copy"),
        (_block_wrong("no residual"), "no-residual", "your block misses a residual connection"),
        (_block_wrong("parallel"), "parallel-block", "your feed-forward half reads X"),
        (_block_wrong("second adds X"), "second-residual-adds-X", "your second residual adds X"),
        (_block_wrong("no ln"), "missing-layer-norm", "your block misses a LayerNorm"),
        (_block_wrong("ln swapped"), "layer-norm-parameters", "parameters are mixed up"),
    ],
    ids=name_of,
)
def test_transformer_block_rejects(fn, key, hint):
    assert_rejected(check_transformer_block, fn, key, hint)


def test_a_mask_sized_from_the_first_axis_shows_on_a_batch_without_harder():
    """The task allows X of shape (b, n, d_model): the standard cases hold a batch, so a mask
    sized from the first axis (right on a single sequence) fails without harder=True."""
    fn = _block_wrong("mask of shape[0]")
    for harder in (False, True):
        assert_rejected(check_transformer_block, fn, "mask-size", "X.shape[0] is the batch",
                        harder=harder)


def test_a_forgotten_mask_is_found_by_its_leak_even_with_another_mistake():
    """Post-norm and no mask at once matches no known mistake; the pair of cases that differ
    only in the last token shows the leak, and the hint says so."""
    assert_rejected(check_transformer_block, _block_wrong("post-norm no mask"),
                    "no-causal-mask", "your block lets a token see the future")


def test_a_layer_norm_over_the_whole_array_leaks_too_and_the_hint_says_so():
    result = check_transformer_block(_block_wrong("", norm=ln_whole))
    assert result.diagnosis == "no-causal-mask", result.feedback
    assert "a LayerNorm over the whole array" in result.hint, result.feedback


def test_the_leak_is_found_in_a_graders_fresh_cases():
    fn = _block_wrong("post-norm no mask")

    def caller(case):
        return call_learner(fn, case.args, case.kwargs)

    result = tb.TRANSFORMER_BLOCK.run(caller, seed=5)
    assert result.diagnosis == "no-causal-mask", result.feedback


def test_the_changed_cases_change_only_the_last_token():
    cases = {case.name: case for case in tb.TRANSFORMER_BLOCK.cases(harder=True)}
    changed = [name for name in cases if name.endswith(tb.CHANGED)]
    assert len(changed) == 2
    for name in changed:
        a, b = cases[name.removesuffix(tb.CHANGED)], cases[name]
        assert tb._differ_in_last_token(a, b)
        Y_a, Y_b = a.call(tb.block_reference), b.call(tb.block_reference)
        np.testing.assert_allclose(Y_a[..., :-1, :], Y_b[..., :-1, :])
        assert not np.allclose(Y_a[..., -1, :], Y_b[..., -1, :])


def test_the_block_reference_is_the_course_transformer_block():
    case = tb.TRANSFORMER_BLOCK.cases()[2]
    X, *params, n_heads = (value for _, value in case.args)
    want = transformer.transformer_block(X, dict(zip(tb.PARAM_NAMES, params, strict=True)),
                                         n_heads)
    np.testing.assert_array_equal(case.call(tb.block_reference), want)
    np.testing.assert_allclose(case.call(block_solution), want, rtol=1e-12, atol=1e-12)


# -- the hints themselves -------------------------------------------------------------------------

HINTS = sorted({*(m.hint for checker in CHECKERS for m in checker.mistakes),
                *(checker.hint for checker in CHECKERS), tb._leak_hint(0, "a case")})


def _namespace():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    return {"np": np, "x": x, "dy": rng.standard_normal((2, 3, 4)), "var": x.var(-1),
            "eps": 1e-5, "n": 3, "X": x}


MISTAKE_HINTS = sorted({m.hint for checker in CHECKERS for m in checker.mistakes})


@pytest.mark.parametrize("hint", MISTAKE_HINTS, ids=lambda hint: hint[:40])
def test_a_mistakes_hint_says_what_the_learner_did_first(hint):
    """A known mistake's hint opens with what the learner did ("your ε sits outside ...",
    "you divided ..."), then gives the rule; it does not open with the rule itself."""
    opening = re.split(r"[:;]", hint, maxsplit=1)[0]
    assert re.search(r"\b[Yy]our?\b", opening), hint


@pytest.mark.parametrize("hint", HINTS, ids=lambda hint: hint[:40])
def test_the_code_a_hint_suggests_runs(hint):
    """Code in a hint is in backticks, and runs on arrays with one batch axis; no hint
    hands out the backward pass's code."""
    outside = re.sub(r"`[^`]+`", "", hint)
    assert "np." not in outside, "code outside backticks is not tested: " + hint
    for snippet in re.findall(r"`([^`]+)`", hint):
        exec(snippet, _namespace())  # noqa: S102 - our own hint texts


def test_the_summing_hint_gives_one_vector_per_parameter():
    namespace = _namespace()
    snippet = re.findall(r"`([^`]+)`", tb._LNB_NOT_SUMMED)[0]
    np.testing.assert_allclose(eval(snippet, namespace),  # noqa: S307
                               namespace["dy"].sum(axis=(0, 1)))
