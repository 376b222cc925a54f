"""Long-range dependencies, measured: recurrent networks (Elman RNN, GRU) against one self-attention
layer (lesson 06).

Three measurements, each in the course's notation (positions are numbered 1 .. n in the text
and 0 .. n − 1 in the arrays):

- path length: the fewest steps information takes from token 1 to token n, found by a
  breadth-first search in each model's dependency graph (RNN: n − 1, self-attention: 1);
- gradient decay: ‖∂h_t/∂x_1‖ of a tanh RNN (a product of t − 1 step Jacobians, from
  `course_lib.rnn.rnn_input_jacobians`) against ‖∂o_t/∂x_1‖ of self-attention (exact, from
  `attention_input_jacobian`), with the fitted exponential decay rate;
- trained models: a vanilla RNN, a GRU and one attention layer learn the marked-token task of
  `course_lib.training` at growing distance (accuracy, steps to 90%, the gradient that reaches
  the marked token).

The experiments import numpy, threadpoolctl, the math modules and `training` only: they return
numbers and never draw (`course_lib.viz` draws their results).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from course_lib.attention import (
    softmax,
)
from course_lib.fitting import fit_exponential
from course_lib.rnn import gru_backward, gru_forward, rnn_backward, rnn_forward, rnn_input_jacobians
from course_lib.shapes import check_count
from course_lib.training import (
    AttentionClassifier,
    MarkedTokenTask,
    cross_entropy,
    encode_tokens,
    steps_to_accuracy,
    train,
)

__all__ = [
    "Graph",
    "rnn_dependency_graph",
    "attention_dependency_graph",
    "path_lengths",
    "shortest_path_length",
    "random_recurrent_matrix",
    "rnn_gradient_norms",
    "attention_input_jacobian",
    "attention_gradient_norms",
    "fit_decay_rate",
    "rnn_gradient_decay",
    "attention_gradient_decay",
    "RecurrentClassifier",
    "MODELS",
    "make_model",
    "parameter_count",
    "LongRangeConfig",
    "QUICK_LEARNING_RATES",
    "RunResult",
    "train_run",
    "LongRangeResult",
    "choose_learning_rate",
    "long_range_experiment",
    "format_table",
]

Graph = dict[int, list[int]]
"""A dependency graph as adjacency lists: graph[j] lists the positions whose state is computed
directly from the state of position j (the arrows j → i along which information flows)."""


# --- path length ---------------------------------------------------------------------------


def rnn_dependency_graph(n: int) -> Graph:
    """The dependency graph of an RNN over positions 1 .. n: one arrow t → t + 1.

    h_{t+1} = tanh(x_{t+1} W_xh + h_t W_hh + b_h) reads the state h_t and nothing earlier, so
    position t feeds position t + 1 only.
    """
    n = check_count(n, "n")
    return {t: [t + 1] if t < n else [] for t in range(1, n + 1)}


def attention_dependency_graph(n: int, mask: np.ndarray | None = None) -> Graph:
    """The dependency graph of one self-attention layer over positions 1 .. n: arrows j → i.

    o_i = Σ_j α_ij v_j reads every value v_j that token i may attend to (mask[i, j] True; no
    mask = every pair), so there is an arrow j → i for each of them.
    """
    n = check_count(n, "n")
    allowed = np.ones((n, n), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return {j: [i for i in range(1, n + 1) if allowed[i - 1, j - 1]] for j in range(1, n + 1)}


def path_lengths(graph: Mapping[int, Sequence[int]], source: int) -> dict[int, int]:
    """Breadth-first search: the fewest arrows from `source` to every position it reaches.

    Returns {position: number of steps}; `source` itself is 0 steps away.
    """
    steps = {source: 0}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for successor in graph.get(node, []):
            if successor not in steps:  # the first visit is along a shortest path
                steps[successor] = steps[node] + 1
                queue.append(successor)
    return steps


def shortest_path_length(graph: Mapping[int, Sequence[int]], source: int, target: int) -> int:
    """The fewest steps information takes from position `source` to position `target`.

    Raises ValueError when `target` cannot be reached from `source`.
    """
    steps = path_lengths(graph, source)
    if target not in steps:
        raise ValueError(f"position {target} cannot be reached from position {source}.")
    return steps[target]


# --- gradient decay ------------------------------------------------------------------------


def random_recurrent_matrix(
    d_h: int, spectral_radius: float, rng: np.random.Generator
) -> np.ndarray:
    """A random Gaussian W_hh (d_h, d_h), rescaled so that its largest |eigenvalue| is ρ.

    Below ρ = 1 the linear part of the recurrence, h ↦ h W_hh, shrinks every direction in the
    long run (by about ρ per step); tanh'(z) ≤ 1 only shrinks it further.
    """
    W = rng.standard_normal((d_h, d_h))
    return W * (spectral_radius / np.max(np.abs(np.linalg.eigvals(W))))


def rnn_gradient_norms(
    X: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray
) -> np.ndarray:
    """‖∂h_t/∂x_1‖ for t = 1 .. n (the spectral norm: the largest stretch of any direction).

    ∂h_t/∂x_1 = diag(1 − h_t²) W_hhᵀ · ... · diag(1 − h_2²) W_hhᵀ · diag(1 − h_1²) W_xhᵀ,
    exact, from `rnn_input_jacobians`. Shapes: X (n, d_in) -> (n,).
    """
    J = rnn_input_jacobians(X, W_xh, W_hh, b_h)  # (n, d_h, d_in)
    return np.linalg.norm(J, ord=2, axis=(-2, -1))


def attention_input_jacobian(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, i: int, j: int
) -> np.ndarray:
    """∂o_i/∂x_j of self-attention, exact: entry [a, b] is ∂o_i[a] / ∂x_j[b].

    With q_i, k_j, v_j the rows of Q, K, V, α the weights, o_i = Σ_k α_ik v_k and d = d_k:

        ∂o_i/∂x_j = α_ij (W_Vᵀ + (v_j − o_i)ᵀ (q_i W_Kᵀ) / √d)          (x_j as a value, a key)
                  + [i = j] Σ_k α_ik (v_k − o_i)ᵀ (k_k W_Qᵀ) / √d       (x_i also makes the query)

    Rows i and j are 0-based array indices. Shapes: X (n, d_model), W_Q and W_K (d_model, d_k),
    W_V (d_model, d_v) -> (d_v, d_model).
    """
    X = np.asarray(X, dtype=np.float64)
    Q, K, V = X @ W_Q, X @ W_K, X @ W_V
    sqrt_d = math.sqrt(Q.shape[-1])
    alpha = softmax(Q[i] @ K.T / sqrt_d)  # row i of the weights, (n,)
    o_i = alpha @ V
    J = alpha[j] * (W_V.T + np.outer(V[j] - o_i, Q[i] @ W_K.T) / sqrt_d)
    if i == j:
        J = J + (alpha[:, None] * (V - o_i)).T @ (K @ W_Q.T) / sqrt_d
    return J


def attention_gradient_norms(
    X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray
) -> np.ndarray:
    """‖∂o_t/∂x_1‖ for t = 1 .. n: spectral norms of `attention_input_jacobian`.

    Shapes: X (n, d_model), W_Q and W_K (d_model, d_k), W_V (d_model, d_v) -> (n,).
    """
    J = np.stack([attention_input_jacobian(X, W_Q, W_K, W_V, t, 0) for t in range(len(X))])
    return np.linalg.norm(J, ord=2, axis=(-2, -1))


def fit_decay_rate(t: np.ndarray, norms: np.ndarray) -> tuple[float, float]:
    """The least-squares line ln‖J_t‖ = rate · t + intercept: returns (rate, intercept).

    ‖J_t‖ ≈ e^intercept · e^(rate · t): the norm is multiplied by e^rate at every step, so a
    rate of −0.7 halves it each step and a rate of 0 means no decay with distance.
    """
    rate, c = fit_exponential(t, norms)  # the course's one exponential fit
    return rate, math.log(c)


def rnn_gradient_decay(
    n: int,
    spectral_radius: float,
    *,
    d_in: int = 8,
    d_h: int = 16,
    input_scale: float = 0.5,
    n_sequences: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """‖∂h_t/∂x_1‖ for t = 1 .. n, geometric mean over `n_sequences` random RNNs and inputs.

    Each trial draws X ~ N(0, 1) of shape (n, d_in), W_xh ~ N(0, input_scale² / d_in) (so each
    x_t W_xh has entries of standard deviation about input_scale), b_h = 0 and W_hh from
    `random_recurrent_matrix(d_h, spectral_radius)`. Returns shape (n,).
    """
    rng = np.random.default_rng(seed)
    logs = []
    for _ in range(n_sequences):
        X = rng.standard_normal((n, d_in))
        W_xh = rng.standard_normal((d_in, d_h)) * (input_scale / math.sqrt(d_in))
        W_hh = random_recurrent_matrix(d_h, spectral_radius, rng)
        logs.append(np.log(rnn_gradient_norms(X, W_xh, W_hh, np.zeros(d_h))))
    return np.exp(np.mean(logs, axis=0))


def attention_gradient_decay(
    n: int, *, d_model: int = 16, d_k: int = 16, n_sequences: int = 8, seed: int = 0
) -> np.ndarray:
    """‖∂o_t/∂x_1‖ for t = 1 .. n in one sequence of length n, geometric mean over trials.

    Each trial draws X ~ N(0, 1) of shape (n, d_model) and W_Q, W_K, W_V ~ N(0, 1/d_model)
    (d_v = d_model). No mask: every token attends to every token. Returns shape (n,).
    """
    rng = np.random.default_rng(seed)
    logs = []
    for _ in range(n_sequences):
        X = rng.standard_normal((n, d_model))
        W_Q, W_K = (rng.standard_normal((d_model, d_k)) / math.sqrt(d_model) for _ in range(2))
        W_V = rng.standard_normal((d_model, d_model)) / math.sqrt(d_model)
        logs.append(np.log(attention_gradient_norms(X, W_Q, W_K, W_V)))
    return np.exp(np.mean(logs, axis=0))


# --- trained models: a vanilla RNN, a GRU and one attention layer ---------------------------


class RecurrentClassifier:
    """A recurrent network and a linear readout of its last state, on the marked-token task.

        X = encode_tokens(tokens)                     (B, n, d_in)   one-hot word and the mark
        H = rnn_forward(X, W_xh, W_hh, b_h)           (B, n, d_h)    cell="rnn"  (Elman, tanh)
        H = gru_forward(X, W_x, W_h, b_x, b_h)        (B, n, d_h)    cell="gru"  (torch.nn.GRU)
        logits = h_n W_out + b_out                    (B, n_classes)
        L = cross-entropy(logits, labels)

    The gradients come from backpropagation through time (`rnn_backward`, `gru_backward`),
    the same protocol as `training.AttentionClassifier`: `params` and
    `loss_and_grads(tokens, labels) -> (loss, grads, logits)`. After each call `dX` holds
    ∂L/∂X (B, n, d_in), the gradient that reaches every input token.

    Initialisation (seeded), PyTorch's default for `nn.RNN` and `nn.GRU`: every recurrent
    weight and bias ~ U(−1/√d_h, 1/√d_h); the readout as in `AttentionClassifier`:
    W_out ~ N(0, 1/d_h), b_out = 0.
    """

    _CELLS = {
        "rnn": (("W_xh", "W_hh", "b_h"), 1, rnn_forward, rnn_backward),
        "gru": (("W_x", "W_h", "b_x", "b_h"), 3, gru_forward, gru_backward),
    }

    def __init__(self, cell: str, vocab_size: int, d_h: int = 32, seed: int = 0) -> None:
        if cell not in self._CELLS:
            raise ValueError(f'cell must be "rnn" or "gru"; got {cell!r}.')
        self.cell = cell
        self.vocab_size = check_count(vocab_size, "vocab_size")
        d_h = check_count(d_h, "d_h")
        names, gates, self._forward, self._backward = self._CELLS[cell]
        rng = np.random.default_rng(seed)
        d_in, bound = self.vocab_size + 1, 1 / math.sqrt(d_h)
        shapes = {"W_xh": (d_in, d_h), "W_hh": (d_h, d_h), "W_x": (d_in, gates * d_h),
                  "W_h": (d_h, gates * d_h), "b_x": (gates * d_h,), "b_h": (gates * d_h,)}
        self._names = names
        self.params: dict[str, np.ndarray] = {
            name: rng.uniform(-bound, bound, size=shapes[name]) for name in names}
        self.params["W_out"] = rng.standard_normal((d_h, self.vocab_size)) / math.sqrt(d_h)
        self.params["b_out"] = np.zeros(self.vocab_size)
        self.dX = np.zeros((0, 0, d_in))

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """The readout of the last state, h_n W_out + b_out, shape (B, n_classes); forward only."""
        X = encode_tokens(tokens, self.vocab_size)  # (B, n, d_in)
        H = self._forward(X, *(self.params[name] for name in self._names))  # (B, n, d_h)
        return H[:, -1, :] @ self.params["W_out"] + self.params["b_out"]

    def loss_and_grads(
        self, tokens: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """Mean cross-entropy on the batch, its gradients for every parameter, and the logits."""
        p = self.params
        X = encode_tokens(tokens, self.vocab_size)  # (B, n, d_in)
        weights = [p[name] for name in self._names]
        H = self._forward(X, *weights)  # (B, n, d_h)
        logits = H[:, -1, :] @ p["W_out"] + p["b_out"]  # (B, C): read out the last state
        loss, d_logits = cross_entropy(logits, labels)
        dH = np.zeros_like(H)  # only the last state is read out
        dH[:, -1, :] = d_logits @ p["W_out"].T
        self.dX, *d_weights, _ = self._backward(X, *weights, dH)  # BPTT
        grads = dict(zip(self._names, d_weights, strict=True))
        grads["W_out"] = H[:, -1, :].T @ d_logits  # (d_h, C)
        grads["b_out"] = d_logits.sum(axis=0)
        return loss, grads, logits


MODELS = ("rnn", "gru", "attention")
"""The three models of the comparison, in the order of every table."""


def make_model(name: str, vocab_size: int, *, d_h: int = 32, d_k: int = 16, seed: int = 0
               ) -> RecurrentClassifier | AttentionClassifier:
    """A fresh model: "rnn" (Elman, width d_h), "gru" (width d_h) or "attention"
    (`AttentionClassifier` with d_k = d_v, scaled)."""
    if name == "attention":
        return AttentionClassifier(vocab_size, d_k=d_k, d_v=d_k, seed=seed)
    return RecurrentClassifier(name, vocab_size, d_h=d_h, seed=seed)


def parameter_count(model: object) -> int:
    """The number of learned numbers: Σ over `model.params` of each array's size."""
    return int(sum(np.size(value) for value in model.params.values()))


class _MarkedGradientProbe:
    """Wraps a model for `train`: on every training batch (`train` calls `loss_and_grads` for
    training only; evaluation uses `logits`), records the mean over sequences of
    ‖∂L_b/∂x_marked‖, the gradient of each sequence's own loss L_b = B · (its share of the
    batch mean) at the input row of its marked token."""

    def __init__(self, model: RecurrentClassifier | AttentionClassifier) -> None:
        self.model = model
        self.params = model.params
        self.logits = model.logits
        self.norms: list[float] = []

    def loss_and_grads(
        self, tokens: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        result = self.model.loss_and_grads(tokens, labels)
        rows, marked = np.nonzero(tokens >= self.model.vocab_size)  # one mark per sequence
        per_sequence = len(tokens) * self.model.dX[rows, marked]  # (B, d_in)
        self.norms.append(float(np.mean(np.linalg.norm(per_sequence, axis=-1))))
        return result


@dataclass(frozen=True)
class LongRangeConfig:
    """The sizes of the experiment. `quick()` is what lesson 06 runs; the default is the full grid.

    distances: the marked token sits this many positions before the last one, in sequences of
    n = distance + 1 tokens (so it is always the first token). Every model gets the same
    optimiser (Adam), batch size, step budget and held-out set. Its learning rate is chosen
    once per model from `lr_grid`, by training at `tuning_distance` on `lr_seed` (a seed the
    reported runs never use) and keeping the highest final held-out accuracy, then the fewest
    steps to the target, then the lowest held-out loss. `learning_rates` (model -> rate)
    skips the tuning and uses the rates given.

    The held-out accuracy is measured on `eval_size` sequences every `eval_every` steps (for the
    steps to the target); the accuracy after training on `test_size` fresh sequences.
    """

    distances: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    seeds: int = 3
    steps: int = 600
    batch_size: int = 32
    vocab_size: int = 8
    d_h: int = 32
    d_k: int = 16
    lr_grid: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    tuning_distance: int = 16
    learning_rates: tuple[tuple[str, float], ...] | None = None
    eval_every: int = 25
    eval_size: int = 128
    test_size: int = 1024
    lr_seed: int = 1000
    target: float = 0.9

    @classmethod
    def quick(cls) -> LongRangeConfig:
        """Lesson 06's grid: three distances, one seed, 300 steps, and the learning rates the
        default grid's tuning chose (`QUICK_LEARNING_RATES`) instead of tuning again."""
        return cls(distances=(2, 8, 32), seeds=1, steps=300,
                   learning_rates=tuple(QUICK_LEARNING_RATES.items()))


QUICK_LEARNING_RATES = {"rnn": 3e-2, "gru": 3e-2, "attention": 3e-2}
"""What `choose_learning_rate` picks on the default grid (`python -m course_lib experiment
longrange` prints it); the quick grid reuses these rates to stay within the lesson's time."""


@dataclass
class RunResult:
    """One training run: final held-out accuracy, steps to the target accuracy (None: not
    reached), ‖∂L_b/∂x_marked‖ per training step, the held-out accuracy curve, and the trained
    model (None when not kept)."""

    accuracy: float
    steps_to_target: int | None
    marked_gradient: np.ndarray
    eval_steps: np.ndarray
    eval_accuracy: np.ndarray
    final_loss: float
    model: RecurrentClassifier | AttentionClassifier | None = None


def train_run(name: str, distance: int, lr: float, seed: int,
              config: LongRangeConfig) -> RunResult:
    """Train model `name` from scratch at one distance with one learning rate and seed.

    The model's initial weights and the training batches both come from `seed`; the held-out
    set from seed + 1 (see `training.train`), the test set from seed + 2.
    """
    task = MarkedTokenTask(n=distance + 1, vocab_size=config.vocab_size, distance=distance)
    model = make_model(name, config.vocab_size, d_h=config.d_h, d_k=config.d_k, seed=seed)
    probe = _MarkedGradientProbe(model)
    history = train(probe, task, config.steps, lr, batch_size=config.batch_size, seed=seed,
                    eval_every=config.eval_every, eval_size=config.eval_size)
    test_tokens, test_labels = task(np.random.default_rng(seed + 2), config.test_size)
    return RunResult(
        accuracy=float(np.mean(model.logits(test_tokens).argmax(axis=-1) == test_labels)),
        steps_to_target=steps_to_accuracy(history, config.target),
        marked_gradient=np.array(probe.norms),
        eval_steps=history.eval_steps,
        eval_accuracy=history.eval_accuracy,
        final_loss=float(history.eval_loss[-1]),
        model=model,
    )


@dataclass
class LongRangeResult:
    """The experiment's numbers, per model (`MODELS`), one row per seed and one column per
    distance. steps_to_target: −1 where not reached. marked_gradient: the median over the
    training steps of ‖∂L_b/∂x_marked‖ (see `_MarkedGradientProbe`); initial_gradient: the
    same at step 0, before any update."""

    config: LongRangeConfig
    parameters: dict[str, int]
    learning_rate: dict[str, float]
    accuracy: dict[str, np.ndarray]  # (seeds, len(distances))
    steps_to_target: dict[str, np.ndarray]  # (seeds, len(distances)), −1: not reached
    marked_gradient: dict[str, np.ndarray]  # (seeds, len(distances))
    initial_gradient: dict[str, np.ndarray]  # (seeds, len(distances))
    seconds: float = 0.0
    models: dict[tuple[str, int, int], RecurrentClassifier | AttentionClassifier] = field(
        default_factory=dict)
    """The trained models by (name, distance, seed), to look inside them."""

    def mean_accuracy(self, name: str) -> np.ndarray:
        """Held-out accuracy after training, mean over seeds, per distance."""
        return self.accuracy[name].mean(axis=0)

    def accuracy_spread(self, name: str) -> np.ndarray:
        """Held-out accuracy after training, min and max over seeds: shape (2, len(distances))."""
        return np.stack([self.accuracy[name].min(axis=0), self.accuracy[name].max(axis=0)])

    def gradient(self, name: str, initial: bool = False) -> np.ndarray:
        """‖∂L_b/∂x_marked‖ per distance, geometric mean over seeds (gradients span many orders
        of magnitude): the median over training, or with `initial` the value at step 0."""
        values = self.initial_gradient[name] if initial else self.marked_gradient[name]
        return np.exp(np.mean(np.log(np.maximum(values, 1e-300)), axis=0))

    def steps_to_90(self, name: str) -> list[int | None]:
        """Per distance: the steps until every seed reached the target (the slowest seed), or
        None when some seed never reached it within the budget."""
        steps = self.steps_to_target[name]
        return [None if (column < 0).any() else int(column.max()) for column in steps.T]

    def to_json(self) -> dict:
        """The JSON of issue 15, plus the spread, the gradient and the settings."""
        c = self.config
        models = {}
        for name in MODELS:
            models[name] = {
                "accuracy": self.mean_accuracy(name).round(4).tolist(),
                "steps_to_90": self.steps_to_90(name),
                "accuracy_min": self.accuracy_spread(name)[0].round(4).tolist(),
                "accuracy_max": self.accuracy_spread(name)[1].round(4).tolist(),
                "accuracy_per_seed": self.accuracy[name].round(4).tolist(),
                "steps_to_90_per_seed": [[None if s < 0 else int(s) for s in row]
                                         for row in self.steps_to_target[name]],
                "gradient_at_marked_token": self.gradient(name).tolist(),
                "gradient_at_marked_token_initial": self.gradient(name, initial=True).tolist(),
                "learning_rate": self.learning_rate[name],
                "parameters": self.parameters[name],
            }
        return {"distances": list(c.distances), "models": models, "seeds": c.seeds,
                "steps": c.steps, "batch_size": c.batch_size, "vocab_size": c.vocab_size,
                "d_h": c.d_h, "d_k": c.d_k, "lr_grid": list(c.lr_grid),
                "tuning_distance": c.tuning_distance, "tuned": c.learning_rates is None,
                "target": c.target,
                "seconds": round(self.seconds, 1)}


def choose_learning_rate(name: str, config: LongRangeConfig) -> float:
    """The learning rate of `config.lr_grid` with the highest final accuracy, then the fewest
    steps to the target, then the lowest held-out loss, trained at `config.tuning_distance` on
    `config.lr_seed`, a seed the reported runs never use."""
    if config.learning_rates is not None:
        return dict(config.learning_rates)[name]
    runs = {lr: train_run(name, config.tuning_distance, lr, config.lr_seed, config)
            for lr in config.lr_grid}

    def score(lr: float) -> tuple[float, float, float]:
        run = runs[lr]
        steps = config.steps + 1 if run.steps_to_target is None else run.steps_to_target
        return run.accuracy, -steps, -run.final_loss

    return max(runs, key=score)


def long_range_experiment(
    config: LongRangeConfig | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> LongRangeResult:
    """Train the three models (`MODELS`) at every distance of `config` and measure them.

    Per model: choose the learning rate (`choose_learning_rate`); then, per distance, train
    `config.seeds` runs on seeds 0 .. seeds − 1 and record the test accuracy after
    `config.steps` updates, the steps to `config.target` held-out accuracy, and the gradient
    reaching the marked token. `progress(done, total, label)` is called after every run. BLAS
    runs on one thread: the matrices are small, and threads only add overhead.
    """
    config = config or LongRangeConfig()
    with threadpool_limits(1):
        return _experiment(config, progress)


def _experiment(config: LongRangeConfig,
                progress: Callable[[int, int, str], None] | None) -> LongRangeResult:
    start = time.perf_counter()
    shape = (config.seeds, len(config.distances))
    fields = {key: {name: np.zeros(shape) for name in MODELS}
              for key in ("accuracy", "steps", "gradient", "initial")}
    learning_rate, models = {}, {}
    tuning = 0 if config.learning_rates is not None else len(config.lr_grid)
    total = len(MODELS) * (tuning + len(config.distances) * config.seeds)
    done = 0
    for name in MODELS:
        learning_rate[name] = lr = choose_learning_rate(name, config)
        done += tuning
        for k, distance in enumerate(config.distances):
            for seed in range(config.seeds):
                run = train_run(name, distance, lr, seed, config)
                fields["accuracy"][name][seed, k] = run.accuracy
                fields["steps"][name][seed, k] = (
                    -1 if run.steps_to_target is None else run.steps_to_target)
                fields["gradient"][name][seed, k] = np.median(run.marked_gradient)
                fields["initial"][name][seed, k] = run.marked_gradient[0]
                models[name, distance, seed] = run.model
                done += 1
                if progress:
                    progress(done, total, f"{name}, distance {distance}, seed {seed}")
    parameters = {name: parameter_count(make_model(name, config.vocab_size, d_h=config.d_h,
                                                   d_k=config.d_k)) for name in MODELS}
    return LongRangeResult(config, parameters, learning_rate, fields["accuracy"],
                           {name: s.astype(int) for name, s in fields["steps"].items()},
                           fields["gradient"], fields["initial"],
                           seconds=time.perf_counter() - start, models=models)


def format_table(result: LongRangeResult) -> str:
    """The experiment as a plain-text table: per model, a row of accuracy (mean and min–max
    over seeds), steps to the target, the gradient at the marked token, the learning rate."""
    c = result.config
    width = 13
    head = f"{'distance':<28}" + "".join(f"{d:>{width}}" for d in c.distances)
    tuned = (f"chosen per model from {list(c.lr_grid)} at distance {c.tuning_distance}"
             if c.learning_rates is None else "fixed (QUICK_LEARNING_RATES)")
    lines = [f"{c.seeds} seed(s), {c.steps} Adam steps of batch {c.batch_size}; "
             f"learning rate {tuned}", head]
    for name in MODELS:
        lo, hi = result.accuracy_spread(name)
        rows = {
            "accuracy (mean)": [f"{a:.3f}" for a in result.mean_accuracy(name)],
            "accuracy (min-max)": [f"{a:.2f}-{b:.2f}" for a, b in zip(lo, hi, strict=True)],
            f"steps to {c.target:.0%}": ["not reached" if s is None else str(s)
                                         for s in result.steps_to_90(name)],
            "‖∂L/∂x_marked‖ (median)": [f"{g:.1e}" for g in result.gradient(name)],
        }
        lines.append(f"{name}: {result.parameters[name]} parameters, "
                     f"learning rate {result.learning_rate[name]:g}")
        lines += [f"  {label:<26}" + "".join(f"{v:>{width}}" for v in values)
                  for label, values in rows.items()]
    return "\n".join(lines)
