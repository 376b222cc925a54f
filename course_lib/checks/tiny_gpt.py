"""Checkers of exercise 10, a tiny GPT's training objective:
`make_inputs_and_targets(tokens, starts, n_ctx) -> (inputs, targets)` and
`causal_lm_loss(logits, targets) -> (loss, dlogits)`.

Why two functions, not one `language_model_loss(logits, tokens)` that shifts inside: the two
classic families of mistakes then fail separately, each with readable numbers. The shift
(targets = the inputs moved one token left) is checked on small integer arrays, where "your
targets equal your inputs" is visible at a glance; the loss is checked with the signature of
`course_lib.gpt.causal_lm_loss`, which lesson 10's training loop calls, so a learner's loss
drops into it. In one function, a shift mistake and a loss mistake would blur into one wrong
number.

The loss is a number: a learner may return it as a Python float, a numpy scalar or a 0-d
array (`_LossChecker` accepts each as the 0-d array the judge compares).

Lesson: notebooks/10_tiny_gpt.ipynb. Exercise: exercises/10_tiny_gpt.ipynb.
Tests: tests/test_checks_tiny_gpt.py.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from course_lib import gpt
from course_lib.checks.calling import DEFAULT_TIMEOUT, Outcome
from course_lib.checks.cases import Case, Mistake
from course_lib.checks.core import Checker
from course_lib.checks.drawing import random_normal
from course_lib.checks.judging import Judged, Verdict
from course_lib.checks.result import CheckResult

__all__ = [
    "MAKE_INPUTS_AND_TARGETS",
    "CAUSAL_LM_LOSS",
    "check_make_inputs_and_targets",
    "check_causal_lm_loss",
    "inputs_and_targets_reference",
    "loss_reference",
]


# -- make_inputs_and_targets(tokens, starts, n_ctx) -> (inputs, targets) -------------------------


def inputs_and_targets_reference(tokens: np.ndarray, starts: np.ndarray,
                                 n_ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """The training windows of a text: inputs[b] = tokens[s_b : s_b + n_ctx] and
    targets[b] = tokens[s_b + 1 : s_b + n_ctx + 1], the token that follows each input token.

    tokens int (L,), starts int (B,) with s_b + n_ctx < L, n_ctx an int -> two int arrays
    (B, n_ctx) of tokens' dtype (what `course_lib.corpus.sample_batch` draws at random starts).
    """
    window = np.asarray(starts)[:, None] + np.arange(n_ctx)  # (B, n_ctx) positions
    return tokens[window], tokens[window + 1]


def _tokens(seed: int, length: int, vocab: int) -> np.ndarray:
    """Token ids 0 .. vocab − 1 (deterministic; fresh for a grader's seed)."""
    draw = np.abs(random_normal(seed, length, scale=10.0)) * 10
    return (draw.astype(np.int64) % vocab).astype(np.int64)


def _it_case(name: str, tokens: Any, starts: Any, n_ctx: int) -> Case:
    return Case(name, (("tokens", np.asarray(tokens, dtype=np.int64)),
                       ("starts", np.asarray(starts, dtype=np.int64)), ("n_ctx", n_ctx)))


def _it_cases() -> list[Case]:
    return [
        _it_case("hand-worked: a text of 7 tokens, 2 windows of n_ctx = 3",
                 [5, 3, 8, 1, 9, 2, 7], [0, 2], 3),
        _it_case("one window of n_ctx = 1", [4, 0, 6, 2], [1], 1),
        _it_case("random text of 20 tokens, 3 windows of n_ctx = 5",
                 _tokens(1500, 20, 10), [4, 0, 11], 5),
        _it_case("the last window that fits (start = L − n_ctx − 1)",
                 _tokens(1510, 12, 7), [7, 3], 4),
        _it_case("overlapping windows, n_ctx = 6", _tokens(1520, 16, 9), [2, 3, 5, 9], 6),
    ]


def _it(tokens: np.ndarray, starts: np.ndarray, n_ctx: int, *, shift: int = 1,
        inputs_from: int = 0, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The windows with a known mistake: targets moved by `shift` from the inputs (0: not
    shifted), the inputs starting `inputs_from` after each start, windows `length` long."""
    n = n_ctx if length is None else length
    window = np.asarray(starts)[:, None] + np.arange(n)
    return tokens[window + inputs_from], tokens[window + shift]


def _it_short(tokens: np.ndarray, starts: np.ndarray, n_ctx: int) -> tuple[np.ndarray, ...]:
    """A chunk of n_ctx tokens split as chunk[:-1], chunk[1:]: one token short each."""
    chunk = tokens[np.asarray(starts)[:, None] + np.arange(n_ctx)]
    return chunk[:, :-1], chunk[:, 1:]


_NOT_SHIFTED = (
    "your targets equal your inputs: a model trained on these would learn to copy its input, "
    "the token it is reading and already sees; its loss goes to 0 and it predicts nothing. "
    "A language model "
    "predicts the next token: targets[b, t] = tokens[s_b + t + 1], the inputs' window moved "
    "one token to the right."
)
_SWAPPED = (
    "your inputs and targets are swapped (or the targets run backwards): the targets must be "
    "the tokens that come after the inputs, inputs = tokens[s : s + n_ctx] and targets = "
    "tokens[s + 1 : s + n_ctx + 1]. The other way round the model predicts the previous "
    "token from the one after it."
)
_TOO_SHORT = (
    "your windows are one token short: a chunk of n_ctx tokens split into chunk[:-1] and "
    "chunk[1:] gives n_ctx − 1 of each. Take a chunk of n_ctx + 1 tokens, "
    "tokens[s : s + n_ctx + 1], then inputs = chunk[:-1], targets = chunk[1:], each of length "
    "n_ctx."
)
_SHIFTED_TWICE = (
    "your targets are two tokens ahead of the inputs; targets[b, t] must be the very next "
    "token, "
    "tokens[s_b + t + 1]."
)

_NOT_INTEGER = (
    "your windows hold {dtype} numbers; token ids are integers, and they must stay integers: "
    "the model looks them up in its embedding table, `wte[inputs]`, which needs an integer "
    "array. Slices and index arrays of `tokens` keep its integer dtype; an array made to "
    "be filled in is float unless you give it the tokens' dtype: "
    "`np.zeros((len(starts), n_ctx), dtype=tokens.dtype)`."
)


class _TokensChecker(Checker):
    """A checker whose outputs are token ids: a result that is not an integer array is of the
    wrong kind (the shared judge compares numbers only), named before anything else."""

    def judge(self, case: Case, outcome: Outcome) -> Verdict:
        verdict = super().judge(case, outcome)
        if verdict.kind not in ("passed", "values", "shape", "nan"):
            return verdict
        received, _ = self.structure(outcome.value)
        for name, got in zip(self.outputs, received or (), strict=False):
            if got.dtype.kind not in "iu":
                kind = "low-precision" if got.dtype.kind == "f" and got.itemsize <= 2 else (
                    "not-integer")
                return Verdict(False, kind, f"Your output `{name}` holds numbers of dtype "
                               f"{got.dtype}; token ids are integers.")
        return verdict

    def _report(self, judged: Sequence[Judged], graded: bool = False) -> CheckResult:
        result = super()._report(judged, graded)
        first = next((j for j in judged if not j.verdict.ok), None)
        if first is None or first.verdict.kind not in ("low-precision", "not-integer"):
            return result
        received = self.structure(first.outcome.value)[0] or ()
        kinds = sorted({str(got.dtype) for got in received if got.dtype.kind not in "iu"})
        return dataclasses.replace(result, hint=_NOT_INTEGER.format(dtype=" and ".join(kinds)),
                                   diagnosis=first.verdict.kind)


MAKE_INPUTS_AND_TARGETS = _TokensChecker(
    function="make_inputs_and_targets",
    outputs=("inputs", "targets"),
    reference=inputs_and_targets_reference,
    make_cases=_it_cases,
    mistakes=(
        Mistake("not-shifted", _NOT_SHIFTED, partial(_it, shift=0)),
        Mistake("swapped", _SWAPPED, partial(_it, shift=0, inputs_from=1)),
        Mistake("window-too-short", _TOO_SHORT, _it_short),
        Mistake("shifted-twice", _SHIFTED_TWICE, partial(_it, shift=2)),
    ),
    hint="for each start s in `starts`: inputs row = tokens[s : s + n_ctx], targets row = "
    "tokens[s + 1 : s + n_ctx + 1] (the same window moved one token right); stack the rows "
    "into two arrays of shape (len(starts), n_ctx).",
)


def check_make_inputs_and_targets(
    make_inputs_and_targets: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `make_inputs_and_targets(tokens, starts, n_ctx)`, which must return
    (inputs, targets), each (len(starts), n_ctx), the targets one token after the inputs."""
    return MAKE_INPUTS_AND_TARGETS.check(make_inputs_and_targets, timeout=timeout,
                                         harder=harder)


# -- causal_lm_loss(logits, targets) -> (loss, dlogits) ------------------------------------------


def loss_reference(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`course_lib.gpt.causal_lm_loss`, its loss as a 0-d float64 array (what the judge
    compares): L = −(1/N) Σ_i log p_i[y_i], dlogits = (p − onehot(y)) / N, N = every position."""
    loss, dlogits = gpt.causal_lm_loss(logits, targets)
    return np.asarray(loss, dtype=np.float64), dlogits


def _loss_case(name: str, logits: Any, targets: Any) -> Case:
    return Case(name, (("logits", np.asarray(logits)),
                       ("targets", np.asarray(targets, dtype=np.int64))))


def _random_loss_case(name: str, seed: int, *shape: int, scale: float = 1.5,
                      dtype: Any = np.float64) -> Case:
    *positions, vocab = shape
    logits = random_normal(seed, *shape, scale=scale, dtype=dtype)
    return _loss_case(name, logits, _tokens(seed + 1, int(np.prod(positions)), vocab)
                      .reshape(positions))


def _loss_cases() -> list[Case]:
    confident = random_normal(1640, 3, 4, scale=1.0)
    confident[1] = [2.0, 1.0, -800.0, 0.5]  # the target of row 1 is token 2: p = e^−802
    return [
        _loss_case("hand-worked: T = 2 positions, vocab 3",
                   [[0.0, 0.0, 0.0], [1.0, 3.0, 1.0]], [0, 1]),
        _random_loss_case("random, one sequence, T = 4, vocab 5", 1600, 4, 5),
        _random_loss_case("a batch of B = 2 sequences, T = 3, vocab 4", 1610, 2, 3, 4),
        _random_loss_case("a batch of B = 3 sequences, T = 2, vocab 5", 1620, 3, 2, 5),
        _random_loss_case("float32, B = 2, T = 4, vocab 6", 1630, 2, 4, 6, dtype=np.float32),
        _loss_case("a confidently wrong prediction (target's logit 802 below the largest)",
                   confident, [0, 2, 3]),
        _random_loss_case("large logits (about ±1000), T = 3, vocab 4", 1650, 3, 4, scale=600),
    ]


def _log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _lm(logits: np.ndarray, targets: np.ndarray, *, divisor: str = "N", loss: str = "mean",
        softmax: str = "stable", log: str = "stable", onehot: bool = True, sign: int = 1,
        loss_sign: int = 1, index: str = "rows", axis: int = -1) -> tuple[np.ndarray, ...]:
    """causal_lm_loss, right or with one known mistake (the keyword arguments): the gradient's
    `divisor` ("N", "none", "batch": logits.shape[0], "T": logits.shape[-2]); the `loss` "mean",
    "sum" (and its gradient undivided), "sum-only", "vocab" (a mean over every logit) or
    "divisor" (the sum over the positions divided by the gradient's divisor too); the
    `softmax` "stable" or "plain" (no max subtracted); `log` "stable" (z − max − log Σ exp) or
    "of-softmax" (np.log of the probabilities); onehot not subtracted; the gradient's or the
    loss's sign; `index` "rows" or "columns" (log_p[:, y], an N × N array); the softmax axis."""
    V = logits.shape[-1]
    z = logits.reshape(-1, V) if axis == -1 else logits  # (N, V)
    if softmax == "plain":
        e = np.exp(z)
        p = e / e.sum(axis=axis, keepdims=True)
    else:
        p = np.exp(_log_softmax(z, axis))
    log_p = np.log(p) if log == "of-softmax" or softmax == "plain" else _log_softmax(z, axis)
    p, log_p = p.reshape(-1, V), log_p.reshape(-1, V)
    y = targets.reshape(-1)
    N = y.size
    rows = np.arange(N)
    picked = log_p[:, y] if index == "columns" else log_p[rows, y]
    value = -np.sum(picked) if loss in ("sum", "sum-only", "divisor") else -np.mean(picked)
    if loss == "vocab":
        value = value / V
    grad = p.copy()
    if onehot:
        grad[rows, y] -= 1
    count = {"N": N, "none": 1, "batch": logits.shape[0], "T": logits.shape[-2]}[
        "none" if loss == "sum" else divisor]
    if loss == "divisor":
        value = value / count
    grad = sign * grad / count
    return np.asarray(loss_sign * value), grad.reshape(logits.shape)


class _LossChecker(Checker):
    """A checker whose first output, the loss, is a number: a Python float, a numpy scalar or
    a 0-d array is judged as the 0-d array it stands for."""

    def judge(self, case: Case, outcome: Outcome) -> Verdict:
        return super().judge(case, dataclasses.replace(outcome, value=_with_loss_array(
            outcome.value)) if outcome.returned else outcome)

    def structure(self, value: Any) -> tuple[tuple[np.ndarray, ...] | None, str]:
        return super().structure(_with_loss_array(value))


def _with_loss_array(value: Any) -> Any:
    """(loss, ...) with a real-number loss as a 0-d array; anything else unchanged. A numpy
    array holding one number, shape (1,), counts as that number too: `float(loss)` reads it,
    and a numpy scalar may travel back from the grader's sandbox in that shape."""
    if isinstance(value, tuple | list) and value:
        loss = value[0]
        if isinstance(loss, numbers.Real) and not isinstance(loss, bool):
            return (np.asarray(float(loss) if type(loss) in (int, float) else loss),
                    *value[1:])
        if isinstance(loss, np.ndarray) and loss.shape == (1,):
            return (np.ndarray.view(loss, np.ndarray).reshape(()), *value[1:])
    return value


_NO_MAX = (
    "your softmax does not subtract each row's maximum, and takes the log of p: on the "
    "confidently wrong case exp(−800) underflows to 0, and log 0 = −inf makes the loss inf; "
    "on logits near 1000 exp overflows to inf, and inf / inf = NaN. Subtract each row's "
    "maximum (it changes no probability), "
    "`shifted = logits - logits.max(axis=-1, keepdims=True)`, and take log p from the "
    "shifted logits without forming p: "
    "`log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))`."
)
_LOG_OF_SOFTMAX = (
    "your loss is inf when the model is confidently wrong: the log of a probability that "
    "underflowed to 0 (e^−802 is 0 in floating point) is −inf. Compute log p without "
    "forming p: log p_i[y] = z_i[y] − max − log Σ_j exp(z_ij − max) (the log-sum-exp), "
    "with `shifted = logits - logits.max(axis=-1, keepdims=True)` and "
    "`log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))`."
)
_NOT_DIVIDED = (
    "your gradient is not divided by N: the loss is a mean over the N positions "
    "(N = every position of every sequence), so each position's share of the gradient is "
    "(p − onehot(y)) / N."
)
_BY_BATCH = (
    "your gradient is divided by the number of sequences B (logits.shape[0]); the loss is a "
    "mean over every position of every sequence, N = B · T of them, so "
    "dlogits = (p − onehot(y)) / N with N = `targets.size`. (On a single sequence, "
    "logits.shape[0] is T and happens to be right.)"
)
_BOTH_BY_BATCH = (
    "your loss and your gradient are divided by the number of sequences B "
    "(logits.shape[0]): a sum over the positions divided by B. The loss is a mean over every "
    "position of every sequence, N = B · T of them: L = −(1/N) Σ_i log p_i[y_i] and "
    "dlogits = (p − onehot(y)) / N with N = `targets.size`. (On a single sequence, "
    "logits.shape[0] is T and happens to be right.)"
)
_BOTH_BY_T = (
    "your loss and your gradient are divided by the sequence length T only: a sum over the "
    "positions divided by T. The loss is a mean over every position of every sequence, "
    "N = B · T of them: L = −(1/N) Σ_i log p_i[y_i] and dlogits = (p − onehot(y)) / N with "
    "N = `targets.size`."
)
_BY_T = (
    "your gradient is divided by the sequence length T only; the loss is a mean over every "
    "position of every sequence, N = B · T of them: dlogits = (p − onehot(y)) / N with "
    "N = `targets.size`."
)
_SUM = (
    "your loss is a sum over the positions; it must be their mean, L = −(1/N) Σ_i log p_i[y_i], "
    "so that it does not grow with the batch or the context (a loss near ln(vocab) means "
    "guessing), and its gradient is (p − onehot(y)) / N."
)
_NO_ONEHOT = (
    "your gradient misses the one-hot term: ∂L/∂z_ij = (p_ij − [j = y_i]) / N, so "
    "after dividing the probabilities by N subtract 1/N at each row's target: "
    "`grad[np.arange(N), y] -= 1` before dividing."
)
_GRAD_SIGN = (
    "your gradient has the wrong sign: it must be (p − onehot(y)) / N, positive where the model "
    "gives too much probability. Gradient descent subtracts it, which raises the target's "
    "logit."
)
_COLUMNS = (
    "you picked log p[:, y], which takes whole columns (an N × N array), not one entry per "
    "row. Pick each row's target with a row index too: `log_p[np.arange(N), y]`, one number "
    "per position."
)
_LOSS_SIGN = (
    "your loss is negative: the cross-entropy is −mean log p[y] (a log-probability is ≤ 0, so "
    "the loss is ≥ 0, and ln(vocab) when the model guesses uniformly)."
)
_VOCAB_MEAN = (
    "your loss is divided by the vocabulary size as well: a mean of onehot ⊙ log p over "
    "the whole array averages over every logit, N · vocab of them. Average over the "
    "positions only: "
    "L = −(1/N) Σ_i log p_i[y_i]."
)
_WRONG_AXIS = (
    "your softmax runs over the wrong axis: each position's probabilities are over the "
    "vocabulary, the last axis: `np.exp(shifted).sum(axis=-1, keepdims=True)`."
)

CAUSAL_LM_LOSS = _LossChecker(
    function="causal_lm_loss",
    outputs=("loss", "dlogits"),
    reference=loss_reference,
    make_cases=_loss_cases,
    mistakes=(
        Mistake("no-max-subtraction", _NO_MAX, partial(_lm, softmax="plain")),
        Mistake("log-of-softmax", _LOG_OF_SOFTMAX, partial(_lm, log="of-softmax")),
        Mistake("gradient-not-divided", _NOT_DIVIDED, partial(_lm, divisor="none")),
        Mistake("divided-by-batch", _BY_BATCH, partial(_lm, divisor="batch")),
        Mistake("divided-by-batch", _BOTH_BY_BATCH,
                partial(_lm, divisor="batch", loss="divisor")),
        Mistake("divided-by-T", _BY_T, partial(_lm, divisor="T")),
        Mistake("divided-by-T", _BOTH_BY_T, partial(_lm, divisor="T", loss="divisor")),
        Mistake("sum-not-mean", _SUM, partial(_lm, loss="sum")),
        Mistake("sum-not-mean", _SUM, partial(_lm, loss="sum-only")),
        Mistake("onehot-missing", _NO_ONEHOT, partial(_lm, onehot=False)),
        Mistake("gradient-sign", _GRAD_SIGN, partial(_lm, sign=-1)),
        Mistake("columns-picked", _COLUMNS, partial(_lm, index="columns")),
        Mistake("loss-sign", _LOSS_SIGN, partial(_lm, loss_sign=-1)),
        Mistake("mean-over-vocab", _VOCAB_MEAN, partial(_lm, loss="vocab")),
        Mistake("softmax-wrong-axis", _WRONG_AXIS, partial(_lm, axis=-2)),
    ),
    hint="with z each row of logits (the last axis, the vocabulary) and N = targets.size: "
    "log p = z − max − log Σ exp(z − max); L = −mean of log p at each row's target; "
    "dlogits = (p − onehot(y)) / N, of the shape of logits.",
    nan_hint="your loss or gradient holds NaN or inf: exp overflowed (subtract each row's "
    "maximum first), or the log met a probability that underflowed to 0 (compute log p as "
    "z − max − log Σ exp(z − max) instead of log(p)).",
)


def check_causal_lm_loss(
    causal_lm_loss: Callable[..., Any], *, timeout: float = DEFAULT_TIMEOUT,
    harder: bool = False,
) -> CheckResult:
    """Check a learner's `causal_lm_loss(logits, targets)`, which must return (loss, dlogits):
    the mean cross-entropy over every position, and (p − onehot(targets)) / N."""
    return CAUSAL_LM_LOSS.check(causal_lm_loss, timeout=timeout, harder=harder)
