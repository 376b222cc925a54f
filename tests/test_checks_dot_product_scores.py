"""Catalogue for the checker of exercise 02: attention_scores(Q, K) -> A = Q Kᵀ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from catalogue import name_of

from course_lib.checks import check_attention_scores


def scores_matmul(Q, K):
    return Q @ K.T


def scores_dot(Q, K):
    return np.dot(Q, K.T)


def scores_einsum(Q, K):
    return np.einsum("id,jd->ij", Q, K)


def scores_loops(Q, K):
    A = np.zeros((len(Q), len(K)))
    for i in range(len(Q)):
        for j in range(len(K)):
            A[i, j] = sum(Q[i, d] * K[j, d] for d in range(Q.shape[1]))
    return A


def scores_swapaxes(Q, K):
    return np.matmul(Q, np.swapaxes(K, -1, -2))


def scores_broadcast(Q, K):
    return (Q[:, None, :] * K[None, :, :]).sum(axis=-1)


def scores_transpose_of_kq(Q, K):
    return (K @ Q.T).T


def scores_k_qt(Q, K):
    return K @ Q.T


def scores_no_transpose(Q, K):
    return Q @ K


def scores_scaled(Q, K):
    return Q @ K.T / math.sqrt(Q.shape[-1])


def scores_diagonal(Q, K):
    return (Q * K).sum(-1)


def scores_qt_k(Q, K):
    return Q.T @ K


def scores_elementwise(Q, K):
    return Q * K


@pytest.mark.parametrize(
    "fn",
    [scores_matmul, scores_dot, scores_einsum, scores_loops, scores_swapaxes, scores_broadcast,
     scores_transpose_of_kq],
    ids=name_of,
)
def test_attention_scores_accepts(fn):
    result = check_attention_scores(fn)
    assert result.passed, result.feedback


def test_attention_scores_harder_needs_swapaxes():
    assert check_attention_scores(scores_swapaxes, harder=True)
    result = check_attention_scores(scores_matmul, harder=True)
    assert not result
    assert "transpose only the last two" in result.feedback, result.feedback


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (scores_k_qt, "you computed K Qᵀ"),
        (scores_no_transpose, "missing transpose"),
        (scores_scaled, "scaling already applied"),
        (scores_diagonal, "only the diagonal"),
        (scores_qt_k, "Qᵀ K is a d_k × d_k matrix"),
        (scores_elementwise, "element by element"),
    ],
    ids=name_of,
)
def test_attention_scores_rejects(fn, hint):
    result = check_attention_scores(fn)
    assert not result
    assert hint in result.feedback, result.feedback
