"""How close is the readable `self_attention` to the floor of any implementation?

Every implementation of attention pays for two matrix products, the scores Q Kᵀ and the
outputs weights @ V. This script times, side by side in one run, `self_attention` (projections,
scaling, softmax and all) and those two products alone, and prints their ratio for each shape
(target: within 2.0x). It also times the explicit-loop `attention_loops` against
`self_attention` at n = 64, the figure quoted in the parallelism lesson.

    .venv/bin/python benchmarks/attention.py            # add --repeat 20 for steadier figures
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from course_lib.attention import attention_loops, project_qkv, self_attention, softmax

SHAPES = [(8, 1024, 64), (1, 4096, 64), (32, 256, 64)]  # (batch, n, d_model)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock seconds of `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print(f"self_attention against its floor (Q Kᵀ and weights @ V alone), float32, "
          f"median of {args.repeat}")
    print("self_attention also pays the projections X W_Q, X W_K, X W_V and one exp per score: the")
    print("last two columns compare it with all that unavoidable work, measured piece by piece")
    print(f"{'batch, n, d_model':>20} {'self_attention':>15} {'two matmuls':>12} {'ratio':>7}"
          f" {'+ proj. + exp':>14} {'ratio':>7}")
    ratios = []
    for batch, n, d_model in SHAPES:
        X = rng.standard_normal((batch, n, d_model), dtype=np.float32)
        W_Q, W_K, W_V = (rng.standard_normal((d_model, d_model), dtype=np.float32) / 8
                         for _ in range(3))
        Q, K, V = project_qkv(X, W_Q, W_K, W_V)
        K_T = np.swapaxes(K, -1, -2)  # a view, exactly as attention_scores multiplies
        weights = softmax(Q @ K_T / np.float32(np.sqrt(d_model)))

        def floor(Q=Q, K_T=K_T, weights=weights, V=V) -> None:
            np.matmul(Q, K_T)
            np.matmul(weights, V)

        t_full = median_time(lambda X=X, W=(W_Q, W_K, W_V): self_attention(X, *W), args.repeat)
        t_floor = median_time(floor, args.repeat)
        scores = np.matmul(Q, K_T)
        scratch = np.empty_like(scores)
        t_exp = median_time(lambda a=scores, s=scratch: np.exp(a, out=s), args.repeat)
        t_proj = median_time(lambda X=X, W=(W_Q, W_K, W_V): [X @ w for w in W], args.repeat)
        t_work = t_floor + t_proj + t_exp
        ratios.append(t_full / t_floor)
        print(f"{str((batch, n, d_model)):>20} {t_full * 1e3:12.1f} ms {t_floor * 1e3:9.1f} ms "
              f"{t_full / t_floor:6.2f}x {t_work * 1e3:11.1f} ms {t_full / t_work:6.2f}x")
    print(f"worst ratio: {max(ratios):.2f}x (target: within 2.0x)")

    n, d_model = 64, 64
    X = rng.standard_normal((n, d_model), dtype=np.float32)
    W = [rng.standard_normal((d_model, d_model), dtype=np.float32) / 8 for _ in range(3)]
    t_loops = median_time(lambda: attention_loops(X, *W), max(1, args.repeat // 3))
    t_vec = median_time(lambda: self_attention(X, *W), args.repeat)
    print(f"\nn = {n}, d_model = {d_model}: attention_loops {t_loops * 1e3:.1f} ms, "
          f"self_attention {t_vec * 1e3:.3f} ms, loops are {t_loops / t_vec:.0f}x slower")


if __name__ == "__main__":
    main()
