"""Training a language model on the course's corpus: the bigram baseline, the loop, checkpoints.

- The baseline (`init_bigram`, `bigram_loss_and_gradients`): a (vocab, vocab) table of logits,
  row a predicting the character after a; it sees one character of context, so its held-out
  loss is the one a model with context must beat. `bigram_from_counts` is the same model
  fitted in closed form (smoothed counts), a check that gradient descent found its best table.
- The objective: any `loss_and_gradients(params, inputs, targets) -> (loss, grads)` with the
  mean cross-entropy over every position (`bigram_loss_and_gradients`, or `gpt_objective(config)`
  for `gpt.gpt_loss_and_gradients`), so one loop trains both.
- `train_language_model(...) -> LMHistory`: Adam (`training.Adam`) on random windows of the
  training text (`corpus.sample_batch`), an optional learning-rate warm-up and cosine decay
  (`learning_rate`), the train and held-out loss on fixed batches every `eval_every` steps, a
  one-line progress display, an `on_eval` hook (to print samples while it trains), and a stop
  with `training.TrainingDivergedError` at the first step whose loss or gradient is not finite.
- `evaluate_loss`: the mean loss over a whole text in consecutive windows (the final held-out
  number).
- Checkpoints (`save_checkpoint`, `load_checkpoint` -> `Checkpoint`): one numpy .npz holding the
  parameters, the per-step losses and a JSON document: the model's configuration, the tokenizer's
  characters, the training settings and curves, and the provenance (command, seed, versions,
  BLAS, machine, date, wall time, the corpus's digest, the final and multi-seed losses). It loads
  without pickle.
- `train_gpt_run`, `train_bigram_run`: one seeded run of `python -m course_lib train gpt`.

Experiments return numbers and never draw. Imports numpy, the math modules (`gpt`), the course
data (`corpus`) and `training`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from course_lib import heads
from course_lib.corpus import CharTokenizer, Corpus, sample_batch, sample_batch_with_repeats
from course_lib.shapes import check_count, check_positive
from course_lib.training import Adam, check_finite_step, cross_entropy

if TYPE_CHECKING:
    from course_lib.gpt import GPTConfig

__all__ = [
    "LossAndGradients",
    "init_bigram",
    "bigram_loss_and_gradients",
    "bigram_from_counts",
    "gpt_objective",
    "learning_rate",
    "Evaluation",
    "LMHistory",
    "ProgressLine",
    "train_language_model",
    "evaluate_loss",
    "TrainSettings",
    "train_gpt_run",
    "train_bigram_run",
    "GPTExperiment",
    "run_gpt_experiment",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT",
    "save_npz",
    "load_npz",
    "params_in",
]

Params = dict[str, np.ndarray]
LossAndGradients = Callable[[Params, np.ndarray, np.ndarray], tuple[float, Params]]
"""(params, inputs (B, T), targets (B, T)) -> (mean cross-entropy over all B·T positions,
gradients with the keys and shapes of params)."""

CHECKPOINT = "results/gpt_char.npz"
"""The committed checkpoint, inside the package (`load_checkpoint()` reads it)."""
INDUCTION_CHECKPOINT = "results/gpt_char_repeats.npz"
"""Lesson 12's second model: the same GPT trained on windows that each carry a passage written
twice (`TrainSettings.repeat_fraction` = 1), where copying from the context pays
(`load_checkpoint(shipped=INDUCTION_CHECKPOINT)`)."""


# --- the bigram baseline -------------------------------------------------------------------


def init_bigram(vocab_size: int, rng: np.random.Generator,
                dtype: np.dtype | type = np.float32) -> Params:
    """The bigram model's parameters: {"table": (vocab, vocab)}, logits of the next token.

    table[a, b] is the logit of token b following token a; initialised N(0, 0.02²) like the
    GPT's embeddings, so the untrained model predicts about uniformly (loss ≈ log vocab).
    """
    vocab_size = check_count(vocab_size, "vocab_size")
    return {"table": (0.02 * rng.standard_normal((vocab_size, vocab_size))).astype(dtype)}


def _sequence_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over every position: logits (B, T, V), targets (B, T) -> (L, dlogits)."""
    V = logits.shape[-1]
    loss, dlogits = cross_entropy(logits.reshape(-1, V), np.asarray(targets).reshape(-1))
    return loss, dlogits.reshape(logits.shape)


def bigram_loss_and_gradients(params: Mapping[str, np.ndarray], tokens: np.ndarray,
                              targets: np.ndarray) -> tuple[float, Params]:
    """The bigram's mean cross-entropy and its gradient, with the API of the GPT's.

        logits[b, t] = table[tokens[b, t]]                         (B, T, V)
        L = −(1/BT) Σ_{b,t} log softmax(logits[b, t])[targets[b, t]]
        ∂L/∂table[a] = Σ over positions with tokens[b, t] = a of ∂L/∂logits[b, t]

    tokens, targets: int arrays (B, T) (or (T,)). Returns (L, {"table": (V, V)}).
    """
    table = params["table"]
    tokens = np.asarray(tokens)
    logits = table[tokens]  # (B, T, V)
    loss, dlogits = _sequence_cross_entropy(logits, targets)  # dlogits (B, T, V)
    dtable = np.zeros_like(table)
    np.add.at(dtable, tokens.reshape(-1), dlogits.reshape(-1, table.shape[1]))  # (V, V)
    return loss, {"table": dtable}


def bigram_from_counts(tokens: np.ndarray, vocab_size: int, alpha: float = 0.1) -> Params:
    """The bigram fitted in closed form, from the counts of each pair a → b in the text:

        table[a, b] = log((count(a → b) + α) / Σ_c (count(a → c) + α))

    The maximum-likelihood table of the training text with add-α smoothing (α > 0 keeps unseen
    pairs possible). Same parameters as `init_bigram` (float64): a trained bigram's held-out
    loss should come close to this one's.
    """
    tokens = np.asarray(tokens)
    vocab_size = check_count(vocab_size, "vocab_size")
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1.0)  # (V, V)
    counts += check_positive(alpha, "alpha")
    return {"table": np.log(counts / counts.sum(axis=1, keepdims=True))}


def gpt_objective(config: GPTConfig) -> LossAndGradients:
    """`gpt.gpt_loss_and_gradients` with its configuration fixed: (params, inputs, targets)."""
    from course_lib.gpt import gpt_loss_and_gradients

    def loss_and_gradients(params: Params, inputs: np.ndarray,
                           targets: np.ndarray) -> tuple[float, Params]:
        return gpt_loss_and_gradients(params, config, inputs, targets)

    return loss_and_gradients


# --- the loop ------------------------------------------------------------------------------


def learning_rate(step: int, steps: int, lr: float, warmup: int = 0,
                  final_fraction: float = 1.0) -> float:
    """The learning rate of step `step` (0-based) of a `steps`-step schedule.

    A linear warm-up from lr / warmup to lr over the first `warmup` steps, then a cosine decay
    from lr to final_fraction · lr at the last step (final_fraction = 1: constant after the
    warm-up):  lr_t = lr · (f + (1 − f) · ½ (1 + cos(π (t − warmup) / (steps − warmup)))).
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(steps - warmup, 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span))
    return lr * (final_fraction + (1 - final_fraction) * cosine)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation during training: after `step` updates, the mean loss on the fixed train
    and held-out batches, and the wall time since training started (seconds)."""

    step: int
    train_loss: float
    heldout_loss: float
    seconds: float


@dataclass
class LMHistory:
    """What happened in `train_language_model`.

    loss: (steps,) each step's training-batch loss, measured before its update; lr: (steps,)
    the learning rate of each step; evaluations: the train and held-out losses on fixed
    batches at step 0, every `eval_every` steps and after the last one; seconds: the wall time
    of the whole run; settings: the arguments the run was made with (steps, batch_size, n_ctx,
    lr, seed, ...), enough to make it again.
    """

    loss: np.ndarray
    lr: np.ndarray
    evaluations: list[Evaluation]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_steps(self) -> np.ndarray:
        """The steps of the evaluations, shape (n_evals,)."""
        return np.array([e.step for e in self.evaluations])

    @property
    def train_loss(self) -> np.ndarray:
        """The loss on the fixed training batches at each evaluation, shape (n_evals,)."""
        return np.array([e.train_loss for e in self.evaluations])

    @property
    def heldout_loss(self) -> np.ndarray:
        """The loss on the fixed held-out batches at each evaluation, shape (n_evals,)."""
        return np.array([e.heldout_loss for e in self.evaluations])

    def to_json(self) -> dict[str, Any]:
        """Everything but the per-step arrays (which a checkpoint stores as arrays)."""
        return {"evaluations": [dataclasses.asdict(e) for e in self.evaluations],
                "seconds": round(self.seconds, 2), "settings": self.settings}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], loss: np.ndarray, lr: np.ndarray) -> LMHistory:
        """The history `to_json` wrote, with its per-step arrays."""
        return cls(np.asarray(loss), np.asarray(lr),
                   [Evaluation(**e) for e in data["evaluations"]], data["seconds"],
                   dict(data["settings"]))


class ProgressLine:
    """A progress bar on one line, rewritten in place with "\\r" (no dependency needed)."""

    def __init__(self, steps: int, stream: TextIO, width: int = 24) -> None:
        self.steps, self.stream, self.width = steps, stream, width
        self.start = time.perf_counter()
        self.last_draw = -math.inf

    def draw(self, step: int, last: Evaluation | None, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last_draw < 0.5:
            return
        self.last_draw = now
        filled = self.width * step // self.steps
        elapsed = now - self.start
        eta = elapsed / step * (self.steps - step) if step else math.nan
        losses = (f" train {last.train_loss:.3f} held-out {last.heldout_loss:.3f} (step "
                  f"{last.step})" if last else "")
        self.stream.write(f"\r{'█' * filled}{'░' * (self.width - filled)} {step}/{self.steps}"
                          f"{losses} {elapsed:.0f} s, {eta:.0f} s left ")
        self.stream.flush()

    def close(self, step: int, last: Evaluation | None) -> None:
        self.draw(step, last, force=True)
        self.stream.write("\n")
        self.stream.flush()


def _mean_loss(loss_and_gradients: LossAndGradients, params: Params,
               batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The mean loss over equally sized batches."""
    return float(np.mean([loss_and_gradients(params, x, y)[0] for x, y in batches]))


def train_language_model(
    loss_and_gradients: LossAndGradients,
    params: Params,
    train_tokens: np.ndarray,
    heldout_tokens: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    n_ctx: int,
    lr: float,
    seed: int,
    eval_every: int,
    eval_batches: int = 4,
    warmup: int = 0,
    final_lr_fraction: float = 1.0,
    schedule_steps: int | None = None,
    progress: bool | TextIO = True,
    on_eval: Callable[[Evaluation, Params], None] | None = None,
    blas_threads: int | None = 1,
    repeat_fraction: float = 0.0,
) -> LMHistory:
    """Train a language model for `steps` Adam updates of `params` (in place); its `LMHistory`.

    Each step draws `batch_size` random windows of `n_ctx` tokens of the training text and their
    next tokens (`sample_batch`), computes `loss_and_gradients(params, inputs, targets)`, stops
    with `training.TrainingDivergedError` (a FloatingPointError whose message names the step
    and suggests a smaller learning rate) if the loss or a gradient is not finite, and updates
    with `training.Adam` at the rate `learning_rate(step, schedule_steps, lr, warmup,
    final_lr_fraction)` (schedule_steps: default `steps`; give the full run's to repeat its
    first steps exactly).

    At step 0, every `eval_every` steps and after the last, it measures the mean loss on
    `eval_batches` fixed batches of the training and of the held-out text (drawn once), and
    calls `on_eval(evaluation, params)` if given (for example to print a sample).

    Seeded: the training batches and the fixed batches come from two streams of
    `np.random.SeedSequence(seed)`; the same arguments and initial parameters give the same run.
    progress: True draws a one-line progress bar on stdout (with the time, which differs from
    run to run: a notebook cell that shows it should ignore its output), False nothing, or a
    stream to draw it on.

    repeat_fraction: the share of training windows that carry a passage written twice
    (`corpus.sample_batch_with_repeats`; 0: plain windows, `sample_batch`). The fixed batches
    of the evaluations are always plain text, so the losses compare across runs.

    blas_threads: the threads numpy's BLAS may use while it trains (threadpoolctl); None leaves
    BLAS's default. Default 1: the matrices of a small model are small, and on a 2-core machine
    shared with other programs a second BLAS thread mostly waits (one step of the course's GPT
    measured 2.6-3.2 s with 2 threads, 0.3-0.4 s with 1, machine busy).
    """
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return _train(loss_and_gradients, params, train_tokens, heldout_tokens, steps=steps,
                      batch_size=batch_size, n_ctx=n_ctx, lr=lr, seed=seed,
                      eval_every=eval_every, eval_batches=eval_batches, warmup=warmup,
                      final_lr_fraction=final_lr_fraction, schedule_steps=schedule_steps,
                      progress=progress, on_eval=on_eval, blas_threads=blas_threads,
                      repeat_fraction=repeat_fraction)


def _train(loss_and_gradients: LossAndGradients, params: Params, train_tokens: np.ndarray,
           heldout_tokens: np.ndarray, *, steps: int, batch_size: int, n_ctx: int, lr: float,
           seed: int, eval_every: int, eval_batches: int, warmup: int, final_lr_fraction: float,
           schedule_steps: int | None, progress: bool | TextIO,
           on_eval: Callable[[Evaluation, Params], None] | None,
           blas_threads: int | None, repeat_fraction: float) -> LMHistory:
    """`train_language_model` within its BLAS thread limit."""
    steps, eval_every = check_count(steps, "steps"), check_count(eval_every, "eval_every")
    eval_batches = check_count(eval_batches, "eval_batches")
    lr = check_positive(lr, "lr")
    schedule_steps = steps if schedule_steps is None else check_count(schedule_steps,
                                                                      "schedule_steps")
    settings = {"steps": steps, "batch_size": batch_size, "n_ctx": n_ctx, "lr": lr,
                "seed": seed, "eval_every": eval_every, "eval_batches": eval_batches,
                "warmup": warmup, "final_lr_fraction": final_lr_fraction,
                "schedule_steps": schedule_steps, "blas_threads": blas_threads}
    if repeat_fraction:  # recorded only when used: a plain run's settings read as before
        settings["repeat_fraction"] = repeat_fraction
        draw = functools.partial(sample_batch_with_repeats, fraction=repeat_fraction)
    else:
        draw = sample_batch
    batch_seed, eval_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(batch_seed)
    eval_rng = np.random.default_rng(eval_seed)
    fixed = {name: [sample_batch(tokens, batch_size, n_ctx, eval_rng)
                    for _ in range(eval_batches)]
             for name, tokens in (("train", train_tokens), ("heldout", heldout_tokens))}
    optimiser = Adam(lr)
    losses, rates = np.empty(steps), np.empty(steps)
    evaluations: list[Evaluation] = []
    stream = sys.stdout if progress is True else progress or None
    bar = ProgressLine(steps, stream) if stream else None
    start = time.perf_counter()

    def evaluate(step: int) -> None:
        evaluation = Evaluation(step, _mean_loss(loss_and_gradients, params, fixed["train"]),
                                _mean_loss(loss_and_gradients, params, fixed["heldout"]),
                                time.perf_counter() - start)
        evaluations.append(evaluation)
        if bar:
            bar.draw(step, evaluation, force=True)
        if on_eval is not None:
            on_eval(evaluation, params)

    for step in range(steps):
        if step % eval_every == 0:
            evaluate(step)
        inputs, targets = draw(train_tokens, batch_size, n_ctx, rng)
        loss, grads = loss_and_gradients(params, inputs, targets)
        optimiser.lr = rates[step] = learning_rate(step, schedule_steps, lr, warmup,
                                                   final_lr_fraction)
        check_finite_step(step, loss, grads, optimiser.lr)
        losses[step] = loss
        optimiser.step(params, grads)
        if bar:
            bar.draw(step + 1, evaluations[-1])
    evaluate(steps)
    if bar:
        bar.close(steps, evaluations[-1])
    return LMHistory(losses, rates, evaluations, time.perf_counter() - start, settings)


def evaluate_loss(loss_and_gradients: LossAndGradients, params: Params, tokens: np.ndarray,
                  n_ctx: int, batch_size: int = 64) -> float:
    """The mean loss over a whole text, cut into consecutive windows of n_ctx tokens.

    Window w is tokens[w·T : (w+1)·T] with targets one token later (T = n_ctx); the tokens after
    the last whole window are left out. Every position of every window counts once, as in
    training (early positions of a window have less context). Computed `batch_size` windows at
    a time; the gradients are computed and thrown away.
    """
    tokens = np.asarray(tokens)
    n_ctx, batch_size = check_count(n_ctx, "n_ctx"), check_count(batch_size, "batch_size")
    n_windows = (len(tokens) - 1) // n_ctx
    if n_windows < 1:
        raise ValueError(f"the text ({len(tokens)} tokens) is shorter than one window of "
                         f"n_ctx + 1 = {n_ctx + 1} tokens.")
    inputs = tokens[:n_windows * n_ctx].reshape(n_windows, n_ctx)  # (W, T)
    targets = tokens[1:n_windows * n_ctx + 1].reshape(n_windows, n_ctx)  # (W, T)
    total = 0.0
    for first in range(0, n_windows, batch_size):
        x, y = inputs[first:first + batch_size], targets[first:first + batch_size]
        total += loss_and_gradients(params, x, y)[0] * len(x)
    return total / n_windows


# --- one run of `train gpt` ----------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    """The training settings of `python -m course_lib train gpt` (the model's are a GPTConfig).

    The defaults are the committed checkpoint's (see `course_lib/results/gpt_char.npz`). The
    warm-up and cosine decay (to final_lr_fraction · lr) gain little at this size: after 600
    steps, held-out loss 1.670 with them against 1.680 at a constant lr = 3e-3 (one seed each;
    three seeds of 300 steps spread by 0.002). The bigram's rate and steps bring it within 0.003
    of the closed-form table (`bigram_from_counts`) on the held-out text.

    repeat_fraction: the share of training windows with a passage written twice
    (`corpus.sample_batch_with_repeats`); 0 for the committed checkpoint, 1 for lesson 12's
    second model (`INDUCTION_CHECKPOINT`).
    """

    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    eval_every: int = 100
    eval_batches: int = 4
    warmup: int = 100
    final_lr_fraction: float = 0.1
    bigram_steps: int = 3000
    bigram_lr: float = 0.01
    repeat_fraction: float = 0.0

    def loop_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `train_language_model` for the GPT."""
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                "seed": self.seed, "eval_every": self.eval_every,
                "eval_batches": self.eval_batches, "warmup": self.warmup,
                "final_lr_fraction": self.final_lr_fraction,
                "repeat_fraction": self.repeat_fraction}


def train_gpt_run(config: GPTConfig, settings: TrainSettings, corpus: Corpus, *,
                  progress: bool | TextIO = False,
                  on_eval: Callable[[Evaluation, Params], None] | None = None,
                  steps: int | None = None) -> tuple[Params, LMHistory]:
    """One seeded run: `init_gpt(config, default_rng(settings.seed))` (float32) trained by
    `train_language_model` on the corpus. steps: stop after this many of the schedule's
    `settings.steps` (to repeat the beginning of a run)."""
    from course_lib.gpt import init_gpt

    params = init_gpt(config, np.random.default_rng(settings.seed), dtype=np.float32)
    arguments = settings.loop_arguments() | {"schedule_steps": settings.steps}
    if steps is not None:
        arguments["steps"] = steps
    history = train_language_model(gpt_objective(config), params, corpus.train, corpus.heldout,
                                   n_ctx=config.n_ctx, progress=progress, on_eval=on_eval,
                                   **arguments)
    return params, history


def train_bigram_run(settings: TrainSettings, corpus: Corpus, n_ctx: int, *,
                     progress: bool | TextIO = False) -> tuple[Params, LMHistory]:
    """The bigram baseline trained by the same loop: `settings.bigram_steps` steps at
    `settings.bigram_lr`, constant, on the same batches' shape and seed as the GPT."""
    params = init_bigram(corpus.tokenizer.vocab_size, np.random.default_rng(settings.seed))
    history = train_language_model(
        bigram_loss_and_gradients, params, corpus.train, corpus.heldout,
        steps=settings.bigram_steps, batch_size=settings.batch_size, n_ctx=n_ctx,
        lr=settings.bigram_lr, seed=settings.seed, eval_every=settings.eval_every,
        eval_batches=settings.eval_batches, progress=progress)
    return params, history


@dataclass
class GPTExperiment:
    """What `run_gpt_experiment` made: the main run's model and history, and its numbers.

    summary: JSON-ready numbers: "final" (the main run's loss on the whole held-out text and on
    as many tokens of the training text; the bigram's, trained by the loop and from counts; its
    "induction" summary), "seeds" (the multi-seed check: per seed, the held-out loss of a
    shorter GPT run and of the bigram trained with that seed, and the GPT's "induction"
    summary; the smallest gap between the losses), "sample" (text generated by the final
    model), "settings". Each "induction" is `heads.induction_summary` (`.to_json()`) on 64
    held-out passages of n_ctx // 2 characters written twice (`heads.repeated_passages`, seed 0).
    """

    params: Params
    history: LMHistory
    summary: dict[str, Any]


def run_gpt_experiment(config: GPTConfig, settings: TrainSettings, corpus: Corpus, *,
                       seeds: int = 0, seed_steps: int = 300, progress: bool | TextIO = False,
                       log: Callable[[str], None] = print,
                       sample_prompt: str = "The ", sample_length: int = 300,
                       temperature: float = 0.8) -> GPTExperiment:
    """`python -m course_lib train gpt`: the bigram baseline, `seeds` short runs, the main run.

    1. the bigram, trained by the loop (`train_bigram_run`) and from counts: its loss on the
       whole held-out text (`evaluate_loss`) is the number to beat;
    2. for each of the seeds settings.seed + 1 .. settings.seed + seeds: a GPT trained for
       `seed_steps` steps (its own schedule of that length) and the bigram with that seed, both
       measured on the whole held-out text;
    3. the main run (settings.seed, settings.steps), measured on the whole held-out text and on
       the training text's first len(heldout) tokens, and a sample of `sample_length`
       characters after `sample_prompt` (temperature, seed settings.seed).
    Every GPT's strongest induction head is measured too (`GPTExperiment.summary`).
    `log` receives one line per stage. BLAS runs on one thread throughout (as in
    `train_language_model`).
    """
    from course_lib.gpt import generate

    with threadpool_limits(limits=1, user_api="blas"):  # see train_language_model
        n_ctx, heldout = config.n_ctx, corpus.heldout

        def heldout_loss(objective: LossAndGradients, params: Params) -> float:
            return round(evaluate_loss(objective, params, heldout, n_ctx), 4)

        passages = heads.repeated_passages(heldout, n_ctx // 2, 64, np.random.default_rng(0))

        def induction(params: Params) -> dict[str, Any]:
            return heads.induction_summary(params, config, passages).to_json()

        bigram, _ = train_bigram_run(settings, corpus, n_ctx)
        counts = bigram_from_counts(corpus.train, corpus.tokenizer.vocab_size)
        final = {"bigram_heldout": heldout_loss(bigram_loss_and_gradients, bigram),
                 "bigram_counts_heldout": heldout_loss(bigram_loss_and_gradients, counts)}
        log(f"bigram: held-out loss {final['bigram_heldout']:.4f} (trained, "
            f"{settings.bigram_steps} steps), {final['bigram_counts_heldout']:.4f} (from counts)")

        per_seed: dict[str, list[Any]] = {"seed": [], "gpt_heldout": [], "bigram_heldout": [],
                                          "induction": []}
        for seed in range(settings.seed + 1, settings.seed + 1 + seeds):
            short = dataclasses.replace(settings, seed=seed, steps=seed_steps)
            params, _ = train_gpt_run(config, short, corpus, progress=progress)
            bigram_seed, _ = train_bigram_run(short, corpus, n_ctx)
            per_seed["seed"].append(seed)
            per_seed["gpt_heldout"].append(heldout_loss(gpt_objective(config), params))
            per_seed["bigram_heldout"].append(heldout_loss(bigram_loss_and_gradients, bigram_seed))
            per_seed["induction"].append(induction(params))
            log(f"seed {seed} ({seed_steps} steps): held-out loss GPT "
                f"{per_seed['gpt_heldout'][-1]:.4f}, bigram {per_seed['bigram_heldout'][-1]:.4f}; "
                f"{_induction_line(per_seed['induction'][-1])}")
        seeds_summary: dict[str, Any] = {"steps": seed_steps, **per_seed}
        if seeds:
            seeds_summary["smallest_gap"] = round(min(per_seed["bigram_heldout"])
                                                  - max(per_seed["gpt_heldout"]), 4)

        params, history = train_gpt_run(config, settings, corpus, progress=progress)
        final |= {"gpt_heldout": heldout_loss(gpt_objective(config), params),
                  "gpt_train": round(evaluate_loss(gpt_objective(config), params,
                                                   corpus.train[:len(heldout)], n_ctx), 4)}
        final["induction"] = induction(params)
        log(f"GPT (seed {settings.seed}, {settings.steps} steps, {history.seconds:.0f} s): "
            f"held-out loss {final['gpt_heldout']:.4f}, train {final['gpt_train']:.4f}; "
            f"{_induction_line(final['induction'])}")
        prompt = corpus.tokenizer.encode(sample_prompt)
        tokens = generate(params, config, prompt, sample_length, temperature=temperature,
                          rng=np.random.default_rng(settings.seed))
        sample = {"prompt": sample_prompt, "temperature": temperature, "seed": settings.seed,
                  "text": corpus.tokenizer.decode(tokens)}
        summary = {"final": final, "seeds": seeds_summary, "sample": sample,
                   "settings": dataclasses.asdict(settings)}
        return GPTExperiment(params, history, summary)


def _induction_line(induction: Mapping[str, Any]) -> str:
    """One line on a run's strongest induction head; under twice the chance level, "none"."""
    layer, head = induction["head"]
    times = induction["score"] / induction["chance"]
    measured = f"score {induction['score']:.3f}, {times:.1f} times chance"
    found = (f"strongest induction head {layer}.{head}: {measured}" if times >= 2 else
             f"no induction head (the best, {layer}.{head}, {measured})")
    return (f"{found}; loss on a held-out passage's second copy "
            f"{induction['second_copy_loss']:.2f} against {induction['first_copy_loss']:.2f} "
            "on the first")


# --- checkpoints ---------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A trained model as saved: parameters, configuration, tokenizer, history, provenance.

    provenance: how it was made (command, seed, versions, BLAS, machine, date, wall time, the
    corpus's digest, the final and multi-seed losses; whatever `save_checkpoint` was given).
    """

    params: Params
    config: GPTConfig
    tokenizer: CharTokenizer
    history: LMHistory
    provenance: dict[str, Any]


_PARAMS = "params/"
_METADATA = "metadata"
_FORMAT = 1


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
             metadata: Mapping[str, Any]) -> Path:
    """Write one compressed .npz (no pickle) that `load_npz` reads: the arrays, and the
    metadata as a JSON string "metadata" that also holds the format's number. The course's
    checkpoints and results files are all this. Returns the path."""
    path = Path(path)
    text = json.dumps({"format": _FORMAT, **metadata}, ensure_ascii=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays, **{_METADATA: np.array(text)})
    return path


def load_npz(path: str | os.PathLike | None, shipped: str, kind: str | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of a file `save_npz` wrote; path None: the file `shipped` (a path
    inside the package, e.g. "results/gpt_char.npz"). Raises ValueError when the file is not of
    this format, or its metadata's "kind" is not `kind`."""
    if path is None:
        from importlib import resources

        with resources.as_file(resources.files("course_lib").joinpath(shipped)) as file:
            return load_npz(file, shipped, kind)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != _METADATA}
        metadata = json.loads(str(data[_METADATA]))
    if metadata.get("format") != _FORMAT or metadata.get("kind") != kind:
        what = f"{kind} file" if kind else "checkpoint"
        raise ValueError(f"{path}: not a course {what} of format {_FORMAT}.")
    return arrays, metadata


def params_in(arrays: Mapping[str, np.ndarray]) -> Params:
    """The parameters among a checkpoint's arrays (stored as "params/<name>")."""
    return {name[len(_PARAMS):]: value for name, value in arrays.items()
            if name.startswith(_PARAMS)}


def save_checkpoint(path: str | os.PathLike, params: Mapping[str, np.ndarray],
                    config: GPTConfig, history: LMHistory, provenance: Mapping[str, Any], *,
                    tokenizer: CharTokenizer) -> Path:
    """Write a checkpoint (`save_npz`) that `load_checkpoint` reads.

    Arrays: "params/<name>" for each parameter (its own dtype), "loss" and "lr" (float32, one
    per step); "metadata": a JSON string with "config" (the GPTConfig's fields), "tokenizer"
    (its characters), "history" (`LMHistory.to_json`) and "provenance". Returns the path.
    """
    arrays = {_PARAMS + name: np.asarray(value) for name, value in params.items()}
    arrays |= {"loss": history.loss.astype(np.float32), "lr": history.lr.astype(np.float32)}
    return save_npz(path, arrays, {"config": dataclasses.asdict(config),
                                   "tokenizer": tokenizer.chars, "history": history.to_json(),
                                   "provenance": dict(provenance)})


def load_checkpoint(path: str | os.PathLike | None = None, *,
                    shipped: str = CHECKPOINT) -> Checkpoint:
    """A checkpoint written by `save_checkpoint`; path None: the one the package ships at
    `shipped` (`CHECKPOINT`, or `INDUCTION_CHECKPOINT`), made by `python -m course_lib train
    gpt` (its command in `.provenance["command"]`)."""
    from course_lib.gpt import GPTConfig

    arrays, metadata = load_npz(path, shipped)
    history = LMHistory.from_json(metadata["history"], arrays["loss"], arrays["lr"])
    return Checkpoint(params_in(arrays), GPTConfig(**metadata["config"]),
                      CharTokenizer(metadata["tokenizer"]), history, metadata["provenance"])
