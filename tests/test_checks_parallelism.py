"""Catalogue for the checker of exercise 07: blockwise_attention (the online softmax).

Every valid solution must pass, including its peak-memory case; every wrong one must fail with
the hint that names its mistake; a solution that builds the full n × n matrix fails on memory.
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest
from catalogue import name_of

from course_lib.attention import blockwise_attention as reference_blockwise
from course_lib.checks import CHECKS, check_blockwise_attention
from course_lib.checks.calling import Outcome, call_learner
from course_lib.checks.parallelism import MEMORY_LIMIT

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
                    stop=None, use_max=True):
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
    return o / l


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
    result = check_blockwise_attention(fn)
    assert not result
    assert result.diagnosis == key, result.feedback
    assert hint in result.feedback, result.feedback


def test_every_known_mistake_is_recognised_as_itself():
    for mistake in CHECKER.mistakes:
        assert CHECKER.check(mistake.compute).diagnosis == mistake.key, mistake.key


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
