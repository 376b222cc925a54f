"""Catalogue for the checkers of exercise 07: blockwise_attention (the online softmax) and
attention_rows (one block of query rows, what one worker computes).

Every valid solution must pass, including its peak-memory case; every wrong one must fail with
the hint that names its mistake; a solution that builds the full n × n matrix fails on memory.
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib.attention import blockwise_attention as reference_blockwise
from course_lib.checks import CHECKS, check_attention_rows, check_blockwise_attention
from course_lib.checks.calling import Outcome, call_learner
from course_lib.checks.parallelism import MEMORY_LIMIT, MEMORY_N, ROWS_MEMORY_LIMIT

SHORT = 0.3  # seconds: the time limit of the robustness tests
CHECKER = CHECKS["blockwise_attention"]


def _softmax(S):
    e = np.exp(S - S.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- valid solutions -----------------------------------------------------------------------------


def online(Q, K, V, block_size):
    """The lesson's version: m from −inf, l and o rescaled by exp(m − m')."""
    n_q, n_k = Q.shape[0], K.shape[0]
    m = np.full((n_q, 1), -np.inf)
    l = np.zeros((n_q, 1))
    o = np.zeros((n_q, V.shape[1]))
    for start in range(0, n_k, block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        m_new = np.maximum(m, S.max(axis=1, keepdims=True))
        P = np.exp(S - m_new)
        correction = np.exp(m - m_new)
        l = l * correction + P.sum(axis=1, keepdims=True)
        o = o * correction + P @ V[start:start + block_size]
        m = m_new
    return o / l


def online_first_block_max(Q, K, V, block_size):
    """m starts at the first block's maximum instead of −inf; Q scaled once."""
    Qs = Q / math.sqrt(Q.shape[-1])
    S = Qs @ K[:block_size].T
    m = S.max(axis=-1, keepdims=True)
    P = np.exp(S - m)
    l, o = P.sum(axis=-1, keepdims=True), P @ V[:block_size]
    for start in range(block_size, len(K), block_size):
        S = Qs @ K[start:start + block_size].T
        m_new = np.maximum(m, S.max(axis=-1, keepdims=True))
        P = np.exp(S - m_new)
        scale = np.exp(m - m_new)
        l = scale * l + P.sum(axis=-1, keepdims=True)
        o = scale * o + P @ V[start:start + block_size]
        m = m_new
    return o / l


def online_normalised_as_it_goes(Q, K, V, block_size):
    """o is kept normalised after every block (o = running weighted mean)."""
    m = np.full((len(Q), 1), -np.inf)
    l = np.zeros((len(Q), 1))
    o = np.zeros((len(Q), V.shape[1]))
    for start in range(0, len(K), block_size):
        S = np.einsum("id,jd->ij", Q, K[start:start + block_size]) / np.sqrt(Q.shape[1])
        m_new = np.maximum(m, S.max(axis=1, keepdims=True))
        P = np.exp(S - m_new)
        l_new = l * np.exp(m - m_new) + P.sum(axis=1, keepdims=True)
        o = (o * l * np.exp(m - m_new) + P @ V[start:start + block_size]) / l_new
        m, l = m_new, l_new
    return o


def two_passes(Q, K, V, block_size):
    """First the row maxima over all blocks, then the sums: never n × n either."""
    d_k, blocks = Q.shape[1], range(0, len(K), block_size)
    m = np.full((len(Q), 1), -np.inf)
    for start in blocks:
        S = Q @ K[start:start + block_size].T / np.sqrt(d_k)
        m = np.maximum(m, S.max(axis=1, keepdims=True))
    l, o = 0.0, 0.0
    for start in blocks:
        P = np.exp(Q @ K[start:start + block_size].T / np.sqrt(d_k) - m)
        l = l + P.sum(axis=1, keepdims=True)
        o = o + P @ V[start:start + block_size]
    return o / l


def one_query_at_a_time(Q, K, V, block_size):
    """Never more than one row of n scores: holds (1, n), not n × n."""
    O = np.zeros((len(Q), V.shape[1]))
    for i in range(len(Q)):
        O[i] = _softmax(Q[i] @ K.T / np.sqrt(Q.shape[1])) @ V
    return O


def tiles_of_queries_and_keys(Q, K, V, block_size):
    """Blocks of queries too (the FlashAttention tiling)."""
    O = np.zeros((len(Q), V.shape[1]))
    for q0 in range(0, len(Q), block_size):
        O[q0:q0 + block_size] = online(Q[q0:q0 + block_size], K, V, block_size)
    return O


def every_block_kept_then_merged(Q, K, V, block_size):
    """Each block's (m, l, o) kept in a list and merged at the end: more memory than the
    online version (n × number of blocks × (d_v + 2) numbers), still far from n × n."""
    parts = []
    for start in range(0, len(K), block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        m = S.max(axis=1, keepdims=True)
        P = np.exp(S - m)
        parts.append((m, P.sum(axis=1, keepdims=True), P @ V[start:start + block_size]))
    M = np.max(np.hstack([m for m, _, _ in parts]), axis=1, keepdims=True)
    l = sum(l_b * np.exp(m_b - M) for m_b, l_b, _ in parts)
    o = sum(o_b * np.exp(m_b - M) for m_b, _, o_b in parts)
    return o / l


def log_sum_exp_running(Q, K, V, block_size):
    """A running log-sum-exp instead of (m, l)."""
    lse = np.full((len(Q), 1), -np.inf)
    O = np.zeros((len(Q), V.shape[1]))
    for start in range(0, len(K), block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        block_max = S.max(axis=1, keepdims=True)
        block_lse = block_max + np.log(np.exp(S - block_max).sum(axis=1, keepdims=True))
        new_lse = np.logaddexp(lse, block_lse)
        O = O * np.exp(lse - new_lse) + np.exp(S - new_lse) @ V[start:start + block_size]
        lse = new_lse
    return O


def blocks_from_array_split(Q, K, V, block_size):
    n_blocks = -(-len(K) // block_size)
    m, l, o = np.full((len(Q), 1), -np.inf), np.zeros((len(Q), 1)), 0.0
    for keys in np.array_split(np.arange(len(K)), n_blocks):
        S = Q @ K[keys].T / np.sqrt(Q.shape[1])
        m_new = np.maximum(m, S.max(axis=1, keepdims=True))
        P = np.exp(S - m_new)
        l = l * np.exp(m - m_new) + P.sum(axis=1, keepdims=True)
        o = o * np.exp(m - m_new) + P @ V[keys]
        m = m_new
    return o / l


def online_float32(Q, K, V, block_size):
    """Computes in float32 and says so: the result is judged at float32 precision."""
    return online(*(M.astype(np.float32) for M in (Q, K, V)), block_size).astype(np.float32)


def online_batch_ready(Q, K, V, block_size):
    m = np.full((*Q.shape[:-1], 1), -np.inf)
    l = np.zeros((*Q.shape[:-1], 1))
    o = np.zeros((*Q.shape[:-1], V.shape[-1]))
    for start in range(0, K.shape[-2], block_size):
        K_b, V_b = K[..., start:start + block_size, :], V[..., start:start + block_size, :]
        S = Q @ np.swapaxes(K_b, -1, -2) / np.sqrt(Q.shape[-1])
        m_new = np.maximum(m, S.max(axis=-1, keepdims=True))
        P = np.exp(S - m_new)
        l = l * np.exp(m - m_new) + P.sum(axis=-1, keepdims=True)
        o = o * np.exp(m - m_new) + P @ V_b
        m = m_new
    return o / l


VALID = [
    reference_blockwise,
    online,
    online_first_block_max,
    online_normalised_as_it_goes,
    two_passes,
    one_query_at_a_time,
    tiles_of_queries_and_keys,
    every_block_kept_then_merged,
    log_sum_exp_running,
    blocks_from_array_split,
    online_float32,
    online_batch_ready,
]


@pytest.mark.parametrize("fn", VALID, ids=name_of)
def test_accepts(fn):
    result = check_blockwise_attention(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [reference_blockwise, online_batch_ready], ids=name_of)
def test_accepts_harder(fn):
    result = check_blockwise_attention(fn, harder=True)
    assert result.passed, result.feedback


def test_harder_names_a_single_sequence_solution():
    assert check_blockwise_attention(online)
    assert not check_blockwise_attention(online, harder=True)


# -- wrong solutions -----------------------------------------------------------------------------


def _online_variant(Q, K, V, block_size, *, rescale_l=True, rescale_o=True, scale=None,
                    stop=None, use_max=True, divide=True):
    scale = 1 / np.sqrt(Q.shape[1]) if scale is None else scale
    m = np.full((len(Q), 1), -np.inf)
    l = np.zeros((len(Q), 1))
    o = np.zeros((len(Q), V.shape[1]))
    for start in range(0, len(K) if stop is None else stop(len(K), block_size), block_size):
        S = Q @ K[start:start + block_size].T * scale
        m_new = np.maximum(m, S.max(axis=1, keepdims=True)) if use_max else np.zeros_like(m)
        P = np.exp(S - m_new)
        l = l * (np.exp(m - m_new) if rescale_l else 1) + P.sum(axis=1, keepdims=True)
        o = o * (np.exp(m - m_new) if rescale_o else 1) + P @ V[start:start + block_size]
        m = m_new
    return o / l if divide else o


def o_not_divided_by_l(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, divide=False)


def not_rescaled(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, rescale_l=False, rescale_o=False)


def only_the_sum_rescaled(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, rescale_o=False)


def only_the_output_rescaled(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, rescale_l=False)


def maximum_updated_before_the_correction(Q, K, V, block_size):
    m = np.full((len(Q), 1), -np.inf)
    l, o = np.zeros((len(Q), 1)), np.zeros((len(Q), V.shape[1]))
    for start in range(0, len(K), block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        m_old = m
        m = np.maximum(m, S.max(axis=1, keepdims=True))
        correction = np.exp(m - m)  # meant exp(m_old - m): always 1
        P = np.exp(S - m)
        l = l * correction + P.sum(axis=1, keepdims=True)
        o = o * correction + P @ V[start:start + block_size]
        del m_old
    return o / l


def whole_blocks_only(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, stop=lambda n, b: n // b * b)


def whole_blocks_only_by_count(Q, K, V, block_size):
    m = np.full((len(Q), 1), -np.inf)
    l, o = np.zeros((len(Q), 1)), np.zeros((len(Q), V.shape[1]))
    for b in range(len(K) // block_size):
        keys = slice(b * block_size, (b + 1) * block_size)
        S = Q @ K[keys].T / np.sqrt(Q.shape[1])
        m_new = np.maximum(m, S.max(axis=1, keepdims=True))
        P = np.exp(S - m_new)
        l = l * np.exp(m - m_new) + P.sum(axis=1, keepdims=True)
        o = o * np.exp(m - m_new) + P @ V[keys]
        m = m_new
    return o / l


def each_block_softmaxed_and_summed(Q, K, V, block_size):
    O = 0
    for start in range(0, len(K), block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        O = O + _softmax(S) @ V[start:start + block_size]
    return O


def each_block_softmaxed_last_kept(Q, K, V, block_size):
    for start in range(0, len(K), block_size):
        S = Q @ K[start:start + block_size].T / np.sqrt(Q.shape[1])
        O = _softmax(S) @ V[start:start + block_size]
    return O


def no_scaling(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, scale=1.0)


def no_running_maximum(Q, K, V, block_size):
    return _online_variant(Q, K, V, block_size, use_max=False)


def full_matrix(Q, K, V, block_size):
    return _softmax(Q @ K.T / np.sqrt(Q.shape[1])) @ V


def full_matrix_float32(Q, K, V, block_size):
    Q32, K32 = Q.astype(np.float32), K.astype(np.float32)
    S = Q32 @ K32.T
    S /= np.float32(np.sqrt(Q.shape[1]))
    S -= S.max(axis=1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=1, keepdims=True)
    return S @ V.astype(np.float32)


def every_block_of_scores_kept(Q, K, V, block_size):
    blocks = [Q @ K[s:s + block_size].T / np.sqrt(Q.shape[1]) for s in range(0, len(K), block_size)]
    return _softmax(np.hstack(blocks)) @ V


def block_size_ignored(Q, K, V, block_size):
    return online(Q, K, V, len(K))  # one block holding every key: n × n


WRONG = [
    (not_rescaled, "no-rescale", "not rescaled when the maximum changes"),
    (only_the_sum_rescaled, "no-rescale", "not rescaled when the maximum changes"),
    (only_the_output_rescaled, "no-rescale", "not rescaled when the maximum changes"),
    (maximum_updated_before_the_correction, "no-rescale", "multiply both the running sum"),
    (o_not_divided_by_l, "not-divided-by-l", "divide, O = o / l"),
    (whole_blocks_only, "partial-block-dropped", "the last block is dropped"),
    (whole_blocks_only_by_count, "partial-block-dropped", "the last block is dropped"),
    (each_block_softmaxed_and_summed, "block-normalised", "each block of keys on its own"),
    (each_block_softmaxed_last_kept, "block-normalised", "each block of keys on its own"),
    (no_scaling, "no-scaling", "no scaling"),
    (no_running_maximum, "no-max", "no running maximum"),
    (full_matrix, "memory", "the full n × n matrix"),
    (full_matrix_float32, "memory", "the full n × n matrix"),
    (every_block_of_scores_kept, "memory", "the full n × n matrix"),
    (block_size_ignored, "memory", "use the block_size you are given"),
]


@pytest.mark.parametrize(("fn", "key", "hint"), WRONG, ids=name_of)
def test_rejects(fn, key, hint):
    assert_rejected(check_blockwise_attention, fn, key, hint)


@pytest.mark.parametrize("function", ["blockwise_attention", "attention_rows"])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


def test_the_full_matrix_passes_every_case_but_the_memory_one():
    result = check_blockwise_attention(full_matrix)
    assert result.n_passed == result.n_cases - 1
    assert "peak memory measured" in result.details
    assert f"more than {MEMORY_LIMIT / 2**20:g} MiB" in result.details
    assert "Expected:" not in result.details  # the values are right: nothing to compare


def test_memory_feedback_is_deterministic():
    """No measured number in the text: the same words on every run (nbval compares them)."""
    first = check_blockwise_attention(full_matrix)
    assert first.feedback == check_blockwise_attention(full_matrix).feedback
    assert repr(check_blockwise_attention(online)) == repr(check_blockwise_attention(online))


# -- the memory measurement ----------------------------------------------------------------------


def test_peak_memory_is_measured_only_when_asked():
    def allocates(n):
        return float(np.ones((n, n)).sum())

    plain = call_learner(allocates, [("n", 512)])
    measured = call_learner(allocates, [("n", 512)], measure_memory=True)
    assert plain.peak_memory is None and plain.value == measured.value
    assert 512 * 512 * 8 <= measured.peak_memory < 2 * 512 * 512 * 8
    assert not tracemalloc.is_tracing()


def test_a_running_tracemalloc_is_left_running():
    tracemalloc.start()
    try:
        assert check_blockwise_attention(online)
        assert not check_blockwise_attention(full_matrix)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_valid_solutions_stay_well_below_the_limit():
    case = next(c for c in CHECKER.cases() if c.memory_limit)
    for fn in (reference_blockwise, online, every_block_kept_then_merged):
        outcome = call_learner(fn, case.args, case.kwargs, measure_memory=True)
        assert outcome.peak_memory < 0.8 * MEMORY_LIMIT, fn.__name__
    outcome = call_learner(full_matrix_float32, case.args, case.kwargs, measure_memory=True)
    assert outcome.peak_memory > MEMORY_LIMIT


def test_a_remote_caller_without_measurement_judges_the_values_only():
    def caller(case):
        return Outcome(value=full_matrix(*(v for _, v in case.args)))

    assert CHECKER.run(caller).passed


def test_an_endless_loop_on_the_memory_case_is_stopped_and_tracing_ends():
    def endless_when_large(Q, K, V, block_size):
        while len(Q) > 100:
            pass
        return online(Q, K, V, block_size)

    result = check_blockwise_attention(endless_when_large, timeout=SHORT)
    assert result.diagnosis == "timeout"
    assert not tracemalloc.is_tracing()


# -- robustness ----------------------------------------------------------------------------------


def test_reference_passes_fast_and_deterministically():
    check_blockwise_attention(reference_blockwise)  # warm up (first imports, caches)
    start = time.perf_counter()
    first = check_blockwise_attention(reference_blockwise)
    assert time.perf_counter() - start < 0.5
    assert first.passed and repr(first) == repr(check_blockwise_attention(reference_blockwise))


@pytest.mark.parametrize(
    ("fn", "key"),
    [
        (lambda *a: 1 / 0, "exception"),
        (lambda *a: None, "type"),
        (lambda Q, K, V, block_size: np.full((len(Q), V.shape[1]), np.nan), "nan"),
    ],
    ids=["exception", "none", "nan"],
)
def test_garbage_gives_a_clean_failure(fn, key):
    result = check_blockwise_attention(fn)
    assert not result and result.diagnosis == key
    assert "Traceback" not in result.feedback


def test_endless_loop_is_stopped():
    def endless(Q, K, V, block_size):
        start = 0
        while start < len(K):
            S = Q @ K[start:start + block_size].T  # start is never increased
        return S

    begin = time.perf_counter()
    result = check_blockwise_attention(endless, timeout=SHORT)
    assert time.perf_counter() - begin < 5 * SHORT + 1
    assert result.diagnosis == "timeout"


# == attention_rows: one block of query rows, what one worker computes ===========================

ROWS = CHECKS["attention_rows"]


def _stable_softmax(S, axis=-1):
    e = np.exp(S - S.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- valid solutions -----------------------------------------------------------------------------


def rows_plain(Q, K, V, start, stop):
    """The exercise's recipe: the block's queries, all of K and V."""
    S = Q[start:stop] @ K.T / np.sqrt(Q.shape[1])
    return _stable_softmax(S) @ V


def rows_queries_scaled_first(Q, K, V, start, stop):
    Q_block = Q[start:stop] / math.sqrt(Q.shape[-1])
    return _stable_softmax(Q_block @ K.T) @ V


def rows_einsum(Q, K, V, start, stop):
    S = np.einsum("id,jd->ij", Q[start:stop], K) / np.sqrt(K.shape[1])
    return np.einsum("ij,jv->iv", _stable_softmax(S), V)


def rows_normalised_after_the_product(Q, K, V, start, stop):
    """exp(S − max) V first, then divided by the row sums: the same numbers, one step later."""
    S = Q[start:stop] @ K.T / np.sqrt(Q.shape[1])
    e = np.exp(S - S.max(axis=1, keepdims=True))
    return (e @ V) / e.sum(axis=1, keepdims=True)


def rows_one_at_a_time(Q, K, V, start, stop):
    """A Python loop over the rows of the block: never more than one row of scores."""
    out = np.zeros((stop - start, V.shape[1]))
    for i in range(start, stop):
        out[i - start] = _stable_softmax(Q[i] @ K.T / np.sqrt(Q.shape[1])) @ V
    return out


def rows_by_take(Q, K, V, start, stop):
    Q_block = np.take(Q, np.arange(start, stop), axis=0)
    weights = _stable_softmax(Q_block @ K.T / np.sqrt(Q.shape[1]))
    return np.dot(weights, V)


def rows_online_over_keys(Q, K, V, start, stop):
    """Both cuts at once: the block's rows, and its keys 256 at a time (the online softmax)."""
    return online(Q[start:stop], K, V, 256)


def rows_float32(Q, K, V, start, stop):
    """Computes in float32 and returns float32: judged at float32 precision."""
    Q32, K32, V32 = (M.astype(np.float32) for M in (Q, K, V))
    return rows_plain(Q32, K32, V32, start, stop).astype(np.float32)


def rows_batch_ready(Q, K, V, start, stop):
    S = Q[..., start:stop, :] @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    return _stable_softmax(S, axis=-1) @ V


ROWS_VALID = [
    ROWS.reference,
    rows_plain,
    rows_queries_scaled_first,
    rows_einsum,
    rows_normalised_after_the_product,
    rows_one_at_a_time,
    rows_by_take,
    rows_online_over_keys,
    rows_float32,
    rows_batch_ready,
]


@pytest.mark.parametrize("fn", ROWS_VALID, ids=name_of)
def test_rows_accepts(fn):
    result = check_attention_rows(fn)
    assert result.passed, result.feedback


@pytest.mark.parametrize("fn", [ROWS.reference, rows_batch_ready], ids=name_of)
def test_rows_accepts_harder(fn):
    result = check_attention_rows(fn, harder=True)
    assert result.passed, result.feedback


def test_rows_harder_names_a_single_sequence_solution():
    assert check_attention_rows(rows_plain)
    assert not check_attention_rows(rows_plain, harder=True)


def test_rows_blocks_put_together_are_full_attention():
    """What the exercise shows on its pool: any cut into blocks gives full attention."""
    rng = np.random.default_rng(3)
    Q, K, V = (rng.standard_normal((11, 3)) for _ in range(3))
    full = rows_plain(Q, K, V, 0, 11)
    for bounds in ([0, 11], [0, 5, 11], [0, 1, 2, 7, 11], list(range(12))):
        blocks = [rows_plain(Q, K, V, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        np.testing.assert_allclose(np.concatenate(blocks), full, rtol=1e-12)
    # a softmax over the block's rows (the wrong axis) depends on the cut: not full attention
    wrong = [rows_softmax_over_the_rows(Q, K, V, a, b) for a, b in [(0, 5), (5, 11)]]
    assert not np.allclose(np.concatenate(wrong), full)


# -- wrong solutions -----------------------------------------------------------------------------


def rows_keys_cut_too(Q, K, V, start, stop):
    S = Q[start:stop] @ K[start:stop].T / np.sqrt(Q.shape[1])
    return _stable_softmax(S) @ V[start:stop]


def rows_softmax_over_the_rows(Q, K, V, start, stop):
    S = Q[start:stop] @ K.T / np.sqrt(Q.shape[1])
    return _stable_softmax(S, axis=0) @ V


def rows_softmax_over_the_rows_by_hand(Q, K, V, start, stop):
    S = Q[start:stop] @ K.T / np.sqrt(Q.shape[1])
    e = np.exp(S - S.max())
    return e / e.sum(axis=0) @ V


def rows_stop_included(Q, K, V, start, stop):
    return rows_plain(Q, K, V, start, stop + 1)


def rows_counted_from_one(Q, K, V, start, stop):
    S = Q[start + 1:stop + 1] @ K.T / np.sqrt(Q.shape[1])
    return _stable_softmax(S) @ V


def rows_every_row_returned(Q, K, V, start, stop):
    return rows_plain(Q, K, V, 0, len(Q))


def rows_weights_returned(Q, K, V, start, stop):
    return _stable_softmax(Q[start:stop] @ K.T / np.sqrt(Q.shape[1]))


def rows_not_scaled(Q, K, V, start, stop):
    return _stable_softmax(Q[start:stop] @ K.T) @ V


def rows_divided_by_d_k(Q, K, V, start, stop):
    return _stable_softmax(Q[start:stop] @ K.T / Q.shape[1]) @ V


def rows_no_max(Q, K, V, start, stop):
    e = np.exp(Q[start:stop] @ K.T / np.sqrt(Q.shape[1]))
    return e / e.sum(axis=1, keepdims=True) @ V


def rows_all_computed_then_sliced(Q, K, V, start, stop):
    return rows_plain(Q, K, V, 0, len(Q))[start:stop]


def rows_every_row_kept_then_sliced(Q, K, V, start, stop):
    """One row at a time, but all n rows of weights kept: n × n numbers in a list."""
    weights = [_stable_softmax(Q[i] @ K.T / np.sqrt(Q.shape[1])) for i in range(len(Q))]
    return np.array(weights[start:stop]) @ V


def rows_all_scores_in_float16(Q, K, V, start, stop):
    """All n × n scores in float16 (8 MiB at n = 2048): its values fail first, but its memory
    alone would fail too: the limit holds for the narrowest float."""
    S = (Q.astype(np.float16) @ K.astype(np.float16).T)[start:stop].astype(np.float64)
    return _stable_softmax(S / np.sqrt(Q.shape[1])) @ V


ROWS_WRONG = [
    (rows_keys_cut_too, "keys-cut", "you cut the keys and values to the block too"),
    (rows_softmax_over_the_rows, "softmax-axis", "the softmax normalises over the wrong axis"),
    (rows_softmax_over_the_rows_by_hand, "softmax-axis", "over the keys (axis=-1)"),
    (rows_stop_included, "rows-off-by-one", "leaves out row stop"),
    (rows_counted_from_one, "rows-off-by-one", "rows are counted from 0"),
    (rows_every_row_returned, "all-rows", "you returned the outputs of all n query rows"),
    (rows_weights_returned, "weights-returned", "its outputs are O = α V"),
    (rows_not_scaled, "no-scaling", "no scaling"),
    (rows_divided_by_d_k, "divide-by-d_k", "the scale is √d_k"),
    (rows_no_max, "no-max", "no max subtraction"),
    (rows_all_computed_then_sliced, "memory", "the scores of all n query rows"),
    (rows_every_row_kept_then_sliced, "memory", "the scores of all n query rows"),
]


@pytest.mark.parametrize(("fn", "key", "hint"), ROWS_WRONG, ids=name_of)
def test_rows_rejects(fn, key, hint):
    assert_rejected(check_attention_rows, fn, key, hint)


def test_rows_memory_case_separates_a_block_from_all_rows():
    case = next(c for c in ROWS.cases() if c.memory_limit)
    for fn in (ROWS.reference, rows_plain, rows_normalised_after_the_product):
        outcome = call_learner(fn, case.args, case.kwargs, measure_memory=True)
        assert outcome.peak_memory < 0.6 * ROWS_MEMORY_LIMIT, fn.__name__
    for fn in (rows_all_computed_then_sliced, rows_all_scores_in_float16):
        outcome = call_learner(fn, case.args, case.kwargs, measure_memory=True)
        assert outcome.peak_memory > ROWS_MEMORY_LIMIT, fn.__name__
    result = check_attention_rows(rows_all_computed_then_sliced)
    assert result.n_passed == result.n_cases - 1  # every value right: only memory fails
    assert result.feedback == check_attention_rows(rows_all_computed_then_sliced).feedback


@pytest.mark.parametrize(
    ("fn", "key"),
    [
        (lambda *a: 1 / 0, "exception"),
        (lambda *a: None, "type"),
        (lambda Q, K, V, start, stop: [[0.0]], "type"),
        (lambda Q, K, V, start, stop: np.full((stop - start, V.shape[1]), np.nan), "nan"),
    ],
    ids=["exception", "none", "list", "nan"],
)
def test_rows_garbage_gives_a_clean_failure(fn, key):
    result = check_attention_rows(fn)
    assert not result and result.diagnosis == key
    assert "Traceback" not in result.feedback


def test_rows_endless_loop_is_stopped():
    def endless(Q, K, V, start, stop):
        i = start
        while i < stop:  # i is never increased
            Q[i] @ K.T
        return Q

    begin = time.perf_counter()
    result = check_attention_rows(endless, timeout=SHORT)
    assert time.perf_counter() - begin < 5 * SHORT + 1
    assert result.diagnosis == "timeout"


def test_rows_modified_input_is_reported():
    def scales_q_in_place(Q, K, V, start, stop):
        Q /= np.sqrt(Q.shape[1])
        return _stable_softmax(Q[start:stop] @ K.T) @ V

    result = check_attention_rows(scales_q_in_place)
    assert result.diagnosis == "mutation" and "`Q`" in result.feedback


def full_matrix_float16(Q, K, V, block_size):
    """The full n × n scores in float16, half the bytes of float32, returned as float64."""
    S = Q.astype(np.float16) @ K.astype(np.float16).T
    S -= S.max(axis=1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=1, keepdims=True)
    return (S @ V.astype(np.float16)).astype(np.float64)


def test_a_full_matrix_fails_the_memory_case_in_any_float_dtype():
    """The limit is below one n × n array of float16, the narrowest float; the valid block
    traversals stay well below it (test_valid_solutions_stay_well_below_the_limit)."""
    assert MEMORY_LIMIT < MEMORY_N**2 * np.dtype(np.float16).itemsize
    case = next(c for c in CHECKER.cases() if c.memory_limit)
    for fn in (full_matrix_float16, full_matrix_float32, full_matrix):
        outcome = call_learner(fn, case.args, case.kwargs, measure_memory=True)
        assert outcome.peak_memory > MEMORY_LIMIT, fn.__name__
