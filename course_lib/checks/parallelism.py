"""Checkers of exercise 07, parallelism: `attention_rows`, the attention of one block of query
rows (what one worker computes), and `blockwise_attention`, attention with the online softmax.

    O[start:stop] = softmax(Q[start:stop] Kᵀ / √d_k) V: a block of query rows needs its own
    queries and all of the keys and values, nothing from any other row, so blocks can be
    computed on separate workers. One case measures the peak memory: computing all n rows and
    keeping the block gives the right values but fails it (every worker would redo the whole).

    O = softmax(Q Kᵀ / √d_k) V, one block of `block_size` keys at a time, never holding n × n:
    per query row a running maximum m, a running sum l = Σ_j exp(ã_ij − m) and a running output
    o = Σ_j exp(ã_ij − m) v_j; when a block raises the maximum to m', l and o are multiplied by
    exp(m − m'). At the end O = o / l.

Besides the values, one case measures the peak memory of the learner's function (tracemalloc,
through the calling machinery): a solution that builds the full n × n matrix of scores or
weights gives the right values but fails it.

Lesson: notebooks/07_parallelism.ipynb. Exercise: exercises/07_parallelism.ipynb.
Tests: tests/test_checks_parallelism.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib import attention
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.result import CheckResult

__all__ = ["ATTENTION_ROWS", "ROWS_MEMORY_N", "ROWS_MEMORY_LIMIT", "check_attention_rows",
           "BLOCKWISE_ATTENTION", "MEMORY_N", "MEMORY_BLOCK", "MEMORY_LIMIT",
           "check_blockwise_attention"]

MEMORY_N = 2048
"""Tokens in the case whose peak memory is measured: one n × n array is 8 MiB in float16,
16 MiB in float32, 32 MiB in float64."""
MEMORY_BLOCK = 40
"""The block size of that case: a block of scores, (n, block_size) in float64, is 640 KiB."""
MEMORY_LIMIT = MEMORY_N * MEMORY_N * 2 * 7 // 8
"""7 MiB: 7/8 of one n × n array of float16, the narrowest float, so that a full n × n matrix
fails in whatever dtype it is computed. With d_v = 1 (the stored partial outputs grow with
d_v) the reference holds about 1.5 MiB at its peak, a plain online loop about 2.6 MiB, and a
valid solution that keeps every block's partial results (m, l, o) until the end about 5 MiB:
the limit accepts every block traversal and rejects every full matrix."""


# -- the cases -----------------------------------------------------------------------------------


def _case(name: str, Q: Any, K: Any, V: Any, block_size: int, **extra: Any) -> Case:
    arrays = (("Q", np.asarray(Q)), ("K", np.asarray(K)), ("V", np.asarray(V)))
    return Case(name, (*arrays, ("block_size", block_size)), **extra)


def _random_case(
    seed: int, n: int, d_k: int, d_v: int, block_size: int, *, scale: float = 1.0,
    dtype: Any = np.float64, n_q: int | None = None, batch: tuple[int, ...] = (),
    name: str = "", **extra: Any,
) -> Case:
    Q = random_normal(seed, *batch, n if n_q is None else n_q, d_k, scale=scale, dtype=dtype)
    K = random_normal(seed + 1, *batch, n, d_k, scale=scale, dtype=dtype)
    V = random_normal(seed + 2, *batch, n, d_v, dtype=dtype)
    if not name:
        blocks = f"{n // block_size} block{'s' if n // block_size != 1 else ''} of {block_size}"
        if n % block_size:
            blocks += f" and a last one of {n % block_size}"
        name = f"random, n = {n}, d_k = {d_k}, {blocks}"
        if np.dtype(dtype) != np.float64:
            name = f"{np.dtype(dtype).name}, {name}"
    return _case(name, Q, K, V, block_size, **extra)


def _cases() -> list[Case]:
    # hand-worked: the second block of keys holds a larger score for each query, so the
    # running maximum changes and what was summed under the old one must be rescaled
    Q = [[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, -1.0]]
    K = [[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0]]
    V = [[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-2.0, 4.0]]
    return [
        _case("hand-worked, n = 4, d_k = 2, 2 blocks of 2 keys", Q, K, V, 2),
        _random_case(601, n=5, d_k=3, d_v=2, block_size=2),
        _random_case(604, n=6, d_k=4, d_v=3, block_size=4),
        _random_case(607, n=7, d_k=2, d_v=2, block_size=3, scale=1.5),
        _random_case(610, n=3, d_k=4, d_v=2, block_size=8,
                     name="block_size larger than n: n = 3, block_size = 8"),
        _random_case(613, n=4, d_k=2, d_v=3, block_size=1, scale=1.5,
                     name="one key at a time: n = 4, block_size = 1"),
        _random_case(616, n=6, d_k=3, d_v=2, block_size=4, dtype=np.float32),
        _random_case(619, n=5, d_k=4, d_v=2, block_size=2, scale=25,
                     name="large scores (up to ±1600 after scaling), n = 5, block_size = 2"),
        _random_case(
            622, n=MEMORY_N, d_k=4, d_v=1, block_size=MEMORY_BLOCK, memory_limit=MEMORY_LIMIT,
            name=f"n = {MEMORY_N}, block_size = {MEMORY_BLOCK}, peak memory measured",
        ),
    ]


def _harder() -> list[Case]:
    return [
        _random_case(631, n=5, d_k=3, d_v=2, block_size=2, n_q=3,
                     name="more keys than queries: n_q = 3, n_k = 5, block_size = 2"),
        _random_case(634, n=5, d_k=2, d_v=3, block_size=3, batch=(2,),
                     name="a batch of 2 sequences, n = 5, block_size = 3"),
    ]


# -- the known mistakes --------------------------------------------------------------------------


def _online(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, block_size: int, *,
    scale: float | None = None, rescale: str = "both", subtract_max: bool = True,
    drop_partial: bool = False, normalise: bool = True,
) -> np.ndarray:
    """The online softmax, right by default, or with one of the known mistakes:

    scale         the factor of the scores (default 1/√d_k)
    rescale       "both" (right), "none", "sum" only or "output" only
    subtract_max  False: exp of the raw scores, no running maximum at all
    drop_partial  True: only the n // block_size whole blocks
    normalise     False: o returned, not o / l
    """
    scale = 1 / math.sqrt(Q.shape[-1]) if scale is None else scale
    n_k = K.shape[-2]
    end = n_k - n_k % block_size if drop_partial else n_k
    shape = np.broadcast_shapes(Q.shape[:-1], K.shape[:-2] + (1,))
    m = np.full((*shape, 1), -np.inf)
    l = np.zeros((*shape, 1))
    o = np.zeros((*shape, V.shape[-1]))
    for start in range(0, end, block_size):
        stop = min(start + block_size, end)
        S = (Q @ np.swapaxes(K[..., start:stop, :], -1, -2)) * scale
        if subtract_max:
            m_new = np.maximum(m, S.max(axis=-1, keepdims=True))
        else:
            m_new = np.zeros_like(m)
        correction = np.exp(m - m_new)
        P = np.exp(S - m_new)
        l_scale = correction if rescale in ("both", "sum") else 1.0
        o_scale = correction if rescale in ("both", "output") else 1.0
        l = l * l_scale + P.sum(axis=-1, keepdims=True)
        o = o * o_scale + P @ V[..., start:stop, :]
        m = m_new
    return o / l if normalise else o


def _per_block(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, block_size: int, combine: str
) -> np.ndarray:
    """Each block of keys normalised on its own: softmax(S_b) V_b, summed, averaged or the
    last one kept."""
    outputs = []
    for start in range(0, K.shape[-2], block_size):
        keys = slice(start, start + block_size)
        S = Q @ np.swapaxes(K[..., keys, :], -1, -2) / math.sqrt(Q.shape[-1])
        outputs.append(attention.softmax(S) @ V[..., keys, :])
    if combine == "sum":
        return np.sum(outputs, axis=0)
    if combine == "mean":
        return np.mean(outputs, axis=0)
    return outputs[-1]


_RESCALE_HINT = (
    "the running sum and output are not rescaled when the maximum changes. When a block "
    "raises the running maximum of a row from m to m', everything summed so far was computed "
    "as exp(ã − m): multiply both the running sum l and the running output o by "
    "exp(m − m') before adding the new block, l = l * exp(m − m') + Σ exp(ã − m'), and the "
    "same for o."
)
_BLOCK_NORMALISED_HINT = (
    "you normalised each block of keys on its own (a softmax per block). The weights of a "
    "row must sum to 1 over all n keys, not within each block: keep a running maximum m, a "
    "running sum l and a running output o across the blocks, and divide o by l once, after "
    "the last block."
)
_PARTIAL_HINT = (
    "the last block is dropped when n is not a multiple of block_size: loop with "
    "`for start in range(0, n, block_size)` and take K[start:start + block_size] (slicing "
    "past the end is fine in numpy); the last block is simply shorter."
)

BLOCKWISE_ATTENTION = Checker(
    function="blockwise_attention",
    outputs=("O",),
    reference=attention.blockwise_attention,
    make_cases=_cases,
    make_harder=_harder,
    mistakes=(
        Mistake("no-rescale", _RESCALE_HINT, lambda *a: _online(*a, rescale="none")),
        Mistake("no-rescale", _RESCALE_HINT, lambda *a: _online(*a, rescale="sum")),
        Mistake("no-rescale", _RESCALE_HINT, lambda *a: _online(*a, rescale="output")),
        Mistake(
            "not-divided-by-l",
            "your output is the running o itself: o = Σ_j exp(ã_ij − m) v_j weighs each value "
            "by exp(ã_ij − m), which do not sum to 1. The softmax's denominator is the running "
            "sum l = Σ_j exp(ã_ij − m), over all the keys: after the last block, divide, "
            "O = o / l (one l per query row).",
            lambda *a: _online(*a, normalise=False),
        ),
        Mistake("partial-block-dropped", _PARTIAL_HINT,
                lambda *a: _online(*a, drop_partial=True)),
        Mistake("block-normalised", _BLOCK_NORMALISED_HINT,
                lambda *a: _per_block(*a, combine="sum")),
        Mistake("block-normalised", _BLOCK_NORMALISED_HINT,
                lambda *a: _per_block(*a, combine="mean")),
        Mistake("block-normalised", _BLOCK_NORMALISED_HINT,
                lambda *a: _per_block(*a, combine="last")),
        Mistake(
            "no-scaling",
            "no scaling: the scores are ã_ij = q_i · k_j / √d_k. Divide each block's scores "
            "(or Q, once) by np.sqrt(d_k), with d_k = Q.shape[-1].",
            lambda *a: _online(*a, scale=1.0),
        ),
        Mistake(
            "divide-by-d_k",
            "you divided the scores by d_k; the scale is √d_k: ã_ij = q_i · k_j / √d_k.",
            lambda Q, K, V, block_size: _online(Q, K, V, block_size, scale=1 / Q.shape[-1]),
        ),
        Mistake(
            "no-max",
            "no running maximum: with large scores np.exp overflows (exp(709) is about the "
            "largest float64, exp(710) is inf, and inf / inf = NaN). Keep per row the largest "
            "score seen so far, m, subtract it before np.exp, and rescale by exp(m − m') when "
            "it grows.",
            lambda *a: _online(*a, subtract_max=False),
        ),
    ),
    hint="for each block of keys K[start:start + block_size]: S = Q K_blockᵀ / √d_k, "
    "m' = max(m, S.max(axis=-1, keepdims=True)), P = exp(S − m'), "
    "l = l · exp(m − m') + P.sum(axis=-1, keepdims=True), o = o · exp(m − m') + P V_block, "
    "m = m'; after the last block, O = o / l.",
    nan_hint="your output contains NaN or inf: np.exp overflowed (the scores are large here), or "
    "a sum is 0. Subtract the running maximum before np.exp, and start m at −inf (or at the "
    "first block's maximum), l and o at zeros.",
    memory_hint=f"your function holds about as much memory at once as if it built the full "
    f"n × n matrix of scores or weights (at n = {MEMORY_N}, one n × n array is "
    f"{MEMORY_N**2 * 2 / 2**20:g} MiB even in float16, {MEMORY_N**2 * 8 / 2**20:g} MiB in "
    "float64). That is what blockwise attention "
    "avoids: compute the scores of one block of block_size keys at a time, so the largest "
    "array is (n, block_size), and use the block_size you are given. Q @ K.T on all the keys, "
    "or a list that keeps every block's scores, holds all n × n numbers.",
)


def check_blockwise_attention(
    blockwise_attention: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `blockwise_attention(Q, K, V, block_size)`: the values of
    softmax(Q Kᵀ / √d_k) V, and, on one larger case, a peak memory well below that of an
    n × n array.

    With `harder=True`, also n_q ≠ n_k (more keys than queries) and a batch of sequences.
    """
    return BLOCKWISE_ATTENTION.check(blockwise_attention, timeout=timeout, harder=harder)


# == attention_rows: one block of query rows, as one worker computes it ==========================

ROWS_MEMORY_N = 2048
"""Tokens in the case of `attention_rows` whose peak memory is measured: its block is 32 rows."""
ROWS_MEMORY_LIMIT = 4 * 2**20
"""4 MiB. The block's scores are 32 × 2048 numbers (0.5 MiB in float64) and a valid solution
holds a few such arrays at once (about 1.5 MiB); the scores of all n rows are n × n numbers,
8 MiB even in float16, 32 MiB in float64."""


def _rows_reference(Q: np.ndarray, K: np.ndarray, V: np.ndarray, start: int, stop: int
                    ) -> np.ndarray:
    """O[start:stop] = softmax(Q[start:stop] Kᵀ / √d_k) V: the block's own queries, all of K, V."""
    return attention.weighted_sum(attention.attention_weights(Q[..., start:stop, :], K), V)


def _rows_case(
    seed: int, n: int, d_k: int, d_v: int, start: int, stop: int, *, n_k: int | None = None,
    scale: float = 1.0, dtype: Any = np.float64, batch: tuple[int, ...] = (), name: str = "",
    **extra: Any,
) -> Case:
    Q = random_normal(seed, *batch, n, d_k, scale=scale, dtype=dtype)
    K = random_normal(seed + 1, *batch, n if n_k is None else n_k, d_k, scale=scale, dtype=dtype)
    V = random_normal(seed + 2, *batch, n if n_k is None else n_k, d_v, dtype=dtype)
    if not name:
        name = f"random, n = {n}, rows {start} to {stop - 1}"
        if np.dtype(dtype) != np.float64:
            name = f"{np.dtype(dtype).name}, {name}"
    arrays = (("Q", Q), ("K", K), ("V", V))
    return Case(name, (*arrays, ("start", start), ("stop", stop)), **extra)


def _rows_cases() -> list[Case]:
    # hand-worked: rows 1 and 2 of 4; row 1 attends mostly to key 1, row 2 equally to 2 and 3
    Q = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [-1.0, 0.0]])
    K = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]])
    return [
        Case("hand-worked, n = 4, rows 1 to 2",
             (("Q", Q), ("K", K), ("V", V), ("start", 1), ("stop", 3))),
        _rows_case(701, n=6, d_k=3, d_v=2, start=0, stop=6,
                   name="the whole sequence as one block: rows 0 to 5 of n = 6"),
        _rows_case(704, n=7, d_k=3, d_v=2, start=2, stop=5),
        _rows_case(707, n=5, d_k=2, d_v=3, start=3, stop=4, name="one row: row 3 of n = 5"),
        _rows_case(710, n=7, d_k=4, d_v=2, start=4, stop=7,
                   name="the last block: rows 4 to 6 of n = 7"),
        _rows_case(713, n=6, d_k=3, d_v=3, start=1, stop=4, dtype=np.float32),
        _rows_case(716, n=5, d_k=4, d_v=2, start=1, stop=3, scale=25,
                   name="large scores (up to ±1600 after scaling), rows 1 to 2 of n = 5"),
        _rows_case(719, n=ROWS_MEMORY_N, d_k=4, d_v=4, start=64, stop=96,
                   memory_limit=ROWS_MEMORY_LIMIT,
                   name=f"n = {ROWS_MEMORY_N}, rows 64 to 95, peak memory measured"),
    ]


def _rows_harder() -> list[Case]:
    return [
        _rows_case(731, n=3, d_k=2, d_v=2, start=1, stop=3, n_k=6,
                   name="more keys than queries: rows 1 to 2 of n_q = 3, n_k = 6"),
        _rows_case(734, n=5, d_k=3, d_v=2, start=1, stop=4, batch=(2,),
                   name="a batch of 2 sequences, rows 1 to 3 of n = 5"),
        _rows_case(737, n=4, d_k=2, d_v=3, start=2, stop=2,
                   name="an empty block: start = stop = 2 (more workers than rows)"),
    ]


def _rows_variant(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, start: int, stop: int, *,
    rows: slice | None = None, cut_keys: bool = False, axis: int = -1,
    scale: float | None = None, subtract_max: bool = True, weights_only: bool = False,
) -> np.ndarray:
    """The attention of a block of query rows, right by default, or with one known mistake:

    rows          the query rows taken (default start:stop)
    cut_keys      True: K and V cut to the same rows as the queries
    axis          the axis of the softmax (-1, the keys, is right)
    scale         the factor of the scores (default 1/√d_k)
    subtract_max  False: exp of the raw scores
    weights_only  True: the weights α returned, not α V
    """
    rows = slice(start, stop) if rows is None else rows
    scale = 1 / math.sqrt(Q.shape[-1]) if scale is None else scale
    if cut_keys:
        K, V = K[..., start:stop, :], V[..., start:stop, :]
    S = Q[..., rows, :] @ np.swapaxes(K, -1, -2) * scale
    e = np.exp(S - S.max(axis=axis, keepdims=True) if subtract_max else S)
    weights = e / e.sum(axis=axis, keepdims=True)
    return weights if weights_only else weights @ V


ATTENTION_ROWS = Checker(
    function="attention_rows",
    outputs=("O",),
    reference=_rows_reference,
    make_cases=_rows_cases,
    make_harder=_rows_harder,
    mistakes=(
        Mistake(
            "keys-cut",
            "you cut the keys and values to the block too. Output row i, o_i = Σ_j α_ij v_j, "
            "sums over every key j = 0 .. n − 1, whichever block i is in: only the queries are "
            "cut, Q[start:stop], and every block uses all of K and V.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop, cut_keys=True),
        ),
        Mistake(
            "softmax-axis",
            "the softmax normalises over the wrong axis: over the block's query rows (axis 0) "
            "instead of over the keys (axis=-1). Each row of weights must sum to 1 over the "
            "keys; normalised over the rows, a row's output would depend on which other rows "
            "share its block, and the blocks could no longer be computed on their own.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop, axis=-2),
        ),
        Mistake(
            "rows-off-by-one",
            "the block is the rows start, start + 1, ..., stop − 1: Python's Q[start:stop], "
            "which leaves out row stop. Check which rows your slice takes.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop,
                                                       rows=slice(start, stop + 1)),
        ),
        Mistake(
            "rows-off-by-one",
            "the block is the rows start, start + 1, ..., stop − 1: Python's Q[start:stop] "
            "(rows are counted from 0). Check which rows your slice takes.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop,
                                                       rows=slice(start + 1, stop + 1)),
        ),
        Mistake(
            "all-rows",
            "you returned the outputs of all n query rows; a worker returns only its block, the "
            "stop − start rows of Q[start:stop] (and computes only those).",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop, rows=slice(None)),
        ),
        Mistake(
            "weights-returned",
            "you returned the block's weights α (one per key); its outputs are O = α V, one "
            "row of width d_v per query row.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop, weights_only=True),
        ),
        Mistake(
            "no-scaling",
            "no scaling: the scores are ã_ij = q_i · k_j / √d_k. Divide them (or the block of "
            "queries) by np.sqrt(d_k), with d_k = Q.shape[-1].",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop, scale=1.0),
        ),
        Mistake(
            "divide-by-d_k",
            "you divided the scores by d_k; the scale is √d_k: ã_ij = q_i · k_j / √d_k.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop,
                                                       scale=1 / Q.shape[-1]),
        ),
        Mistake(
            "no-max",
            "no max subtraction: with large scores np.exp overflows (exp(710) is inf in "
            "float64, and inf / inf = NaN). Subtract each row's maximum before np.exp, "
            "S - S.max(axis=-1, keepdims=True): the softmax does not change.",
            lambda Q, K, V, start, stop: _rows_variant(Q, K, V, start, stop,
                                                       subtract_max=False),
        ),
    ),
    hint="take the block's queries Q[start:stop] and all of K and V: "
    "S = Q[start:stop] Kᵀ / √d_k, shape (stop − start, n); the softmax of each row of S "
    "(over the keys, axis=-1, after subtracting the row's maximum); then multiply by V.",
    nan_hint="your output contains NaN or inf: np.exp overflowed (the scores are large here). "
    "Subtract each row's maximum before np.exp.",
    memory_hint=f"your function holds about as much memory at once as the "
    f"scores of all n query rows (at n = {ROWS_MEMORY_N}, an n × n array of float64 is "
    f"{ROWS_MEMORY_N**2 * 8 // 2**20} MiB). A worker computes only its block: "
    "Q[start:stop] @ K.T is (stop − start) × n. Computing Q @ K.T for every row and keeping "
    "the block makes each worker redo the whole sequence's work, and nothing is gained from "
    "having several.",
)


def check_attention_rows(
    attention_rows: Callable[..., Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `attention_rows(Q, K, V, start, stop)`: the outputs of the query rows
    start .. stop − 1, softmax(Q[start:stop] Kᵀ / √d_k) V, and, on one larger case, a peak
    memory far below that of the n × n scores.

    With `harder=True`, also more keys than queries, a batch of sequences and an empty block.
    """
    return ATTENTION_ROWS.check(attention_rows, timeout=timeout, harder=harder)
