"""Memory and time of blockwise (online-softmax) attention against full self-attention.

Full attention holds the n x n weights: 4 n² bytes in float32, 1 GiB at n = 16384.
`blockwise_attention` walks over the keys one block at a time with a running maximum and
running sum, so its largest temporary is n x block_size. This script measures, side by side in
one run, the peak memory (tracemalloc, which sees numpy's allocations) and the time of both,
for n = 1024, 4096 and 16384 (d = 64, float32), and prints the ratios.
Targets at n = 16384: peak memory at most 1/20 of self_attention's, time at most 1.5x.

    .venv/bin/python benchmarks/blockwise.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from course_lib.attention import attention_weights, blockwise_attention, weighted_sum
from course_lib.parallel import peak_memory


def full_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray) -> np.ndarray:
    """softmax(Q Kᵀ / √d_k) V with the whole n x n weights, as `self_attention` computes it."""
    return weighted_sum(attention_weights(Q, K), V)


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of `repeat` runs, in seconds (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    d = 64
    print(f"d = {d}, float32, block_size = {args.block_size}; time: best of {args.repeat}")
    print(f"{'n':>6} {'peak full':>11} {'peak blockwise':>15} {'memory ratio':>13} "
          f"{'time full':>10} {'time blockwise':>15} {'time ratio':>11}")
    for n in args.sizes:
        Q, K, V = (rng.standard_normal((n, d), dtype=np.float32) for _ in range(3))
        full = lambda Q=Q, K=K, V=V: full_attention(Q, K, V)  # noqa: E731
        blocks = lambda Q=Q, K=K, V=V: blockwise_attention(Q, K, V, args.block_size)  # noqa: E731
        difference = np.abs(full() - blocks()).max()
        assert difference < 1e-4, f"blockwise and full attention differ by {difference}"
        mem_full, mem_blocks = peak_memory(full), peak_memory(blocks)
        t_full, t_blocks = best_time(full, args.repeat), best_time(blocks, args.repeat)
        print(f"{n:>6} {mem_full / 2**20:8.1f} MiB {mem_blocks / 2**20:12.1f} MiB "
              f"{mem_blocks / mem_full:12.3f}x {t_full:9.3f}s {t_blocks:14.3f}s "
              f"{t_blocks / t_full:10.2f}x")


if __name__ == "__main__":
    main()
