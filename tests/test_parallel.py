"""Parallelism (course_lib.parallel): timers, memory, FLOP formulas, fits, step counts, and
parallel_attention against full attention."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from threadpoolctl import threadpool_info, threadpool_limits

from course_lib import parallel as par
from course_lib.attention import attention_weights, causal_mask, project_qkv, self_attention
from course_lib.rnn import rnn_forward


def test_median_time_takes_the_median_after_a_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 10.0, 15.0, 20.0, 22.0])  # three runs: 1 s, 5 s and 2 s
    monkeypatch.setattr(par.time, "perf_counter", lambda: next(clock))
    calls = []
    assert par.median_time(lambda: calls.append(1), repeat=3) == 2.0
    assert len(calls) == 4  # one warm-up call, not timed


def test_interleaved_medians_time_each_function_in_turn_after_a_warm_up_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # warm-up round (only its start times are read), then a: 1 s, b: 4 s; 3 s, 2 s; 2 s, 6 s
    clock = iter([0.0, 0.0, 10.0, 11.0, 20.0, 24.0, 30.0, 33.0, 40.0, 42.0, 50.0, 52.0, 60.0,
                  66.0])
    monkeypatch.setattr(par.time, "perf_counter", lambda: next(clock))
    calls: list[str] = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    assert par.interleaved_medians(fns, repeat=3) == {"a": 2.0, "b": 4.0}
    assert calls == ["a", "b"] * 4  # interleaved, one untimed warm-up round first


def test_time_sweep_builds_inputs_outside_the_timing() -> None:
    sizes = []
    times = par.time_sweep(lambda n: sizes.append(n) or (lambda: sum(range(n))), [10, 100], 2)
    assert sizes == [10, 100] and times.shape == (2,) and np.all(times >= 0)


@pytest.mark.parametrize(
    ("ratio", "words"),
    [(0.5, "faster"), (0.89, "faster"), (0.9, "about the same"), (0.97, "about the same"),
     (1.0, "about the same"), (1.1, "about the same"), (1.11, "slower"), (3.0, "slower")],
)
def test_compare_times_calls_a_gap_within_ten_percent_about_the_same(
    ratio: float, words: str
) -> None:
    assert par.compare_times(ratio) == words
    assert par.compare_times(0.97, tolerance=0.01) == "faster"


def test_peak_memory_sees_numpy_buffers() -> None:
    def two_arrays() -> float:
        a = np.ones(1_000_000)  # 8 MB
        b = a + 1.0  # another 8 MB while a is still alive
        return float(b[0])

    existing = np.ones(2_000_000)  # allocated before: not counted
    assert 16e6 <= par.peak_memory(two_arrays) < 16.1e6
    assert existing.sum() == 2e6
    peaks = par.memory_sweep(lambda n: lambda: np.zeros(n), [1000, 100_000])
    assert peaks[0] < 10_000 < 800_000 <= peaks[1] < 810_000


def test_flop_formulas_by_hand() -> None:
    # attention: Q Kᵀ and α V, 2 n² d each, and three projections X W of 2 n d² each;
    # RNN: two (1, d) x (d, d) products per step, h_{t-1} W_hh (mixing) and x_t W_xh
    assert par.attention_flops(4, 8, projections=False) == 2 * (2 * 4 * 4 * 8)
    assert par.attention_flops(4, 8) == 2 * (2 * 4 * 4 * 8) + 3 * (2 * 4 * 8 * 8)
    assert par.rnn_flops(4, 8, projections=False) == 4 * (2 * 8 * 8)
    assert par.rnn_flops(4, 8) == 4 * 2 * (2 * 8 * 8)
    assert par.attention_flops(1000, 64, projections=False) / par.attention_flops(
        500, 64, projections=False) == 4  # n²
    assert par.rnn_flops(1000, 64) / par.rnn_flops(500, 64) == 2  # n
    for n in (1, 8, 4096):  # counted in full, attention always costs more
        assert par.attention_flops(n, 64) > par.rnn_flops(n, 64)


@pytest.mark.parametrize("d", [1, 7, 32, 64, 512])
def test_flop_crossover_of_the_mixing_is_just_above_half_d(d: int) -> None:
    n = par.flop_crossover(d)
    assert par.attention_flops(n, d, projections=False) > par.rnn_flops(n, d, projections=False)
    assert (par.attention_flops(n - 1, d, projections=False)
            <= par.rnn_flops(n - 1, d, projections=False))
    assert n == d // 2 + 1


def test_flop_crossover_out_of_range() -> None:
    with pytest.raises(ValueError, match="no crossover"):
        par.flop_crossover(1000, n_max=100)


@pytest.mark.parametrize("n", [1, 2, 5, 50])
def test_sequential_steps_rnn_n_attention_two(n: int) -> None:
    assert par.sequential_steps(par.rnn_computation_graph(n)) == n
    # round 1: every q_i, k_i, v_i at once; round 2: every o_i at once
    assert par.sequential_steps(par.attention_computation_graph(n)) == 2


def test_sequential_steps_by_hand() -> None:
    diamond = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert par.sequential_steps(diamond) == 3
    assert par.sequential_steps({"x": [], "y": [], "z": []}) == 1
    assert par.attention_computation_graph(2)["o1"] == ["q1", "k1", "k2", "v1", "v2"]
    assert par.rnn_computation_graph(3) == {"h1": [], "h2": ["h1"], "h3": ["h2"]}


# ---------------------------------------------------------------------------------------------
# time_workers: within a round, one computation with every number of workers back to back
def test_time_workers_times_each_computation_with_every_number_of_workers_back_to_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(float(t) for t in range(1000))  # every run takes 1 s ...
    monkeypatch.setattr(par.time, "perf_counter", lambda: next(clock))
    order = []
    calls = {"a": lambda w: order.append(("a", w)), "b": lambda w: order.append(("b", w))}
    times = par.time_workers(calls, workers=[1, 2], repeat=3)
    round_ = [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert order == round_ * 4  # one warm-up round, then 3 timed rounds
    assert set(times) == {"a", "b"}
    assert times["a"].seconds.shape == (3, 2)
    np.testing.assert_array_equal(times["a"].median, [1.0, 1.0])
    np.testing.assert_array_equal(times["b"].speedup, [1.0, 1.0])


def test_the_speed_up_is_the_median_of_each_rounds_ratio() -> None:
    # a slow spell (round 2) slows both runs of its round alike: its ratio is still 2
    seconds = np.array([[2.0, 1.0], [8.0, 4.0], [2.0, 1.0], [2.0, 8.0]])  # round 4: load on w=2
    timings = par.WorkerTimings((1, 2), seconds)
    np.testing.assert_array_equal(timings.speedup, [1.0, 2.0])
    np.testing.assert_array_equal(timings.median, [2.0, 2.5])
    # the ratio of the medians would be 2 / 2.5 = 0.8: the slow rounds would hide the speed-up


# ---------------------------------------------------------------------------------------------
# parallel_attention: exact attention, one block of query rows per task
# ---------------------------------------------------------------------------------------------
@st.composite
def parallel_inputs(draw):
    """Q, K, V with broadcastable batch axes, an optional broadcastable mask, workers."""
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    n_q, n_k, d_k, d_v = (draw(st.integers(1, 7)) for _ in range(4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    elements = st.floats(-3, 3, width=32)

    def some_batch() -> list[int]:  # each operand: the whole batch, or 1s that broadcast, or none
        kind = draw(st.sampled_from(["all", "ones", "none"]))
        return {"all": batch, "ones": [1] * len(batch), "none": []}[kind]

    Q = draw(hnp.arrays(dtype, (*batch, n_q, d_k), elements=elements))
    K = draw(hnp.arrays(dtype, (*some_batch(), n_k, d_k), elements=elements))
    V = draw(hnp.arrays(dtype, (*some_batch(), n_k, d_v), elements=elements))
    mask_shape = draw(st.sampled_from(
        [None, (n_q, n_k), (1, n_k), (n_q, 1), (*batch, n_q, n_k), (2, *batch, n_q, n_k)]))
    mask = None if mask_shape is None else draw(hnp.arrays(np.bool_, mask_shape))
    workers = draw(st.integers(1, n_q + 4))  # often more workers than rows
    return Q, K, V, mask, workers


@settings(max_examples=150, deadline=None)
@given(parallel_inputs())
def test_parallel_attention_equals_full_attention(inputs) -> None:
    Q, K, V, mask, workers = inputs
    copies = [a.copy() for a in (Q, K, V)]
    O = par.parallel_attention(Q, K, V, mask, workers=workers)
    expected = attention_weights(Q, K, mask) @ V  # full attention, n_q × n_k weights at once
    assert O.shape == expected.shape and O.dtype == Q.dtype
    tol = 1e-5 if Q.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(O, expected, rtol=tol, atol=tol)
    for original, copy in zip((Q, K, V), copies, strict=True):
        np.testing.assert_array_equal(original, copy)  # inputs never modified
    if mask is not None:  # a row whose every position is blocked gives zeros, not NaN
        blocked = ~np.broadcast_to(mask, (*O.shape[:-1], K.shape[-2])).any(axis=-1)
        assert np.all(O[blocked] == 0)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_parallel_attention_equals_self_attention(data) -> None:
    n, d_model, d_k = (data.draw(st.integers(1, 9)) for _ in range(3))
    batch = data.draw(st.lists(st.integers(1, 3), max_size=2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    X = rng.standard_normal((*batch, n, d_model))
    W_Q, W_K, W_V = (rng.standard_normal((d_model, d_k)) for _ in range(3))
    mask = data.draw(st.sampled_from([None, causal_mask(n)]))
    O = par.parallel_attention(*project_qkv(X, W_Q, W_K, W_V), mask,
                               workers=data.draw(st.integers(1, 2 * n + 1)))
    np.testing.assert_allclose(O, self_attention(X, W_Q, W_K, W_V, mask)[0], rtol=1e-12,
                               atol=1e-12)


def test_parallel_attention_by_hand_and_dtypes() -> None:
    # q = 0 attends equally to both keys (the mean of the values); a blocked row gives zeros
    Q, K, V = np.array([[0.0], [1.0]]), np.array([[1.0], [-1.0]]), np.array([[2.0], [4.0]])
    np.testing.assert_allclose(par.parallel_attention(Q, K, V, workers=2)[0], [3.0])
    mask = np.array([[False, False], [True, True]])
    np.testing.assert_array_equal(par.parallel_attention(Q, K, V, mask)[0], [0.0])
    as_int = par.parallel_attention(Q.astype(int), K.astype(int), V.astype(int))
    assert as_int.dtype == np.float64
    assert par.parallel_attention(*(M.astype(np.float32) for M in (Q, K, V))).dtype == np.float32
    assert par.parallel_attention(Q[:0], K, V).shape == (0, 1)  # no query rows: nothing to do
    no_keys = par.parallel_attention(Q, K[:0], V[:0])  # nothing to attend to: as full attention
    np.testing.assert_array_equal(no_keys, attention_weights(Q, K[:0]) @ V[:0])


def test_parallel_attention_defaults_to_the_machines_cores(monkeypatch) -> None:
    pools = []

    class Recording(par.ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(par, "ThreadPoolExecutor", Recording)
    monkeypatch.setattr(par.os, "cpu_count", lambda: 3)
    rng = np.random.default_rng(0)
    par.parallel_attention(*(rng.standard_normal((6, 2)) for _ in range(3)))
    assert pools == [3]


def test_parallel_attention_refuses_bad_input_clearly() -> None:
    Q = K = V = np.ones((4, 2))
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive whole number"):
            par.parallel_attention(Q, K, V, workers=workers)
    with pytest.raises(ValueError, match="same width d_k"):
        par.parallel_attention(Q, np.ones((4, 3)), V)
    with pytest.raises(ValueError, match="one value per key"):
        par.parallel_attention(Q, K, np.ones((5, 2)))
    with pytest.raises(ValueError, match="batch"):
        par.parallel_attention(np.ones((2, 4, 2)), np.ones((3, 4, 2)), V)
    with pytest.raises(ValueError, match="mask must be boolean"):
        par.parallel_attention(Q, K, V, mask=np.ones((4, 4)))
    with pytest.raises(ValueError, match="does not fit the scores"):
        par.parallel_attention(Q, K, V, mask=np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="Q must hold numbers"):
        par.parallel_attention(np.array([["a", "b"]]), K, V)


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_is_one_thread_per_worker_and_restored_afterwards(monkeypatch) -> None:
    seen, threads = [], set()

    def recording(Q, K, mask=None):
        seen.append(_blas_threads())
        threads.add(threading.get_ident())
        time.sleep(0.02)  # long enough that both workers take blocks
        return attention_weights(Q, K, mask)

    monkeypatch.setattr(par, "attention_weights", recording)
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((8, 4)) for _ in range(3))
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and all(n == 2 for n in before)
        par.parallel_attention(Q, K, V, workers=2)
        assert _blas_threads() == before  # restored
    assert all(n == 1 for blocks in seen for n in blocks)  # BLAS at 1 thread inside the pool
    assert len(threads) == 2  # two workers did the blocks


def test_blas_threads_are_restored_when_a_worker_fails(monkeypatch) -> None:
    def failing(Q, K, mask=None):
        raise RuntimeError("a worker failed")

    before = _blas_threads()
    monkeypatch.setattr(par, "attention_weights", failing)
    with pytest.raises(RuntimeError, match="a worker failed"):
        par.parallel_attention(np.ones((4, 2)), np.ones((4, 2)), np.ones((4, 2)), workers=2)
    assert _blas_threads() == before


def test_one_block_of_scores_per_worker(monkeypatch) -> None:
    blocks = []

    def recording(Q, K, mask=None):
        blocks.append(Q.size // Q.shape[-1] * K.shape[-2] * Q.dtype.itemsize)  # bytes of scores
        return attention_weights(Q, K, mask)

    monkeypatch.setattr(par, "attention_weights", recording)
    n = 2048
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((n, 8)) for _ in range(3))
    par.parallel_attention(Q, K, V, workers=2)
    assert max(blocks) <= par.SCORE_BLOCK_BYTES and len(blocks) >= 2
    monkeypatch.undo()
    # the peak memory of the whole call: a few blocks, far from the n × n matrix (32 MiB)
    peak = par.peak_memory(lambda: par.parallel_attention(Q, K, V, workers=2))
    assert peak < 4 * par.SCORE_BLOCK_BYTES + 4 * Q.nbytes < n * n * 8 / 4


def test_block_shape_gives_every_worker_a_block() -> None:
    # one sequence of 10 rows, 4 workers: blocks of 3 rows (3 + 3 + 3 + 1)
    assert par._block_shape(1, 10, 10, 8, workers=4) == (1, 3)
    # 2 sequences, 4 workers: each cut in two
    assert par._block_shape(2, 10, 10, 8, workers=4) == (1, 5)
    # many short sequences: whole ones, grouped, but at least one block per worker
    assert par._block_shape(32, 256, 256, 4, workers=2) == (par.SCORE_BLOCK_BYTES // 2**18, 256)
    assert par._block_shape(4, 10, 10, 8, workers=4) == (1, 10)
    # long rows: as many as fit in the budget, at least one
    assert par._block_shape(1, 4096, 4096, 4, 2) == (1, par.SCORE_BLOCK_BYTES // (4096 * 4))
    assert par._block_shape(8, 1024, 1024, 4, 2) == (1, par.SCORE_BLOCK_BYTES // 4096)
    assert par._block_shape(1, 8, 10**9, 8, 2) == (1, 1)


def test_short_sequences_are_grouped_and_long_ones_cut(monkeypatch) -> None:
    shapes = []

    def recording(Q, K, mask=None):
        shapes.append(Q.shape)
        return attention_weights(Q, K, mask)

    monkeypatch.setattr(par, "attention_weights", recording)
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((2, 3, 16, 4))  # 6 short sequences, a block holds 3 of them
    mask = rng.random((2, 1, 16, 16)) > 0.2
    O = par.parallel_attention(Q, Q, Q, mask, workers=2)
    assert shapes == [(3, 16, 4), (3, 16, 4)]
    np.testing.assert_allclose(O, attention_weights(Q, Q, mask) @ Q, rtol=1e-12)


def test_steps_on_lanes_by_hand() -> None:
    # 12 FLOPs in 3 rounds of 4: one lane does 12 steps, 2 lanes 6, 4 lanes 3, and 100 lanes
    # still 3 (a round cannot start before the previous one ends)
    assert [par.steps_on_lanes(12, 3, lanes) for lanes in (1, 2, 4, 100)] == [12, 6, 3, 3]
    assert par.steps_on_lanes(10, 2, 3) == 2 * 2  # rounds of 5 FLOPs on 3 lanes: 2 steps each
    # the RNN of lesson 07: n rounds of 4 d² FLOPs; the speed-up stops at 4 d² lanes
    n, d = 2048, 32
    flops = par.rnn_flops(n, d)
    assert flops / par.steps_on_lanes(flops, n, 10**6) == 4 * d**2
    attention = par.attention_flops(n, d)
    assert attention / par.steps_on_lanes(attention, 2, 10**4) == pytest.approx(10**4, rel=1e-4)
    with pytest.raises(ValueError, match="lanes must be a positive whole number"):
        par.steps_on_lanes(12, 3, 0)


# ---------------------------------------------------------------------------------------------
# the RNN on workers: by time steps (each chunk waits for the last one) and by sequences
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_rnn_on_workers_gives_the_states_of_rnn_forward(workers: int) -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 13, 4))
    W_xh, W_hh = rng.standard_normal((4, 6)), rng.standard_normal((6, 6)) / 3
    b_h = rng.standard_normal(6)
    np.testing.assert_allclose(par.rnn_steps_on_workers(X[0], W_xh, W_hh, b_h, workers),
                               rnn_forward(X[0], W_xh, W_hh, b_h), rtol=1e-12)
    np.testing.assert_allclose(par.rnn_batch_on_workers(X, W_xh, W_hh, b_h, workers),
                               rnn_forward(X, W_xh, W_hh, b_h), rtol=1e-12)


def test_rnn_steps_on_workers_hands_each_chunk_the_previous_last_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = []
    real = par.rnn_forward

    def spy(X, W_xh, W_hh, b_h, h0=None):
        starts.append(None if h0 is None else h0.copy())
        return real(X, W_xh, W_hh, b_h, h0)

    monkeypatch.setattr(par, "rnn_forward", spy)
    X, W = np.ones((6, 2)), np.eye(2) / 2
    H = par.rnn_steps_on_workers(X, W, W, np.zeros(2), 3)
    assert starts[0] is None
    np.testing.assert_array_equal(starts[1], H[1])  # chunk 2 starts from h_2, chunk 3 from h_4
    np.testing.assert_array_equal(starts[2], H[3])


# ---------------------------------------------------------------------------------------------
# training steps: attention's backward against BPTT, with BLAS on 1 or more cores
# ---------------------------------------------------------------------------------------------
def test_training_step_runs_forward_and_backward_of_each_model() -> None:
    dX, *dW = par.training_step("attention", 8, 4)()
    assert dX.shape == (8, 4) and [w.shape for w in dW] == [(4, 4)] * 3
    dX, dW_xh, dW_hh, db_h, dh0 = par.training_step("RNN", 8, 4)()
    assert dX.shape == (8, 4) and dW_xh.shape == dW_hh.shape == (4, 4) and db_h.shape == (4,)
    # the same inputs every time: a step is a fixed piece of work
    np.testing.assert_array_equal(par.training_step("RNN", 8, 4)()[0], dX)
    with pytest.raises(ValueError, match="model must be one of"):
        par.training_step("GRU", 8, 4)


def test_time_training_steps_times_every_model_length_and_core_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = []

    class Controller:  # records the BLAS limit each timed step runs under
        def limit(self, limits: int, user_api: str) -> contextlib.AbstractContextManager:
            assert user_api == "blas"
            limits_seen.append(limits)
            return contextlib.nullcontext()

    limits_seen = limits
    monkeypatch.setattr(par, "_blas", lambda: Controller())
    clock = iter(float(t) for t in range(1000))  # every step takes 1 s
    monkeypatch.setattr(par.time, "perf_counter", lambda: next(clock))
    times = par.time_training_steps([8, 16], d=4, cores=(1, 2), repeat=2)
    assert times.ns == (8, 16) and times.cores == (1, 2) and times.d == 4
    assert set(times.seconds) == set(par.TRAINING_MODELS)
    assert times.seconds["attention"].shape == (2, 2, 2)  # (ns, rounds, cores)
    # warm-up + 2 rounds, each: for each n, each model, the cores one right after the other
    assert limits == [1, 2] * (3 * 2 * 2)
    np.testing.assert_array_equal(times.median("RNN"), np.ones((2, 2)))


def test_training_step_timings_take_medians_of_each_rounds_ratio() -> None:
    attention = np.array([[[4.0, 2.0], [8.0, 4.0], [4.0, 2.0]]])  # one n, 3 rounds, 2 cores
    rnn = np.array([[[1.0, 1.0], [2.0, 2.0], [1.0, 4.0]]])  # round 3: load on the 2-core run
    times = par.TrainingStepTimings((64,), (1, 2), 8, {"attention": attention, "RNN": rnn})
    np.testing.assert_array_equal(times.median("attention"), [[4.0, 2.0]])
    np.testing.assert_array_equal(times.speedup("attention"), [[1.0, 2.0]])
    np.testing.assert_array_equal(times.speedup("RNN"), [[1.0, 1.0]])
    np.testing.assert_array_equal(times.ratio(), [[4.0, 2.0]])  # attention / RNN, per round


def test_flops_per_generated_token() -> None:
    d = 32
    # the new token's q, k, v (6 d²), then its scores and output over context + 1 positions
    assert par.attention_flops_per_token(0, d) == 6 * d**2 + 4 * d
    assert par.attention_flops_per_token(999, d) == 6 * d**2 + 4 * 1000 * d
    assert par.rnn_flops_per_token(d) == 4 * d**2  # whatever the context
    growth = [par.attention_flops_per_token(t, d) for t in (10, 100, 1000)]
    assert growth[0] < growth[1] < growth[2]
