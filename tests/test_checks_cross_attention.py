"""Catalogues for the checkers of exercise 13, cross_attention and cross_attention_backward.
Every known mistake, written as a
learner would write it, is rejected with its own hint; unusual valid solutions (loops, einsum,
weights zeroed and renormalised, −1e9 where no row is fully blocked) are accepted; a learner's
exception, NaN, wrong shape or modified input comes back as a failed result, never an error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib import attention
from course_lib.checks import CHECKS, check_cross_attention, check_cross_attention_backward
from course_lib.checks import cross_attention as ca
from course_lib.checks.calling import call_learner
from course_lib.checks.diagnosis import BLOCKED_ROW_NAN, LARGE_NEGATIVE_MASK
from course_lib.grading.submissions import EXERCISES


@pytest.mark.parametrize("function", ["cross_attention", "cross_attention_backward"])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


@pytest.mark.parametrize("checker", [ca.CROSS_ATTENTION, ca.CROSS_ATTENTION_BACKWARD],
                         ids=lambda c: c.function)
def test_the_reference_passes_every_case_and_fresh_ones(checker):
    def caller(case):
        return call_learner(checker.reference, case.args, case.kwargs)

    for seed in (None, 3, 11):
        result = checker.run(caller, harder=True, seed=seed)
        assert result.passed, result.feedback


def test_it_is_wired_for_the_notebook_and_the_grader():
    assert CHECKS["cross_attention"] is ca.CROSS_ATTENTION
    assert CHECKS["cross_attention_backward"] is ca.CROSS_ATTENTION_BACKWARD
    assert EXERCISES["13_cross_attention"] == ("cross_attention", "cross_attention_backward")


def test_most_cases_are_rectangles_and_some_are_padded_or_fully_blocked():
    cases = ca.CROSS_ATTENTION.cases()
    shapes = [(c.inputs["X_q"].shape[-2], c.inputs["X_kv"].shape[-2]) for c in cases]
    assert sum(n_q != n_k for n_q, n_k in shapes) >= len(cases) - 2
    masks = [c.inputs["mask"] for c in cases if "mask" in c.inputs]
    assert any(m.ndim == 3 and m.shape[-2] == 1 for m in masks)  # a padding mask (B, 1, n_k)
    assert any(not np.all(np.any(m, axis=-1)) for m in masks)  # a fully blocked row


@pytest.mark.parametrize("check", [check_cross_attention, check_cross_attention_backward],
                         ids=lambda c: c.__name__)
def test_not_implemented(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    result = check(stub)
    assert not result and "not implemented yet" in result.feedback


# -- valid ways --------------------------------------------------------------------------------


def ca_reference_steps(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = scores.max(axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0))
    total = e.sum(axis=-1, keepdims=True)
    weights = e / np.where(total > 0, total, 1)
    return weights @ V, weights


def ca_einsum(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q = np.einsum("...qd,dk->...qk", X_q, W_Q)
    K = np.einsum("...nd,dk->...nk", X_kv, W_K)
    V = np.einsum("...nd,dv->...nv", X_kv, W_V)
    scores = np.einsum("...qk,...nk->...qn", Q, K) / math.sqrt(W_Q.shape[1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = attention.softmax(scores, axis=-1)
    return np.einsum("...qn,...nv->...qv", weights, V), weights


def ca_loops(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    """One query at a time, one key at a time, with Python's math; batch axes by np.ndindex."""
    batch = np.broadcast_shapes(X_q.shape[:-2], X_kv.shape[:-2])
    n_q, n_k = X_q.shape[-2], X_kv.shape[-2]
    allowed = np.broadcast_to(True if mask is None else mask, (*batch, n_q, n_k))
    X_q = np.broadcast_to(X_q, (*batch, *X_q.shape[-2:]))
    X_kv = np.broadcast_to(X_kv, (*batch, *X_kv.shape[-2:]))
    O = np.zeros((*batch, n_q, W_V.shape[1]))
    weights = np.zeros((*batch, n_q, n_k))
    for b in np.ndindex(*batch):
        for i in range(n_q):
            q = X_q[b][i] @ W_Q
            scores = [float(q @ (X_kv[b][j] @ W_K)) / math.sqrt(len(q)) if allowed[b][i, j]
                      else -math.inf for j in range(n_k)]
            top = max(scores)
            if top == -math.inf:
                continue  # a query that may attend to nothing: weights 0, output 0
            e = [math.exp(s - top) for s in scores]
            for j in range(n_k):
                weights[b][i, j] = e[j] / sum(e)
                O[b][i] += weights[b][i, j] * (X_kv[b][j] @ W_V)
    return O.astype(np.result_type(X_q, W_Q)), weights.astype(np.result_type(X_q, W_Q))


def ca_renormalised(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    """Zeroed after the softmax and renormalised where the row sum is above 0."""
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    weights = attention.softmax(Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1]))
    if mask is not None:
        weights = weights * mask
        total = weights.sum(axis=-1, keepdims=True)
        weights = weights / np.where(total > 0, total, 1)
    return [weights @ V, weights]  # a list, not a tuple


def ca_reuses_course_functions(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    """Through attention_weights with Q and K (as a learner who reuses exercise 08)."""
    weights = attention.attention_weights(X_q @ W_Q, X_kv @ W_K, mask)
    return weights @ (X_kv @ W_V), weights


@pytest.mark.parametrize("fn", [ca_reference_steps, ca_einsum, ca_loops, ca_renormalised,
                                ca_reuses_course_functions], ids=name_of)
def test_valid_solutions_pass(fn):
    result = check_cross_attention(fn, harder=True)
    assert result.passed, result.feedback


def ca_large_negative(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ V, weights


def test_large_negative_is_right_except_on_a_fully_blocked_row():
    result = check_cross_attention(ca_large_negative)
    assert not result and result.diagnosis == "large-negative"
    assert result.n_passed == result.n_cases - 1
    assert "fully blocked row" in result.details
    assert LARGE_NEGATIVE_MASK in result.feedback


def ca_naive_inf(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ V, weights


def test_nan_on_a_fully_blocked_row_gets_the_shared_hint():
    assert_rejected(check_cross_attention, ca_naive_inf, "nan-blocked-row", BLOCKED_ROW_NAN)


# -- the classic mistakes, as a learner writes them ----------------------------------------------


def _scores(Q, K):
    return Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])


def _finish(scores, V, mask):
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = attention.softmax(scores, axis=-1)
    return weights @ V, weights


def ca_decoder_self_attention(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_q @ W_K, X_q @ W_V
    return _finish(_scores(Q, K), V, mask)


def ca_causal(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    scores = _scores(Q, K)
    causal = np.tril(np.ones((Q.shape[-2], K.shape[-2]), dtype=bool))
    return _finish(scores, V, causal if mask is None else mask & causal)


def ca_mask_on_queries(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    return _finish(_scores(Q, K), V, None if mask is None else np.swapaxes(mask, -1, -2))


def ca_columns(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    scores = _scores(Q, K)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = attention.softmax(scores, axis=-2)
    return weights @ V, weights


def _scaled_by(size):
    def fn(X_q, X_kv, W_Q, W_K, W_V, mask=None):
        Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
        scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(size(X_q, X_kv, W_V))
        return _finish(scores, V, mask)

    return fn


ca_sqrt_n_k = _scaled_by(lambda X_q, X_kv, W_V: X_kv.shape[-2])
ca_sqrt_d_model = _scaled_by(lambda X_q, X_kv, W_V: X_q.shape[-1])
ca_sqrt_d_v = _scaled_by(lambda X_q, X_kv, W_V: W_V.shape[1])
ca_unscaled = _scaled_by(lambda X_q, X_kv, W_V: 1)


def ca_kv_swapped(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_V, X_kv @ W_K
    return _finish(_scores(Q, K), V, mask)


def ca_zeroed_after(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    weights = attention.softmax(_scores(Q, K))
    if mask is not None:
        weights = weights * mask
    return weights @ V, weights


def ca_mask_ignored(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    return _finish(_scores(Q, K), V, None)


def ca_dot_T(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    return _finish(Q @ K.T / np.sqrt(Q.shape[-1]), V, mask)


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (ca_decoder_self_attention, "kv-from-queries", "the decoder's self-attention"),
        (ca_causal, "causal-mask", "The causal mask belongs to the decoder's self-attention"),
        (ca_mask_on_queries, "mask-on-queries", "your mask is applied along the queries"),
        (ca_columns, "softmax-over-queries", "the columns of your weights sum to 1"),
        (ca_sqrt_n_k, "scaled-by-n_k", "you scaled by √n_k"),
        (ca_sqrt_d_model, "scaled-by-d_model", "you scaled by √d_model"),
        (ca_sqrt_d_v, "scaled-by-d_v", "you scaled by √d_v"),
        (ca_unscaled, "no-scaling", "no scaling"),
        (ca_kv_swapped, "K-V-swapped", "K and V are swapped"),
        (ca_zeroed_after, "zeroed-after-softmax", "you zeroed the blocked weights after"),
        (ca_mask_ignored, "mask-ignored", "your weights ignore the mask"),
        (ca_dot_T, "dot-T-on-a-batch", "`.T` reverses every axis"),
    ],
    ids=name_of,
)
def test_classic_mistakes_are_named(fn, key, hint):
    assert_rejected(check_cross_attention, fn, key, hint)


def test_the_rectangle_makes_a_wrong_source_a_wrong_shape():
    """With n_q ≠ n_k, keys from X_q show as a shape: the learner sees (n_q, n_q) weights."""
    result = check_cross_attention(ca_decoder_self_attention)
    assert "Your output `O` has shape" in result.details or "`weights` has shape" in \
        result.details, result.feedback


# -- robustness ------------------------------------------------------------------------------


def ca_modifies_input(X_q, X_kv, W_Q, W_K, W_V, mask=None):
    result = ca_reference_steps(X_q, X_kv, W_Q, W_K, W_V, mask)
    X_kv -= X_kv.mean(axis=-2, keepdims=True)  # "centre the source", in place
    return result


def ca_without_mask_parameter(X_q, X_kv, W_Q, W_K, W_V):
    return ca_reference_steps(X_q, X_kv, W_Q, W_K, W_V)


@pytest.mark.parametrize(("fn", "key"), [
    (ca_modifies_input, "mutation"),
    (ca_without_mask_parameter, "mask-parameter"),
    (lambda *a, **k: (np.zeros(3), np.zeros(3)), "shape"),
    (lambda *a, **k: 1 / 0, "exception"),
], ids=["modifies-input", "no-mask-parameter", "wrong-shape", "exception"])
def test_faults_come_back_as_failed_results(fn, key):
    result = check_cross_attention(fn)
    assert not result and result.diagnosis == key, result.feedback


# -- cross_attention_backward ------------------------------------------------------------------


def _forward(X_q, X_kv, W_Q, W_K, W_V, mask):
    Q, K, V = X_q @ W_Q, X_kv @ W_K, X_kv @ W_V
    return Q, K, V, ca_reference_steps(X_q, X_kv, W_Q, W_K, W_V, mask)[1]


def cab_steps(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None, *, kv_paths="KV"):
    """As a learner writes it after exercise 05; `kv_paths` leaves a path out (a mistake)."""
    Q, K, V, weights = _forward(X_q, X_kv, W_Q, W_K, W_V, mask)
    dV = np.swapaxes(weights, -1, -2) @ dO
    d_weights = dO @ np.swapaxes(V, -1, -2)
    d_scores = weights * (d_weights - (weights * d_weights).sum(axis=-1, keepdims=True))
    dQ = d_scores @ K / np.sqrt(Q.shape[-1])
    dK = np.swapaxes(d_scores, -1, -2) @ Q / np.sqrt(Q.shape[-1])
    dX_q = dQ @ W_Q.T
    dX_kv = {"KV": dK @ W_K.T + dV @ W_V.T, "K": dK @ W_K.T, "V": dV @ W_V.T}[kv_paths]
    dX_kv = dX_kv.reshape(-1, *X_kv.shape).sum(axis=0)  # a shared X_kv: the copies summed
    d_model = X_q.shape[-1]
    X_q_all = np.broadcast_to(X_q, (*dQ.shape[:-1], d_model)).reshape(-1, d_model)
    X_kv_all = np.broadcast_to(X_kv, (*dK.shape[:-1], d_model)).reshape(-1, d_model)
    dW_Q = X_q_all.T @ dQ.reshape(-1, dQ.shape[-1])
    dW_K = X_kv_all.T @ dK.reshape(-1, dK.shape[-1])
    dW_V = X_kv_all.T @ dV.reshape(-1, dV.shape[-1])
    return dX_q, dX_kv, dW_Q, dW_K, dW_V


def cab_einsum(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None):
    """With einsum, on one batch axis: any batch axes are flattened into one first."""
    _, _, _, weights = _forward(X_q, X_kv, W_Q, W_K, W_V, mask)
    shape_q = X_q.shape
    a = weights.reshape(-1, *weights.shape[-2:])  # (b, n_q, n_k)
    b = a.shape[0]
    Xq = np.broadcast_to(X_q, weights.shape[:-1] + X_q.shape[-1:]).reshape(b, *X_q.shape[-2:])
    Xkv = np.broadcast_to(X_kv, weights.shape[:-2] + X_kv.shape[-2:]).reshape(
        b, *X_kv.shape[-2:])
    dO = dO.reshape(b, *dO.shape[-2:])
    Q = np.einsum("bqm,md->bqd", Xq, W_Q)
    K = np.einsum("bkm,md->bkd", Xkv, W_K)
    V = np.einsum("bkm,mv->bkv", Xkv, W_V)
    dV = np.einsum("bqk,bqv->bkv", a, dO)
    da = np.einsum("bqv,bkv->bqk", dO, V)
    ds = a * (da - np.einsum("bqk,bqk->bq", a, da)[..., None])
    dQ = np.einsum("bqk,bkd->bqd", ds, K) / math.sqrt(Q.shape[-1])
    dK = np.einsum("bqk,bqd->bkd", ds, Q) / math.sqrt(Q.shape[-1])
    dX_kv = np.einsum("bkd,md->bkm", dK, W_K) + np.einsum("bkv,mv->bkm", dV, W_V)
    dX_q = np.einsum("bqd,md->bqm", dQ, W_Q)
    return (dX_q.reshape(shape_q), dX_kv.reshape(-1, *X_kv.shape).sum(axis=0),
            np.einsum("bqm,bqd->md", Xq, dQ), np.einsum("bkm,bkd->md", Xkv, dK),
            np.einsum("bkm,bkv->mv", Xkv, dV))


@pytest.mark.parametrize("fn", [cab_steps, cab_einsum], ids=name_of)
def test_valid_backward_solutions_pass(fn):
    result = check_cross_attention_backward(fn, harder=True)
    assert result.passed, result.feedback


def cab_keys_path_only(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None):
    return cab_steps(X_q, X_kv, W_Q, W_K, W_V, dO, mask, kv_paths="K")


def cab_values_path_only(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None):
    return cab_steps(X_q, X_kv, W_Q, W_K, W_V, dO, mask, kv_paths="V")


def cab_copies_not_summed(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None):
    Q, K, V, weights = _forward(X_q, X_kv, W_Q, W_K, W_V, mask)
    dX_q, _, *dW = cab_steps(X_q, X_kv, W_Q, W_K, W_V, dO, mask)
    dV = np.swapaxes(weights, -1, -2) @ dO
    d_weights = dO @ np.swapaxes(V, -1, -2)
    d_scores = weights * (d_weights - (weights * d_weights).sum(axis=-1, keepdims=True))
    dK = np.swapaxes(d_scores, -1, -2) @ Q / np.sqrt(Q.shape[-1])
    return (dX_q, dK @ W_K.T + dV @ W_V.T, *dW)


@pytest.mark.parametrize(
    ("fn", "key", "hint", "harder"),
    [
        (cab_keys_path_only, "one-path-into-X_kv", "dX_kv misses one of its two paths", False),
        (cab_values_path_only, "one-path-into-X_kv", "dX_kv misses one of its two paths", False),
        (cab_copies_not_summed, "copies-not-summed", "the sum of the copies' gradients", True),
    ],
    ids=name_of,
)
def test_backward_mistakes_are_named(fn, key, hint, harder):
    assert_rejected(check_cross_attention_backward, fn, key, hint, harder=harder)


def cab_fails_on_batches(X_q, X_kv, W_Q, W_K, W_V, dO, mask=None):
    if X_q.ndim > 2:
        raise ValueError("operands could not be broadcast together")
    return cab_steps(X_q, X_kv, W_Q, W_K, W_V, dO, mask)


def test_an_exception_is_not_blamed_on_a_mistake_that_raises_where_the_learner_was_right():
    """The self-attention paths raise on every rectangle, where this function is right."""
    result = check_cross_attention_backward(cab_fails_on_batches)
    assert result.diagnosis == "exception", result.feedback
