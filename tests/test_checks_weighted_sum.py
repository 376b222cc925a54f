"""Catalogues for the checkers of exercise 04: weighted_sum and self_attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
from catalogue import name_of

from course_lib.checks import check_self_attention, check_weighted_sum

# -- weighted_sum --------------------------------------------------------------------------------


def ws_matmul(weights, V):
    return weights @ V


def ws_dot(weights, V):
    return np.dot(weights, V)


def ws_einsum(weights, V):
    return np.einsum("...ij,...jd->...id", weights, V)


def ws_loops(weights, V):
    O = np.zeros((weights.shape[0], V.shape[1]))
    for i in range(weights.shape[0]):
        for j in range(weights.shape[1]):
            O[i] += weights[i, j] * V[j]
    return O


def ws_broadcast(weights, V):
    return (weights[:, :, None] * V[None, :, :]).sum(axis=1)


def ws_transposed(weights, V):
    return weights.T @ V


def ws_unweighted(weights, V):
    return np.tile(V.sum(axis=0), (weights.shape[0], 1))


def ws_averaged(weights, V):
    return np.tile(V.mean(axis=0), (weights.shape[0], 1))


def ws_elementwise(weights, V):
    return weights * V


def ws_wrong_order(weights, V):
    return V.T @ weights


@pytest.mark.parametrize("fn", [ws_matmul, ws_dot, ws_einsum, ws_loops, ws_broadcast], ids=name_of)
def test_weighted_sum_accepts(fn):
    result = check_weighted_sum(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [ws_matmul, ws_einsum], ids=name_of)
def test_weighted_sum_accepts_harder(fn):
    assert check_weighted_sum(fn, harder=True)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (ws_transposed, "your weights are transposed"),
        (ws_unweighted, "the weights are missing"),
        (ws_averaged, "the weights are missing"),
        (ws_elementwise, "element by element"),
        (ws_wrong_order, "the product is in the wrong order"),
    ],
    ids=name_of,
)
def test_weighted_sum_rejects(fn, hint):
    result = check_weighted_sum(fn)
    assert not result
    assert hint in result.feedback, result.feedback


# -- self_attention ------------------------------------------------------------------------------


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _unstable_softmax(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def sa_matmul(X, W_Q, W_K, W_V):
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    weights = _softmax(Q @ np.swapaxes(K, -1, -2) / np.sqrt(K.shape[-1]))
    return weights @ V, weights


def sa_list(X, W_Q, W_K, W_V):
    O, weights = sa_matmul(X, W_Q, W_K, W_V)
    return [O, weights]


def sa_einsum(X, W_Q, W_K, W_V):
    Q, K, V = (np.einsum("nd,dk->nk", X, W) for W in (W_Q, W_K, W_V))
    weights = _softmax(np.einsum("ik,jk->ij", Q, K) / math.sqrt(W_Q.shape[1]))
    return np.einsum("ij,jv->iv", weights, V), weights


def sa_loops(X, W_Q, W_K, W_V):
    n, d_k = X.shape[0], W_Q.shape[1]
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    weights = np.zeros((n, n))
    O = np.zeros((n, W_V.shape[1]))
    for i in range(n):
        scores = [np.dot(Q[i], K[j]) / math.sqrt(d_k) for j in range(n)]
        m = max(scores)
        exps = [math.exp(s - m) for s in scores]
        for j in range(n):
            weights[i, j] = exps[j] / sum(exps)
            O[i] += weights[i, j] * V[j]
    return O, weights


def sa_float32(X, W_Q, W_K, W_V):
    O, weights = sa_matmul(X, W_Q, W_K, W_V)
    return O.astype(X.dtype), weights.astype(X.dtype)


def _attend(Q, K, V, d, softmax=_softmax, axis=-1):
    weights = softmax(Q @ K.T / np.sqrt(d), axis=axis)
    return weights @ V, weights


def sa_weights_transposed(X, W_Q, W_K, W_V):
    O, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])
    return weights.T @ (X @ W_V), weights.T


def sa_unweighted(X, W_Q, W_K, W_V):
    _, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])
    V = X @ W_V
    return np.tile(V.sum(axis=0), (len(X), 1)), weights


def sa_averaged(X, W_Q, W_K, W_V):
    _, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])
    V = X @ W_V
    return np.ones((len(X), 1)) * V.mean(axis=0), weights


def sa_wrong_order(X, W_Q, W_K, W_V):
    O, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])
    return weights, O


def sa_keys_from_w_q(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_Q, X @ W_V, W_Q.shape[1])


def sa_keys_from_w_v(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_V, X @ W_V, W_Q.shape[1])


def sa_sqrt_d_model(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_K, X @ W_V, X.shape[1])


def sa_no_scaling(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_K, X @ W_V, 1)


def sa_wrong_axis(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1], axis=0)


def sa_unstable(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1], softmax=_unstable_softmax)


def sa_only_output(X, W_Q, W_K, W_V):
    return _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])[0]


@pytest.mark.parametrize("fn", [sa_matmul, sa_list, sa_einsum, sa_loops, sa_float32], ids=name_of)
def test_self_attention_accepts(fn):
    result = check_self_attention(fn)
    assert result.passed, result.feedback


def test_self_attention_accepts_harder():
    assert check_self_attention(sa_matmul, harder=True)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (sa_weights_transposed, "your weights are transposed"),
        (sa_unweighted, "the weights are missing"),
        (sa_averaged, "the weights are missing"),
        (sa_wrong_order, "returned in the wrong order"),
        (sa_keys_from_w_q, "keys are computed with the wrong matrix"),
        (sa_keys_from_w_v, "keys are computed with the wrong matrix"),
        (sa_sqrt_d_model, "√d_model"),
        (sa_no_scaling, "no scaling"),
        (sa_wrong_axis, "softmax over the wrong axis"),
        (sa_unstable, "not stable"),
        (sa_only_output, "a tuple (O, weights) of NumPy arrays"),
    ],
    ids=name_of,
)
def test_self_attention_rejects(fn, hint):
    result = check_self_attention(fn)
    assert not result
    assert hint in result.feedback, result.feedback


def sa_no_scaling_and_weights_transposed_in_O(X, W_Q, W_K, W_V):
    """Two mistakes at once: no scaling (in both outputs), and αᵀ V for O."""
    O, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, 1)
    return weights.T @ (X @ W_V), weights


def sa_no_scaling_and_noise_in_O(X, W_Q, W_K, W_V):
    O, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, 1)
    return O + 0.5, weights


def sa_both_outputs_unlike_any_mistake(X, W_Q, W_K, W_V):
    O, weights = _attend(X @ W_Q, X @ W_K, X @ W_V, W_Q.shape[1])
    return O + 0.5, weights + 0.25


@pytest.mark.parametrize("fn", [sa_no_scaling_and_weights_transposed_in_O,
                                sa_no_scaling_and_noise_in_O], ids=name_of)
def test_two_mistakes_at_once_name_the_known_one_and_what_is_left(fn):
    result = check_self_attention(fn)
    assert not result and result.diagnosis == "no-scaling, partly", result.feedback
    assert result.hint.startswith("your `weights` match a known mistake: no scaling"), result.hint
    assert "`O` also has a mistake of its own" in result.hint


def test_outputs_no_mistake_explains_get_the_general_hint():
    result = check_self_attention(sa_both_outputs_unlike_any_mistake)
    assert not result and result.diagnosis == "values", result.feedback
    assert result.hint.startswith("Q, K, V = X W_Q"), result.hint
