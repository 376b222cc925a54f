"""Catalogue for the checker of exercise 06: rnn_forward.

Every valid solution must pass; every wrong one must fail with the hint that names its mistake.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from catalogue import name_of

from course_lib.checks import CHECKS, check_rnn_forward
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
    result = check_rnn_forward(fn)
    assert not result
    assert result.diagnosis == key, result.feedback
    assert hint in result.feedback, result.feedback


def test_every_known_mistake_is_recognised_as_itself():
    checker = CHECKS["rnn_forward"]
    for mistake in checker.mistakes:
        assert checker.check(mistake.compute).diagnosis == mistake.key, mistake.key


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
