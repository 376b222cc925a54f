"""Catalogues for the checkers of exercise 05: softmax_backward and self_attention_backward."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib.checks import check_self_attention_backward, check_softmax_backward, core, training

# -- softmax_backward ----------------------------------------------------------------------------


def sb_vectorized(weights, d_weights, axis=-1):
    return weights * (d_weights - np.sum(weights * d_weights, axis=axis, keepdims=True))


def sb_einsum(weights, d_weights, axis=-1):
    w, d = np.moveaxis(weights, axis, -1), np.moveaxis(d_weights, axis, -1)
    inner = np.einsum("...j,...j->...", w, d)[..., None]
    return np.moveaxis(w * (d - inner), -1, axis)


def sb_jacobian(weights, d_weights, axis=-1):
    """The full Jacobian diag(α) − α αᵀ of each row, times dα (fine for small n)."""
    w, d = np.moveaxis(weights, axis, -1), np.moveaxis(d_weights, axis, -1)
    out = np.zeros(w.shape, dtype=np.result_type(w, d))
    for index in np.ndindex(w.shape[:-1]):
        alpha = w[index]
        J = np.diag(alpha) - np.outer(alpha, alpha)
        out[index] = J.T @ d[index]
    return np.moveaxis(out, -1, axis)


def sb_loops(weights, d_weights, axis=-1):
    w = np.moveaxis(weights, axis, -1)
    d = np.moveaxis(d_weights, axis, -1)
    out = np.zeros(w.shape, dtype=np.result_type(w, d))
    for index in np.ndindex(w.shape[:-1]):
        s = sum(w[index][j] * d[index][j] for j in range(w.shape[-1]))
        for k in range(w.shape[-1]):
            out[index][k] = w[index][k] * (d[index][k] - s)
    return np.moveaxis(out, -1, axis)


def sb_elementwise(weights, d_weights, axis=-1):
    return weights * d_weights


def sb_no_alpha(weights, d_weights, axis=-1):
    return d_weights - np.sum(weights * d_weights, axis=axis, keepdims=True)


def sb_wrong_axis(weights, d_weights, axis=-1):
    return weights * (d_weights - np.sum(weights * d_weights, axis=0, keepdims=True))


def sb_no_keepdims(weights, d_weights, axis=-1):
    return weights * (d_weights - np.sum(weights * d_weights, axis=-1))


def sb_axis_ignored(weights, d_weights, axis=-1):
    return weights * (d_weights - np.sum(weights * d_weights, axis=-1, keepdims=True))


def sb_lesson_copy(weights, d_weights):
    """The lesson's softmax_backward, copied with its two-argument signature."""
    row_sums = np.sum(weights * d_weights, axis=-1, keepdims=True)
    return weights * (d_weights - row_sums)


def sb_matmul_for_sum(weights, d_weights, axis=-1):
    """The row sums as a matrix product: raises on the 1 × 3 case (shapes do not line up)."""
    return weights * (d_weights - weights @ d_weights)


@pytest.mark.parametrize("fn", [sb_vectorized, sb_einsum, sb_jacobian, sb_loops], ids=name_of)
def test_softmax_backward_accepts(fn):
    result = check_softmax_backward(fn, harder=True)
    assert result.passed, result.feedback


def sb_diagonal_only(weights, d_weights, axis=-1):
    """Only the Jacobian's diagonal α(1 − α): a bug that shipped in a public library."""
    return d_weights * weights * (1 - weights)


def sb_no_diagonal_term(weights, d_weights, axis=-1):
    """The Jacobian as − α αᵀ, its diag(α) forgotten."""
    return -weights * np.sum(weights * d_weights, axis=axis, keepdims=True)


def sb_plain_sum(weights, d_weights, axis=-1):
    return weights * (d_weights - d_weights.sum(axis=axis, keepdims=True))


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (sb_elementwise, "elementwise", "is not elementwise"),
        (sb_no_alpha, "no-alpha", "the factor α in front is missing"),
        (sb_wrong_axis, "wrong-axis", "runs over the wrong axis"),
        (sb_no_keepdims, "no-keepdims", "the row sums lost their axis"),
        (sb_axis_ignored, "axis-ignored", "ignores `axis`"),
        (sb_lesson_copy, "axis-parameter", "your function needs the parameter `axis=-1`"),
        (sb_matmul_for_sum, "exception", "d_scores = α ⊙ (dα − Σ_j α_j dα_j)"),
        (sb_diagonal_only, "diagonal-only", "only the diagonal of the softmax's Jacobian"),
        (sb_no_diagonal_term, "no-diagonal-term", "the diagonal term of the softmax's Jacobian"),
        (sb_plain_sum, "sum-without-alpha", "not the plain sum Σ_j dα_j"),
    ],
    ids=name_of,
)
def test_softmax_backward_rejects(fn, key, hint):
    assert_rejected(check_softmax_backward, fn, key, hint)
    assert "weights * (d_weights" not in check_softmax_backward(fn).hint  # not the solution


def test_the_diagonal_only_backward_is_not_blamed_on_a_sum_it_does_not_have():
    """On the one-row hand-worked case, α ⊙ (dα − Σ over the wrong axis) and the diagonal
    α(1 − α) dα give the same numbers; the other failing cases tell them apart. Without its
    own catalogue entry, the diagonal-only backward gets the formula, not "wrong axis"."""
    first = training.SOFTMAX_BACKWARD.cases()[0]
    np.testing.assert_allclose(first.call(sb_diagonal_only), first.call(sb_wrong_axis))
    without = dataclasses.replace(training.SOFTMAX_BACKWARD, mistakes=tuple(
        m for m in training.SOFTMAX_BACKWARD.mistakes if m.key != "diagonal-only"))
    result = without.check(sb_diagonal_only)
    assert result.diagnosis != "wrong-axis", result.feedback
    assert "wrong axis" not in result.hint, result.feedback


@pytest.mark.parametrize("function", ["softmax_backward", "self_attention_backward"])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


def test_softmax_backward_fallback_after_an_error_is_the_formula_not_the_code():
    result = check_softmax_backward(sb_matmul_for_sum)
    assert result.diagnosis == "exception", result.feedback
    assert "Reminder: d_scores = α ⊙ (dα − Σ_j α_j dα_j)" in result.feedback, result.feedback


# -- the hints themselves -------------------------------------------------------------------------

HINTS = [
    *(m.hint for checker in (training.SOFTMAX_BACKWARD, training.SELF_ATTENTION_BACKWARD)
      for m in checker.mistakes),
    training.SOFTMAX_BACKWARD.hint, training.SELF_ATTENTION_BACKWARD.hint,
    training.SELF_ATTENTION_BACKWARD.nan_hint, core.BLOCKED_ROW_NAN,
    check_softmax_backward(sb_lesson_copy).hint,  # the missing `axis` parameter's hint
]


def _snippets(hint):
    return re.findall(r"`([^`]+)`", hint)


def _namespace():
    rng = np.random.default_rng(0)
    X, dQ = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    weights = rng.random((2, 5, 5))
    return {"np": np, "X": X, "dQ": dQ, "weights": weights / weights.sum(-1, keepdims=True),
            "d_weights": rng.standard_normal((2, 5, 5)), "dO": rng.standard_normal((2, 5, 3)),
            "M": rng.standard_normal((2, 5, 3)), "axis": -1,
            "scores": rng.standard_normal((2, 5, 5)), "mask": np.tril(np.ones((5, 5), bool))}


@pytest.mark.parametrize("hint", sorted(set(HINTS)), ids=lambda hint: hint[:40])
def test_the_code_a_hint_suggests_runs(hint):
    """Code in a hint is in backticks, and runs on arrays with one batch axis."""
    outside = re.sub(r"`[^`]+`", "", hint)
    assert "np." not in outside, "code outside backticks is not tested: " + hint
    assert "weights * (d_weights" not in hint  # no hint hands out the solution
    for snippet in _snippets(hint):
        exec(snippet, _namespace())  # noqa: S102 - our own hint texts


def test_the_batch_hint_sums_the_weight_gradients_over_the_batch():
    snippets = [s for s in _snippets(training._BATCH_HINT) if "dQ" in s]
    assert len(snippets) == 2, training._BATCH_HINT
    namespace = _namespace()
    want = sum(namespace["X"][b].T @ namespace["dQ"][b] for b in range(2))
    for snippet in snippets:
        np.testing.assert_allclose(eval(snippet, namespace), want)  # noqa: S307


# -- self_attention_backward ---------------------------------------------------------------------


def _T(M):
    return np.swapaxes(M, -1, -2)


def _forward(X, W_Q, W_K, W_V, mask=None):
    """The forward pass the exercise gives: Q, K, V and the weights (blocked rows give 0)."""
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    scores = Q @ _T(K) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=-1, keepdims=True)
    return Q, K, V, np.divide(e, total, out=np.zeros_like(e), where=total > 0)


_SOFTMAX_BACKWARDS = {
    "softmax elementwise": sb_elementwise, "softmax diagonal only": sb_diagonal_only,
    "softmax no diagonal term": sb_no_diagonal_term, "softmax plain sum": sb_plain_sum,
    "softmax skipped": lambda weights, d_weights: d_weights,
}


def _backward(X, W_Q, W_K, W_V, dO, mask=None, *, wrong="", forward=_forward):
    """A learner's backward pass, right, or with the mistake named by `wrong`."""
    Q, K, V, weights = forward(X, W_Q, W_K, W_V, None if wrong == "mask" else mask)
    d_k = Q.shape[-1]
    dV = (weights if wrong == "dV" else _T(weights)) @ dO
    d_weights = dO @ _T(V)
    d_scores = _SOFTMAX_BACKWARDS.get(wrong, sb_vectorized)(weights, d_weights)
    dQ = d_scores @ K / (1 if wrong in ("scale", "scale dQ") else math.sqrt(d_k))
    dK = (d_scores if wrong == "dK" else _T(d_scores)) @ Q / (
        1 if wrong in ("scale", "scale dK") else math.sqrt(d_k))
    if wrong == "scale times":
        dQ, dK = d_scores @ K * math.sqrt(d_k), _T(d_scores) @ Q * math.sqrt(d_k)
    paths = {"Q": dQ @ W_Q.T, "K": dK @ W_K.T, "V": dV @ W_V.T}
    dX = paths["V"] if wrong == "one path" else paths["Q"] + paths["K"] + paths["V"]
    dWs = [np.einsum("...nd,...nk->...dk", X, dM) for dM in (dQ, dK, dV)]
    if wrong == "batch mean":
        dWs = [dW.reshape(-1, *dW.shape[-2:]).mean(axis=0) for dW in dWs]
    elif wrong != "batch":
        dWs = [dW.reshape(-1, *dW.shape[-2:]).sum(axis=0) for dW in dWs]
    return (dX, *dWs)


def sab_matmul(X, W_Q, W_K, W_V, dO, mask=None):
    return _backward(X, W_Q, W_K, W_V, dO, mask)


def sab_list(X, W_Q, W_K, W_V, dO, mask=None):
    return list(_backward(X, W_Q, W_K, W_V, dO, mask))


def sab_reference_pieces(X, W_Q, W_K, W_V, dO, mask=None):
    """With the course's own forward functions and flattening for the weight gradients."""
    from course_lib.attention import attention_weights, project_qkv
    Q, K, V = project_qkv(X, W_Q, W_K, W_V)
    weights = attention_weights(Q, K, mask)
    dV = _T(weights) @ dO
    d_scores = sb_einsum(weights, dO @ _T(V))
    dQ = d_scores @ K / np.sqrt(Q.shape[-1])
    dK = _T(d_scores) @ Q / np.sqrt(Q.shape[-1])
    dX = dQ @ W_Q.T + dK @ W_K.T + dV @ W_V.T
    flat = X.reshape(-1, X.shape[-1])
    return (dX, *(flat.T @ dM.reshape(-1, dM.shape[-1]) for dM in (dQ, dK, dV)))


def sab_loops(X, W_Q, W_K, W_V, dO, mask=None):
    """One sequence at a time, and one row of scores at a time."""
    *batch, n, d_model = X.shape
    dX = np.zeros(X.shape)
    dW_Q, dW_K, dW_V = (np.zeros(W.shape) for W in (W_Q, W_K, W_V))
    full_mask = np.ones((*batch, n, n), bool) if mask is None else np.broadcast_to(
        mask, (*batch, n, n))
    for b in np.ndindex(*batch):
        Q, K, V, weights = _forward(X[b], W_Q, W_K, W_V, full_mask[b])
        dV = weights.T @ dO[b]
        dQ, dK = np.zeros(Q.shape), np.zeros(K.shape)
        for i in range(n):
            d_row = dO[b][i] @ V.T
            d_scores = sb_jacobian(weights[i][None], d_row[None])[0] / math.sqrt(Q.shape[1])
            dQ[i] += d_scores @ K
            dK += np.outer(d_scores, Q[i])
        dX[b] = dQ @ W_Q.T + dK @ W_K.T + dV @ W_V.T
        dW_Q += X[b].T @ dQ
        dW_K += X[b].T @ dK
        dW_V += X[b].T @ dV
    return dX, dW_Q, dW_K, dW_V


def sab_float32(X, W_Q, W_K, W_V, dO, mask=None):
    return tuple(g.astype(np.float32) for g in _backward(X, W_Q, W_K, W_V, dO, mask))


@pytest.mark.parametrize(
    "fn", [sab_matmul, sab_list, sab_reference_pieces, sab_loops, sab_float32], ids=name_of)
def test_self_attention_backward_accepts(fn):
    result = check_self_attention_backward(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [sab_matmul, sab_loops], ids=name_of)
def test_self_attention_backward_accepts_harder(fn):
    result = check_self_attention_backward(fn, harder=True)
    assert result.passed, result.feedback


def _wrong(mistake: str):
    def fn(X, W_Q, W_K, W_V, dO, mask=None):
        return _backward(X, W_Q, W_K, W_V, dO, mask, wrong=mistake)

    fn.__name__ = "sab_" + mistake.replace(" ", "_")
    return fn


def sab_only_dQ_path(X, W_Q, W_K, W_V, dO, mask=None):
    dX, *dWs = _backward(X, W_Q, W_K, W_V, dO, mask)
    Q, K, V, weights = _forward(X, W_Q, W_K, W_V, mask)
    d_scores = sb_vectorized(weights, dO @ _T(V))
    return (d_scores @ K / math.sqrt(Q.shape[-1]) @ W_Q.T, *dWs)


def _naive_forward(X, W_Q, W_K, W_V, mask=None):
    """A learner's own masked softmax, which subtracts a row maximum of −∞ on a fully blocked
    row (NaN there)."""
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    scores = Q @ _T(K) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return Q, K, V, e / e.sum(axis=-1, keepdims=True)


def _large_negative_forward(X, W_Q, W_K, W_V, mask=None):
    """What many libraries do: blocked scores set to −1e9 (a fully blocked row: 1/n each)."""
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    scores = Q @ _T(K) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return Q, K, V, e / e.sum(axis=-1, keepdims=True)


def sab_large_negative_mask(X, W_Q, W_K, W_V, dO, mask=None):
    return _backward(X, W_Q, W_K, W_V, dO, mask, forward=_large_negative_forward)


def sab_naive_masked_softmax(X, W_Q, W_K, W_V, dO, mask=None):
    with np.errstate(invalid="ignore"):
        return _backward(X, W_Q, W_K, W_V, dO, mask, forward=_naive_forward)


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_wrong("softmax elementwise"), "softmax-elementwise", "is not elementwise"),
        (_wrong("dV"), "dV-not-transposed", "dV = αᵀ dO"),
        (_wrong("scale"), "no-scale", "missing on the way back, in dQ and in dK"),
        (_wrong("scale dQ"), "no-scale-dQ", "missing on the way back, in dQ (your dW_Q"),
        (_wrong("scale dK"), "no-scale-dK", "missing on the way back, in dK (your dW_K"),
        (_wrong("dK"), "dK-not-transposed", "dK = dÃᵀ Q / √d_k"),
        (_wrong("one path"), "missing-path", "dX misses some of the paths into X"),
        (sab_only_dQ_path, "missing-path", "dX misses some of the paths into X"),
        (_wrong("mask"), "mask-ignored", "the mask is ignored in your backward pass"),
        (_wrong("batch"), "batch-not-summed", "the weight gradients are not summed over the batch"),
        (_wrong("softmax diagonal only"), "softmax-diagonal-only",
         "only the diagonal of the softmax's Jacobian"),
        (_wrong("softmax no diagonal term"), "softmax-no-diagonal-term",
         "the diagonal term of the softmax's Jacobian"),
        (_wrong("softmax plain sum"), "softmax-sum-without-alpha", "not the plain sum Σ_j dα_j"),
        (_wrong("softmax skipped"), "softmax-backward-skipped",
         "the softmax's backward is skipped"),
        (_wrong("scale times"), "scale-multiplied", "you multiplied by √d_k on the way back"),
        (_wrong("batch mean"), "batch-mean", "divided by the number of sequences"),
        (sab_naive_masked_softmax, "nan-blocked-row", "−∞ − (−∞) = NaN"),
        (sab_large_negative_mask, "large-negative", "differs only on a fully blocked row"),
    ],
    ids=name_of,
)
def test_self_attention_backward_rejects(fn, key, hint):
    assert_rejected(check_self_attention_backward, fn, key, hint)


def test_a_mean_over_the_batch_has_its_own_hint():
    hint = check_self_attention_backward(_wrong("batch mean")).hint
    assert "not summed" not in hint and "that 1/B is already inside dO" in hint, hint


def test_self_attention_backward_not_implemented():
    def stub(X, W_Q, W_K, W_V, dO, mask=None):
        raise NotImplementedError

    result = check_self_attention_backward(stub)
    assert not result and "not implemented yet" in result.feedback
