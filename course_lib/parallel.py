"""Parallelism, measured: what an RNN must do one step after another and attention does at once.

The plumbing of lesson 07: a median timer, peak memory (tracemalloc), FLOP counts from the
formulas, a power-law fit for complexity exponents, and the count of sequential steps in a
computation graph. Sequences have n tokens of width d (d_model = d_k = d_v = d_in = d_h = d).

The experiment code imports numpy and the math modules only (no plotting).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from functools import cache

import numpy as np

__all__ = [
    "median_time",
    "time_sweep",
    "peak_memory",
    "memory_sweep",
    "attention_flops",
    "rnn_flops",
    "flop_crossover",
    "fit_power_law",
    "rnn_computation_graph",
    "attention_computation_graph",
    "sequential_steps",
]


# --- measuring -----------------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeat: int = 5) -> float:
    """The median wall-clock time of `repeat` calls of fn(), in seconds, after one warm-up call.

    The median ignores the occasional run slowed down by the rest of the machine.
    """
    fn()  # warm-up: first-call costs (allocations, caches) are not what we measure
    durations = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def time_sweep(
    setup: Callable[[int], Callable[[], object]], ns: Sequence[int], repeat: int = 5
) -> np.ndarray:
    """`median_time(setup(n), repeat)` for each n in ns: shape (len(ns),), in seconds.

    setup(n) builds the inputs for size n (not timed) and returns the call to time.
    """
    return np.array([median_time(setup(n), repeat) for n in ns])


def peak_memory(fn: Callable[[], object]) -> int:
    """The peak number of bytes allocated while fn() runs (numpy reports its buffers to
    tracemalloc, so the n × n weights show up)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def memory_sweep(setup: Callable[[int], Callable[[], object]], ns: Sequence[int]) -> np.ndarray:
    """`peak_memory(setup(n))` for each n in ns: shape (len(ns),), in bytes."""
    return np.array([peak_memory(setup(n)) for n in ns])


# --- counting ------------------------------------------------------------------------------


def attention_flops(n: int, d: int) -> int:
    """Floating-point operations of the two n × n products of self-attention: 4 n² d.

    A = Q Kᵀ is n² dot products of length d (d multiplications and d additions each: 2 n² d);
    O = α V is n · d dot products of length n (another 2 n² d). The projections X W (6 n d²)
    and the softmax (about 3 n²) are left out: for the growth in n, n² d is what counts.
    """
    return 4 * n**2 * d


def rnn_flops(n: int, d: int) -> int:
    """Floating-point operations of an RNN's n steps: 4 n d².

    Each step computes x_t W_xh and h_{t-1} W_hh, two (1, d) × (d, d) products of 2 d² each.
    """
    return 4 * n * d**2


def flop_crossover(d: int, n_max: int = 1 << 20) -> int:
    """The smallest n at which attention costs more FLOPs than the RNN, found by doubling and
    bisection on `attention_flops(n, d) > rnn_flops(n, d)` (4 n² d > 4 n d² ⟺ n > d)."""
    if attention_flops(n_max, d) <= rnn_flops(n_max, d):
        raise ValueError(f"no crossover below n_max = {n_max}.")
    low, high = 1, 1  # invariant after the doubling: attention is cheaper at low, dearer at high
    while attention_flops(high, d) <= rnn_flops(high, d):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        if attention_flops(middle, d) > rnn_flops(middle, d):
            high = middle
        else:
            low = middle
    return high


def fit_power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The least-squares fit of y ≈ c · x^k on log-log axes: returns (k, c).

    log y = k log x + log c, so k is the slope of the log-log line: the complexity exponent
    (k = 2 for a cost that quadruples when n doubles).
    """
    k, log_c = np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float)), 1)
    return float(k), float(np.exp(log_c))


# --- sequential steps ----------------------------------------------------------------------


def rnn_computation_graph(n: int) -> dict[str, list[str]]:
    """What each quantity of an RNN needs: h_t needs h_{t-1} (and x_t, which is given).

    Returns {quantity: [quantities it needs]}, e.g. {"h1": [], "h2": ["h1"], ...}.
    """
    return {f"h{t}": [f"h{t - 1}"] if t > 1 else [] for t in range(1, n + 1)}


def attention_computation_graph(n: int) -> dict[str, list[str]]:
    """What each quantity of self-attention needs: q_i, k_i, v_i need only the input x_i;
    o_i = Σ_j α_ij v_j needs q_i and every k_j and v_j.

    Returns {quantity: [quantities it needs]}.
    """
    graph: dict[str, list[str]] = {}
    for i in range(1, n + 1):
        graph.update({f"q{i}": [], f"k{i}": [], f"v{i}": []})
    keys_values = [f"k{j}" for j in range(1, n + 1)] + [f"v{j}" for j in range(1, n + 1)]
    for i in range(1, n + 1):
        graph[f"o{i}"] = [f"q{i}", *keys_values]
    return graph


def sequential_steps(needs: Mapping[str, Sequence[str]]) -> int:
    """The number of rounds needed when every quantity whose inputs are ready is computed at
    once (unlimited parallel hardware): the length of the longest chain of dependencies.

    round(x) = 1 + max(round(y) for y in needs[x]), or 1 if x needs nothing computed.
    """

    @cache
    def round_of(name: str) -> int:
        return 1 + max((round_of(need) for need in needs[name]), default=0)

    # bottom-up in insertion order keeps the recursion shallow for chains given in order
    return max(round_of(name) for name in needs)
