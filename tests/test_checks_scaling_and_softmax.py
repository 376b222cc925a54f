"""Catalogues for the checkers of exercise 03: scale_scores, softmax, attention_weights.

Every valid solution must pass; every wrong one must fail with the hint that names its mistake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from catalogue import name_of

from course_lib.checks import check_attention_weights, check_scale_scores, check_softmax

# -- scale_scores --------------------------------------------------------------------------------


def scale_divide_sqrt(A, d_k):
    return A / np.sqrt(d_k)


def scale_power(A, d_k):
    return A / d_k**0.5


def scale_multiply_inverse(A, d_k):
    return A * (1 / math.sqrt(d_k))


def scale_loops(A, d_k):
    out = np.zeros(A.shape)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, j] = A[i, j] / math.sqrt(d_k)
    return out


def scale_float32(A, d_k):
    return (A / np.sqrt(d_k)).astype(A.dtype)


def scale_by_d_k(A, d_k):
    return A / d_k


def scale_multiplied(A, d_k):
    return A * np.sqrt(d_k)


def scale_by_n(A, d_k):
    return A / np.sqrt(A.shape[-1])


def scale_by_n_rows(A, d_k):
    return A / np.sqrt(len(A))


@pytest.mark.parametrize(
    "fn", [scale_divide_sqrt, scale_power, scale_multiply_inverse, scale_loops, scale_float32],
    ids=name_of,
)
def test_scale_scores_accepts(fn):
    result = check_scale_scores(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (scale_by_d_k, "you divided by d_k"),
        (scale_multiplied, "you multiplied by √d_k"),
        (scale_by_n, "number of tokens n"),
        (scale_by_n_rows, "number of tokens n"),
    ],
    ids=name_of,
)
def test_scale_scores_rejects(fn, hint):
    result = check_scale_scores(fn)
    assert not result
    assert hint in result.feedback, result.feedback


# -- softmax -------------------------------------------------------------------------------------


def softmax_keepdims(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_functions(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(np.subtract(x, m))
    return np.divide(e, np.sum(e, axis=axis, keepdims=True))


def softmax_copy_then_in_place(x, axis=-1):
    z = x.copy()
    z -= z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def softmax_expand_dims(x, axis=-1):
    z = x - np.expand_dims(x.max(axis=axis), axis)
    e = np.exp(z)
    return e / np.expand_dims(e.sum(axis=axis), axis)


def softmax_logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return np.exp(x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True)))


def softmax_loops(x, axis=-1):
    moved = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    out = np.zeros(moved.shape)
    for index in np.ndindex(*moved.shape[:-1]):
        row = moved[index]
        m = max(row)
        exps = [math.exp(value - m) for value in row]
        total = sum(exps)
        out[index] = [e / total for e in exps]
    return np.moveaxis(out, -1, axis)


def softmax_transpose_trick(x, axis=-1):
    if axis in (0, -x.ndim) and x.ndim == 2:
        return softmax_keepdims(x.T).T
    return softmax_keepdims(x)


def softmax_float32_aware(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z, dtype=x.dtype)
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def softmax_no_max(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_axis_ignored(x, axis=-1):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_whole_sum(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum()


def softmax_whole_sum_global_max(x, axis=-1):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def softmax_no_keepdims(x, axis=-1):
    e = np.exp(x - x.max(axis=axis))
    return e / e.sum(axis=axis)


def softmax_no_keepdims_on_sum(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis)


def softmax_no_keepdims_on_max(x, axis=-1):
    e = np.exp(x - x.max(axis=axis))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_global_max(x, axis=-1):
    e = np.exp(x - x.max())
    return e / e.sum(axis=axis, keepdims=True)


def softmax_in_place(x, axis=-1):
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


def softmax_log(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax_list(x, axis=-1):
    return softmax_keepdims(x, axis).tolist()


def softmax_no_return(x, axis=-1):
    softmax_keepdims(x, axis)


def softmax_no_exp(x, axis=-1):
    return x / x.sum(axis=axis, keepdims=True)


VALID_SOFTMAX = [
    softmax_keepdims,
    softmax_functions,
    softmax_copy_then_in_place,
    softmax_expand_dims,
    softmax_logsumexp,
    softmax_loops,
    softmax_transpose_trick,
    softmax_float32_aware,
]


@pytest.mark.parametrize("fn", VALID_SOFTMAX, ids=name_of)
def test_softmax_accepts(fn):
    result = check_softmax(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    "fn", [softmax_keepdims, softmax_copy_then_in_place, softmax_loops], ids=name_of
)
def test_softmax_accepts_harder(fn):
    result = check_softmax(fn, harder=True)
    assert result.passed, result.feedback


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (softmax_no_max, "no max subtraction"),
        (softmax_axis_ignored, "ignores `axis`"),
        (softmax_whole_sum, "sum of the whole array"),
        (softmax_whole_sum_global_max, "sum of the whole array"),
        (softmax_no_keepdims, "keepdims=True"),
        (softmax_no_keepdims_on_sum, "keepdims=True"),
        (softmax_no_keepdims_on_max, "keepdims=True"),
        (softmax_global_max, "single maximum of the whole array"),
        (softmax_in_place, "changed its input `x` in place"),
        (softmax_log, "log-softmax"),
        (softmax_list, "must return a NumPy array"),
        (softmax_no_return, "returned None"),
        (softmax_no_exp, "without np.exp"),
    ],
    ids=name_of,
)
def test_softmax_rejects(fn, hint):
    result = check_softmax(fn)
    assert not result
    assert hint in result.feedback, result.feedback


def test_softmax_feedback_shows_the_smallest_failing_case():
    feedback = check_softmax(softmax_no_max).feedback
    assert "Smallest failing case" in feedback
    assert "scores near ±1000" in feedback
    assert "Expected:" in feedback and "Received:" in feedback
    assert "nan" in feedback


def test_softmax_harder_names_a_transpose_only_solution():
    assert check_softmax(softmax_transpose_trick)
    assert not check_softmax(softmax_transpose_trick, harder=True)


# -- attention_weights ---------------------------------------------------------------------------


def weights_vectorised(Q, K):
    return softmax_keepdims(Q @ K.T / np.sqrt(Q.shape[-1]))


def weights_einsum(Q, K):
    scores = np.einsum("id,jd->ij", Q, K) / math.sqrt(K.shape[1])
    return softmax_functions(scores, axis=1)


def weights_loops(Q, K):
    n, d_k = Q.shape
    weights = np.zeros((n, len(K)))
    for i in range(n):
        row = [float(np.dot(Q[i], K[j])) / math.sqrt(d_k) for j in range(len(K))]
        m = max(row)
        exps = [math.exp(a - m) for a in row]
        weights[i] = [e / sum(exps) for e in exps]
    return weights


def weights_batch_ready(Q, K):
    scores = np.matmul(Q, np.swapaxes(K, -1, -2)) / np.sqrt(Q.shape[-1])
    return softmax_keepdims(scores)


def weights_no_scaling(Q, K):
    return softmax_keepdims(Q @ K.T)


def weights_wrong_axis(Q, K):
    return softmax_keepdims(Q @ K.T / np.sqrt(Q.shape[-1]), axis=0)


def weights_transposed(Q, K):
    return softmax_keepdims(Q @ K.T / np.sqrt(Q.shape[-1])).T


def weights_unstable(Q, K):
    return softmax_no_max(Q @ K.T / np.sqrt(Q.shape[-1]))


def weights_by_d_k(Q, K):
    return softmax_keepdims(Q @ K.T / Q.shape[-1])


@pytest.mark.parametrize(
    "fn", [weights_vectorised, weights_einsum, weights_loops, weights_batch_ready], ids=name_of
)
def test_attention_weights_accepts(fn):
    result = check_attention_weights(fn)
    assert result.passed, result.feedback


def test_attention_weights_accepts_harder():
    assert check_attention_weights(weights_batch_ready, harder=True)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (weights_no_scaling, "no scaling"),
        (weights_wrong_axis, "softmax over the wrong axis"),
        (weights_transposed, "your weights are transposed"),
        (weights_unstable, "not stable"),
        (weights_by_d_k, "divided the scores by d_k"),
    ],
    ids=name_of,
)
def test_attention_weights_rejects(fn, hint):
    result = check_attention_weights(fn)
    assert not result
    assert hint in result.feedback, result.feedback


def softmax_sloppy_float16(x, axis=-1):
    """1e-3 too much in the denominator, hidden by returning float16 (its tolerance is 25x
    looser than float32's): the tolerance comes from the inputs, so it fails as float64 does."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / (e.sum(axis=axis, keepdims=True) + 1e-3)).astype(np.float16)


def test_softmax_cannot_hide_an_error_behind_float16():
    result = check_softmax(softmax_sloppy_float16)
    assert not result and result.n_passed == 0
    assert result.diagnosis == "low-precision" and "float16" in result.feedback
