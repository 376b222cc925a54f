"""Training in numpy: the shared machinery of lessons 05 (attention) and 06 (RNN vs attention).

Everything a lesson needs to learn parameters by gradient descent and to watch it happen:

- the task (`MarkedTokenTask`, `marked_token_task`): a random sequence in which one token is
  marked; at the last position, name the marked token. The answer depends on one earlier
  token at a distance that varies (or is fixed with `distance=`, for lesson 06's sweep);
- the input encoding (`encode_tokens`): a one-hot word and a "marked" feature, no positions;
- the model protocol (`Model`): `params`, a dict of arrays, and `loss_and_grads(tokens,
  labels) -> (loss, grads, logits)`; optionally `snapshot(tokens)`, an array to watch;
- `AttentionClassifier`: one self-attention layer and a linear readout of the last position,
  trained with the cross-entropy loss; its backward pass is `attention.self_attention_backward`;
- the optimisers `GradientDescent` and `Adam` (a few lines each, written out);
- `train(model, task, steps, lr, ...) -> History`: the loop, with loss and accuracy per step,
  accuracy on a fixed held-out set, gradient norms, and snapshots of one fixed example; it
  stops with `TrainingDivergedError` at the first step whose loss or gradient is not finite
  (`check_finite_step`);
- `gradient_check(f, params, grads)`: the analytic gradients against central differences,
  the tool the lesson uses and learners can import for their own code.

Experiments return numbers and never draw (figures: `course_lib.viz`). Imports numpy and the
math modules only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from course_lib.attention import (
    attention_weights,
    self_attention,
    self_attention_backward,
    softmax,
    weighted_sum,
)
from course_lib.shapes import check_count, check_positive

__all__ = [
    "marked_token_task",
    "MarkedTokenTask",
    "encode_tokens",
    "token_labels",
    "Model",
    "cross_entropy",
    "AttentionClassifier",
    "GradientDescent",
    "Adam",
    "History",
    "TrainingDivergedError",
    "check_finite_step",
    "train",
    "evaluate",
    "steps_to_accuracy",
    "row_saturation",
    "per_sequence_grad_norms",
    "numerical_gradient",
    "relative_error",
    "gradient_check",
]

Params = dict[str, np.ndarray]


# --- the task ------------------------------------------------------------------------------


def marked_token_task(
    rng: np.random.Generator,
    batch_size: int,
    n: int,
    vocab_size: int,
    distance: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of the marked-token task: one token of each sequence is marked; name it.

    Each sequence has n tokens drawn uniformly from the vocabulary 0 .. vocab_size − 1. One of
    the first n − 1 positions is marked (uniformly, or exactly `distance` positions before the
    last one, 1 <= distance <= n − 1); the label is the marked token's word. The last token is
    never marked: it is where the answer is read.

    Encoding of the mark: a marked word w is stored as the token w + vocab_size, so tokens are
    in 0 .. 2·vocab_size − 1 and one integer array carries the whole input (see
    `encode_tokens`). Returns (tokens (batch_size, n) int64, labels (batch_size,) int64).
    """
    batch_size, n, vocab_size = (check_count(v, name) for v, name in
                                 ((batch_size, "batch_size"), (n, "n"), (vocab_size, "vocab_size")))
    if n < 2:
        raise ValueError(f"n must be at least 2 (a marked token and the last one); got {n}.")
    if distance is not None and not (isinstance(distance, int | np.integer) and 1 <= distance < n):
        raise ValueError(f"distance must be a whole number from 1 to n − 1 = {n - 1}; "
                         f"got {distance!r}.")
    words = rng.integers(0, vocab_size, size=(batch_size, n))  # (B, n)
    if distance is None:
        marked = rng.integers(0, n - 1, size=batch_size)  # (B,), any position but the last
    else:
        marked = np.full(batch_size, n - 1 - distance)
    rows = np.arange(batch_size)
    labels = words[rows, marked]  # (B,)
    tokens = words.copy()
    tokens[rows, marked] += vocab_size  # the mark
    return tokens.astype(np.int64), labels.astype(np.int64)


@dataclass(frozen=True)
class MarkedTokenTask:
    """The marked-token task with its sizes fixed: `task(rng, batch_size) -> (tokens, labels)`.

    n: sequence length; vocab_size: number of words (and of classes); distance: None for a
    mark anywhere before the last token, or the fixed number of positions before it.
    """

    n: int = 8
    vocab_size: int = 8
    distance: int | None = None

    def __call__(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        return marked_token_task(rng, batch_size, self.n, self.vocab_size, self.distance)

    @property
    def d_in(self) -> int:
        """The width of an encoded token: vocab_size one-hot entries and the mark."""
        return self.vocab_size + 1

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """`encode_tokens(tokens, self.vocab_size)`."""
        return encode_tokens(tokens, self.vocab_size)


def encode_tokens(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Tokens of the marked-token task as input rows: a one-hot word and a "marked" feature.

    Token t < vocab_size is the word t; token t >= vocab_size is the word t − vocab_size,
    marked. Row of a token: vocab_size entries (1 at its word) and one last entry (1 if
    marked). No position information. Shape: (..., n) int -> X (..., n, vocab_size + 1) float64.
    """
    tokens = np.asarray(tokens)
    vocab_size = check_count(vocab_size, "vocab_size")
    if not np.issubdtype(tokens.dtype, np.integer) or tokens.size and (
            tokens.min() < 0 or tokens.max() >= 2 * vocab_size):
        raise ValueError(f"tokens must be whole numbers from 0 to 2·vocab_size − 1 = "
                         f"{2 * vocab_size - 1}.")
    words, marks = tokens % vocab_size, tokens >= vocab_size
    X = np.zeros((*tokens.shape, vocab_size + 1))
    np.put_along_axis(X, words[..., None], 1.0, axis=-1)  # the one-hot word
    X[..., vocab_size] = marks  # the mark
    return X


def token_labels(tokens: np.ndarray, vocab_size: int) -> list[str]:
    """Readable names for one sequence of tokens: words as letters A, B, ..., marked with "*".

    Shape: tokens (n,) int (or (1, n)) -> n strings, e.g. ["D", "E", "G*", "H"]; beyond 26 words
    the names are w26, w27, ...
    """
    tokens = np.asarray(tokens).reshape(-1)
    vocab_size = check_count(vocab_size, "vocab_size")
    words = [chr(ord("A") + w) if w < 26 else f"w{w}" for w in (tokens % vocab_size).tolist()]
    return [word + ("*" if t >= vocab_size else "") for word, t in zip(words, tokens.tolist(),
                                                                       strict=True)]


# --- the model -----------------------------------------------------------------------------


@runtime_checkable
class Model(Protocol):
    """What `train` needs from a model.

    params: the learned arrays by name (updated in place by the optimiser).
    loss_and_grads(tokens, labels): the mean loss over the batch (a float), the gradient of
    that loss for every entry of `params` (same keys and shapes) and the logits
    (batch_size, n_classes).

    Optional: `logits(tokens) -> (batch_size, n_classes)`, the forward pass alone, which
    `evaluate` uses when present (cheaper than the gradients); `snapshot(tokens) -> np.ndarray`,
    an array `train` records at chosen steps (the attention weights, for `AttentionClassifier`).
    """

    params: Params

    def loss_and_grads(
        self, tokens: np.ndarray, labels: np.ndarray
    ) -> tuple[float, Params, np.ndarray]: ...


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy L = −(1/B) Σ_b log p_b[y_b], p_b = softmax(logits_b), and ∂L/∂logits.

    Shapes: logits (B, C), labels (B,) int in 0 .. C − 1. Returns (L, d_logits (B, C)) with
    d_logits = (p − onehot(y)) / B.
    """
    p = softmax(logits, axis=-1)  # (B, C)
    B = logits.shape[0]
    rows = np.arange(B)
    loss = -np.mean(np.log(np.maximum(p[rows, labels], np.finfo(p.dtype).tiny)))
    d_logits = p.copy()
    d_logits[rows, labels] -= 1
    return float(loss), d_logits / B


class AttentionClassifier:
    """One self-attention layer and a linear readout of the last position.

        X = encode_tokens(tokens)                               (B, n, d_in)
        O, α = self_attention(X, W_Q, W_K, W_V)                 (B, n, d_v), (B, n, n)
        logits = o_n W_out + b_out                              (B, n_classes)
        L = cross-entropy(logits, labels)

    With `scaled=False` the scores are not divided by √d_k: computed as self-attention with the
    query projection √d_k · W_Q, which gives exactly Q Kᵀ (its gradient is then √d_k times the
    scaled layer's, by the chain rule).

    After each call of `loss_and_grads`, `dX` holds ∂L/∂X (B, n, d_in): the gradient that
    reaches every input token (lesson 06 measures it at the marked token).

    Initialisation (seeded): W_Q, W_K ~ N(0, 1) so that every entry of q and k has a variance
    of about 1, the assumption behind lesson 03's √d_k (then q · k has variance ≈ d_k);
    W_V ~ N(0, 1); W_out ~ N(0, 1/d_v); b_out = 0.
    """

    def __init__(
        self,
        vocab_size: int,
        d_k: int = 16,
        d_v: int = 16,
        scaled: bool = True,
        seed: int = 0,
        init_scale: float = 1.0,
    ) -> None:
        self.vocab_size = check_count(vocab_size, "vocab_size")
        d_k, d_v = check_count(d_k, "d_k"), check_count(d_v, "d_v")
        init_scale = check_positive(init_scale, "init_scale")
        self.scaled = bool(scaled)
        rng = np.random.default_rng(seed)
        d_in = self.vocab_size + 1
        self.params: Params = {
            "W_Q": init_scale * rng.standard_normal((d_in, d_k)),
            "W_K": init_scale * rng.standard_normal((d_in, d_k)),
            "W_V": rng.standard_normal((d_in, d_v)),
            "W_out": rng.standard_normal((d_v, self.vocab_size)) / math.sqrt(d_v),
            "b_out": np.zeros(self.vocab_size),
        }
        self.dX = np.zeros((0, 0, d_in))

    @property
    def _query_factor(self) -> float:
        """1 for the scaled layer; √d_k without scaling (Q Kᵀ / √d_k with Q = √d_k X W_Q)."""
        return 1.0 if self.scaled else math.sqrt(self.params["W_Q"].shape[1])

    def forward(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X (B, n, d_in), O (B, n, d_v), weights α (B, n, n)) for a batch of tokens."""
        p = self.params
        X = encode_tokens(tokens, self.vocab_size)  # (B, n, d_in)
        O, weights = self_attention(X, p["W_Q"] * self._query_factor, p["W_K"], p["W_V"])
        return X, O, weights

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """The readout of the last position: o_n W_out + b_out, shape (B, n_classes).

        The forward pass of the last query only (the other rows are not read out): the same
        o_n as `forward`, at a fraction of the cost, for evaluating on many sequences.
        """
        p = self.params
        X = encode_tokens(tokens, self.vocab_size)  # (B, n, d_in)
        q_last = X[:, -1:, :] @ (p["W_Q"] * self._query_factor)  # (B, 1, d_k)
        weights = attention_weights(q_last, X @ p["W_K"])  # (B, 1, n)
        o_last = weighted_sum(weights, X @ p["W_V"])[:, 0, :]  # (B, d_v)
        return o_last @ p["W_out"] + p["b_out"]

    def snapshot(self, tokens: np.ndarray) -> np.ndarray:
        """The attention weights α (B, n, n) on these tokens (what `train` records)."""
        return self.forward(tokens)[2]

    def loss_and_grads(
        self, tokens: np.ndarray, labels: np.ndarray
    ) -> tuple[float, Params, np.ndarray]:
        """Mean cross-entropy on the batch, its gradients for every parameter, and the logits."""
        p = self.params
        X, O, _ = self.forward(tokens)
        o_last = O[:, -1, :]  # (B, d_v)
        logits = o_last @ p["W_out"] + p["b_out"]  # (B, C)
        loss, d_logits = cross_entropy(logits, labels)  # d_logits (B, C)
        dO = np.zeros_like(O)  # only the last position is read out
        dO[:, -1, :] = d_logits @ p["W_out"].T  # (B, d_v)
        factor = self._query_factor
        self.dX, dW_Q, dW_K, dW_V = self_attention_backward(
            X, p["W_Q"] * factor, p["W_K"], p["W_V"], dO)  # dX: the gradient at every input token
        grads = {
            "W_Q": dW_Q * factor,  # chain rule through Q = X (factor · W_Q)
            "W_K": dW_K,
            "W_V": dW_V,
            "W_out": o_last.T @ d_logits,  # (d_v, C)
            "b_out": d_logits.sum(axis=0),  # (C,)
        }
        return loss, grads, logits


# --- the optimisers ------------------------------------------------------------------------


class GradientDescent:
    """Plain gradient descent: θ ← θ − lr · ∂L/∂θ, in place."""

    def __init__(self, lr: float) -> None:
        self.lr = check_positive(lr, "lr")

    def step(self, params: Params, grads: Mapping[str, np.ndarray]) -> None:
        for name, theta in params.items():
            theta -= self.lr * grads[name]


class Adam:
    """Adam (Kingma and Ba, 2015, Algorithm 1): gradient descent with a step per parameter
    entry scaled by running averages of the gradient and of its square, in place.

        m ← β₁ m + (1 − β₁) g,    v ← β₂ v + (1 − β₂) g²
        θ ← θ − lr · m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
    """

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr = check_positive(lr, "lr")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m: Params = {}
        self.v: Params = {}

    def step(self, params: Params, grads: Mapping[str, np.ndarray]) -> None:
        self.t += 1
        for name, theta in params.items():
            g = grads[name]
            m = self.m[name] = self.beta1 * self.m.get(name, 0) + (1 - self.beta1) * g
            v = self.v[name] = self.beta2 * self.v.get(name, 0) + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1 ** self.t)
            v_hat = v / (1 - self.beta2 ** self.t)
            theta -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --- the training loop ---------------------------------------------------------------------


@dataclass
class History:
    """What happened during `train`, step by step (step 0 is before the first update).

    loss, accuracy: on each step's fresh training batch, measured before that step's update
    (every batch is new, so these are estimates on unseen data); shape (steps,).
    grad_norms: the gradient's Euclidean norm per parameter per step, shape (steps,) each.
    eval_steps, eval_accuracy, eval_loss: on a fixed held-out set of `eval_size` examples,
    every `eval_every` steps and after the last update (step `steps`).
    snapshots: step -> `model.snapshot(example_tokens)` (for `AttentionClassifier` the
    attention weights (1, n, n)); the example is `example_tokens`, `example_labels`.
    """

    loss: np.ndarray
    accuracy: np.ndarray
    grad_norms: dict[str, np.ndarray]
    eval_steps: np.ndarray
    eval_accuracy: np.ndarray
    eval_loss: np.ndarray
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    example_tokens: np.ndarray | None = None
    example_labels: np.ndarray | None = None


class TrainingDivergedError(FloatingPointError):
    """Training stopped: a step's loss or gradient is not finite (NaN or ±inf).

    step: the step (0-based, as in `History`) whose loss or gradient is not finite, before its
    update, so the parameters are still those of the last finite step; name: the parameter
    whose gradient is not finite, or None when the loss itself is not finite.
    """

    def __init__(self, message: str, step: int, name: str | None) -> None:
        super().__init__(message)
        self.step, self.name = step, name


def check_finite_step(step: int, loss: float, grads: Mapping[str, np.ndarray],
                      lr: float) -> None:
    """Raise `TrainingDivergedError` if the loss or any gradient of this step is not finite.

    Called by a training loop after the backward pass and before the update, so that a
    diverging run stops at its first NaN or inf (naming the step, and the loss or the first
    parameter, in the order of `grads`, whose gradient holds one) instead of training on with
    NaN parameters. Reads its inputs only: a run that does not diverge is unchanged.
    """
    advice = (f"the learning rate lr = {lr:g} is probably too large: try a smaller one, "
              f"e.g. 10x smaller (lr = {lr / 10:g}).")
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"training diverged at step {step}: the loss is {loss}; "
                               f"{advice}", step, None)
    for name, g in grads.items():
        finite = np.isfinite(g)
        if not finite.all():
            raise TrainingDivergedError(
                f"training diverged at step {step}: the gradient of {name} is not finite "
                f"({finite.size - np.count_nonzero(finite)} of its {finite.size} entries are "
                f"NaN or inf; the loss is {loss:.4g}); {advice}", step, name)


def evaluate(model: Model, tokens: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on a batch: accuracy = fraction of argmax logits = label.

    Uses `model.logits(tokens)` if the model has it, else the logits of `loss_and_grads`.
    """
    if hasattr(model, "logits"):
        logits = model.logits(tokens)
        loss, _ = cross_entropy(logits, labels)
    else:
        loss, _, logits = model.loss_and_grads(tokens, labels)
    return loss, float(np.mean(np.argmax(logits, axis=-1) == labels))


def train(
    model: Model,
    task: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
    steps: int,
    lr: float,
    batch_size: int = 32,
    seed: int = 0,
    optimizer: str = "adam",
    snapshot_steps: Iterable[int] = (),
    eval_every: int = 10,
    eval_size: int = 512,
    example: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
) -> History:
    """Train `model` on `task` for `steps` updates; return the `History`.

    Each step draws a fresh batch `task(rng, batch_size)`, computes the loss and gradients
    with `model.loss_and_grads` and updates `model.params` in place with `optimizer`
    ("adam": `Adam(lr)`, or "gd": `GradientDescent(lr)`). Seeded: the batches come from
    `np.random.default_rng(seed)`, the held-out set and the example from seed + 1, so two runs
    with the same arguments (and the same initial model) are identical.

    snapshot_steps: the steps (0 .. steps) at which `model.snapshot(example tokens)` is saved,
    if the model has `snapshot`; `example`: (tokens (1, n), labels (1,)) or None for the
    held-out set's first sequence. progress: print a line ten times during the run.

    Raises `TrainingDivergedError` (a FloatingPointError) at the first step whose loss or gradient
    is not finite, before that step's update: the message names the step, the loss or the
    parameter, and suggests a smaller learning rate.
    """
    steps = check_count(steps, "steps")
    eval_every = check_count(eval_every, "eval_every")
    optimisers = {"adam": Adam, "gd": GradientDescent}
    if optimizer not in optimisers:
        raise ValueError(f"optimizer must be one of {sorted(optimisers)}; got {optimizer!r}.")
    opt = optimisers[optimizer](lr)
    rng = np.random.default_rng(seed)
    eval_tokens, eval_labels = task(np.random.default_rng(seed + 1), check_count(eval_size,
                                                                                 "eval_size"))
    example_tokens, example_labels = example if example is not None else (
        eval_tokens[:1], eval_labels[:1])
    snapshot_steps = {int(s) for s in snapshot_steps if 0 <= s <= steps}
    can_snapshot = hasattr(model, "snapshot")

    loss, accuracy = np.empty(steps), np.empty(steps)
    grad_norms = {name: np.empty(steps) for name in model.params}
    eval_steps, eval_accuracy, eval_loss = [], [], []
    snapshots: dict[int, np.ndarray] = {}

    def record(step: int) -> None:
        if can_snapshot and step in snapshot_steps:
            snapshots[step] = model.snapshot(example_tokens)
        if step % eval_every == 0 or step == steps:
            ev_loss, ev_acc = evaluate(model, eval_tokens, eval_labels)
            eval_steps.append(step), eval_loss.append(ev_loss), eval_accuracy.append(ev_acc)

    for step in range(steps):
        record(step)
        tokens, labels = task(rng, batch_size)
        loss[step], grads, logits = model.loss_and_grads(tokens, labels)
        check_finite_step(step, loss[step], grads, lr)
        accuracy[step] = np.mean(np.argmax(logits, axis=-1) == labels)
        for name, g in grads.items():
            grad_norms[name][step] = np.linalg.norm(g)
        opt.step(model.params, grads)
        if progress and (step + 1) % max(1, steps // 10) == 0:
            print(f"step {step + 1:>6}/{steps}: loss {loss[step]:.3f}, "
                  f"held-out accuracy {eval_accuracy[-1]:.3f}", flush=True)
    record(steps)
    return History(loss, accuracy, grad_norms, np.array(eval_steps), np.array(eval_accuracy),
                   np.array(eval_loss), snapshots, example_tokens, example_labels)


def steps_to_accuracy(history: History, target: float = 0.95) -> int | None:
    """The first evaluation step at which the held-out accuracy reached `target` (None: never)."""
    reached = np.flatnonzero(history.eval_accuracy >= target)
    return int(history.eval_steps[reached[0]]) if reached.size else None


def row_saturation(weights: np.ndarray, threshold: float = 0.99) -> float:
    """The fraction of softmax rows whose largest weight exceeds `threshold` (saturated rows).

    A saturated row is almost one-hot: its Jacobian diag(α) − α αᵀ is almost zero, so almost
    no gradient flows back through it. Shape: weights (..., n) -> a float in [0, 1].
    """
    weights = np.asarray(weights)
    return float(np.mean(weights.max(axis=-1) > threshold))


def per_sequence_grad_norms(model: Model, tokens: np.ndarray,
                            labels: np.ndarray) -> dict[str, np.ndarray]:
    """‖∂L_b/∂θ‖ for each sequence b on its own: the gradient each sequence sends each parameter.

    L_b is the loss of sequence b alone (a batch of one); for a model whose loss is the batch's
    mean, as `AttentionClassifier`'s, the batch's gradient is the mean of these gradients.
    Returns name -> norms of shape (B,), one per sequence, for every entry of `model.params`.
    Costs one `loss_and_grads` call per sequence; changes nothing in the model's parameters.
    """
    tokens, labels = np.asarray(tokens), np.asarray(labels)
    if tokens.shape[:1] != labels.shape:
        raise ValueError(f"tokens {tokens.shape} and labels {labels.shape} must have one label "
                         f"per sequence.")
    per_sequence = [model.loss_and_grads(tokens[b:b + 1], labels[b:b + 1])[1]
                    for b in range(len(labels))]
    return {name: np.array([np.linalg.norm(grads[name]) for grads in per_sequence])
            for name in model.params}


# --- the gradient check --------------------------------------------------------------------


def numerical_gradient(
    f: Callable[[Params], float], params: Mapping[str, np.ndarray], eps: float = 1e-6
) -> Params:
    """∂f/∂θ by central differences: (f(θ + ε e_i) − f(θ − ε e_i)) / 2ε for every entry i.

    f takes a dict of float64 arrays (copies of `params`, perturbed one entry at a time) and
    returns a number. Costs 2 calls of f per entry: for small inputs only.
    """
    eps = check_positive(eps, "eps")
    point = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    grads = {}
    for name, theta in point.items():
        g = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            original = theta[i]
            theta[i] = original + eps
            f_plus = float(f(point))
            theta[i] = original - eps
            f_minus = float(f(point))
            theta[i] = original
            g[i] = (f_plus - f_minus) / (2 * eps)
        grads[name] = g
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / max(‖a‖ + ‖b‖, 1e-300): about 1e-8 or less for a correct float64 gradient."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the gradients have different shapes: {a.shape} and {b.shape}.")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def gradient_check(
    f: Callable[[Params], float],
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    eps: float = 1e-6,
) -> dict[str, float]:
    """Check analytic gradients against central differences: name -> relative error.

    f: the scalar function, called with a dict of float64 arrays keyed like `params`;
    grads: your gradients of f at `params`, same keys and shapes. In float64 with eps = 1e-6
    a correct gradient gives a relative error around 1e-9 or less; a wrong one 1e-2 or more.
    Example (check a backward pass with a random dO, since L = Σ O ⊙ dO has ∂L/∂O = dO):

        params = {"X": X, "W_Q": W_Q, "W_K": W_K, "W_V": W_V}
        loss = lambda p: np.sum(self_attention(p["X"], p["W_Q"], p["W_K"], p["W_V"])[0] * dO)
        grads = dict(zip(params, self_attention_backward(X, W_Q, W_K, W_V, dO)))
        gradient_check(loss, params, grads)
    """
    missing = set(params) - set(grads)
    if missing:
        raise ValueError(f"grads has no entry for {sorted(missing)}.")
    numerical = numerical_gradient(f, params, eps)
    return {name: relative_error(grads[name], numerical[name]) for name in params}
