"""Catalogue for the checker of exercise 01: project_qkv(X, W_Q, W_K, W_V) -> (Q, K, V)."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue import name_of

from course_lib.checks import check_project_qkv


def qkv_matmul(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_K, X @ W_V


def qkv_dot_list(X, W_Q, W_K, W_V):
    return [np.dot(X, W_Q), np.dot(X, W_K), np.dot(X, W_V)]


def qkv_einsum(X, W_Q, W_K, W_V):
    return tuple(np.einsum("...nd,dk->...nk", X, W) for W in (W_Q, W_K, W_V))


def qkv_loops(X, W_Q, W_K, W_V):
    def project(W):
        out = np.zeros((X.shape[0], W.shape[1]))
        for i in range(X.shape[0]):
            for k in range(W.shape[1]):
                out[i, k] = sum(X[i, d] * W[d, k] for d in range(X.shape[1]))
        return out

    return project(W_Q), project(W_K), project(W_V)


def qkv_row_by_row(X, W_Q, W_K, W_V):
    Q = np.array([x @ W_Q for x in X])
    K = np.array([x @ W_K for x in X])
    V = np.array([x @ W_V for x in X])
    return Q, K, V


def qkv_matmul_function(X, W_Q, W_K, W_V):
    return tuple(np.matmul(X, W) for W in (W_Q, W_K, W_V))


def qkv_swapped(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_V, X @ W_K


def qkv_transposed(X, W_Q, W_K, W_V):
    return (X @ W_Q).T, (X @ W_K).T, (X @ W_V).T


def qkv_weights_first_transposed(X, W_Q, W_K, W_V):
    return W_Q.T @ X.T, W_K.T @ X.T, W_V.T @ X.T


def qkv_v_unprojected(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_K, X


def qkv_weight_matrices_transposed(X, W_Q, W_K, W_V):
    return X @ W_Q.T, X @ W_K.T, X @ W_V.T


def qkv_copy_paste(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_Q, X @ W_V


def qkv_two_outputs(X, W_Q, W_K, W_V):
    return X @ W_Q, X @ W_K


def qkv_dict(X, W_Q, W_K, W_V):
    return {"Q": X @ W_Q, "K": X @ W_K, "V": X @ W_V}


@pytest.mark.parametrize(
    "fn",
    [qkv_matmul, qkv_dot_list, qkv_einsum, qkv_loops, qkv_row_by_row, qkv_matmul_function],
    ids=name_of,
)
def test_project_qkv_accepts(fn):
    result = check_project_qkv(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [qkv_matmul, qkv_einsum, qkv_matmul_function], ids=name_of)
def test_project_qkv_accepts_harder(fn):
    result = check_project_qkv(fn, harder=True)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (qkv_swapped, "K and V are swapped"),
        (qkv_transposed, "your outputs are transposed"),
        (qkv_weights_first_transposed, "your outputs are transposed"),
        (qkv_v_unprojected, "V is returned without projection"),
        (qkv_weight_matrices_transposed, "the weight matrices are transposed"),
        (qkv_copy_paste, "wrong weight matrix"),
        (qkv_two_outputs, "returned 2 values"),
        (qkv_dict, "a tuple (Q, K, V) of NumPy arrays"),
    ],
    ids=name_of,
)
def test_project_qkv_rejects(fn, hint):
    result = check_project_qkv(fn)
    assert not result
    assert hint in result.feedback, result.feedback
