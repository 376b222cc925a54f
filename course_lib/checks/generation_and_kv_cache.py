"""Checkers of exercise 11, generation and the KV cache:
`next_token_probabilities(logits, temperature, top_k=None) -> p` and
`attend_with_cache(x, cache_K, cache_V, W_Q, W_K, W_V, position) -> (o, new_cache_K,
new_cache_V)`, one head of causal attention for one new token, with RoPE.

The references are written here from course_lib's pieces (`attention.softmax`,
`transformer.rope`): `gpt.sample_next` draws a token rather than returning its probabilities,
and `transformer.causal_self_attention_with_cache` works on heads of a whole model. The tests
check that the two agree with them (tests/test_checks_generation_and_kv_cache.py).

Lesson: notebooks/11_generation_and_kv_cache.ipynb. Exercise:
exercises/11_generation_and_kv_cache.ipynb.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from course_lib import attention, transformer
from course_lib.checks.calling import DEFAULT_TIMEOUT
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.judging import Judged
from course_lib.checks.result import CheckResult

__all__ = [
    "NEXT_TOKEN_PROBABILITIES",
    "ATTEND_WITH_CACHE",
    "check_next_token_probabilities",
    "check_attend_with_cache",
    "probabilities_reference",
    "attend_with_cache_reference",
]


# -- next_token_probabilities(logits, temperature, top_k=None) -> p -----------------------------


def _top_k_kept(logits: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Boolean (..., vocab): True at the k largest logits of each row (the k smallest with
    largest=False); ties at the k-th value keep the lower ids, as `gpt.sample_next` does."""
    order = np.argsort(-logits if largest else logits, axis=-1, kind="stable")[..., :k]
    kept = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(kept, order, True, axis=-1)
    return kept


def probabilities_reference(logits: np.ndarray, temperature: float,
                            top_k: int | None = None) -> np.ndarray:
    """The distribution the next token is drawn from: p = softmax(logits / T), among the top_k
    largest logits only (the others get probability 0).

    Divide by the temperature T > 0 first, then take the softmax (as `gpt.sample_next`):
    T < 1 sharpens, T > 1 flattens. logits (..., vocab_size) -> p (..., vocab_size), each row
    summing to 1, in the logits' float dtype.
    """
    z = logits / np.asarray(temperature, dtype=logits.dtype)  # (..., vocab)
    if top_k is not None:
        z = np.where(_top_k_kept(logits, top_k), z, -np.inf)  # the others blocked
    return attention.softmax(z, axis=-1)


def _distinct_logits(seed: int, *shape: int, scale: float = 2.0,
                     dtype: Any = np.float64) -> np.ndarray:
    """Logits with no two equal in a row (so that the k largest are never a tie)."""
    offsets = np.arange(shape[-1]) * 0.01 * scale  # below the 0.1 · scale rounding step
    return (random_normal(seed, *shape, scale=scale) + offsets).astype(dtype)


def _p_case(name: str, logits: Any, temperature: float, top_k: int | None = None) -> Case:
    return Case(name, (("logits", np.asarray(logits)), ("temperature", temperature)),
                {} if top_k is None else {"top_k": top_k})


def _p_cases() -> list[Case]:
    return [
        _p_case("hand-worked: 4 logits, temperature 1", [2.0, 1.0, 0.0, -1.0], 1.0),
        _p_case("temperature 0.5 (sharper), vocab 6", _distinct_logits(1700, 6), 0.5),
        _p_case("temperature 2 (flatter), vocab 5", _distinct_logits(1705, 5), 2.0),
        _p_case("top_k = 3, temperature 0.7, vocab 8", _distinct_logits(1710, 8), 0.7, 3),
        _p_case("top_k = 1 (greedy), temperature 1.3, vocab 6", _distinct_logits(1715, 6), 1.3,
                1),
        _p_case("top_k = vocab (keeps all), temperature 0.8, vocab 5",
                _distinct_logits(1720, 5), 0.8, 5),
        _p_case("float32, top_k = 4, temperature 0.9, vocab 7",
                _distinct_logits(1725, 7, dtype=np.float32), 0.9, 4),
        _p_case("large logits (about ±500), temperature 0.5, top_k = 3",
                _distinct_logits(1730, 6, scale=300.0), 0.5, 3),
    ]


def _p_harder() -> list[Case]:
    return [_p_case("a batch of 3 rows of logits, top_k = 2, temperature 0.6",
                    _distinct_logits(1735, 3, 6), 0.6, 2)]


def _softmax_plain(z: np.ndarray) -> np.ndarray:
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_max_subtracted(z: np.ndarray) -> np.ndarray:
    """A learner's stable softmax: NaN on a row that is all −∞ (no token kept)."""
    return _softmax_plain(z - z.max(axis=-1, keepdims=True))


def _ntp(logits: np.ndarray, temperature: float, top_k: int | None = None, *,
         temp: str = "divide", topk: str = "largest", stable: bool = True) -> np.ndarray:
    """next_token_probabilities, right or with one known mistake (the keyword arguments):
    `temp` "divide", "multiply", "ignored", "after-softmax" (softmax(z) / T), "power"
    (softmax(z) ** (1/T), not renormalised), "softmax-twice" (softmax(softmax(z) / T));
    `topk` "largest", "smallest", "after-softmax" (zeros after the softmax, not renormalised),
    "k-1", "k+1", "ignored"; `stable` False: no max subtracted."""
    softmax = _softmax_max_subtracted if stable else _softmax_plain
    z = {"divide": logits / temperature, "multiply": logits * temperature}.get(temp, logits)
    kept = None
    if top_k is not None and topk != "ignored":
        k = {"k-1": top_k - 1, "k+1": top_k + 1}.get(topk, top_k)
        kept = _top_k_kept(logits, k, largest=topk != "smallest")
        if topk != "after-softmax":
            z = np.where(kept, z, -np.inf)
    p = softmax(z)
    if temp == "after-softmax":
        p = p / temperature
    elif temp == "power":
        p = p ** (1 / temperature)
    elif temp == "softmax-twice":
        p = softmax(p / temperature)
    if kept is not None and topk == "after-softmax":
        p = np.where(kept, p, 0.0)
    return p


_AFTER = (
    "the temperature comes after the softmax in your code: {what}. Divide the logits first, "
    "then take the softmax: p = softmax(logits / T). (softmax(z)^(1/T) renormalised to sum "
    "to 1 is the same thing; softmax(z) / T alone does not even sum to 1.)"
)
_MULTIPLIED = (
    "you multiplied the logits by the temperature; divide them: p = softmax(logits / T), so "
    "that T < 1 sharpens the distribution (towards the most likely token) and T > 1 "
    "flattens it."
)
_T_IGNORED = (
    "your probabilities ignore the temperature: divide the logits by it before the softmax, "
    "p = softmax(logits / temperature). (Softmax first, then divide by T and renormalise: "
    "the renormalisation undoes the division, so T does nothing.)"
)
_SMALLEST = (
    "your top_k keeps the k smallest logits: argsort sorts in increasing order, so the k "
    "largest are its last k, `np.argsort(logits)[-k:]` (or sort −logits)."
)
_NOT_RENORMALISED = (
    "you zeroed the probabilities outside the top k after the softmax without renormalising, "
    "so they no longer sum to 1. Either divide by their new sum, or block the logits first "
    "(set the others to −∞) and then take the softmax, which gives them probability 0."
)
_OFF_BY_ONE = (
    "your top_k keeps {n} logits instead of k: with `np.sort(logits)[-k]`, the k-th largest "
    "logit is the threshold and the tokens whose logits are >= it are kept; with "
    "`np.argsort(-logits)[:k]`, the first k indices are kept."
)
_TOPK_IGNORED = (
    "your probabilities ignore top_k: when top_k is given, only the top_k largest logits "
    "keep a probability; set the others to −∞ before the softmax (they get 0)."
)
_UNSTABLE = (
    "no max subtraction: with logits near 500 divided by T = 0.5, exp overflows (inf / inf "
    "= NaN). Subtract the row's largest scaled logit before the exp (after the division and "
    "the top-k blocking): `z - z.max(axis=-1, keepdims=True)`."
)

NEXT_TOKEN_PROBABILITIES = Checker(
    function="next_token_probabilities",
    outputs=("p",),
    reference=probabilities_reference,
    make_cases=_p_cases,
    make_harder=_p_harder,
    mistakes=(
        Mistake("softmax-before-temperature", _AFTER.format(what="softmax(z) / T"),
                partial(_ntp, temp="after-softmax")),
        Mistake("softmax-before-temperature",
                _AFTER.format(what="softmax(z) ** (1 / T), not renormalised"),
                partial(_ntp, temp="power")),
        Mistake("softmax-before-temperature",
                _AFTER.format(what="softmax(softmax(z) / T), a softmax of probabilities"),
                partial(_ntp, temp="softmax-twice")),
        Mistake("temperature-multiplied", _MULTIPLIED, partial(_ntp, temp="multiply")),
        Mistake("temperature-ignored", _T_IGNORED, partial(_ntp, temp="ignored")),
        Mistake("top-k-smallest", _SMALLEST, partial(_ntp, topk="smallest")),
        Mistake("top-k-not-renormalised", _NOT_RENORMALISED, partial(_ntp, topk="after-softmax")),
        Mistake("top-k-off-by-one", _OFF_BY_ONE.format(n="k − 1"), partial(_ntp, topk="k-1")),
        Mistake("top-k-off-by-one", _OFF_BY_ONE.format(n="k + 1"), partial(_ntp, topk="k+1")),
        Mistake("top-k-ignored", _TOPK_IGNORED, partial(_ntp, topk="ignored")),
        Mistake("no-max-subtraction", _UNSTABLE, partial(_ntp, stable=False)),
    ),
    hint="z = logits / temperature; when top_k is given, set every z outside the top_k "
    "largest to −∞; then p = softmax(z) over the last axis (max subtracted): p sums to 1 "
    "and is 0 outside the top k.",
    nan_hint="your probabilities hold NaN or inf: exp overflowed (subtract the largest z "
    "first), or every logit was blocked (−∞ − (−∞) = NaN): keep the top_k largest, not none.",
)


def check_next_token_probabilities(
    next_token_probabilities: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `next_token_probabilities(logits, temperature, top_k=None)`, which
    must return softmax(logits / temperature) over the top_k largest logits (0 elsewhere).

    With `harder=True`, also a batch of rows of logits (..., vocab_size).
    """
    return NEXT_TOKEN_PROBABILITIES.check(next_token_probabilities, timeout=timeout,
                                          harder=harder)


# -- attend_with_cache(x, cache_K, cache_V, W_Q, W_K, W_V, position) ------------------------------


def _rope_at(row: np.ndarray, position: int) -> np.ndarray:
    """`transformer.rope` of one row (d,) at `position`."""
    return transformer.rope(row[None, :], np.array([position]))[0]


def attend_with_cache_reference(
    x: np.ndarray, cache_K: np.ndarray, cache_V: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray,
    W_V: np.ndarray, position: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One head of causal attention for one new token, with a KV cache and RoPE.

        q = RoPE(x W_Q, position),  k = RoPE(x W_K, position),  v = x W_V
        K = [cache_K; k],  V = [cache_V; v]             the new token's key and value appended
        o = softmax(K q / √d_k) V                        the new token sees every token so far

    x (d_model,), the new token at `position`; cache_K (position, d_k), the keys of positions
    0 .. position − 1, already rotated; cache_V (position, d_v). Returns (o (d_v,),
    K (position + 1, d_k), V (position + 1, d_v)); the inputs are not modified.
    """
    q = _rope_at(x @ W_Q, position)  # (d_k,)
    k = _rope_at(x @ W_K, position)  # (d_k,)
    v = x @ W_V  # (d_v,)
    K = np.concatenate([cache_K, k[None, :].astype(cache_K.dtype)], axis=0)  # (t + 1, d_k)
    V = np.concatenate([cache_V, v[None, :].astype(cache_V.dtype)], axis=0)  # (t + 1, d_v)
    weights = attention.softmax(K @ q / math.sqrt(q.shape[-1]))  # α, (t + 1,)
    return weights @ V, K, V


def _cache_case(name: str, seed: int, t: int, d_model: int, d_k: int, d_v: int, *,
                dtype: Any = np.float64, x_scale: float = 1.0, w_scale: float = 0.7) -> Case:
    """A cache built from a sequence of t + 1 tokens: keys and values of tokens 0 .. t − 1
    (keys rotated at their positions), and token t, the new one, at position t."""
    X = random_normal(seed, t + 1, d_model, scale=x_scale)
    W_Q = random_normal(seed + 1, d_model, d_k, scale=w_scale)
    W_K = random_normal(seed + 2, d_model, d_k, scale=w_scale)
    W_V = random_normal(seed + 3, d_model, d_v, scale=w_scale)
    cache_K = transformer.rope(X[:t] @ W_K, np.arange(t))  # (t, d_k)
    cache_V = X[:t] @ W_V  # (t, d_v)
    args = (("x", X[t]), ("cache_K", cache_K), ("cache_V", cache_V), ("W_Q", W_Q),
            ("W_K", W_K), ("W_V", W_V))
    return Case(name, (*((n, np.asarray(a).astype(dtype)) for n, a in args), ("position", t)))


def _cache_cases() -> list[Case]:
    return [
        _cache_case("the first token: position 0, an empty cache, d_model = 6, d_k = 4, d_v = 4",
                    1800, 0, 6, 4, 4),
        _cache_case("position 2, d_model = 3, d_k = 2, d_v = 2", 1810, 2, 3, 2, 2),
        _cache_case("position 3, d_model = 4, d_k = 4, d_v = 3", 1820, 3, 4, 4, 3),
        _cache_case("position 5, d_model = 6, d_k = 4, d_v = 4", 1830, 5, 6, 4, 4),
        _cache_case("float32, position 4, d_model = 4, d_k = 4, d_v = 2", 1840, 4, 4, 4, 2,
                    dtype=np.float32),
        _cache_case("position 9, d_model = 5, d_k = 2, d_v = 4", 1850, 9, 5, 2, 4),
        _cache_case("position 6, d_model = d_k = d_v = 4", 1870, 6, 4, 4, 4),
        _cache_case("large scores (about ±1000), position 3, d_model = 4, d_k = 4, d_v = 2",
                    1860, 3, 4, 4, 2, x_scale=12.0, w_scale=4.0),
    ]


def _awc(x: np.ndarray, cache_K: np.ndarray, cache_V: np.ndarray, W_Q: np.ndarray,
         W_K: np.ndarray, W_V: np.ndarray, position: int, *, at: int | None = None,
         rotate_q: bool = True, rotate_k: bool = True, rotate_v: bool = False,
         attend_new: bool = True, attend_new_value: bool = True, cache_new: str = "both",
         cache_k_rotated: bool = True, rotate_cache_again: bool = False, scale: str = "d_k",
         stable: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """attend_with_cache, right or with one known mistake (the keyword arguments): the
    position `at` which q and k are rotated (None: position); q, k or v rotated or not; the
    new key/value attended to or not; which of them the returned cache holds (`cache_new`
    "both", "none", "key"); the new key cached unrotated; the cached keys rotated again with
    the new one; the scale "d_k", "none", "d_model"; the softmax stable or not."""
    p = position if at is None else at
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    k_raw = k
    if rotate_q:
        q = _rope_at(q, p)
    if rotate_k:
        k = _rope_at(k, p)
    if rotate_v:
        v = _rope_at(v, p)
    K = np.concatenate([cache_K, k[None, :]], axis=0)
    V = np.concatenate([cache_V, v[None, :]], axis=0)
    if rotate_cache_again:  # [cache_K; x W_K] rotated at 0 .. t: the old keys twice
        K = transformer.rope(np.concatenate([cache_K, k_raw[None, :]], axis=0))
    K_att = K if attend_new else cache_K
    V_att = V if attend_new and attend_new_value else cache_V
    divisor = {"d_k": math.sqrt(q.shape[-1]), "none": 1.0, "d_model": math.sqrt(x.shape[-1])}
    scores = K_att @ q / divisor[scale]
    weights = attention.softmax(scores) if stable else _softmax_plain(scores)
    o = weights @ V_att
    K_out = K if cache_k_rotated else np.concatenate([cache_K, k_raw[None, :]], axis=0)
    if cache_new in ("none",):
        K_out = cache_K
    V_out = V if cache_new == "both" else cache_V
    return o, K_out, V_out


_NOT_ATTENDED = (
    "your new token attends to the cached tokens only: its own key and value must be appended "
    "to the cache before attending, K = [cache_K; k], V = [cache_V; v], so that "
    "o = softmax(K q / √d_k) V includes the token itself (as row i of causal attention "
    "includes j = i). At position 0 the cache is empty and there is nothing else to attend to."
)
_VALUE_NOT_APPENDED = (
    "the new token's value is not appended: you attend with K = [cache_K; k] but V = cache_V, "
    "one row short (or you return cache_V unchanged). Append v = x W_V too: "
    "`np.concatenate([cache_V, v[None, :]], axis=0)`, and return it as the new cache."
)
_CACHE_NOT_UPDATED = (
    "your o is right, but the cache you return does not hold the new token: return "
    "K = [cache_K; k] and V = [cache_V; v], each one row longer, so that the next token "
    "can attend to this one."
)
_POSITION_ZERO = (
    "your q and k are rotated at position 0 (a rotation by 0, so not at all): the new token "
    "is at `position`, and the cached keys were rotated at theirs. Note that rope(X) with no "
    "positions rotates the rows of X at 0, 1, 2, ...: a single row gets position 0. Pass the "
    "position: `rope(q[None, :], np.array([position]))[0]`."
)
_OFF_BY_ONE = (
    "your q and k are rotated at position {which}: the new token's position is `position`, "
    "the number of tokens before it (len(cache_K) before appending), not the cache's length "
    "after appending."
)
_ROTATED_AGAIN = (
    "the cached keys are rotated a second time: cache_K holds keys already rotated at their "
    "positions, so `rope(np.concatenate([cache_K, k[None, :]]))` turns them again. Rotate "
    "only the new key (at `position`), then append it."
)
_ROPE_ON_V = (
    "you rotated the value too: RoPE rotates the queries and keys (their dot products then "
    "see the offset between tokens), never the values, which are what the token passes on."
)
_Q_NOT_ROTATED = (
    "your query is not rotated: rotate q = x W_Q at `position`, as the keys are at theirs; "
    "the score q · k_j then depends on the offset between the two tokens."
)
_K_NOT_ROTATED = (
    "your new key is not rotated: rotate k = x W_K at `position` before appending it (the "
    "cached keys are stored rotated, and the next tokens will read this one from the cache)."
)
_K_CACHED_UNROTATED = (
    "your o is right, but the key you append to the returned cache is not rotated: the cache "
    "holds rotated keys (the next tokens compare their rotated queries with them), so append "
    "RoPE(x W_K, position)."
)
_NO_SCALE = (
    "no scaling: divide the scores by √d_k, softmax(K q / √d_k), with d_k = the keys' width "
    "(cache_K.shape[-1] = W_K.shape[-1])."
)
_SCALE_D_MODEL = (
    "you scaled by √d_model (the width of x); the scale is √d_k, the width of the queries "
    "and keys: W_K.shape[-1]."
)
_UNSTABLE = (
    "no max subtraction: with scores near 1000 exp overflows (inf / inf = NaN). Subtract "
    "the largest score first: `scores - scores.max()`."
)

class _CacheChecker(Checker):
    """A checker that also recognises a value left out of the attention by the error it
    raises: weights over position + 1 tokens meet position values. (Its wrong variant would
    raise on every case, and its message names other sizes than the learner's error does, so
    `diagnosis.same_error` does not match the two: the sizes in the message tell this mistake
    apart.)"""

    def _report(self, judged: Sequence[Judged], graded: bool = False) -> CheckResult:
        result = super()._report(judged, graded)
        if result.passed or result.diagnosis != "exception" or not _one_value_short(judged):
            return result
        return dataclasses.replace(result, hint=_VALUE_NOT_APPENDED,
                                   diagnosis="value-not-appended")


def _one_value_short(judged: Sequence[Judged]) -> bool:
    """Whether the learner raised on at least two cases past position 0, each time with an
    error that names the sizes position + 1 (the weights) and position (the values)."""
    raised = [(j.case.inputs["position"], j.outcome.error.message) for j in judged
              if j.outcome.error is not None and j.case.inputs["position"] > 0]
    return len(raised) >= 2 and all(
        {str(p), str(p + 1)} <= set(re.findall(r"\d+", message)) for p, message in raised)


ATTEND_WITH_CACHE = _CacheChecker(
    function="attend_with_cache",
    outputs=("o", "new_cache_K", "new_cache_V"),
    reference=attend_with_cache_reference,
    make_cases=_cache_cases,
    mistakes=(
        Mistake("new-token-not-attended", _NOT_ATTENDED, partial(_awc, attend_new=False)),
        Mistake("value-not-appended", _VALUE_NOT_APPENDED, partial(_awc, cache_new="key")),
        Mistake("cache-not-updated", _CACHE_NOT_UPDATED, partial(_awc, cache_new="none")),
        Mistake("position-zero", _POSITION_ZERO, partial(_awc, at=0)),
        Mistake("position-off-by-one", _OFF_BY_ONE.format(which="position + 1"),
                lambda *args: _awc(*args, at=args[-1] + 1)),
        Mistake("position-off-by-one", _OFF_BY_ONE.format(which="position − 1"),
                lambda *args: _awc(*args, at=args[-1] - 1)),
        Mistake("cached-keys-rotated-again", _ROTATED_AGAIN,
                partial(_awc, rotate_cache_again=True)),
        Mistake("rope-on-values", _ROPE_ON_V, partial(_awc, rotate_v=True)),
        Mistake("query-not-rotated", _Q_NOT_ROTATED, partial(_awc, rotate_q=False)),
        Mistake("key-not-rotated", _K_NOT_ROTATED, partial(_awc, rotate_k=False)),
        Mistake("key-cached-unrotated", _K_CACHED_UNROTATED,
                partial(_awc, cache_k_rotated=False)),
        Mistake("no-scaling", _NO_SCALE, partial(_awc, scale="none")),
        Mistake("scale-d_model", _SCALE_D_MODEL, partial(_awc, scale="d_model")),
        Mistake("no-max-subtraction", _UNSTABLE, partial(_awc, stable=False)),
    ),
    hint="q = RoPE(x W_Q, position), k = RoPE(x W_K, position), v = x W_V; append: "
    "K = [cache_K; k], V = [cache_V; v]; o = softmax(K q / √d_k) V. Return (o, K, V) and "
    "leave the inputs unchanged.",
    nan_hint="your result holds NaN or inf: exp overflowed (subtract the largest score "
    "first), or the softmax ran over an empty row (at position 0 the cache is empty: append "
    "the new key and value before attending).",
)


def check_attend_with_cache(
    attend_with_cache: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `attend_with_cache(x, cache_K, cache_V, W_Q, W_K, W_V, position)`,
    which must return (o, new_cache_K, new_cache_V): one head's output for the new token at
    `position` (RoPE on q and k) and the cache with its key and value appended."""
    return ATTEND_WITH_CACHE.check(attend_with_cache, timeout=timeout, harder=harder)
