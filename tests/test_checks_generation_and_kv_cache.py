"""Catalogues for the checkers of exercise 11: next_token_probabilities and attend_with_cache.
Every known mistake, written as a learner would write it, is rejected with its own hint;
unusual valid solutions are accepted; a learner's exception, NaN, wrong shape or modified
input comes back as a failed result, never an error; the references agree with course_lib's
sampler and cached attention."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib import gpt, transformer
from course_lib.checks import generation_and_kv_cache as gk
from course_lib.checks.generation_and_kv_cache import (
    check_attend_with_cache,
    check_next_token_probabilities,
)

CHECKERS = (gk.NEXT_TOKEN_PROBABILITIES, gk.ATTEND_WITH_CACHE)


@pytest.mark.parametrize("function", [checker.function for checker in CHECKERS])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


# -- next_token_probabilities ------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def p_argsort(logits, temperature, top_k=None):
    z = logits / temperature
    if top_k is not None:
        keep = np.argsort(z, axis=-1)[..., -top_k:]
        blocked = np.full(z.shape, -np.inf)
        np.put_along_axis(blocked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)
        z = blocked
    return _softmax(z)


def p_threshold(logits, temperature, top_k=None):
    """nanoGPT's way: block every logit below the k-th largest."""
    z = logits / temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[..., -top_k, None]
        z = np.where(z < kth, -np.inf, z)
    return _softmax(z)


def p_power_renormalised(logits, temperature, top_k=None):
    """softmax(logits) ** (1/T), renormalised: the same distribution as softmax(logits / T)."""
    z = logits.astype(float)
    if top_k is not None:
        z = np.where(z >= np.sort(z, axis=-1)[..., -top_k, None], z, -np.inf)
    p = _softmax(z) ** (1 / temperature)
    return p / p.sum(axis=-1, keepdims=True)


def p_topk_after_softmax_renormalised(logits, temperature, top_k=None):
    p = _softmax(logits / temperature)
    if top_k is not None:
        smallest = np.argsort(p, axis=-1)[..., :-top_k]
        p = p.copy()
        np.put_along_axis(p, smallest, 0.0, axis=-1)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def p_loops_float32(logits, temperature, top_k=None):
    """One row at a time with Python's math, the result in float32."""
    rows = np.atleast_2d(logits)
    out = np.zeros(rows.shape, dtype=np.float32)
    for r, row in enumerate(rows):
        ids = sorted(range(len(row)), key=lambda i: -row[i])[: top_k or len(row)]
        m = max(row[i] / temperature for i in ids)
        e = {i: math.exp(row[i] / temperature - m) for i in ids}
        total = sum(e.values())
        for i in ids:
            out[r, i] = e[i] / total
    return out.reshape(logits.shape)


@pytest.mark.parametrize(
    "fn", [p_argsort, p_threshold, p_power_renormalised, p_topk_after_softmax_renormalised,
           p_loops_float32],
    ids=name_of)
def test_next_token_probabilities_accepts(fn):
    result = check_next_token_probabilities(fn, harder=True)
    assert result.passed, result.feedback


def _p_learner(wrong):
    def fn(logits, temperature, top_k=None):
        z = logits * temperature if wrong == "multiply" else logits / temperature
        if wrong in ("softmax then divide", "ignore T"):
            z = logits
        if top_k is not None and wrong != "ignore k":
            order = np.argsort(logits, axis=-1)  # increasing
            k = {"k minus 1": top_k - 1, "k plus 1": top_k + 1}.get(wrong, top_k)
            keep = order[..., :k] if wrong == "smallest" else order[..., ::-1][..., :k]
            mask = np.zeros(z.shape, bool)
            np.put_along_axis(mask, keep, True, axis=-1)
            if wrong != "zero after":
                z = np.where(mask, z, -np.inf)
        if wrong == "unstable":
            e = np.exp(z)
            p = e / e.sum(axis=-1, keepdims=True)
        else:
            p = _softmax(z)
        if wrong == "softmax then divide":
            p = p / temperature
        if wrong == "zero after" and top_k is not None:
            p = np.where(mask, p, 0.0)
        return p

    fn.__name__ = "p_" + re.sub(r"\W+", "_", wrong)
    return fn


def _kept(logits, top_k):
    if top_k is None:
        return logits
    return np.where(logits >= np.sort(logits, axis=-1)[..., -top_k, None], logits, -np.inf)


def p_power_not_renormalised(logits, temperature, top_k=None):
    return _softmax(_kept(logits, top_k)) ** (1 / temperature)


def p_softmax_of_probabilities(logits, temperature, top_k=None):
    return _softmax(_softmax(_kept(logits, top_k)) / temperature)


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_p_learner("softmax then divide"), "softmax-before-temperature",
         "what=softmax(z) / T".removeprefix("what=")),
        (p_power_not_renormalised, "softmax-before-temperature", "not renormalised"),
        (p_softmax_of_probabilities, "softmax-before-temperature", "a softmax of probabilities"),
        (_p_learner("multiply"), "temperature-multiplied", "you multiplied the logits"),
        (_p_learner("ignore T"), "temperature-ignored", "ignore the temperature"),
        (_p_learner("smallest"), "top-k-smallest", "keeps the k smallest logits"),
        (_p_learner("zero after"), "top-k-not-renormalised", "without renormalising"),
        (_p_learner("k minus 1"), "top-k-off-by-one", "keeps k − 1 logits"),
        (_p_learner("k plus 1"), "top-k-off-by-one", "keeps k + 1 logits"),
        (_p_learner("ignore k"), "top-k-ignored", "ignore top_k"),
        (_p_learner("unstable"), "no-max-subtraction", "no max subtraction"),
    ],
    ids=name_of,
)
def test_next_token_probabilities_rejects(fn, key, hint):
    assert_rejected(check_next_token_probabilities, fn, key, hint)


def test_a_function_without_top_k_is_told_to_add_it():
    def no_top_k(logits, temperature):
        return _softmax(logits / temperature)

    assert_rejected(check_next_token_probabilities, no_top_k, "top_k-parameter",
                    "needs the parameter `top_k=None`")


def test_no_case_has_a_tie_at_the_kth_largest_logit():
    """The tie rule (lower ids first) is a convention; the cases never depend on it, so
    nanoGPT's threshold (which keeps every tie) is right on all of them."""
    for case in gk.NEXT_TOKEN_PROBABILITIES.cases(harder=True):
        for row in np.atleast_2d(case.inputs["logits"]):
            assert len(set(row.tolist())) == row.size, case.name


@pytest.mark.parametrize("case_index", range(8))
def test_the_probabilities_are_those_sample_next_draws_from(case_index):
    """gpt.sample_next draws u = rng.random() and takes the first token whose cumulative
    probability exceeds u: with the reference's p, the same token for every seed."""
    case = gk.NEXT_TOKEN_PROBABILITIES.cases()[case_index]
    logits, temperature = case.inputs["logits"], case.inputs["temperature"]
    top_k = case.inputs.get("top_k")
    p = gk.probabilities_reference(logits, temperature, top_k)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)
    for seed in range(30):
        token = gpt.sample_next(logits, temperature, top_k, np.random.default_rng(seed))
        u = np.random.default_rng(seed).random()
        assert token == min(int(np.searchsorted(np.cumsum(p.astype(float)), u, side="right")),
                            p.size - 1)


# -- attend_with_cache -------------------------------------------------------------------------


def _rope_rows(M, positions):
    """RoPE written out by the learner: pairs (2i, 2i + 1) turned by p θ_i."""
    d = M.shape[-1]
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    angle = np.asarray(positions, dtype=float)[:, None] * theta
    cos, sin = np.cos(angle), np.sin(angle)
    out = np.empty(M.shape, dtype=np.result_type(M, float))
    out[..., 0::2] = M[..., 0::2] * cos - M[..., 1::2] * sin
    out[..., 1::2] = M[..., 0::2] * sin + M[..., 1::2] * cos
    return out


def awc_vstack(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    q = _rope_rows((x @ W_Q)[None], [position])[0]
    k = _rope_rows((x @ W_K)[None], [position])[0]
    K = np.vstack([cache_K, k])
    V = np.vstack([cache_V, x @ W_V])
    return _softmax(K @ q / np.sqrt(len(q))) @ V, K, V


def awc_complex(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    """RoPE as a complex multiplication: each pair a complex number times e^(i p θ)."""
    def rotate(v):
        d = v.shape[-1]
        c = v[0::2] + 1j * v[1::2]
        c = c * np.exp(1j * position * 10000.0 ** (-np.arange(0, d, 2) / d))
        out = np.empty(d)
        out[0::2], out[1::2] = c.real, c.imag
        return out

    q, k = rotate(x @ W_Q), rotate(x @ W_K)
    K = np.concatenate([cache_K, k[None, :]])
    V = np.concatenate([cache_V, (x @ W_V)[None, :]])
    return _softmax(K @ q / math.sqrt(W_K.shape[1])) @ V, K, V


def awc_course_lib_float32(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    """course_lib's rope, one row at a time; everything in float32 (the inputs' precision)."""
    at = np.array([position])
    q = transformer.rope((x @ W_Q)[None, :], at)[0].astype(np.float32)
    k = transformer.rope((x @ W_K)[None, :], at).astype(np.float32)
    K = np.concatenate([cache_K.astype(np.float32), k])
    V = np.concatenate([cache_V, (x @ W_V)[None, :]]).astype(np.float32)
    scores = K @ q / np.float32(math.sqrt(q.size))
    weights = np.exp(scores - scores.max())
    return (weights / weights.sum()) @ V, K, V


def awc_loops(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    """A loop over the keys, the softmax with Python's math; list caches turned to arrays."""
    q = _rope_rows((x @ W_Q)[None], [position])[0]
    k = _rope_rows((x @ W_K)[None], [position])[0]
    keys = [*cache_K, k]
    values = [*cache_V, x @ W_V]
    scores = [float(q @ key) / math.sqrt(len(q)) for key in keys]
    m = max(scores)
    e = [math.exp(s - m) for s in scores]
    o = sum(w / sum(e) * v for w, v in zip(e, values, strict=True))
    return np.asarray(o), np.array(keys).reshape(-1, len(k)), np.array(values).reshape(
        len(values), -1)


@pytest.mark.parametrize("fn", [awc_vstack, awc_complex, awc_course_lib_float32, awc_loops],
                         ids=name_of)
def test_attend_with_cache_accepts(fn):
    result = check_attend_with_cache(fn, harder=True)
    assert result.passed, result.feedback


def _awc_learner(wrong):
    def fn(x, cache_K, cache_V, W_Q, W_K, W_V, position):
        at = {"rope without positions": 0, "length after append": position + 1}.get(
            wrong, position)
        q, k, v = x @ W_Q, x @ W_K, x @ W_V
        if wrong == "rope without positions":
            q, k = transformer.rope(q[None])[0], transformer.rope(k[None])[0]
        else:
            q = q if wrong == "q not rotated" else _rope_rows(q[None], [at])[0]
            k = k if wrong == "k not rotated" else _rope_rows(k[None], [at])[0]
        if wrong == "rotate v":
            v = _rope_rows(v[None], [at])[0]
        K = np.vstack([cache_K, k])
        V = np.vstack([cache_V, v])
        if wrong == "rope whole cache":
            K = _rope_rows(np.vstack([cache_K, x @ W_K]), np.arange(position + 1))
        K_att, V_att = (cache_K, cache_V) if wrong == "old keys only" else (K, V)
        if wrong == "value not appended":
            V_att = cache_V
        scale = {"no scale": 1.0, "sqrt d_model": np.sqrt(x.shape[-1])}.get(
            wrong, np.sqrt(q.shape[-1]))
        scores = K_att @ q / scale
        if wrong == "unstable":
            e = np.exp(scores)
            o = e / e.sum() @ V_att
        else:
            o = _softmax(scores) @ V_att
        if wrong == "cache not returned":
            return o, cache_K, cache_V
        return o, K, V

    fn.__name__ = "awc_" + re.sub(r"\W+", "_", wrong)
    return fn


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_awc_learner("old keys only"), "new-token-not-attended",
         "attends to the cached tokens only"),
        (_awc_learner("value not appended"), "value-not-appended",
         "the new token's value is not appended"),
        (_awc_learner("cache not returned"), "cache-not-updated",
         "the cache you return does not hold the new token"),
        (_awc_learner("rope without positions"), "position-zero",
         "rotated at position 0"),
        (_awc_learner("length after append"), "position-off-by-one",
         "rotated at position position + 1"),
        (_awc_learner("rope whole cache"), "cached-keys-rotated-again",
         "the cached keys are rotated a second time"),
        (_awc_learner("rotate v"), "rope-on-values", "you rotated the value too"),
        (_awc_learner("q not rotated"), "query-not-rotated", "your query is not rotated"),
        (_awc_learner("k not rotated"), "key-not-rotated", "your new key is not rotated"),
        (_awc_learner("no scale"), "no-scaling", "no scaling"),
        (_awc_learner("sqrt d_model"), "scale-d_model", "you scaled by √d_model"),
        (_awc_learner("unstable"), "no-max-subtraction", "no max subtraction"),
    ],
    ids=name_of,
)
def test_attend_with_cache_rejects(fn, key, hint):
    assert_rejected(check_attend_with_cache, fn, key, hint)


def awc_raises(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    return cache_K @ x  # shapes that do not line up


def awc_nan(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    o, K, V = awc_vstack(x, cache_K, cache_V, W_Q, W_K, W_V, position)
    return o * np.nan, K, V


def awc_row_not_vector(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    o, K, V = awc_vstack(x, cache_K, cache_V, W_Q, W_K, W_V, position)
    return o[None, :], K, V


def awc_scales_W_Q_in_place(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    W_Q /= np.sqrt(W_Q.shape[1])  # the scaling folded into W_Q, in place
    q = _rope_rows((x @ W_Q)[None], [position])[0]
    k = _rope_rows((x @ W_K)[None], [position])[0]
    K, V = np.vstack([cache_K, k]), np.vstack([cache_V, x @ W_V])
    return _softmax(K @ q) @ V, K, V


def awc_returns_two(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    return awc_vstack(x, cache_K, cache_V, W_Q, W_K, W_V, position)[:2]


def awc_value_not_appended_einsum(x, cache_K, cache_V, W_Q, W_K, W_V, position):
    """The new value left out, the weighted sum with einsum: another error message."""
    q = _rope_rows((x @ W_Q)[None], [position])[0]
    K = np.vstack([cache_K, _rope_rows((x @ W_K)[None], [position])])
    weights = _softmax(K @ q / np.sqrt(q.size))
    return np.einsum("j,jd->d", weights, cache_V), K, np.vstack([cache_V, x @ W_V])


def test_a_value_left_out_of_the_attention_is_named_by_its_error():
    assert_rejected(check_attend_with_cache, awc_value_not_appended_einsum,
                    "value-not-appended", "the new token's value is not appended")


@pytest.mark.parametrize(
    ("fn", "key", "text"),
    [
        (awc_raises, "exception", "Your function raised"),
        (awc_nan, "nan", "NaN or inf"),
        (awc_row_not_vector, "shape", "has shape (1,"),
        (awc_scales_W_Q_in_place, "mutation", "changed its input `W_Q` in place"),
        (awc_returns_two, "type", "returned 2 values"),
    ],
    ids=name_of,
)
def test_a_learners_fault_is_a_failed_result_not_an_error(fn, key, text):
    result = check_attend_with_cache(fn)
    assert not result
    assert result.diagnosis == key, result.feedback
    assert text in result.feedback, result.feedback


def test_the_reference_is_one_head_of_the_course_cached_attention():
    """With W_O = I and one head, transformer's cached attention (past = the cache) gives
    the same o and the same cache, on every case where d_model = d_k = d_v."""
    compared = 0
    for case in gk.ATTEND_WITH_CACHE.cases():
        x, cache_K, cache_V, W_Q, W_K, W_V, position = (value for _, value in case.args)
        d_model = x.shape[-1]
        if not W_Q.shape[1] == W_V.shape[1] == d_model or position == 0:
            continue
        o, K, V = case.call(gk.attend_with_cache_reference)
        O, cache = transformer.causal_self_attention_with_cache(
            x[None, :], W_Q, W_K, W_V, np.eye(d_model, dtype=x.dtype), 1, rope=True,
            past=(cache_K[None], cache_V[None]))
        np.testing.assert_allclose(O[0], o, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cache.K[0], K, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cache.V[0], V, rtol=1e-5, atol=1e-6)
        compared += 1
    assert compared >= 1


def test_decoding_token_by_token_equals_causal_attention_on_the_whole_sequence():
    """The cache's promise: o for each token, one at a time, is that token's row of causal
    self-attention (RoPE, one head) computed on the whole sequence at once."""
    rng = np.random.default_rng(4)
    n, d = 6, 4
    X = rng.standard_normal((n, d))
    W_Q, W_K, W_V = (rng.standard_normal((d, d)) for _ in range(3))
    O, _ = transformer.causal_self_attention(X, W_Q, W_K, W_V, np.eye(d), 1, rope=True)
    K, V = np.zeros((0, d)), np.zeros((0, d))
    for t in range(n):
        o, K, V = gk.attend_with_cache_reference(X[t], K, V, W_Q, W_K, W_V, t)
        np.testing.assert_allclose(o, O[t], rtol=1e-10, atol=1e-12)


# -- the hints themselves -------------------------------------------------------------------------

HINTS = sorted({*(m.hint for checker in CHECKERS for m in checker.mistakes),
                *(checker.hint for checker in CHECKERS),
                *(checker.nan_hint for checker in CHECKERS)})


def _namespace():
    rng = np.random.default_rng(0)
    return {"np": np, "rope": transformer.rope, "logits": rng.standard_normal(6), "k": 2,
            "z": rng.standard_normal(6), "q": rng.standard_normal(4),
            "k_new": rng.standard_normal(4), "cache_K": rng.standard_normal((3, 4)),
            "cache_V": rng.standard_normal((3, 2)), "v": rng.standard_normal(2),
            "position": 3, "scores": rng.standard_normal(4)}


@pytest.mark.parametrize("hint", HINTS, ids=lambda hint: hint[:40])
def test_the_code_a_hint_suggests_runs(hint):
    """Code in a hint is in backticks and runs."""
    outside = re.sub(r"`[^`]+`", "", hint)
    assert "np." not in outside, "code outside backticks is not tested: " + hint
    for snippet in re.findall(r"`([^`]+)`", hint):
        namespace = _namespace()
        if "k[None" in snippet:
            namespace["k"] = namespace["k_new"]
        exec(snippet, namespace)  # noqa: S102 - our own hint texts
