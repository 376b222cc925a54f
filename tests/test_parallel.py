"""Parallelism plumbing (course_lib.parallel): timers, memory, FLOP formulas, fits, step counts."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import parallel as par


def test_median_time_takes_the_median_after_a_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 10.0, 15.0, 20.0, 22.0])  # three runs: 1 s, 5 s and 2 s
    monkeypatch.setattr(par.time, "perf_counter", lambda: next(clock))
    calls = []
    assert par.median_time(lambda: calls.append(1), repeat=3) == 2.0
    assert len(calls) == 4  # one warm-up call, not timed


def test_time_sweep_builds_inputs_outside_the_timing() -> None:
    sizes = []
    times = par.time_sweep(lambda n: sizes.append(n) or (lambda: sum(range(n))), [10, 100], 2)
    assert sizes == [10, 100] and times.shape == (2,) and np.all(times >= 0)


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
    # attention: Q Kᵀ and α V, 2 n² d each; RNN: two (1, d) x (d, d) products per step
    assert par.attention_flops(4, 8) == 2 * (2 * 4 * 4 * 8)
    assert par.rnn_flops(4, 8) == 4 * 2 * (2 * 8 * 8)
    assert par.attention_flops(1000, 64) / par.attention_flops(500, 64) == 4  # n²
    assert par.rnn_flops(1000, 64) / par.rnn_flops(500, 64) == 2  # n


@pytest.mark.parametrize("d", [1, 7, 32, 64, 512])
def test_flop_crossover_is_just_above_d(d: int) -> None:
    n = par.flop_crossover(d)
    assert par.attention_flops(n, d) > par.rnn_flops(n, d)
    assert par.attention_flops(n - 1, d) <= par.rnn_flops(n - 1, d)
    assert n == d + 1


def test_flop_crossover_out_of_range() -> None:
    with pytest.raises(ValueError, match="no crossover"):
        par.flop_crossover(1000, n_max=100)


def test_fit_power_law_recovers_a_known_law() -> None:
    x = np.array([16, 32, 64, 128, 256])
    assert par.fit_power_law(x, 3.0 * x**2.5) == pytest.approx((2.5, 3.0))
    k, _ = par.fit_power_law(x, 5e-4 * x * (1 + 0.05 * np.sin(x)))  # a noisy straight line
    assert k == pytest.approx(1.0, abs=0.05)


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
