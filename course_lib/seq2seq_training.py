"""Training the encoder-decoder on the dates task: the loop, the measurements, the checkpoint.

- `train_seq2seq(config, settings, data) -> Seq2SeqRun`: Adam (`training.Adam`) on random
  batches of training examples with teacher forcing (`seq2seq.seq2seq_loss_and_gradients`),
  `lm_training.learning_rate`'s warm-up and cosine decay, a stop at the first step whose loss
  or gradient is not finite (`training.check_finite_step`), `lm_training`'s one-line progress
  display. Every `eval_every` steps it measures, on fixed examples: the loss (training and
  held-out examples), the exact-match accuracy of greedy translations (held-out dates, and
  held-out dates with sources longer than any in training), the alignment share of every
  cross-attention head, and the cross-attention maps of one example (the snapshots a
  scrubber shows: start, middle and end of training and every evaluation between).
- `exact_match`: the share of examples whose greedy translation equals the target exactly.
- `alignment_share`: the attention weight a cross-attention head puts on the source words the
  task's rule (`translation_task.Example.aligned`) says a target character comes from, averaged
  over the characters the rule names words for; `chance_share`, the same for attention spread
  evenly over the source's words (what an untrained model gives).
- `run_seq2seq_experiment`: `python -m course_lib train seq2seq`: the main run and runs with
  the same settings and other seeds, the final accuracies on all held-out examples.
- `rnn_comparison`: `python -m course_lib train seq2seq-rnn`: the GRU encoder-decoder of
  Bahdanau's time without and with attention (`seq2seq.gru_seq2seq_loss_and_gradients`),
  trained with the same loop and settings, exact match against source length; shipped as
  `course_lib/results/seq2seq_rnn.npz` (`load_rnn_comparison`).
- Checkpoints: `save_seq2seq_checkpoint`, `load_seq2seq_checkpoint` (one .npz, no pickle; the
  shipped one is `course_lib/results/seq2seq_translation.npz`), with the provenance of the
  command that made it.

Experiments return numbers and never draw. Imports numpy, the math (`seq2seq`), the course
data (`translation_task`), `training` and `lm_training`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from course_lib.lm_training import (
    Evaluation,
    LMHistory,
    ProgressLine,
    learning_rate,
    load_npz,
    params_in,
    save_npz,
)
from course_lib.seq2seq import (
    GRUSeq2SeqConfig,
    Seq2SeqConfig,
    gru_seq2seq_loss_and_gradients,
    gru_translate,
    init_gru_seq2seq,
    init_seq2seq,
    seq2seq_attention,
    seq2seq_loss_and_gradients,
    translate,
)
from course_lib.shapes import check_count, check_positive
from course_lib.training import Adam, check_finite_step
from course_lib.translation_task import (
    SOURCE_VOCAB,
    TARGET_LENGTH,
    TARGET_VOCAB,
    Batch,
    Example,
    TranslationData,
    make_batch,
    make_data,
    render,
    sample_batch,
)

__all__ = [
    "CHECKPOINT",
    "Seq2SeqSettings",
    "default_config",
    "exact_match",
    "alignment_share",
    "chance_share",
    "Seq2SeqEvaluation",
    "Seq2SeqRun",
    "train_seq2seq",
    "Seq2SeqExperiment",
    "run_seq2seq_experiment",
    "Seq2SeqCheckpoint",
    "save_seq2seq_checkpoint",
    "load_seq2seq_checkpoint",
    "train_gru_seq2seq",
    "accuracy_by_length",
    "rnn_comparison",
    "RNN_RESULTS",
    "save_rnn_comparison",
    "load_rnn_comparison",
]

Params = dict[str, np.ndarray]

CHECKPOINT = "results/seq2seq_translation.npz"
"""The committed checkpoint, inside the package (`load_seq2seq_checkpoint()` reads it)."""
RNN_RESULTS = "results/seq2seq_rnn.npz"
"""The committed RNN comparison (`load_rnn_comparison()` reads it)."""


@dataclass(frozen=True)
class Seq2SeqSettings:
    """The training settings of `python -m course_lib train seq2seq` (the model's are a
    Seq2SeqConfig, the data's `max_train_length` and `data_seed`).

    Evaluations: every `eval_every` steps, and every `early_eval_every` steps before step
    `early_until` (the alignment forms early: the scrubber's frames are denser there).
    eval_size: the held-out, longer and training examples measured at each evaluation (the
    final accuracies use every held-out example). The defaults are the committed checkpoint's.
    """

    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50
    final_lr_fraction: float = 0.1
    seed: int = 0
    eval_every: int = 50
    early_eval_every: int = 10
    early_until: int = 200
    eval_size: int = 100
    max_train_length: int = 7
    data_seed: int = 0

    def evaluates_at(self, step: int) -> bool:
        """Whether training measures after `step` updates (the last step is always measured)."""
        return step % self.eval_every == 0 or (step < self.early_until
                                                and step % self.early_eval_every == 0)


def default_config(d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                   n_decoder_layers: int | None = None) -> Seq2SeqConfig:
    """The model for the dates task: its vocabularies, n_layers encoder blocks and
    n_decoder_layers decoder blocks (None: n_layers)."""
    return Seq2SeqConfig(len(SOURCE_VOCAB), len(TARGET_VOCAB), d_model=d_model, n_heads=n_heads,
                         n_encoder_layers=n_layers,
                         n_decoder_layers=n_layers if n_decoder_layers is None
                         else n_decoder_layers)


# --- measurements ----------------------------------------------------------------------------


def exact_match(params: Params, config: Seq2SeqConfig | GRUSeq2SeqConfig,
                examples: Sequence[Example], batch_size: int = 250) -> np.ndarray:
    """For each example, whether the greedy translation (`seq2seq.translate`, or
    `seq2seq.gru_translate` for a GRU encoder-decoder) is exactly the target followed by EOS.
    Returns bool (len(examples),); its mean is the exact-match accuracy."""
    decode = gru_translate if isinstance(config, GRUSeq2SeqConfig) else translate
    correct = []
    for first in range(0, len(examples), batch_size):
        batch = make_batch(examples[first:first + batch_size])
        written = decode(params, config, batch.src, batch.src_is_token,  # type: ignore[arg-type]
                         max_length=TARGET_LENGTH + 1)  # (B, <= 11)
        full = np.zeros_like(batch.tgt_out)
        full[:, :written.shape[1]] = written
        correct.append(np.all(full == batch.tgt_out, axis=1))
    return np.concatenate(correct)


def _share_by_position(cross: list[np.ndarray], batch: Batch) -> np.ndarray:
    """Σ_j α_tj over the rule's words j, per layer, head and target position, averaged over
    the batch: (n_layers, n_heads, T), NaN where the rule names no word ("-", EOS)."""
    aligned = batch.aligned[:, None]  # (B, 1, T, n)
    share = np.stack([(w * aligned).sum(axis=-1).mean(axis=0) for w in cross])  # (L, H, T)
    measured = batch.aligned.any(axis=-1).all(axis=0)  # (T,): every example names words
    return np.where(measured, share, np.nan)


def alignment_share(params: Params, config: Seq2SeqConfig, batch: Batch) -> np.ndarray:
    """The alignment share of every cross-attention head: (n_decoder_layers, n_heads).

    For target position t (teacher forcing: the decoder is given the true characters before
    it), the weight α_tj that head h of layer l puts on the source words j the rule names for
    the character predicted there, summed over those words; averaged over the positions the
    rule names words for and over the batch. 1: the head looks only where the rule says; a
    head spreading its attention evenly scores `chance_share(batch)`.
    """
    cross = seq2seq_attention(params, config, batch.src, batch.tgt_in, batch.src_is_token)["cross"]
    return np.nanmean(_share_by_position(cross, batch), axis=-1)


def chance_share(batch: Batch) -> float:
    """The alignment share of attention spread evenly over each source's words: the mean of
    (words the rule names) / (words in the source) over the measured positions."""
    named = batch.aligned.sum(axis=-1)  # (B, T)
    words = batch.src_is_token.sum(axis=-1)[:, None]  # (B, 1)
    measured = batch.aligned.any(axis=-1)
    return float((named / words)[measured].mean())


# --- the loop ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seq2SeqEvaluation:
    """One evaluation during training, after `step` updates: losses on the fixed training and
    held-out examples, exact-match accuracies on the fixed held-out and longer examples, the
    alignment share of every cross-attention head (n_decoder_layers lists of n_heads), and the
    wall time since training started (seconds)."""

    step: int
    train_loss: float
    heldout_loss: float
    heldout_accuracy: float
    longer_accuracy: float
    alignment: list[list[float]]
    seconds: float


@dataclass
class Seq2SeqRun:
    """What `train_seq2seq` made.

    params: the trained parameters; history: `lm_training.LMHistory` (the loss and learning
    rate of every step, the losses at each evaluation, settings); evaluations: one
    `Seq2SeqEvaluation` per evaluation; example: the example whose maps were recorded;
    snapshots: its cross-attention maps at each evaluation, (n_evals, n_decoder_layers,
    n_heads, T, n_src) (row t: where the decoder looks when it writes target character t);
    outputs: its greedy translation at each evaluation (a string of target tokens);
    alignment_by_position: the alignment share per evaluation, layer, head and target position
    on the fixed held-out examples, (n_evals, n_decoder_layers, n_heads, T), NaN for "-" and EOS;
    chance: `chance_share` of those examples.
    """

    params: Params
    history: LMHistory
    evaluations: list[Seq2SeqEvaluation]
    example: Example
    snapshots: np.ndarray
    outputs: list[str]
    alignment_by_position: np.ndarray
    chance: float

    @property
    def eval_steps(self) -> np.ndarray:
        """The steps of the evaluations, (n_evals,)."""
        return np.array([e.step for e in self.evaluations])

    @property
    def alignment(self) -> np.ndarray:
        """The alignment share of every head at every evaluation, (n_evals, n_layers, n_heads)."""
        return np.array([e.alignment for e in self.evaluations])

    @property
    def heldout_accuracy(self) -> np.ndarray:
        """Exact-match accuracy on the fixed held-out examples at every evaluation."""
        return np.array([e.heldout_accuracy for e in self.evaluations])

    @property
    def longer_accuracy(self) -> np.ndarray:
        """Exact-match accuracy on the fixed longer-source examples at every evaluation."""
        return np.array([e.longer_accuracy for e in self.evaluations])


def _target_text(tokens: np.ndarray) -> str:
    """Target ids as text: the characters until EOS ("<eos>" is dropped, padding too)."""
    text = []
    for token in TARGET_VOCAB.decode(tokens):
        if token == "<eos>":
            break
        text.append(token if len(token) == 1 else f"[{token}]")
    return "".join(text)


def train_seq2seq(config: Seq2SeqConfig, settings: Seq2SeqSettings, data: TranslationData, *,
                  example: Example | None = None, progress: bool | TextIO = False,
                  on_eval: Callable[[Seq2SeqEvaluation, Params], None] | None = None,
                  steps: int | None = None, blas_threads: int | None = 1) -> Seq2SeqRun:
    """Train `init_seq2seq(config, default_rng(settings.seed))` (float32) on data.train.

    Each step draws settings.batch_size training examples (`translation_task.sample_batch`),
    computes the teacher-forcing loss and gradients, stops with `training.TrainingDivergedError`
    if either is not finite, and updates with Adam at `learning_rate(step, settings.steps, lr,
    warmup, final_lr_fraction)`. At step 0, at the steps `settings.evaluates_at` names and after
    the last, it measures (`Seq2SeqEvaluation`) and records the maps of `example` (default:
    the first longer example, data.longer[0]). steps: stop after this many steps of the schedule (to
    repeat a run's beginning). Seeded: the initialisation and the batches come from two streams
    of `np.random.SeedSequence(settings.seed)`; the fixed examples are the first eval_size of
    each split. blas_threads: as in `lm_training.train_language_model` (default 1).
    progress: True draws `lm_training`'s one-line progress bar on stdout, or give a stream.
    """
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return _train(config, settings, data, example, progress, on_eval, steps)


def _train(config: Seq2SeqConfig, settings: Seq2SeqSettings, data: TranslationData,
           example: Example | None, progress: bool | TextIO,
           on_eval: Callable[[Seq2SeqEvaluation, Params], None] | None,
           steps: int | None) -> Seq2SeqRun:
    """`train_seq2seq` within its BLAS thread limit."""
    steps = _check_settings(settings, steps)
    n = settings.eval_size
    params, rng = _seeded(settings.seed, lambda init: init_seq2seq(config, init))
    example = data.longer[0] if example is None else example
    shown = make_batch([example])
    fixed = {"train": make_batch(data.train[:n]), "heldout": make_batch(data.heldout[:n])}
    chance = chance_share(fixed["heldout"])
    losses, rates = np.empty(steps), np.empty(steps)  # filled by _optimise
    evaluations: list[Seq2SeqEvaluation] = []
    loss_evaluations: list[Evaluation] = []
    snapshots, outputs, by_position = [], [], []
    stream = sys.stdout if progress is True else progress or None
    bar = ProgressLine(steps, stream) if stream else None
    start = time.perf_counter()

    def loss_of(batch: Batch) -> float:
        return seq2seq_loss_and_gradients(params, config, batch.src, batch.tgt_in,
                                          batch.tgt_out, batch.src_is_token)[0]

    def evaluate(step: int) -> None:
        cross = seq2seq_attention(params, config, fixed["heldout"].src, fixed["heldout"].tgt_in,
                                  fixed["heldout"].src_is_token)["cross"]
        position_share = _share_by_position(cross, fixed["heldout"])  # (L, H, T)
        evaluation = Seq2SeqEvaluation(
            step, round(loss_of(fixed["train"]), 6), round(loss_of(fixed["heldout"]), 6),
            float(exact_match(params, config, data.heldout[:n]).mean()),
            float(exact_match(params, config, data.longer[:n]).mean()),
            np.round(np.nanmean(position_share, axis=-1), 4).tolist(),
            time.perf_counter() - start)
        evaluations.append(evaluation)
        loss_evaluations.append(Evaluation(step, evaluation.train_loss, evaluation.heldout_loss,
                                           evaluation.seconds))
        by_position.append(position_share)
        maps = seq2seq_attention(params, config, shown.src, shown.tgt_in,
                                 shown.src_is_token)["cross"]
        snapshots.append(np.stack([w[0] for w in maps]))  # (L, H, T, n)
        outputs.append(_target_text(translate(params, config, shown.src[0],
                                              max_length=TARGET_LENGTH + 1)))
        if bar:
            bar.draw(step, loss_evaluations[-1], force=True)
        if on_eval is not None:
            on_eval(evaluation, params)

    def objective(batch: Batch) -> tuple[float, Params]:
        return seq2seq_loss_and_gradients(params, config, batch.src, batch.tgt_in,
                                          batch.tgt_out, batch.src_is_token)

    def before(step: int) -> None:
        if settings.evaluates_at(step):
            evaluate(step)

    def after(step: int) -> None:
        if bar:
            bar.draw(step + 1, loss_evaluations[-1])

    _optimise(objective, params, settings, data, rng, losses, rates, before, after)
    evaluate(steps)
    if bar:
        bar.close(steps, loss_evaluations[-1])
    history = LMHistory(losses, rates, loss_evaluations, time.perf_counter() - start,
                        dataclasses.asdict(settings) | {"steps_run": steps})
    return Seq2SeqRun(params, history, evaluations, example, np.stack(snapshots).astype(np.float32),
                      outputs, np.stack(by_position).astype(np.float32), chance)


def _check_settings(settings: Seq2SeqSettings, steps: int | None) -> int:
    """Check the settings; the steps to run (default: settings.steps)."""
    for name in ("steps", "batch_size", "eval_every", "early_eval_every", "eval_size"):
        check_count(getattr(settings, name), name)
    check_positive(settings.lr, "lr")
    return settings.steps if steps is None else check_count(steps, "steps")


def _seeded(seed: int, init: Callable[[np.random.Generator], Params],
            ) -> tuple[Params, np.random.Generator]:
    """The initial parameters and the batches' generator: two streams of SeedSequence(seed)."""
    init_seed, batch_seed = np.random.SeedSequence(seed).spawn(2)
    return init(np.random.default_rng(init_seed)), np.random.default_rng(batch_seed)


def _optimise(objective: Callable[[Batch], tuple[float, Params]], params: Params,
              settings: Seq2SeqSettings, data: TranslationData, rng: np.random.Generator,
              losses: np.ndarray, rates: np.ndarray,
              before: Callable[[int], None] | None = None,
              after: Callable[[int], None] | None = None) -> None:
    """The loop both models train with: len(losses) Adam steps on random training batches of
    settings.batch_size, at `learning_rate(step, settings.steps, ...)`, stopping at a step whose
    loss or gradient is not finite; fills losses and rates (one per step) in place."""
    optimiser = Adam(settings.lr)
    for step in range(len(losses)):
        if before:
            before(step)
        loss, grads = objective(sample_batch(data.train, settings.batch_size, rng))
        optimiser.lr = rates[step] = learning_rate(step, settings.steps, settings.lr,
                                                   settings.warmup, settings.final_lr_fraction)
        check_finite_step(step, loss, grads, optimiser.lr)
        losses[step] = loss
        optimiser.step(params, grads)
        if after:
            after(step)


# --- one run of `train seq2seq` ----------------------------------------------------------------


@dataclass
class Seq2SeqExperiment:
    """What `run_seq2seq_experiment` made: the main run and its summary (JSON-ready): "final"
    (the main run's exact-match accuracy on every held-out and longer example, its alignment
    share per head, the chance share), "seeds" (per seed: the same accuracies and the best
    head's alignment share), "data" (the splits' sizes and source lengths), "settings"."""

    run: Seq2SeqRun
    summary: dict[str, Any]


def _final_numbers(run: Seq2SeqRun, config: Seq2SeqConfig, data: TranslationData) -> dict:
    """The accuracies of a trained run on every held-out and longer example, and its share."""
    last = run.evaluations[-1]
    return {"heldout_accuracy": round(float(exact_match(run.params, config,
                                                        data.heldout).mean()), 4),
            "longer_accuracy": round(float(exact_match(run.params, config,
                                                       data.longer).mean()), 4),
            "alignment": last.alignment,
            "best_head_alignment": float(np.max(last.alignment)),
            "seconds": round(run.history.seconds, 1)}


def run_seq2seq_experiment(config: Seq2SeqConfig, settings: Seq2SeqSettings, *,
                           seeds: int = 3, progress: bool | TextIO = False,
                           log: Callable[[str], None] = print) -> Seq2SeqExperiment:
    """`python -m course_lib train seq2seq`: the data (`make_data(settings.data_seed,
    settings.max_train_length)`), `seeds` runs with the seeds settings.seed + 1 .. + seeds
    (same settings), then the main run (settings.seed). `log` receives one line per run.
    """
    data = make_data(settings.data_seed, settings.max_train_length)
    lengths = {name: [min(len(e.source) for e in split), max(len(e.source) for e in split)]
               for name, split in (("train", data.train), ("heldout", data.heldout),
                                   ("longer", data.longer))}
    log(f"data: {len(data.train)} training, {len(data.heldout)} held-out and {len(data.longer)} "
        f"longer examples; source words: " + ", ".join(f"{k} {a}-{b}" for k, (a, b)
                                                       in lengths.items()))
    per_seed: dict[str, list] = {"seed": [], "heldout_accuracy": [], "longer_accuracy": [],
                                 "best_head_alignment": []}
    for seed in range(settings.seed + 1, settings.seed + 1 + seeds):
        run = train_seq2seq(config, dataclasses.replace(settings, seed=seed), data,
                            progress=progress)
        numbers = _final_numbers(run, config, data)
        for key in per_seed:
            per_seed[key].append(seed if key == "seed" else numbers[key])
        log(f"seed {seed}: exact match held-out {numbers['heldout_accuracy']:.3f}, longer "
            f"sources {numbers['longer_accuracy']:.3f}; best head's alignment share "
            f"{numbers['best_head_alignment']:.2f} ({numbers['seconds']:.0f} s)")
    run = train_seq2seq(config, settings, data, progress=progress)
    final = _final_numbers(run, config, data) | {"chance": round(run.chance, 4)}
    log(f"main run, seed {settings.seed}: exact match held-out {final['heldout_accuracy']:.3f}, "
        f"longer sources {final['longer_accuracy']:.3f}; alignment share per head "
        f"{final['alignment']} (chance {final['chance']:.2f}); {final['seconds']:.0f} s")
    summary = {"final": final, "seeds": per_seed,
               "data": {"train": len(data.train), "heldout": len(data.heldout),
                        "longer": len(data.longer), "source_words": lengths,
                        "max_train_length": data.max_train_length, "seed": data.seed},
               "settings": dataclasses.asdict(settings)}
    return Seq2SeqExperiment(run, summary)


# --- checkpoints -------------------------------------------------------------------------------


@dataclass
class Seq2SeqCheckpoint:
    """A trained encoder-decoder as saved: parameters, configuration, the run's records
    (history, evaluations, the example and its snapshots, outputs, alignment by position,
    chance) and the provenance (command, seed, versions, BLAS, machine, date, wall time, the
    experiment's summary)."""

    params: Params
    config: Seq2SeqConfig
    history: LMHistory
    evaluations: list[Seq2SeqEvaluation]
    example: Example
    snapshots: np.ndarray
    outputs: list[str]
    alignment_by_position: np.ndarray
    chance: float
    provenance: dict[str, Any]

    @property
    def run(self) -> Seq2SeqRun:
        """The checkpoint as a `Seq2SeqRun` (its properties: eval_steps, alignment, ...)."""
        return Seq2SeqRun(self.params, self.history, self.evaluations, self.example,
                          self.snapshots, self.outputs, self.alignment_by_position, self.chance)




def save_seq2seq_checkpoint(path: str | os.PathLike, run: Seq2SeqRun, config: Seq2SeqConfig,
                            provenance: Mapping[str, Any]) -> Path:
    """Write a checkpoint (`lm_training.save_npz`) that `load_seq2seq_checkpoint` reads:
    "params/<name>", "loss", "lr", "snapshots", "alignment_by_position" and "metadata"
    (a JSON string: config, history, evaluations, the example's date and article, outputs,
    chance, provenance). Returns the path."""
    arrays = {"params/" + name: np.asarray(value) for name, value in run.params.items()}
    arrays |= {"loss": run.history.loss.astype(np.float32),
               "lr": run.history.lr.astype(np.float32),
               "snapshots": run.snapshots.astype(np.float32),
               "alignment_by_position": run.alignment_by_position.astype(np.float32)}
    article = run.example.source[0] == "the"
    return save_npz(path, arrays, {
        "kind": "seq2seq", "config": dataclasses.asdict(config),
        "history": run.history.to_json(),
        "evaluations": [dataclasses.asdict(e) for e in run.evaluations],
        "example": {"date": run.example.date.isoformat(), "article": article},
        "outputs": run.outputs, "chance": run.chance, "provenance": dict(provenance)})


def load_seq2seq_checkpoint(path: str | os.PathLike | None = None) -> Seq2SeqCheckpoint:
    """A checkpoint written by `save_seq2seq_checkpoint`; default: the one shipped with the
    package, made by `python -m course_lib train seq2seq` (its command in
    `.provenance["command"]`)."""
    import datetime

    arrays, metadata = load_npz(path, CHECKPOINT, kind="seq2seq")
    history = LMHistory.from_json(metadata["history"], arrays["loss"], arrays["lr"])
    example = render(datetime.date.fromisoformat(metadata["example"]["date"]),
                     metadata["example"]["article"])
    return Seq2SeqCheckpoint(params_in(arrays), Seq2SeqConfig(**metadata["config"]), history,
                             [Seq2SeqEvaluation(**e) for e in metadata["evaluations"]], example,
                             arrays["snapshots"], metadata["outputs"],
                             arrays["alignment_by_position"], metadata["chance"],
                             metadata["provenance"])


# --- the RNN encoder-decoder, with and without attention (issue 24, item 4) ----------------------


def train_gru_seq2seq(config: GRUSeq2SeqConfig, settings: Seq2SeqSettings, data: TranslationData,
                      *, steps: int | None = None, blas_threads: int | None = 1,
                      ) -> tuple[Params, LMHistory]:
    """Train `init_gru_seq2seq(config, ...)` with the Transformer's loop and settings (the same
    batches for a seed, the same schedule); no evaluations. Returns (params, history)."""
    steps = _check_settings(settings, steps)
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        params, rng = _seeded(settings.seed, lambda init: init_gru_seq2seq(config, init))
        losses, rates = np.empty(steps), np.empty(steps)
        start = time.perf_counter()

        def objective(batch: Batch) -> tuple[float, Params]:
            return gru_seq2seq_loss_and_gradients(params, config, batch.src, batch.tgt_in,
                                                  batch.tgt_out, batch.src_is_token)

        _optimise(objective, params, settings, data, rng, losses, rates)
    history = LMHistory(losses, rates, [], time.perf_counter() - start,
                        dataclasses.asdict(settings) | {"steps_run": steps})
    return params, history


def accuracy_by_length(correct: np.ndarray, examples: Sequence[Example]) -> dict[int, float]:
    """The exact-match accuracy per source length (in words): {length: share correct}."""
    lengths = np.array([len(e.source) for e in examples])
    return {int(n): float(np.mean(correct[lengths == n])) for n in np.unique(lengths)}


def rnn_comparison(settings: Seq2SeqSettings, *, seeds: int = 3, d_h: int = 64,
                   transformer: Seq2SeqCheckpoint | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """`python -m course_lib train seq2seq-rnn`: the GRU encoder-decoder without and with
    attention, trained on the dates task with the Transformer's settings, `seeds` seeds each
    (settings.seed, settings.seed + 1, ...); the exact-match accuracy of each run against
    source length, on every held-out example (dates never seen; lengths above
    settings.max_train_length never seen either). transformer: a checkpoint measured the same
    way, for the table (default: none).

    Returns {"lengths": [...], "max_train_length", "models": {name: {"seeds": [...],
    "by_length": {length: [accuracy per seed]}, "heldout": [...], "longer": [...],
    "seconds": [...]}}, "settings", "d_h"}.
    """
    data = make_data(settings.data_seed, settings.max_train_length)
    examples = data.heldout + data.longer
    lengths = sorted({len(e.source) for e in examples})
    models: dict[str, dict[str, Any]] = {}

    def record(name: str, seed: int, params: Params, config: Any, seconds: float) -> None:
        entry = models.setdefault(name, {"seeds": [], "by_length": {str(n): [] for n in lengths},
                                         "heldout": [], "longer": [], "seconds": []})
        correct = exact_match(params, config, examples)
        entry["seeds"].append(seed)
        for n, accuracy in accuracy_by_length(correct, examples).items():
            entry["by_length"][str(n)].append(round(accuracy, 4))
        entry["heldout"].append(round(float(correct[:len(data.heldout)].mean()), 4))
        entry["longer"].append(round(float(correct[len(data.heldout):].mean()), 4))
        entry["seconds"].append(round(seconds, 1))
        log(f"{name}, seed {seed}: exact match held-out {entry['heldout'][-1]:.3f}, longer "
            f"sources {entry['longer'][-1]:.3f} ({seconds:.0f} s)")

    for attention in (False, True):
        name = "gru+attention" if attention else "gru"
        config = GRUSeq2SeqConfig(len(SOURCE_VOCAB), len(TARGET_VOCAB), d_h=d_h,
                                  attention=attention)
        for seed in range(settings.seed, settings.seed + seeds):
            params, history = train_gru_seq2seq(config, dataclasses.replace(settings, seed=seed),
                                                data)
            record(name, seed, params, config, history.seconds)
    if transformer is not None:
        record("transformer", transformer.provenance.get("seed", 0), transformer.params,
               transformer.config, transformer.history.seconds)
    return {"lengths": lengths, "max_train_length": data.max_train_length, "models": models,
            "settings": dataclasses.asdict(settings), "d_h": d_h}


def save_rnn_comparison(path: str | os.PathLike, results: Mapping[str, Any],
                        provenance: Mapping[str, Any]) -> Path:
    """Write `rnn_comparison`'s results and how they were made (`lm_training.save_npz`, no
    arrays): metadata {"kind": "seq2seq-rnn", "results", "provenance"}."""
    return save_npz(path, {}, {"kind": "seq2seq-rnn", "results": dict(results),
                               "provenance": dict(provenance)})


def load_rnn_comparison(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"results": ..., "provenance": ...} as `save_rnn_comparison` wrote them; default: the
    shipped `course_lib/results/seq2seq_rnn.npz`."""
    _, metadata = load_npz(path, RNN_RESULTS, kind="seq2seq-rnn")
    return {"results": metadata["results"], "provenance": metadata["provenance"]}
