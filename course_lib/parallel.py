"""Parallelism, measured: what an RNN must do one step after another and attention does at once.

The plumbing of lesson 07: a median timer, peak memory (tracemalloc), FLOP counts from the
formulas, a power-law fit for complexity exponents, and the count of sequential steps in a
computation graph. Sequences have n tokens of width d (d_model = d_k = d_v = d_in = d_h = d).

And attention on several cores: `parallel_attention` computes exact attention as independent
blocks of query rows on a pool of threads, and `time_workers` measures a computation against
the number of workers it is given. `time_training_steps` times one training step (forward and
backward) of attention against backpropagation through time of an RNN of the same width, over
lengths, with numpy's BLAS given one core or more; `attention_flops_per_token` and
`rnn_flops_per_token` count what generating one more token costs each.

The experiment code imports numpy, the math modules and threadpoolctl only (no plotting).
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from course_lib.attention import attention_weights, self_attention_backward
from course_lib.rnn import rnn_backward, rnn_forward
from course_lib.shapes import as_float_array, check_count, check_mask, float_dtype

__all__ = [
    "median_time",
    "interleaved_medians",
    "time_sweep",
    "SAME_WITHIN",
    "compare_times",
    "time_workers",
    "WorkerTimings",
    "TRAINING_MODELS",
    "training_step",
    "time_training_steps",
    "TrainingStepTimings",
    "parallel_attention",
    "rnn_steps_on_workers",
    "TWO_IDLE_CORES",
    "rnn_batch_on_workers",
    "peak_memory",
    "memory_sweep",
    "attention_flops",
    "rnn_flops",
    "flop_crossover",
    "attention_flops_per_token",
    "rnn_flops_per_token",
    "steps_on_lanes",
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


def interleaved_medians(fns: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The median wall-clock time of each function, in seconds: `repeat` rounds that each call
    every function once, after one warm-up round. Interleaving puts a burst of load from the
    rest of the machine on all of them alike, so their ratios stay fair."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeat + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def time_sweep(
    setup: Callable[[int], Callable[[], object]], ns: Sequence[int], repeat: int = 5
) -> np.ndarray:
    """`median_time(setup(n), repeat)` for each n in ns: shape (len(ns),), in seconds.

    setup(n) builds the inputs for size n (not timed) and returns the call to time.
    """
    return np.array([median_time(setup(n), repeat) for n in ns])


SAME_WITHIN = 0.1  # two measured times within 10% of each other are "about the same"


def compare_times(ratio: float, tolerance: float = SAME_WITHIN) -> str:
    """Words for a ratio t_a / t_b of two measured times: "faster" (a takes less than
    1 − tolerance times b), "slower" (more than 1 + tolerance times), else "about the same".

    A gap of a few percent between two timings is noise on a shared machine, not a verdict.
    """
    if ratio < 1 - tolerance:
        return "faster"
    return "slower" if ratio > 1 + tolerance else "about the same"


@dataclass(frozen=True)
class WorkerTimings:
    """Every timed run of one computation: `seconds[r, k]` is round r with workers[k]."""

    workers: tuple[int, ...]
    seconds: np.ndarray  # (rounds, len(workers)), wall-clock seconds

    @property
    def median(self) -> np.ndarray:
        """The median time for each number of workers, shape (len(workers),), in seconds."""
        return np.median(self.seconds, axis=0)

    @property
    def speedup(self) -> np.ndarray:
        """The median over rounds of t(workers[0]) / t(w), shape (len(workers),): each ratio
        compares runs made one right after the other, so a slow spell of the machine (another
        program, a busy core) slows both sides of a ratio alike and cancels out."""
        return np.median(self.seconds[:, :1] / self.seconds, axis=0)


def time_workers(
    calls: Mapping[str, Callable[[int], object]], workers: Sequence[int], repeat: int = 15,
    *, setting: Callable[[int], AbstractContextManager[object]] | None = None,
) -> dict[str, WorkerTimings]:
    """Time calls[name](w) for each name and each number of workers w, `repeat` rounds after
    one warm-up round: {name: WorkerTimings}.

    Made for speed-ups on a machine that other programs share: within a round, one
    computation is timed with every number of workers back to back, so the speed-up of each
    round compares runs made under the same conditions, and the median over rounds drops the
    rounds that a burst of load hit on one side only. `setting(w)`, when given, is a context
    entered around each call but outside the clock (numpy's BLAS limited to w threads, say).
    """
    workers = tuple(check_count(w, "workers") for w in workers)
    repeat = check_count(repeat, "repeat")
    seconds = {name: np.zeros((repeat, len(workers))) for name in calls}
    for round_ in range(repeat + 1):  # round 0 is the warm-up: not recorded
        for name, call in calls.items():
            for k, w in enumerate(workers):
                with setting(w) if setting is not None else nullcontext():
                    start = time.perf_counter()
                    call(w)
                    elapsed = time.perf_counter() - start
                if round_:
                    seconds[name][round_ - 1, k] = elapsed
    return {name: WorkerTimings(workers, seconds[name]) for name in calls}


TRAINING_MODELS = ("attention", "RNN")
"""The two models `training_step` builds: one self-attention layer and one vanilla RNN."""


def training_step(model: str, n: int, d: int, *, seed: int = 0) -> Callable[[], object]:
    """The call that runs one training step of `model` on one sequence of n tokens of width d
    (d_model = d_k = d_v = d_in = d_h = d), on inputs drawn here (not timed): float64, weights
    scaled by 1/√d, and a random gradient of the loss with respect to the outputs.

    - "attention": `self_attention_backward(X, W_Q, W_K, W_V, dO)`, which runs the forward
      pass (Q, K, V, the n × n weights, O) and then the backward pass (dV, dÃ, dQ, dK, dX and
      the three weight gradients): a few large matrix products, no loop over positions.
    - "RNN": `rnn_backward(X, W_xh, W_hh, b_h, dH)`, which runs the forward pass (n steps, one
      after the other) and then backpropagation through time (n steps back, one after the
      other).

    Both calls compute the forward pass themselves, so one call is one training step without
    the optimiser's update (a few element-wise operations on the weights). Raises ValueError
    for an unknown model or a size that is not a positive whole number.
    """
    n, d = check_count(n, "n"), check_count(d, "d")
    rng = np.random.default_rng([seed, n, d])
    X, dOut = rng.standard_normal((2, n, d))  # the tokens, and ∂L/∂O (or ∂L/∂H)
    W_1, W_2, W_3 = rng.standard_normal((3, d, d)) / math.sqrt(d)
    if model == "attention":
        return lambda: self_attention_backward(X, W_1, W_2, W_3, dOut)
    if model == "RNN":
        b_h = np.zeros(d)
        return lambda: rnn_backward(X, W_1, W_2, b_h, dOut)
    raise ValueError(f"model must be one of {TRAINING_MODELS}; got {model!r}.")


@dataclass(frozen=True)
class TrainingStepTimings:
    """Every timed training step: `seconds[model][i, r, k]` is `model`'s step at n = ns[i],
    in round r, with BLAS on cores[k] threads (wall-clock seconds)."""

    ns: tuple[int, ...]
    cores: tuple[int, ...]
    d: int
    seconds: Mapping[str, np.ndarray]  # model -> (len(ns), rounds, len(cores))

    def median(self, model: str) -> np.ndarray:
        """The median time of `model`'s step for each n and number of cores, in seconds:
        shape (len(ns), len(cores))."""
        return np.median(self.seconds[model], axis=1)

    def speedup(self, model: str) -> np.ndarray:
        """The median over rounds of t(cores[0]) / t(cores[k]) for each n: shape
        (len(ns), len(cores)); each ratio compares runs made one right after the other."""
        times = self.seconds[model]
        return np.median(times[:, :, :1] / times, axis=1)

    def ratio(self, model: str = "attention", other: str = "RNN") -> np.ndarray:
        """The median over rounds of t(model) / t(other), for each n and number of cores:
        shape (len(ns), len(cores)); above 1, `model`'s step is the slower one."""
        return np.median(self.seconds[model] / self.seconds[other], axis=1)


def time_training_steps(
    ns: Sequence[int], d: int, cores: Sequence[int] = (1, 2), repeat: int = 5, *, seed: int = 0
) -> TrainingStepTimings:
    """Time one `training_step` of each model in TRAINING_MODELS for each n in ns, with numpy's
    BLAS library limited to each number of threads in `cores` (threadpoolctl), `repeat`
    rounds after one warm-up round.

    Within a round, for each n, the two models are timed with every number of cores one right
    after the other, so the ratios (speed-up, attention against RNN) compare runs made under
    the same conditions, and their median over rounds drops the rounds a burst of load from
    other programs hit on one side only. The BLAS limit is set before the clock starts and
    restored afterwards. What a second core can do here is what BLAS does with it: split the
    large matrix products into pieces; numpy's element-wise operations (the softmax, tanh) stay
    on one core, and so does the RNN's loop over steps.
    """
    ns = tuple(check_count(n, "n") for n in ns)
    cores = tuple(check_count(c, "cores") for c in cores)
    steps = {(model, n): training_step(model, n, d, seed=seed)
             for n in ns for model in TRAINING_MODELS}  # per n, the models one after the other
    timings = time_workers({key: lambda _, step=step: step() for key, step in steps.items()},
                           cores, repeat, setting=lambda c: _blas().limit(limits=c,
                                                                          user_api="blas"))
    seconds = {model: np.stack([timings[model, n].seconds for n in ns])
               for model in TRAINING_MODELS}  # (len(ns), rounds, len(cores))
    return TrainingStepTimings(ns, cores, check_count(d, "d"), seconds)


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


# --- attention on several cores ------------------------------------------------------------

SCORE_BLOCK_BYTES = 2**20
"""The most bytes of scores one worker holds at once (a block of query rows × all n_k keys):
1 MiB, about one core's L2 cache on current processors, so that the softmax's several passes
over a block read it from the cache; and large enough that each block's matrix products are
big ones (64 rows at n_k = 4096 in float32)."""


@cache
def _blas() -> ThreadpoolController:
    """The thread pools of the libraries loaded in this process (numpy's BLAS among them)."""
    return ThreadpoolController()


_ONE_CALL_AT_A_TIME = threading.Lock()  # the BLAS thread limit is global to the process


def parallel_attention(
    Q: np.ndarray,
    K: np.ndarray,
    V: np.ndarray,
    mask: np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """O = softmax(Q Kᵀ / √d_k) V, computed as independent blocks of query rows on `workers`
    threads (default: os.cpu_count()).

    Output row i is o_i = Σ_j α_ij v_j with α_ij = softmax_j(q_i · k_j / √d_k): it needs q_i
    and all of K and V, and nothing from any other query row. So the rows can be cut into
    blocks, each block's outputs computed on its own, in any order and at the same time,
    and written side by side: O[rows] = softmax(Q[rows] Kᵀ / √d_k) V. An RNN has no such cut:
    h_t needs h_{t−1}.

    numpy releases the GIL inside its matrix products and element-wise loops, so threads run
    on separate cores. While the pool runs, the BLAS library is held at one thread
    (threadpoolctl) and restored afterwards, so that what runs in parallel is the workers and
    not BLAS's own threads. Each worker holds one block of scores at a time, at most
    SCORE_BLOCK_BYTES (and at least one row): the whole n_q × n_k matrix is never built.
    Concurrent calls from several threads run one after another.

    Shapes: Q (..., n_q, d_k), K (..., n_k, d_k), V (..., n_k, d_v), leading batch axes
    broadcast; mask (n_q, n_k) or broadcastable, boolean, True = may attend. Returns O
    (..., n_q, d_v) in the inputs' common float dtype (float64 for integers), equal to
    `attention_weights(Q, K, mask) @ V`: a row whose every position is blocked gives zeros.
    Raises ValueError when the shapes do not fit or workers is not a positive whole number;
    TypeError for inputs that are not numbers. Source: Vaswani et al. (2017), section 4.
    """
    Q = as_float_array(Q, "Q", 2, "(n_q, d_k)")
    K = as_float_array(K, "K", 2, "(n_k, d_k)")
    V = as_float_array(V, "V", 2, "(n_k, d_v)")
    workers = check_count((os.cpu_count() or 1) if workers is None else workers, "workers")
    batch, mask = _attention_shapes(Q, K, V, mask)
    n_q, n_k, d_v = Q.shape[-2], K.shape[-2], V.shape[-1]
    dtype = float_dtype(Q, K, V)
    B = math.prod(batch)  # the sequences, one after the other: (B, n, d), views where possible
    Q, K, V = (np.broadcast_to(M, (*batch, *M.shape[-2:])).reshape(B, *M.shape[-2:])
               for M in (Q, K, V))
    if mask is not None:
        mask = np.broadcast_to(mask, (*batch, n_q, n_k)).reshape(B, n_q, n_k)
    O = np.zeros((B, n_q, d_v), dtype=dtype)

    def attend(sequences: slice, rows: slice) -> None:
        # o_i for the query rows `rows` of some sequences: their own q_i, all of their K and V
        blocked = None if mask is None else mask[sequences, rows]  # (sequences, rows, n_k)
        weights = attention_weights(Q[sequences, rows], K[sequences], blocked)  # same shape
        np.matmul(weights, V[sequences], out=O[sequences, rows], dtype=dtype)  # (.., rows, d_v)

    per_block, rows = _block_shape(B, n_q, n_k, dtype.itemsize, workers)
    blocks = [(slice(b, b + per_block), slice(i, i + rows))
              for b in range(0, B, per_block) for i in range(0, n_q, rows)]
    with _ONE_CALL_AT_A_TIME, _blas().limit(limits=1, user_api="blas"):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda block: attend(*block), blocks):  # re-raises a worker's error
                pass
    return O.reshape(*batch, n_q, d_v)


TWO_IDLE_CORES = {"attention, query rows": 1.5, "RNN, time steps": 1.1, "RNN, the batch": 1.2}
"""What 2 idle cores give the computations of lesson 07 (d = 32; attention on one sequence of
2048 tokens, the RNN over the 4096 steps of one sequence and over 256 sequences of 128 steps),
as speed-ups over 1 worker: at least 1.5x for attention's query rows and 1.2x for the RNN's
batch, at most 1.1x for the RNN's time steps. A promise about a quiet machine, checked by
`benchmarks/parallel_speedup.py`; the lesson compares its live numbers with it."""


def rnn_steps_on_workers(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray, workers: int
) -> np.ndarray:
    """The RNN's states H = rnn_forward(X, W_xh, W_hh, b_h) with the n steps of one sequence
    cut into `workers` consecutive chunks, one per worker (thread).

    The first step of a chunk needs the last state of the chunk before it: the line
    `previous.result()` waits for it. So the chunks run one after another, on different
    cores: the dependency h_t ← h_{t−1} is not cut, only moved from core to core.
    Shapes as `rnn_forward`, X (n, d_in).
    """
    workers = check_count(workers, "workers")

    def chunk(X_chunk: np.ndarray, previous: Future[np.ndarray] | None) -> np.ndarray:
        h0 = None if previous is None else previous.result()[-1]  # waits for the previous worker
        return rnn_forward(X_chunk, W_xh, W_hh, b_h, h0)

    bounds = np.linspace(0, X.shape[-2], workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        chunks: list[Future[np.ndarray]] = []
        for c in range(workers):
            previous = chunks[-1] if chunks else None
            chunks.append(pool.submit(chunk, X[..., bounds[c]:bounds[c + 1], :], previous))
        return np.concatenate([done.result() for done in chunks], axis=-2)


def rnn_batch_on_workers(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray, workers: int
) -> np.ndarray:
    """The RNN's states H = rnn_forward(X, W_xh, W_hh, b_h) for a batch X (B, n, d_in), the B
    sequences cut into `workers` groups, one per worker: they share no state, so no worker
    waits for another. Each worker still runs its n steps one after another."""
    workers = check_count(workers, "workers")
    groups = np.array_split(X, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(lambda g: rnn_forward(g, W_xh, W_hh, b_h), groups)))


def _attention_shapes(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None
) -> tuple[tuple[int, ...], np.ndarray | None]:
    """The batch shape of O and the checked mask, or a ValueError in the course's words."""
    if Q.shape[-1] != K.shape[-1] or K.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"Q {Q.shape}, K {K.shape} and V {V.shape} do not fit: Q and K need the same width "
            "d_k, and K and V the same number of rows n_k (one value per key)."
        )
    try:
        batch = np.broadcast_shapes(Q.shape[:-2], K.shape[:-2], V.shape[:-2])
    except ValueError:
        raise ValueError(
            f"the leading (batch) axes of Q {Q.shape[:-2]}, K {K.shape[:-2]} and V "
            f"{V.shape[:-2]} do not match."
        ) from None
    if mask is None:
        return batch, None
    scores = (*batch, Q.shape[-2], K.shape[-2])
    mask = check_mask(mask, scores)
    return np.broadcast_shapes(mask.shape, scores)[:-2], mask


def _block_shape(
    sequences: int, n_q: int, n_k: int, itemsize: int, workers: int
) -> tuple[int, int]:
    """(sequences, query rows) per block: scores of at most SCORE_BLOCK_BYTES (at least one
    row), and enough blocks for every worker to get one. Short sequences are grouped, several
    whole ones per block (fewer, larger blocks: less of the Python overhead each block pays
    while holding the GIL); long ones are cut into blocks of rows."""
    rows_fit = max(1, SCORE_BLOCK_BYTES // max(1, n_k * itemsize))
    if sequences >= workers and rows_fit >= n_q:
        return max(1, min(rows_fit // max(1, n_q), math.ceil(sequences / workers))), max(1, n_q)
    shared = math.ceil(n_q * sequences / workers) if sequences < workers else n_q
    return 1, max(1, min(rows_fit, shared))


# --- counting ------------------------------------------------------------------------------


def attention_flops(n: int, d: int, *, projections: bool = True) -> int:
    """Floating-point operations of self-attention on n tokens of width d (d_k = d_v = d):
    4 n² d + 6 n d², or 4 n² d with projections=False.

    A = Q Kᵀ is n² dot products of length d (d multiplications and d additions each: 2 n² d);
    O = α V is n · d dot products of length n (another 2 n² d): the part that mixes positions,
    which Table 1 of Vaswani et al. (2017) compares. The projections Q, K, V = X W_Q, X W_K,
    X W_V are 3 n d dot products of length d, 6 n d²; the softmax (about 3 n²) is left out.
    """
    mixing = 4 * n**2 * d
    return mixing + 6 * n * d**2 if projections else mixing


def rnn_flops(n: int, d: int, *, projections: bool = True) -> int:
    """Floating-point operations of an RNN's n steps with width d: 4 n d², or 2 n d² with
    projections=False.

    Each step computes h_{t-1} W_hh, a (1, d) × (d, d) product of 2 d² FLOPs: the part that
    mixes positions (the recurrent layer's n d² in Table 1 of Vaswani et al., 2017); and the
    input's projection x_t W_xh, another 2 d².
    """
    mixing = 2 * n * d**2
    return mixing + 2 * n * d**2 if projections else mixing


def steps_on_lanes(flops: int, rounds: int, lanes: int) -> int:
    """The fewest steps `flops` FLOPs take on `lanes` arithmetic lanes (each does one FLOP per
    step) when they come in `rounds` rounds that must run one after another, each round's
    FLOPs all independent: rounds · ⌈flops / (rounds · lanes)⌉.

    A count, not a timing, and a generous one: it ignores memory traffic, the time lanes need
    to exchange results, and that the additions of a sum wait for each other. The speed-up
    over one lane is at most flops / steps_on_lanes(...): `lanes` while there is work enough,
    flops / rounds (the FLOPs of one round) at most, however many lanes.
    """
    flops, rounds, lanes = (check_count(v, name) for v, name in
                            ((flops, "flops"), (rounds, "rounds"), (lanes, "lanes")))
    return rounds * math.ceil(flops / (rounds * lanes))


def flop_crossover(d: int, n_max: int = 1 << 20) -> int:
    """The smallest n at which attention's mixing of positions costs more FLOPs than the RNN's
    (Table 1's comparison: projections left out on both sides), found by doubling and bisection
    on `attention_flops(n, d, projections=False) > rnn_flops(n, d, projections=False)`
    (4 n² d > 2 n d² ⟺ n > d / 2). Counted with the projections, attention costs more at every
    n (6 n d² against 4 n d² before any mixing)."""

    def dearer(n: int) -> bool:
        return attention_flops(n, d, projections=False) > rnn_flops(n, d, projections=False)

    if not dearer(n_max):
        raise ValueError(f"no crossover below n_max = {n_max}.")
    low, high = 1, 1  # invariant after the doubling: attention is cheaper at low, dearer at high
    while not dearer(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        if dearer(middle):
            high = middle
        else:
            low = middle
    return high


def attention_flops_per_token(context: int, d: int) -> int:
    """FLOPs of one self-attention layer for one new token generated after `context` earlier
    tokens whose keys and values are kept (a KV cache): 6 d² + 4 (context + 1) d.

    The new token's q, k, v = x W_Q, x W_K, x W_V are 3 dot products of length d per output
    column (6 d²); its scores q · k_j against the context + 1 keys (its own included) and its
    output Σ_j α_j v_j are 2 (context + 1) d each. The second term grows with the context:
    every new token looks at every earlier one.
    """
    return 6 * d**2 + 4 * (context + 1) * d


def rnn_flops_per_token(d: int) -> int:
    """FLOPs of an RNN for one new token: 4 d² (x_t W_xh and h_{t-1} W_hh), whatever the
    context: everything before is summed up in h_{t-1}, a vector of width d."""
    return 4 * d**2


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
