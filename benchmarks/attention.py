"""How close is the readable `self_attention` to the floor of any implementation, and how much
do `parallel_attention`'s workers gain?

Every implementation of attention pays for two matrix products, the scores Q Kᵀ and the
outputs weights @ V. This script times, side by side in one run, `self_attention` (projections,
scaling, softmax and all) and those two products alone, and prints their ratio for each shape
(target: within 2.0x). On the same inputs it times `parallel_attention` (blocks of query rows on
a pool of threads, BLAS at one thread per worker) with 1 worker and with os.cpu_count() workers,
and prints the speed-up from 1 to all workers (target on 2 cores: at least 1.7x at
(1, 4096, 64) and (8, 1024, 64)) and the ratio of all workers to the floor (target: within
2.0x on every shape). The floor's products use numpy's BLAS with its own threads, all cores.
It also times the explicit-loop `attention_loops` against `self_attention` at n = 64, the
figure quoted in the parallelism lesson.

For one shape, every function is timed once per round, round after round (after one warm-up
round), and each keeps its median: a burst of load from other programs then slows all of them
alike, and the ratios stay steadier than the times. `parallel_attention` is timed in a phase of
its own, after a pause: after a call that used several threads, OpenBLAS's threads keep spinning
for a while (about 0.1 s), and would take a core from the workers.

    .venv/bin/python benchmarks/attention.py            # add --repeat 20 for steadier figures
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from course_lib.attention import attention_loops, project_qkv, self_attention, softmax
from course_lib.parallel import interleaved_medians, parallel_attention

SHAPES = [(8, 1024, 64), (1, 4096, 64), (32, 256, 64)]  # (batch, n, d_model)
SPIN_DOWN = 0.5  # seconds: OpenBLAS's threads stop spinning after a multi-threaded call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cores = os.cpu_count() or 1

    rows = []
    for batch, n, d_model in SHAPES:
        X = rng.standard_normal((batch, n, d_model), dtype=np.float32)
        W_Q, W_K, W_V = (rng.standard_normal((d_model, d_model), dtype=np.float32) / 8
                         for _ in range(3))
        Q, K, V = project_qkv(X, W_Q, W_K, W_V)
        K_T = np.swapaxes(K, -1, -2)  # a view, exactly as attention_scores multiplies
        weights = softmax(Q @ K_T / np.float32(np.sqrt(d_model)))
        scores = np.matmul(Q, K_T)
        scratch = np.empty_like(scores)
        assert np.allclose(parallel_attention(Q, K, V, workers=cores),
                           self_attention(X, W_Q, W_K, W_V)[0], atol=1e-5)

        def floor(Q=Q, K_T=K_T, weights=weights, V=V) -> None:
            np.matmul(Q, K_T)
            np.matmul(weights, V)

        t = interleaved_medians({
            "full": lambda X=X, W=(W_Q, W_K, W_V): self_attention(X, *W),
            "floor": floor,
            "exp": lambda a=scores, s=scratch: np.exp(a, out=s),
            "proj": lambda X=X, W=(W_Q, W_K, W_V): [X @ w for w in W],
        }, args.repeat)
        time.sleep(SPIN_DOWN)
        t |= interleaved_medians({
            "one worker": lambda Q=Q, K=K, V=V: parallel_attention(Q, K, V, workers=1),
            "all workers": lambda Q=Q, K=K, V=V: parallel_attention(Q, K, V, workers=cores),
        }, args.repeat)
        rows.append(((batch, n, d_model), t))

    print(f"self_attention against its floor (Q Kᵀ and weights @ V alone), float32, "
          f"median of {args.repeat}")
    print("self_attention also pays the projections X W_Q, X W_K, X W_V and one exp per score: the")
    print("last two columns compare it with all that unavoidable work, measured piece by piece")
    print(f"{'batch, n, d_model':>20} {'self_attention':>15} {'two matmuls':>12} {'ratio':>7}"
          f" {'+ proj. + exp':>14} {'ratio':>7}")
    ratios = []
    for shape, t in rows:
        work = t["floor"] + t["proj"] + t["exp"]
        ratios.append(t["full"] / t["floor"])
        print(f"{str(shape):>20} {t['full'] * 1e3:12.1f} ms {t['floor'] * 1e3:9.1f} ms "
              f"{t['full'] / t['floor']:6.2f}x {work * 1e3:11.1f} ms {t['full'] / work:6.2f}x")
    print(f"worst ratio: {max(ratios):.2f}x (target: within 2.0x)")

    print(f"\nparallel_attention(Q, K, V) on 1 and on {cores} workers (os.cpu_count()), same run "
          "and inputs")
    print(f"{'batch, n, d_model':>20} {'1 worker':>11} {f'{cores} workers':>12} {'speed-up':>9}"
          f" {'two matmuls':>12} {f'{cores} workers / floor':>20}")
    speedups, to_floor = {}, []
    for shape, t in rows:
        speedups[shape] = t["one worker"] / t["all workers"]
        to_floor.append(t["all workers"] / t["floor"])
        print(f"{str(shape):>20} {t['one worker'] * 1e3:8.1f} ms {t['all workers'] * 1e3:9.1f} ms"
              f" {speedups[shape]:8.2f}x {t['floor'] * 1e3:9.1f} ms {to_floor[-1]:19.2f}x")
    print(f"speed-up at (1, 4096, 64): {speedups[(1, 4096, 64)]:.2f}x, at (8, 1024, 64): "
          f"{speedups[(8, 1024, 64)]:.2f}x (target on 2 cores: at least 1.7x); worst ratio to "
          f"the floor: {max(to_floor):.2f}x (target: within 2.0x)")

    n, d_model = 64, 64
    X = rng.standard_normal((n, d_model), dtype=np.float32)
    W = [rng.standard_normal((d_model, d_model), dtype=np.float32) / 8 for _ in range(3)]
    t = interleaved_medians({"loops": lambda: attention_loops(X, *W),
                             "vectorized": lambda: self_attention(X, *W)},
                            max(1, args.repeat // 3))
    print(f"\nn = {n}, d_model = {d_model}: attention_loops {t['loops'] * 1e3:.1f} ms, "
          f"self_attention {t['vectorized'] * 1e3:.3f} ms, loops are "
          f"{t['loops'] / t['vectorized']:.0f}x slower")


if __name__ == "__main__":
    main()
