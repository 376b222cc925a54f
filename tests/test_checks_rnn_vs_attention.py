"""Catalogue for the checkers of exercise 06: rnn_forward and rnn_backward.

Every valid solution must pass; every wrong one must fail with the hint that names its mistake.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib.checks import check_rnn_backward, check_rnn_forward
from course_lib.rnn import rnn_backward as reference_rnn_backward
from course_lib.rnn import rnn_forward as reference_rnn_forward

SHORT = 0.3  # seconds: the time limit of the robustness tests


def _start(W_hh, h0):
    return np.zeros(W_hh.shape[0]) if h0 is None else h0


# -- valid solutions -----------------------------------------------------------------------------


def rnn_list_and_stack(X, W_xh, W_hh, b_h, h0=None):
    h = np.zeros(W_hh.shape[0]) if h0 is None else h0
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.stack(states)


def rnn_preallocated(X, W_xh, W_hh, b_h, h0=None):
    n, d_h = X.shape[0], W_hh.shape[0]
    H = np.zeros((n, d_h))
    h = np.zeros(d_h) if h0 is None else h0.copy()
    for t in range(n):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        H[t] = h
    return H


def rnn_inputs_projected_first(X, W_xh, W_hh, b_h, h0=None):
    """All x_t W_xh + b_h at once (they do not depend on the state); only the rest is a loop."""
    Z = X @ W_xh + b_h
    h = _start(W_hh, h0)
    H = []
    for z_t in Z:
        h = np.tanh(z_t + h @ W_hh)
        H.append(h)
    return np.array(H)


def rnn_einsum(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    H = np.empty((len(X), len(b_h)))
    for t in range(len(X)):
        h = np.tanh(np.einsum("i,ij->j", X[t], W_xh) + np.einsum("i,ij->j", h, W_hh) + b_h)
        H[t] = h
    return H


def rnn_scalar_loops(X, W_xh, W_hh, b_h, h0=None):
    n, d_in = X.shape
    d_h = W_hh.shape[0]
    h = [0.0] * d_h if h0 is None else [float(v) for v in h0]
    H = []
    for t in range(n):
        new = []
        for j in range(d_h):
            z = b_h[j]
            z += sum(X[t, i] * W_xh[i, j] for i in range(d_in))
            z += sum(h[k] * W_hh[k, j] for k in range(d_h))
            new.append(math.tanh(z))
        h = new
        H.append(new)
    return np.array(H)


def rnn_keeps_dtype(X, W_xh, W_hh, b_h, h0=None):
    h = np.zeros(W_hh.shape[0], dtype=X.dtype) if h0 is None else h0
    H = np.zeros((X.shape[0], W_hh.shape[0]), dtype=X.dtype)
    for t in range(X.shape[0]):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        H[t] = h
    return H


def rnn_column_convention_transposed(X, W_xh, W_hh, b_h, h0=None):
    """Column vectors, h_t = tanh(W_xhᵀ x_t + W_hhᵀ h_{t-1} + b): the same numbers."""
    h = _start(W_hh, h0).reshape(-1, 1)
    columns = []
    for x_t in X:
        h = np.tanh(W_xh.T @ x_t.reshape(-1, 1) + W_hh.T @ h + b_h.reshape(-1, 1))
        columns.append(h)
    return np.hstack(columns).T


def rnn_batch_ready(X, W_xh, W_hh, b_h, h0=None):
    batch, n = X.shape[:-2], X.shape[-2]
    h = np.zeros((*batch, W_hh.shape[0])) if h0 is None else h0
    states = []
    for t in range(n):
        h = np.tanh(X[..., t, :] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.stack(states, axis=-2)


VALID = [
    reference_rnn_forward,
    rnn_list_and_stack,
    rnn_preallocated,
    rnn_inputs_projected_first,
    rnn_einsum,
    rnn_scalar_loops,
    rnn_keeps_dtype,
    rnn_column_convention_transposed,
    rnn_batch_ready,
]


@pytest.mark.parametrize("fn", VALID, ids=name_of)
def test_accepts(fn):
    result = check_rnn_forward(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [reference_rnn_forward, rnn_batch_ready], ids=name_of)
def test_accepts_harder(fn):
    result = check_rnn_forward(fn, harder=True)
    assert result.passed, result.feedback


def test_harder_names_a_single_sequence_solution():
    assert check_rnn_forward(rnn_list_and_stack)
    assert not check_rnn_forward(rnn_list_and_stack, harder=True)


def rnn_loop_over_len(X, W_xh, W_hh, b_h, h0=None):
    """Right for one sequence; on a batch X (B, n, d_in), `range(len(X))` runs over B."""
    h = np.zeros(W_hh.shape[0]) if h0 is None else h0
    H = []
    for t in range(len(X)):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        H.append(h)
    return np.array(H)


@pytest.mark.parametrize("fn", [rnn_loop_over_len, rnn_list_and_stack], ids=name_of)
def test_a_loop_over_the_batch_axis_is_named(fn):
    assert check_rnn_forward(fn)
    assert_rejected(check_rnn_forward, fn, "loop-over-batch",
                    "your loop runs over the sequences instead of the tokens", harder=True)


# -- wrong solutions -----------------------------------------------------------------------------


def no_tanh(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for x_t in X:
        h = x_t @ W_xh + h @ W_hh + b_h
        states.append(h)
    return np.array(states)


def state_not_carried(X, W_xh, W_hh, b_h, h0=None):
    h_prev = _start(W_hh, h0)
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h_prev @ W_hh + b_h)  # h_prev is never updated
        states.append(h)
    return np.array(states)


def h0_included(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = [h]
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def h0_appended_before_the_step(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for x_t in X:
        states.append(h)
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
    return np.array(states)


def h0_ignored(X, W_xh, W_hh, b_h, h0=None):
    h = np.zeros(W_hh.shape[0])
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def last_state_only(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
    return h


def last_state_as_a_row(X, W_xh, W_hh, b_h, h0=None):
    return last_state_only(X, W_xh, W_hh, b_h, h0).reshape(1, -1)


def no_bias(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh)
        states.append(h)
    return np.array(states)


def bias_outside_tanh(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh) + b_h
        states.append(h)
    return np.array(states)


def W_hh_on_the_left(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for x_t in X:
        h = np.tanh(x_t @ W_xh + W_hh @ h + b_h)
        states.append(h)
    return np.array(states)


def input_of_the_previous_step(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for t in range(len(X)):
        h = np.tanh(X[t - 1] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def input_of_the_next_step(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for t in range(len(X)):
        h = np.tanh(X[t + 1] @ W_xh + h @ W_hh + b_h)  # IndexError at the last step
        states.append(h)
    return np.array(states)


def first_token_skipped(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for t in range(1, len(X)):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def last_token_skipped(X, W_xh, W_hh, b_h, h0=None):
    h = _start(W_hh, h0)
    states = []
    for t in range(len(X) - 1):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def same_array_stored(X, W_xh, W_hh, b_h, h0=None):
    h = np.zeros(W_hh.shape[0]) if h0 is None else h0.copy()
    states = []
    for x_t in X:
        h[:] = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return np.array(states)


def returns_a_list(X, W_xh, W_hh, b_h, h0=None):
    return rnn_list_and_stack(X, W_xh, W_hh, b_h, h0).tolist()


def h0_compared_with_none(X, W_xh, W_hh, b_h, h0=None):
    if h0 == None:  # noqa: E711 - the mistake: an array compared element by element
        h0 = np.zeros(W_hh.shape[0])
    return rnn_list_and_stack(X, W_xh, W_hh, b_h, h0)


WRONG = [
    (no_tanh, "no-tanh", "no tanh"),
    (state_not_carried, "state-not-carried", "not carried"),
    (h0_included, "h0-included", "includes the initial state h_0"),
    (h0_appended_before_the_step, "h0-included", "includes the initial state h_0"),
    (h0_ignored, "h0-ignored", "ignores h0"),
    (last_state_only, "last-only", "only the last state"),
    (last_state_as_a_row, "last-only", "only the last state"),
    (no_bias, "no-bias", "bias b_h is missing"),
    (bias_outside_tanh, "bias-outside-tanh", "after the tanh"),
    (W_hh_on_the_left, "W_hh-wrong-side", "W_hh is applied on the wrong side"),
    (input_of_the_previous_step, "off-by-one", "off by one step"),
    (input_of_the_next_step, "off-by-one", "off by one step"),
    (first_token_skipped, "off-by-one", "off by one step"),
    (last_token_skipped, "off-by-one", "off by one step"),
    (same_array_stored, "same-state-repeated", "the same array n times"),
    (returns_a_list, "type", "must return a NumPy array"),
    (h0_compared_with_none, "exception", "truth value of an array"),
]


@pytest.mark.parametrize(("fn", "key", "hint"), WRONG, ids=name_of)
def test_rejects(fn, key, hint):
    assert_rejected(check_rnn_forward, fn, key, hint)


@pytest.mark.parametrize("function", ["rnn_forward", "rnn_backward"])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


def test_h0_ignored_fails_only_where_h0_is_given():
    result = check_rnn_forward(h0_ignored)
    assert "h0 given" in result.details and result.n_passed == 4


# -- robustness ----------------------------------------------------------------------------------


def test_reference_passes_fast_and_deterministically():
    start = time.perf_counter()
    first = check_rnn_forward(reference_rnn_forward)
    assert time.perf_counter() - start < 0.5
    assert first.passed and repr(first) == repr(check_rnn_forward(reference_rnn_forward))


def test_wrong_feedback_is_deterministic():
    assert check_rnn_forward(no_bias).feedback == check_rnn_forward(no_bias).feedback


def endless(X, W_xh, W_hh, b_h, h0=None):
    t = 0
    while t < len(X):
        h = np.tanh(X[0] @ W_xh + b_h)  # t is never increased
    return h


@pytest.mark.parametrize(
    ("fn", "key"),
    [
        (lambda *a: 1 / 0, "exception"),
        (lambda *a: None, "type"),
        (lambda X, W_xh, W_hh, b_h, h0=None: np.full((len(X), len(b_h)), np.nan), "nan"),
    ],
    ids=["exception", "none", "nan"],
)
def test_garbage_gives_a_clean_failure(fn, key):
    result = check_rnn_forward(fn)
    assert not result and result.diagnosis == key
    assert "Traceback" not in result.feedback


def test_endless_loop_is_stopped():
    start = time.perf_counter()
    result = check_rnn_forward(endless, timeout=SHORT)
    assert time.perf_counter() - start < 5 * SHORT + 1
    assert result.diagnosis == "timeout"


def test_mutating_h0_is_reported():
    def mutates_h0(X, W_xh, W_hh, b_h, h0=None):
        h = np.zeros(W_hh.shape[0]) if h0 is None else h0
        H = np.zeros((len(X), len(h)))
        for t in range(len(X)):
            h[...] = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)  # writes into the caller's h0
            H[t] = h
        return H

    result = check_rnn_forward(mutates_h0)
    assert result.diagnosis == "mutation" and "`h0`" in result.feedback


# == rnn_backward ================================================================================


def _forward_states(X, W_xh, W_hh, b_h, h0):
    """(h_0, h_1, ..., h_n) as a list: the learner's own forward pass, kept for the backward."""
    h = np.zeros(W_hh.shape[0]) if h0 is None else h0
    states = [h]
    for x_t in X:
        h = np.tanh(x_t @ W_xh + h @ W_hh + b_h)
        states.append(h)
    return states


# -- valid solutions -----------------------------------------------------------------------------


def bptt_outer_products(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        dz = (dH[t] + carry) * (1 - hs[t + 1] ** 2)
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t], dz)
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def bptt_matrices_at_the_end(X, W_xh, W_hh, b_h, dH, h0=None):
    """Only the carry is a loop; the weight gradients are matrix products of all steps."""
    hs = np.array(_forward_states(X, W_xh, W_hh, b_h, h0))  # (n + 1, d_h)
    dZ = np.zeros((len(X), W_hh.shape[0]))
    carry = np.zeros(W_hh.shape[0])
    for t in range(len(X) - 1, -1, -1):
        dZ[t] = (dH[t] + carry) * (1 - np.tanh(np.arctanh(hs[t + 1])) ** 2)
        carry = W_hh @ dZ[t]  # column form of dz W_hhᵀ: the same numbers
    return dZ @ W_xh.T, X.T @ dZ, hs[:-1].T @ dZ, dZ.sum(axis=0), carry


def bptt_einsum(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dZ, carry = [], np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        dz = (dH[t] + carry) * (1 - hs[t + 1] * hs[t + 1])
        carry = np.einsum("j,ij->i", dz, W_hh)
        dZ.insert(0, dz)
    dZ, H_prev = np.array(dZ), np.array(hs[:-1])
    return (np.einsum("tj,ij->ti", dZ, W_xh), np.einsum("ti,tj->ij", X, dZ),
            np.einsum("ti,tj->ij", H_prev, dZ), np.einsum("tj->j", dZ), carry)


def bptt_batch_ready(X, W_xh, W_hh, b_h, dH, h0=None):
    batch, n, d_h = X.shape[:-2], X.shape[-2], W_hh.shape[0]
    h = np.zeros((*batch, d_h)) if h0 is None else h0
    states = [h]
    for t in range(n):
        h = np.tanh(X[..., t, :] @ W_xh + h @ W_hh + b_h)
        states.append(h)
    dZ, carry = [None] * n, np.zeros((*batch, d_h))
    for t in reversed(range(n)):
        dZ[t] = (dH[..., t, :] + carry) * (1 - states[t + 1] ** 2)
        carry = dZ[t] @ W_hh.T
    dZ = np.stack(dZ, axis=-2)
    H_prev = np.stack(states[:-1], axis=-2)
    flat = dZ.reshape(-1, d_h)  # every (sequence, step) row: the weights are shared by all
    dW_xh = X.reshape(-1, X.shape[-1]).T @ flat
    dW_hh = H_prev.reshape(-1, d_h).T @ flat
    return dZ @ W_xh.T, dW_xh, dW_hh, flat.sum(axis=0), carry


BACKWARD_VALID = [reference_rnn_backward, bptt_outer_products, bptt_matrices_at_the_end,
                  bptt_einsum, bptt_batch_ready]


@pytest.mark.parametrize("fn", BACKWARD_VALID, ids=name_of)
def test_backward_accepts(fn):
    result = check_rnn_backward(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [reference_rnn_backward, bptt_batch_ready], ids=name_of)
def test_backward_accepts_harder(fn):
    result = check_rnn_backward(fn, harder=True)
    assert result.passed, result.feedback


def test_backward_harder_names_a_single_sequence_solution():
    assert check_rnn_backward(bptt_outer_products)
    assert not check_rnn_backward(bptt_outer_products, harder=True)


# -- wrong solutions: the classic mistakes of issue 15 -------------------------------------------


def derivative_of_the_previous_state(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        dz = (dH[t] + carry) * (1 - hs[t] ** 2)  # h_{t-1}, not h_t
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t], dz)
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def derivative_of_the_preactivation(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        z = X[t] @ W_xh + hs[t] @ W_hh + b_h
        dz = (dH[t] + carry) * (1 - z**2)  # 1 − z², not 1 − tanh(z)²
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t], dz)
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def no_accumulation_through_time(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dZ = np.array([dH[t] * (1 - hs[t + 1] ** 2) for t in range(len(X))])  # no carry
    H_prev = np.array(hs[:-1])
    return dZ @ W_xh.T, X.T @ dZ, H_prev.T @ dZ, dZ.sum(axis=0), dZ[0] @ W_hh.T


def W_hh_not_transposed(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        dz = (dH[t] + carry) * (1 - hs[t + 1] ** 2)
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t], dz)
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh  # should be W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def dW_hh_from_the_new_state(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        dz = (dH[t] + carry) * (1 - hs[t + 1] ** 2)
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t + 1], dz)  # h_t, not h_{t-1}
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def loop_run_forwards(X, W_xh, W_hh, b_h, dH, h0=None):
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in range(len(X)):  # forwards
        dz = (dH[t] + carry) * (1 - hs[t + 1] ** 2)
        dW_xh += np.outer(X[t], dz)
        dW_hh += np.outer(hs[t], dz)
        db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def _bptt_learner(X, W_xh, W_hh, b_h, dH, h0=None, *, wrong=""):
    """The classic loop of outer products, right, or with the mistake named by `wrong`."""
    hs = _forward_states(X, W_xh, W_hh, b_h, h0)
    dX, dW_xh, dW_hh = np.zeros_like(X), np.zeros_like(W_xh), np.zeros_like(W_hh)
    db_h, carry = np.zeros_like(b_h), np.zeros(W_hh.shape[0])
    for t in reversed(range(len(X))):
        slope = 1 if wrong == "no tanh'" else 1 - hs[t + 1] ** 2
        if wrong == "carry past tanh'":
            dz = dH[t] * slope + carry
        else:
            dz = (dH[t] + carry) * slope
        if wrong == "overwritten":
            dW_xh = np.outer(X[t], dz)
            dW_hh = np.outer(hs[t], dz)
            db_h = dz
        else:
            dW_xh += np.outer(X[t], dz)
            dW_hh += np.outer(dz, hs[t]) if wrong == "outer transposed" else np.outer(hs[t], dz)
            db_h += dz
        dX[t] = dz @ W_xh.T
        carry = dz @ W_hh.T
    return dX, dW_xh, dW_hh, db_h, carry


def _bptt_wrong(mistake):
    def fn(X, W_xh, W_hh, b_h, dH, h0=None):
        return _bptt_learner(X, W_xh, W_hh, b_h, dH, h0, wrong=mistake)

    fn.__name__ = "bptt_" + mistake.replace(" ", "_").replace("'", "_derivative")
    return fn


def returns_four_gradients(X, W_xh, W_hh, b_h, dH, h0=None):
    return bptt_outer_products(X, W_xh, W_hh, b_h, dH, h0)[:4]


BACKWARD_WRONG = [
    (derivative_of_the_previous_state, "tanh-derivative", "1 − h_t²"),
    (derivative_of_the_preactivation, "tanh-derivative", "not the pre-activation"),
    (no_accumulation_through_time, "no-carry", "does not flow back through time"),
    (W_hh_not_transposed, "W_hh-not-transposed", "not transposed on the way back"),
    (dW_hh_from_the_new_state, "dW_hh-from-h_t", "Σ_t h_{t−1}ᵀ dz_t"),
    (loop_run_forwards, "loop-forwards", "reversed(range(n))"),
    (_bptt_wrong("overwritten"), "gradients-overwritten", "add each step's share (`+=`)"),
    (_bptt_wrong("no tanh'"), "no-tanh-derivative", "the tanh's derivative is missing"),
    (_bptt_wrong("carry past tanh'"), "carry-past-tanh", "the carry skips the tanh's derivative"),
    (_bptt_wrong("outer transposed"), "dW_hh-transposed", "your dW_hh is transposed"),
    (returns_four_gradients, "type", "must return a tuple (dX, dW_xh, dW_hh, db_h, dh0)"),
]


@pytest.mark.parametrize(("fn", "key", "hint"), BACKWARD_WRONG, ids=name_of)
def test_backward_rejects(fn, key, hint):
    assert_rejected(check_rnn_backward, fn, key, hint)


def test_backward_garbage_gives_a_clean_failure():
    for fn, key in [(lambda *a, **k: 1 / 0, "exception"), (lambda *a, **k: None, "type")]:
        result = check_rnn_backward(fn)
        assert not result and result.diagnosis == key
        assert "Traceback" not in result.feedback


def test_backward_mutating_dH_is_reported():
    def mutates_dH(X, W_xh, W_hh, b_h, dH, h0=None):
        result = bptt_outer_products(X, W_xh, W_hh, b_h, dH, h0)
        dH *= 0  # "done with it"
        return result

    result = check_rnn_backward(mutates_dH)
    assert result.diagnosis == "mutation" and "`dH`" in result.feedback
