"""Catalogues for the checkers of exercise 10: make_inputs_and_targets and causal_lm_loss.
Every known mistake, written as a learner would write it, is rejected with its own hint;
unusual valid solutions are accepted; a learner's exception, NaN, wrong shape or modified
input comes back as a failed result, never an error."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from catalogue import assert_each_mistake_recognised, assert_rejected, name_of

from course_lib import corpus, gpt
from course_lib.checks import tiny_gpt as tg
from course_lib.checks.tiny_gpt import check_causal_lm_loss, check_make_inputs_and_targets

CHECKERS = (tg.MAKE_INPUTS_AND_TARGETS, tg.CAUSAL_LM_LOSS)


@pytest.mark.parametrize("function", [checker.function for checker in CHECKERS])
def test_every_known_mistake_is_recognised_as_itself(function):
    assert_each_mistake_recognised(function)


# -- make_inputs_and_targets -------------------------------------------------------------------


def it_fancy_index(tokens, starts, n_ctx):
    window = starts[:, None] + np.arange(n_ctx)
    return tokens[window], tokens[window + 1]


def it_chunks(tokens, starts, n_ctx):
    """As corpus.sample_batch: a chunk of n_ctx + 1 tokens, split in two; lists stacked."""
    chunks = np.stack([tokens[s:s + n_ctx + 1] for s in starts])
    return chunks[:, :-1], chunks[:, 1:]


def it_sliding_window(tokens, starts, n_ctx):
    windows = np.lib.stride_tricks.sliding_window_view(tokens, n_ctx + 1)[starts]
    return windows[:, :n_ctx].copy(), windows[:, 1:].copy()


def it_lists(tokens, starts, n_ctx):
    inputs = [list(tokens[s:s + n_ctx]) for s in starts]
    targets = [list(tokens[s + 1:s + 1 + n_ctx]) for s in starts]
    return np.array(inputs), np.array(targets)


@pytest.mark.parametrize("fn", [it_fancy_index, it_chunks, it_sliding_window, it_lists],
                         ids=name_of)
def test_make_inputs_and_targets_accepts(fn):
    result = check_make_inputs_and_targets(fn)
    assert result.passed, result.feedback


def it_not_shifted(tokens, starts, n_ctx):
    inputs = np.stack([tokens[s:s + n_ctx] for s in starts])
    return inputs, inputs.copy()


def it_swapped(tokens, starts, n_ctx):
    chunks = np.stack([tokens[s:s + n_ctx + 1] for s in starts])
    return chunks[:, 1:], chunks[:, :-1]


def it_short(tokens, starts, n_ctx):
    chunks = np.stack([tokens[s:s + n_ctx] for s in starts])
    return chunks[:, :-1], chunks[:, 1:]


def it_two_ahead(tokens, starts, n_ctx):
    window = starts[:, None] + np.arange(n_ctx)
    return tokens[window], tokens[window + 2]


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (it_not_shifted, "not-shifted", "your targets equal your inputs"),
        (it_swapped, "swapped", "your inputs and targets are swapped"),
        (it_short, "window-too-short", "your windows are one token short"),
        (it_two_ahead, "shifted-twice", "two tokens ahead"),
    ],
    ids=name_of,
)
def test_make_inputs_and_targets_rejects(fn, key, hint):
    assert_rejected(check_make_inputs_and_targets, fn, key, hint)


def test_the_not_shifted_hint_promises_no_loss_it_cannot_show():
    """Exercise 10 prints a loss of about 5 for a bigram model scored on unshifted targets:
    the hint speaks of a model trained on them (which learns to copy its input), not of
    "a loss near 0" for any model."""
    hint = check_make_inputs_and_targets(it_not_shifted).hint
    assert "a loss near 0" not in hint
    assert "trained on these would learn to copy its input" in hint, hint


def it_filled_zeros(tokens, starts, n_ctx):
    """Rows filled into np.zeros arrays: right values, but floats."""
    inputs, targets = np.zeros((len(starts), n_ctx)), np.zeros((len(starts), n_ctx))
    for b, s in enumerate(starts):
        inputs[b], targets[b] = tokens[s:s + n_ctx], tokens[s + 1:s + n_ctx + 1]
    return inputs, targets


def it_float16(tokens, starts, n_ctx):
    return tuple(a.astype(np.float16) for a in it_fancy_index(tokens, starts, n_ctx))


def it_floats_not_shifted(tokens, starts, n_ctx):
    inputs = np.zeros((len(starts), n_ctx))
    for b, s in enumerate(starts):
        inputs[b] = tokens[s:s + n_ctx]
    return inputs, inputs


@pytest.mark.parametrize(
    ("fn", "key"),
    [(it_filled_zeros, "not-integer"), (it_float16, "low-precision"),
     (it_floats_not_shifted, "not-integer")],
    ids=name_of)
def test_token_ids_that_are_not_integers_are_named_first(fn, key):
    assert_rejected(check_make_inputs_and_targets, fn, key, "token ids are integers")
    assert "dtype=tokens.dtype)`" in check_make_inputs_and_targets(fn).hint


def test_the_windows_are_what_sample_batch_draws():
    """corpus.sample_batch's targets are its inputs moved one token right, as here."""
    tokens = np.arange(100, 160)
    inputs, targets = corpus.sample_batch(tokens, 4, 6, np.random.default_rng(0))
    starts = inputs[:, 0] - 100
    got = tg.inputs_and_targets_reference(tokens, starts, 6)
    np.testing.assert_array_equal(got[0], inputs)
    np.testing.assert_array_equal(got[1], targets)


# -- causal_lm_loss ----------------------------------------------------------------------------


def loss_log_sum_exp(logits, targets):
    z = logits.reshape(-1, logits.shape[-1])
    y = targets.reshape(-1)
    N = y.size
    shifted = z - z.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    p = np.exp(log_p)
    p[np.arange(N), y] -= 1
    return -log_p[np.arange(N), y].mean(), (p / N).reshape(logits.shape)


def loss_onehot_batch_axes(logits, targets):
    """No reshape: one-hot targets over the batch axes, the loss a Python float."""
    onehot = np.eye(logits.shape[-1])[targets]
    m = logits.max(axis=-1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(logits - m), axis=-1, keepdims=True))
    log_p = logits - lse
    N = targets.size
    return float(-(onehot * log_p).sum() / N), (np.exp(log_p) - onehot) / N


def loss_loops(logits, targets):
    """One position at a time with Python's math, the loss a 0-d array."""
    z = logits.reshape(-1, logits.shape[-1])
    y = targets.reshape(-1)
    N = len(y)
    total, grad = 0.0, np.zeros(z.shape)
    for i in range(N):
        m = max(z[i])
        s = sum(math.exp(v - m) for v in z[i])
        total += -(z[i][y[i]] - m - math.log(s))
        for j in range(z.shape[1]):
            grad[i, j] = (math.exp(z[i][j] - m) / s - (j == y[i])) / N
    return np.array(total / N), grad.reshape(logits.shape)


def loss_float32(logits, targets):
    """Everything kept in float32 (logsumexp with np.logaddexp.reduce)."""
    z = logits.astype(np.float32).reshape(-1, logits.shape[-1])
    y = targets.reshape(-1)
    log_p = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
    p = np.exp(log_p)
    grad = p.copy()
    grad[np.arange(y.size), y] -= 1
    return np.float32(-np.mean(log_p[np.arange(y.size), y])), (grad / np.float32(y.size)
                                                               ).reshape(logits.shape)


def loss_course_lib(logits, targets):
    return gpt.causal_lm_loss(logits, targets)


@pytest.mark.parametrize(
    "fn", [loss_log_sum_exp, loss_onehot_batch_axes, loss_loops, loss_float32, loss_course_lib],
    ids=name_of)
def test_causal_lm_loss_accepts(fn):
    result = check_causal_lm_loss(fn, harder=True)
    assert result.passed, result.feedback


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _learner(wrong):
    def fn(logits, targets):
        z = logits.reshape(-1, logits.shape[-1])
        y = targets.reshape(-1)
        N = y.size
        if wrong == "no max":
            e = np.exp(z)
            p = e / e.sum(axis=-1, keepdims=True)
        else:
            p = _softmax(z)
        log_p = np.log(p) if wrong in ("log of softmax", "no max") else (
            z - z.max(-1, keepdims=True)
            - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)))
        picked = log_p[:, y] if wrong == "columns" else log_p[np.arange(N), y]
        loss = -picked.sum() if wrong == "sum" else -picked.mean()
        if wrong in ("loss and gradient by batch", "loss and gradient by T"):
            loss = -picked.sum() / (logits.shape[0] if "batch" in wrong else logits.shape[-2])
        if wrong == "positive":
            loss = picked.mean()
        if wrong == "vocab mean":
            loss = -np.mean(np.eye(z.shape[-1])[y] * log_p)
        grad = p.copy()
        if wrong != "no onehot":
            grad[np.arange(N), y] -= 1
        divisor = {"undivided": 1, "sum": 1, "by batch": logits.shape[0],
                   "loss and gradient by batch": logits.shape[0],
                   "by T": logits.shape[-2], "loss and gradient by T": logits.shape[-2]}.get(
                       wrong, N)
        grad = grad / divisor
        if wrong == "sign":
            grad = -grad
        return loss, grad.reshape(logits.shape)

    fn.__name__ = "loss_" + re.sub(r"\W+", "_", wrong)
    return fn


@pytest.mark.parametrize(
    ("fn", "key", "hint"),
    [
        (_learner("no max"), "no-max-subtraction", "your softmax does not subtract"),
        (_learner("log of softmax"), "log-of-softmax", "confidently wrong"),
        (_learner("undivided"), "gradient-not-divided", "not divided by N"),
        (_learner("by batch"), "divided-by-batch", "divided by the number of sequences B"),
        (_learner("by T"), "divided-by-T", "divided by the sequence length T only"),
        (_learner("loss and gradient by batch"), "divided-by-batch",
         "your loss and your gradient are divided by the number of sequences B"),
        (_learner("loss and gradient by T"), "divided-by-T",
         "your loss and your gradient are divided by the sequence length T"),
        (_learner("sum"), "sum-not-mean", "your loss is a sum over the positions"),
        (_learner("no onehot"), "onehot-missing", "your gradient misses the one-hot term"),
        (_learner("sign"), "gradient-sign", "the wrong sign"),
        (_learner("columns"), "columns-picked", "you picked log p[:, y]"),
        (_learner("positive"), "loss-sign", "your loss is negative"),
        (_learner("vocab mean"), "mean-over-vocab", "divided by the vocabulary size"),
    ],
    ids=name_of,
)
def test_causal_lm_loss_rejects(fn, key, hint):
    assert_rejected(check_causal_lm_loss, fn, key, hint)


@pytest.mark.parametrize("wrong", ["loss and gradient by batch", "loss and gradient by T"])
def test_a_loss_and_gradient_with_one_mistake_get_one_hint(wrong):
    """Loss and gradient divided by the same wrong count are one mistake: the hint names it
    for both, not for the gradient with "`loss` also has a mistake of its own"."""
    result = check_causal_lm_loss(_learner(wrong))
    assert "of its own" not in result.feedback, result.feedback
    assert "partly" not in result.diagnosis, result.feedback


def test_the_no_max_hint_explains_the_case_it_shows():
    """Without the max, the case shown is the confidently wrong one (a logit of −800, loss
    inf: log of an underflowed 0); the hint explains that, and the NaN of large logits."""
    result = check_causal_lm_loss(_learner("no max"))
    assert "confidently wrong" in result.feedback, result.feedback
    assert "log 0 = −inf" in result.hint and "NaN" in result.hint, result.hint


def loss_raises(logits, targets):
    return loss_log_sum_exp(logits, targets.T)[0] @ logits  # a shape error on every case


def loss_nan(logits, targets):
    loss, grad = loss_log_sum_exp(logits, targets)
    return loss, grad * np.nan


def loss_wrong_shape(logits, targets):
    loss, grad = loss_log_sum_exp(logits, targets)
    return loss, grad.reshape(-1, logits.shape[-1])


def loss_mutates(logits, targets):
    logits -= logits.max(axis=-1, keepdims=True)  # in place: the caller's logits change
    return loss_log_sum_exp(logits, targets)


def loss_returns_list_of_floats(logits, targets):
    loss, grad = loss_log_sum_exp(logits, targets)
    return loss, grad.tolist()


@pytest.mark.parametrize(
    ("fn", "key", "text"),
    [
        (loss_raises, "exception", "Your function raised"),
        (loss_nan, "nan", "NaN or inf"),
        (loss_wrong_shape, "shape", "has shape"),
        (loss_mutates, "mutation", "changed its input `logits` in place"),
        (loss_returns_list_of_floats, "type", "not a NumPy array"),
    ],
    ids=name_of,
)
def test_a_learners_fault_is_a_failed_result_not_an_error(fn, key, text):
    result = check_causal_lm_loss(fn)
    assert not result
    assert result.diagnosis == key, result.feedback
    assert text in result.feedback, result.feedback


def test_a_loss_of_one_number_in_an_array_is_accepted():
    """np.array([L]) reads as L (float(loss) works); a numpy scalar sent back from the
    grader's sandbox arrives in that shape."""
    def one_element(logits, targets):
        loss, grad = loss_log_sum_exp(logits, targets)
        return np.array([loss]), grad

    assert check_causal_lm_loss(one_element).passed


def test_a_loss_that_is_not_a_number_is_named():
    result = check_causal_lm_loss(lambda logits, targets: ("low", loss_log_sum_exp(
        logits, targets)[1]))
    assert result.diagnosis == "type", result.feedback
    assert "`loss` is a str" in result.feedback, result.feedback


def test_the_loss_is_the_course_loss():
    for case in tg.CAUSAL_LM_LOSS.cases():
        loss, dlogits = case.call(tg.loss_reference)
        want_loss, want_grad = gpt.causal_lm_loss(*(value for _, value in case.args))
        assert loss.shape == () and float(loss) == want_loss
        np.testing.assert_array_equal(dlogits, want_grad)


def test_the_gradient_is_the_slope_of_the_loss():
    """Central differences on the reference, on a batch case (an independent check of the
    1/N): a checker's reference must itself be right."""
    case = tg.CAUSAL_LM_LOSS.cases()[3]
    logits, targets = (value for _, value in case.args)
    _, grad = tg.loss_reference(logits, targets)
    eps = 1e-6
    for index in np.ndindex(logits.shape):
        nudge = np.zeros_like(logits)
        nudge[index] = eps
        slope = (float(tg.loss_reference(logits + nudge, targets)[0])
                 - float(tg.loss_reference(logits - nudge, targets)[0])) / (2 * eps)
        assert abs(slope - grad[index]) < 1e-8


# -- the hints themselves -------------------------------------------------------------------------

HINTS = sorted({*(m.hint for checker in CHECKERS for m in checker.mistakes),
                *(checker.hint for checker in CHECKERS), tg.CAUSAL_LM_LOSS.nan_hint,
                tg._NOT_INTEGER.format(dtype="float64")})


def _namespace():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, (2, 3))
    N = targets.size
    return {"np": np, "logits": logits, "targets": targets, "N": N,
            "y": targets.reshape(-1), "grad": rng.random((N, 5)),
            "log_p": rng.standard_normal((N, 5)),
            "shifted": logits - logits.max(axis=-1, keepdims=True),
            "tokens": np.arange(20), "starts": np.array([0, 3]), "s": 3, "n_ctx": 4,
            "wte": rng.standard_normal((20, 3)), "inputs": np.array([[1, 2], [3, 4]])}


MISTAKE_HINTS = sorted({m.hint for checker in CHECKERS for m in checker.mistakes})


@pytest.mark.parametrize("hint", MISTAKE_HINTS, ids=lambda hint: hint[:40])
def test_a_mistakes_hint_says_what_the_learner_did_first(hint):
    """A known mistake's hint opens with what the learner did ("your targets equal your
    inputs"), then gives the rule; it does not open with the rule itself."""
    opening = re.split(r"[:;]", hint, maxsplit=1)[0]
    assert re.search(r"\b[Yy]our?\b", opening), hint


@pytest.mark.parametrize("hint", HINTS, ids=lambda hint: hint[:40])
def test_the_code_a_hint_suggests_runs(hint):
    """Code in a hint is in backticks and runs on a batch of logits."""
    outside = re.sub(r"`[^`]+`", "", hint)
    assert "np." not in outside, "code outside backticks is not tested: " + hint
    for snippet in re.findall(r"`([^`]+)`", hint):
        exec(snippet, _namespace())  # noqa: S102 - our own hint texts


def test_the_log_sum_exp_hint_gives_a_finite_log_probability():
    namespace = _namespace()
    namespace["logits"] = np.array([[2.0, 1.0, -800.0]])
    for snippet in re.findall(r"`([^`]+)`", tg._LOG_OF_SOFTMAX):
        exec(snippet, namespace)  # noqa: S102 - our own hint text
    assert np.isfinite(namespace["log_p"]).all()
    assert namespace["log_p"][0, 2] < -800
