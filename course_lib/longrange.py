"""Long-range dependencies, measured: recurrent networks (Elman RNN, GRU) against one self-attention
layer (lesson 06).

Three measurements, each in the course's notation (positions are numbered 1 .. n in the text
and 0 .. n − 1 in the arrays):

- path length: the fewest steps information takes from token 1 to token n, found by a
  breadth-first search in each model's dependency graph (RNN: n − 1, self-attention: 1);
- gradient decay: ‖∂h_t/∂x_1‖ of a tanh RNN (a product of t − 1 step Jacobians, from
  `course_lib.rnn.rnn_input_jacobians`) against ‖∂o_t/∂x_1‖ of self-attention (exact, from
  `attention_input_jacobian`), with the fitted exponential decay rate;
- trained models, over several seeds: a vanilla RNN, a GRU and one attention layer learn two
  tasks at growing distance, the marked-token task of `course_lib.training` (the far token is
  found by its content, a mark) and the steps-back task (`StepsBackTask`: found by its position
  only, where attention also gets position encodings). Accuracy, steps to 90%, and the far
  token's Jacobian ‖∂r/∂x_far‖ before and after training (`far_token_sensitivity`).

The full grid takes many minutes: `python -m course_lib experiment longrange --jobs 2 --json
course_lib/results/longrange_full.json` writes the results that ship with the package, with how,
when and where they were made; `load_results` reads them and `disagreements` says whether a fresh
run of a small sub-grid agrees with them.

The experiments import numpy, threadpoolctl, the math modules and `training` only: they return
numbers and never draw (`course_lib.viz` draws their results).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from course_lib.attention import (
    self_attention,
    self_attention_backward,
    sinusoidal_positions,
    softmax,
)
from course_lib.fitting import fit_exponential
from course_lib.rnn import (
    gru_backward,
    gru_forward,
    gru_update_gates,
    rnn_backward,
    rnn_forward,
    rnn_input_jacobians,
)
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
    "PositionalAttentionClassifier",
    "MODELS",
    "POSITIONS",
    "STEPS_BACK_MODELS",
    "TASKS",
    "StepsBackTask",
    "make_model",
    "parameter_count",
    "far_token_jacobian",
    "far_token_sensitivity",
    "update_gates",
    "units_holding",
    "LongRangeConfig",
    "make_task",
    "RunResult",
    "train_run",
    "choose_learning_rate",
    "LongRangeResult",
    "long_range_experiment",
    "format_table",
    "RESULTS",
    "provenance",
    "results_json",
    "load_results",
    "disagreements",
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

    def states(self, tokens: np.ndarray) -> np.ndarray:
        """All hidden states H (B, n, d_h) on these tokens."""
        X = encode_tokens(tokens, self.vocab_size)
        return self._forward(X, *(self.params[name] for name in self._names))

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """The readout of the last state, h_n W_out + b_out, shape (B, n_classes); forward only."""
        return self.states(tokens)[:, -1, :] @ self.params["W_out"] + self.params["b_out"]

    def input_gradient(self, tokens: np.ndarray, d_readout: np.ndarray) -> np.ndarray:
        """∂(Σ r ⊙ d_readout)/∂X (B, n, d_in): backpropagation through time from a gradient
        d_readout (B, d_h) on the state read out, r = h_n."""
        X = encode_tokens(tokens, self.vocab_size)
        dH = np.zeros((*X.shape[:-1], self.params["W_out"].shape[0]))
        dH[:, -1, :] = d_readout
        return self._backward(X, *(self.params[name] for name in self._names), dH)[0]

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


class PositionalAttentionClassifier(AttentionClassifier):
    """`AttentionClassifier` whose input rows also carry their position:

        x_t = [one-hot word, mark | PE_t / ‖PE_t‖],   PE = sinusoidal_positions(n, d_pos)

    Concatenating is adding in a wider space: x_t W_Q = (word part) W_Q_word + PE_t W_Q_pos,
    the sum of a word's and a position's projection, as with Vaswani et al.'s X + PE. Each
    PE_t has the length √(d_pos / 2) (a sine and a cosine per pair of columns); divided by it,
    a position weighs as much as a one-hot word at initialisation. The weights over the wider
    rows are drawn as in `AttentionClassifier`; the rest (loss, backward pass) is inherited.
    """

    def __init__(self, vocab_size: int, n: int, d_k: int = 16, d_v: int = 16, d_pos: int = 16,
                 seed: int = 0) -> None:
        super().__init__(vocab_size, d_k=d_k, d_v=d_v, seed=seed)
        self.n, d_pos = check_count(n, "n"), check_count(d_pos, "d_pos")
        self.positions = sinusoidal_positions(self.n, d_pos) / math.sqrt(d_pos / 2)  # (n, d_pos)
        rng = np.random.default_rng(seed)
        d_in = self.vocab_size + 1 + d_pos
        self.params.update(W_Q=rng.standard_normal((d_in, d_k)),
                           W_K=rng.standard_normal((d_in, d_k)),
                           W_V=rng.standard_normal((d_in, d_v)))

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """The input rows [encode_tokens(tokens) | positions], shape
        (B, n, vocab_size + 1 + d_pos)."""
        X = encode_tokens(tokens, self.vocab_size)
        P = np.broadcast_to(self.positions[: X.shape[-2]],
                            (*X.shape[:-1], self.positions.shape[1]))
        return np.concatenate([X, P], axis=-1)

    def forward(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X (B, n, d_in), O (B, n, d_v), weights α (B, n, n)), X with the positions."""
        p = self.params
        X = self.encode(tokens)
        O, weights = self_attention(X, p["W_Q"] * self._query_factor, p["W_K"], p["W_V"])
        return X, O, weights

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """The readout of the last position, o_n W_out + b_out, shape (B, n_classes)."""
        return self.forward(tokens)[1][:, -1, :] @ self.params["W_out"] + self.params["b_out"]


MODELS = ("rnn", "gru", "attention")
"""The three models of the comparison on the marked-token task, in the order of every table."""

POSITIONS = "attention+positions"
"""One attention layer whose input rows carry sinusoidal positions
(`PositionalAttentionClassifier`)."""

STEPS_BACK_MODELS = (*MODELS, POSITIONS)
"""The models of the steps-back task: the three, and attention with positions."""

TASKS = {
    "marked": "name the marked token; the mark is on the first token, `distance` steps before "
              "the last (found by its content)",
    "steps_back": "name the token `distance` steps back from the last one; no mark (found by "
                  "its position only)",
}
"""The two tasks of the experiment, in words. Either way a sequence has distance + 1 tokens."""


@dataclass(frozen=True)
class StepsBackTask:
    """Name the word k steps back from the last token: `task(rng, batch_size) -> (tokens, labels)`.

    n random words 0 .. vocab_size − 1, no mark; the label is the word at position n − k
    (1-based). Nothing but its position tells that token apart, so one attention layer
    without positions cannot find it (its output at the last token is the same for any order
    of the others). Tokens (batch_size, n) int64, labels (batch_size,) int64.
    """

    n: int
    vocab_size: int = 8
    k: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.k < self.n:
            raise ValueError(f"k must be a whole number from 1 to n − 1 = {self.n - 1}; "
                             f"got {self.k!r}.")

    def __call__(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        words = rng.integers(0, self.vocab_size, size=(check_count(batch_size, "batch_size"),
                                                       self.n)).astype(np.int64)
        return words, words[:, self.n - 1 - self.k].copy()


Model = RecurrentClassifier | AttentionClassifier


def make_model(name: str, vocab_size: int, *, d_h: int = 32, d_k: int = 16, seed: int = 0,
               n: int | None = None, d_pos: int = 16) -> Model:
    """A fresh model: "rnn" (Elman, width d_h), "gru" (width d_h), "attention"
    (`AttentionClassifier` with d_k = d_v, scaled) or "attention+positions"
    (`PositionalAttentionClassifier` for sequences of n tokens)."""
    if name == "attention":
        return AttentionClassifier(vocab_size, d_k=d_k, d_v=d_k, seed=seed)
    if name == POSITIONS:
        if n is None:
            raise ValueError(f"{POSITIONS} needs the sequence length n.")
        return PositionalAttentionClassifier(vocab_size, n, d_k=d_k, d_v=d_k, d_pos=d_pos,
                                             seed=seed)
    return RecurrentClassifier(name, vocab_size, d_h=d_h, seed=seed)


def parameter_count(model: object) -> int:
    """The number of learned numbers: Σ over `model.params` of each array's size."""
    return int(sum(np.size(value) for value in model.params.values()))


# --- what reaches the far token: the read-out state's Jacobian, and the GRU's gates ------------


def _input_gradient(model: Model, tokens: np.ndarray, d_readout: np.ndarray) -> np.ndarray:
    """∂(Σ r ⊙ d_readout)/∂X for the state r each model reads out (h_n, or o_n)."""
    if isinstance(model, RecurrentClassifier):
        return model.input_gradient(tokens, d_readout)
    X = model.encode(tokens) if isinstance(model, PositionalAttentionClassifier) else (
        encode_tokens(tokens, model.vocab_size))
    p = model.params
    dO = np.zeros((*X.shape[:-1], d_readout.shape[-1]))
    dO[:, -1, :] = d_readout  # only o_n is read out
    return self_attention_backward(X, p["W_Q"] * model._query_factor, p["W_K"], p["W_V"], dO)[0]


def far_token_jacobian(model: Model, tokens: np.ndarray, position: int) -> np.ndarray:
    """∂r/∂x_position for every sequence, exact: r is the state the model reads out (h_n of
    the RNN and the GRU, o_n of attention) and x the token's row (one-hot word and mark; not
    its position encoding). Entry [b, a, c] = ∂r_b[a] / ∂x_b[c].

    One backward pass per unit a of r, with the gradient e_a on r. The loss gradient that
    reaches the token is ∂L/∂x = (∂L/∂r) · J: the first factor says how wrong the answer is
    (it shrinks as the model learns), J how much of it the path lets through.
    Shapes: tokens (B, n) -> (B, d_r, vocab_size + 1).
    """
    tokens = np.asarray(tokens)
    B, d_r = len(tokens), model.params["W_out"].shape[0]
    rows = np.repeat(tokens, d_r, axis=0)  # sequence b, unit a -> row b·d_r + a
    d_readout = np.tile(np.eye(d_r), (B, 1))  # (B·d_r, d_r)
    dX = _input_gradient(model, rows, d_readout)  # (B·d_r, n, d_x)
    return dX[:, position, : model.vocab_size + 1].reshape(B, d_r, -1)


def far_token_sensitivity(model: Model, tokens: np.ndarray, position: int) -> float:
    """The median over the sequences of ‖∂r/∂x_position‖ (spectral norm of
    `far_token_jacobian`): how much the far token moves the state that is read out."""
    J = far_token_jacobian(model, tokens, position)
    return float(np.median(np.linalg.norm(J, ord=2, axis=(-2, -1))))


def update_gates(model: RecurrentClassifier, tokens: np.ndarray) -> np.ndarray:
    """A GRU's update gates z_t = σ(x_t W_iz + b_iz + h_{t−1} W_hz + b_hz), shape (B, n, d_h)
    (`rnn.gru_update_gates` on the model's one-hot inputs and weights)."""
    if model.cell != "gru":
        raise ValueError(f"update gates belong to a GRU; this model is {model.cell!r}.")
    X = encode_tokens(tokens, model.vocab_size)
    return gru_update_gates(X, *(model.params[name] for name in ("W_x", "W_h", "b_x", "b_h")))


def units_holding(model: RecurrentClassifier, tokens: np.ndarray, position: int) -> float:
    """The share of (sequence, state unit) pairs whose update gates keep more than half of the
    unit's value over every step after `position`: Π_{t > position} z_t[k] > 1/2."""
    z = update_gates(model, tokens)
    return float(np.mean(np.prod(z[:, position + 1:], axis=1) > 0.5))


# --- the experiment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LongRangeConfig:
    """The sizes of the experiment; the default is the marked task's full grid, `steps_back()`
    the other task's, `quick()` the one run lesson 06 trains live.

    task: a key of `TASKS`; models: the models trained. distances: the far token sits this
    many positions before the last one, in sequences of n = distance + 1 tokens (so it is
    always the first token). Every model gets the same optimiser (Adam), batch size, step
    budget and held-out set. Its learning rate is chosen once per model from `lr_grid`, by
    training at `tuning_distance` on `lr_seed` (a seed the reported runs never use) and keeping
    the highest final accuracy, then the fewest steps to the target, then the lowest held-out
    loss. `learning_rates` (pairs model, rate) skips the tuning and uses the rates given.

    The held-out accuracy is measured on `eval_size` sequences every `eval_every` steps (for the
    steps to the target); the accuracy after training on `test_size` fresh sequences; the
    far token's Jacobian (`far_token_sensitivity`) on `probe_size` fresh sequences before and
    after training. d_pos: width of the position encodings of "attention+positions".
    """

    task: str = "marked"
    models: tuple[str, ...] = MODELS
    distances: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    seeds: int = 5
    steps: int = 600
    batch_size: int = 32
    vocab_size: int = 8
    d_h: int = 32
    d_k: int = 16
    d_pos: int = 16
    lr_grid: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    tuning_distance: int = 16
    learning_rates: tuple[tuple[str, float], ...] | None = None
    eval_every: int = 10
    eval_size: int = 128
    test_size: int = 1024
    probe_size: int = 64
    lr_seed: int = 1000
    target: float = 0.9

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}; got {self.task!r}.")

    @classmethod
    def steps_back(cls, **changes: Any) -> LongRangeConfig:
        """The steps-back task's full grid: the same sizes, the four `STEPS_BACK_MODELS`."""
        return cls(task="steps_back", models=STEPS_BACK_MODELS, **changes)

    @classmethod
    def quick(cls, learning_rates: Mapping[str, float] | None = None) -> LongRangeConfig:
        """Lesson 06's live run: one cell of the full grid (distance 16, seed 0, the full step
        budget) with the learning rates the full grid's tuning chose, read from the shipped
        results (`load_results`) unless given."""
        if learning_rates is None:
            learning_rates = load_results()["marked"].learning_rate
        return cls(distances=(16,), seeds=1,
                   learning_rates=tuple((name, float(learning_rates[name])) for name in MODELS))


def make_task(config: LongRangeConfig, distance: int) -> MarkedTokenTask | StepsBackTask:
    """The config's task at one distance, in sequences of distance + 1 tokens."""
    if config.task == "marked":
        return MarkedTokenTask(n=distance + 1, vocab_size=config.vocab_size, distance=distance)
    return StepsBackTask(n=distance + 1, vocab_size=config.vocab_size, k=distance)


@dataclass
class RunResult:
    """One training run: the test accuracy after training, the steps to the target held-out
    accuracy (None: not reached), the held-out accuracy curve, the last held-out loss,
    `far_token_sensitivity` before and after training, for a GRU `units_holding` before and
    after (else None), and the trained model (None when not kept)."""

    accuracy: float
    steps_to_target: int | None
    eval_steps: np.ndarray
    eval_accuracy: np.ndarray
    final_loss: float
    sensitivity_before: float = math.nan
    sensitivity_after: float = math.nan
    holding_before: float | None = None
    holding_after: float | None = None
    model: Model | None = None


def train_run(name: str, distance: int, lr: float, seed: int,
              config: LongRangeConfig) -> RunResult:
    """Train model `name` from scratch at one distance with one learning rate and seed.

    The model's initial weights and the training batches both come from `seed`; the held-out
    set from seed + 1 (see `training.train`), the test set from seed + 2, the sequences on
    which the far token's Jacobian is measured from seed + 3.
    """
    task = make_task(config, distance)
    model = make_model(name, config.vocab_size, d_h=config.d_h, d_k=config.d_k, seed=seed,
                       n=distance + 1, d_pos=config.d_pos)
    probe, _ = task(np.random.default_rng(seed + 3), config.probe_size)
    far = 0  # the far token is the first: distance positions before the last

    def measure() -> tuple[float, float | None]:
        gru = isinstance(model, RecurrentClassifier) and model.cell == "gru"
        return (far_token_sensitivity(model, probe, far),
                units_holding(model, probe, far) if gru else None)

    sensitivity_before, holding_before = measure()
    history = train(model, task, config.steps, lr, batch_size=config.batch_size, seed=seed,
                    eval_every=config.eval_every, eval_size=config.eval_size)
    sensitivity_after, holding_after = measure()
    test_tokens, test_labels = task(np.random.default_rng(seed + 2), config.test_size)
    return RunResult(
        accuracy=float(np.mean(model.logits(test_tokens).argmax(axis=-1) == test_labels)),
        steps_to_target=steps_to_accuracy(history, config.target),
        eval_steps=history.eval_steps,
        eval_accuracy=history.eval_accuracy,
        final_loss=float(history.eval_loss[-1]),
        sensitivity_before=sensitivity_before,
        sensitivity_after=sensitivity_after,
        holding_before=holding_before,
        holding_after=holding_after,
        model=model,
    )


def choose_learning_rate(name: str, config: LongRangeConfig,
                         runs: Mapping[float, RunResult] | None = None) -> float:
    """The learning rate of `config.lr_grid` with the highest final accuracy, then the fewest
    steps to the target, then the lowest held-out loss, trained at `config.tuning_distance` on
    `config.lr_seed`, a seed the reported runs never use (`runs`: those runs, if done)."""
    if config.learning_rates is not None:
        return dict(config.learning_rates)[name]
    if runs is None:
        runs = {lr: train_run(name, config.tuning_distance, lr, config.lr_seed, config)
                for lr in config.lr_grid}

    def score(lr: float) -> tuple[float, float, float]:
        run = runs[lr]
        steps = config.steps + 1 if run.steps_to_target is None else run.steps_to_target
        return run.accuracy, -steps, -run.final_loss

    return max(runs, key=score)


_PER_SEED = ("accuracy", "steps_to_target", "sensitivity_before", "sensitivity_after",
             "holding_before", "holding_after")
"""The per-seed measurements of `LongRangeResult`, each model -> (seeds, len(distances))."""


@dataclass
class LongRangeResult:
    """The experiment's numbers, per model of `config.models`, one row per seed and one column
    per distance: test accuracy, steps to the target (−1: not reached), `far_token_sensitivity`
    before and after training, and for the GRU `units_holding` before and after (other models
    have no entry). `provenance`: how, when and where the numbers were made (shipped results)."""

    config: LongRangeConfig
    parameters: dict[str, int]
    learning_rate: dict[str, float]
    accuracy: dict[str, np.ndarray]
    steps_to_target: dict[str, np.ndarray]
    sensitivity_before: dict[str, np.ndarray]
    sensitivity_after: dict[str, np.ndarray]
    holding_before: dict[str, np.ndarray] = field(default_factory=dict)
    holding_after: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)
    models: dict[tuple[str, int, int], Model] = field(default_factory=dict)
    """The trained models by (name, distance, seed), to look inside them (not in the JSON)."""

    def median_accuracy(self, name: str) -> np.ndarray:
        """Test accuracy after training, median over seeds, per distance."""
        return np.median(self.accuracy[name], axis=0)

    def accuracy_range(self, name: str) -> np.ndarray:
        """Test accuracy after training, min and max over seeds: shape (2, len(distances))."""
        return np.stack([self.accuracy[name].min(axis=0), self.accuracy[name].max(axis=0)])

    def seeds_at_target(self, name: str) -> np.ndarray:
        """Per distance, how many seeds ended with a test accuracy of at least the target."""
        return np.sum(self.accuracy[name] >= self.config.target, axis=0)

    def median_steps(self, name: str) -> list[int | None]:
        """Per distance, the median seed's steps to the target (not reached counts as more
        than any number; the upper middle one for an even number of seeds), None when that
        seed did not reach it. A value s means: reached after more than s − eval_every steps
        and at most s."""
        steps = np.where(self.steps_to_target[name] < 0, np.iinfo(np.int64).max,
                         self.steps_to_target[name])
        middle = np.sort(steps, axis=0)[self.config.seeds // 2]
        return [None if s == np.iinfo(np.int64).max else int(s) for s in middle]

    def median(self, measurement: str, name: str) -> np.ndarray:
        """The median over seeds of one per-seed measurement (a name of `_PER_SEED`)."""
        return np.median(getattr(self, measurement)[name], axis=0)

    def to_json(self) -> dict[str, Any]:
        """Everything but the models, as plain JSON: the settings, the per-seed numbers at full
        precision, and a summary (medians, seeds at the target) for readers."""
        config = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in dataclasses.asdict(self.config).items()}
        per_seed = {
            name: {key: [[None if key == "steps_to_target" and v < 0 else
                          int(v) if key == "steps_to_target" else float(v) for v in row]
                         for row in getattr(self, key)[name]]
                   for key in _PER_SEED if name in getattr(self, key)}
            for name in self.config.models}
        summary = {name: {"accuracy_median": self.median_accuracy(name).tolist(),
                          "seeds_at_target": self.seeds_at_target(name).tolist(),
                          "steps_to_target_median_seed": self.median_steps(name)}
                   for name in self.config.models}
        return {"config": config, "learning_rate": self.learning_rate,
                "parameters": self.parameters, "per_seed": per_seed, "summary": summary,
                "seconds": round(self.seconds, 1)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any],
                  provenance: Mapping[str, Any] | None = None) -> LongRangeResult:
        """The inverse of `to_json` (without the models; the summary is recomputed)."""
        config = LongRangeConfig(**{
            key: (tuple(tuple(pair) for pair in value) if key == "learning_rates" else
                  tuple(value)) if isinstance(value, list) else value
            for key, value in data["config"].items()})
        fields: dict[str, dict[str, np.ndarray]] = {key: {} for key in _PER_SEED}
        for name, entry in data["per_seed"].items():
            for key, rows in entry.items():
                if key == "steps_to_target":
                    fields[key][name] = np.array([[-1 if v is None else v for v in row]
                                                  for row in rows], dtype=int)
                else:
                    fields[key][name] = np.array(rows, dtype=float)
        return cls(config, dict(data["parameters"]), dict(data["learning_rate"]),
                   seconds=float(data.get("seconds", 0.0)), provenance=dict(provenance or {}),
                   **fields)


def long_range_experiment(
    config: LongRangeConfig | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    jobs: int = 1,
) -> LongRangeResult:
    """Train every model of `config` at every distance and measure them.

    Per model: choose the learning rate (`choose_learning_rate`); then, per distance, train
    `config.seeds` runs on seeds 0 .. seeds − 1 (`train_run`). `progress(done, total, label)`
    is called after every run, tuning runs included. `jobs` > 1 trains that many runs at a
    time in separate processes (the numbers are the same: each run is seeded on its own).
    BLAS runs on one thread per process: the matrices are small, and threads only add overhead.
    """
    config = config or LongRangeConfig()
    jobs = check_count(jobs, "jobs")
    start = time.perf_counter()
    tuning = [] if config.learning_rates is not None else [
        (name, config.tuning_distance, lr, config.lr_seed) for name in config.models
        for lr in config.lr_grid]
    total = len(tuning) + len(config.models) * len(config.distances) * config.seeds
    counter = [0]

    def report(label: str) -> None:
        counter[0] += 1
        if progress:
            progress(counter[0], total, label)

    with _runner(jobs) as run_all:
        tuned = run_all(tuning, config, report)
        learning_rate = {
            name: choose_learning_rate(name, config, {
                lr: run for (model, _, lr, _), run in zip(tuning, tuned, strict=True)
                if model == name} or None)
            for name in config.models}
        jobs_list = [(name, distance, learning_rate[name], seed) for name in config.models
                     for distance in config.distances for seed in range(config.seeds)]
        runs = dict(zip([(name, d, seed) for name, d, _, seed in jobs_list],
                        run_all(jobs_list, config, report), strict=True))
    shape = (config.seeds, len(config.distances))
    fields: dict[str, dict[str, np.ndarray]] = {key: {} for key in _PER_SEED}
    for name in config.models:
        for key in _PER_SEED:
            values = [[getattr(runs[name, d, seed], key) for d in config.distances]
                      for seed in range(config.seeds)]
            if key == "steps_to_target":
                fields[key][name] = np.array([[-1 if v is None else v for v in row]
                                              for row in values], dtype=int).reshape(shape)
            elif values[0][0] is not None:
                fields[key][name] = np.array(values, dtype=float).reshape(shape)
    n_max = max(config.distances) + 1
    parameters = {name: parameter_count(make_model(name, config.vocab_size, d_h=config.d_h,
                                                   d_k=config.d_k, n=n_max, d_pos=config.d_pos))
                  for name in config.models}
    models = {key: run.model for key, run in runs.items() if run.model is not None}
    return LongRangeResult(config, parameters, learning_rate,
                           seconds=time.perf_counter() - start, models=models, **fields)


def _one_run(job: tuple[str, int, float, int], config: LongRangeConfig) -> RunResult:
    with threadpool_limits(1):
        return train_run(*job, config)


@contextlib.contextmanager
def _runner(jobs: int) -> Iterator[Callable[..., list[RunResult]]]:
    """A function that trains a list of runs, in this process or on a pool of `jobs`."""
    if jobs == 1:
        yield lambda todo, config, report: [
            _reported(_one_run(job, config), job, report) for job in todo]
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        def run_all(todo: list, config: LongRangeConfig, report: Callable) -> list[RunResult]:
            futures = {pool.submit(_one_run, job, config): k for k, job in enumerate(todo)}
            results: list[RunResult | None] = [None] * len(todo)
            for future in as_completed(futures):
                k = futures[future]
                results[k] = _reported(future.result(), todo[k], report)
            return results  # type: ignore[return-value]

        yield run_all


def _reported(run: RunResult, job: tuple[str, int, float, int],
              report: Callable[[str], None]) -> RunResult:
    name, distance, lr, seed = job
    report(f"{name}, distance {distance}, learning rate {lr:g}, seed {seed}")
    return run


def format_table(result: LongRangeResult) -> str:
    """The experiment as a plain-text table: per model, the accuracy (median and min–max over
    seeds), how many seeds reached the target, the median seed's steps to it (as the interval
    the held-out checks allow), and the far token's Jacobian (median) before and after training."""
    c, width = result.config, 12
    tuned = (f"chosen per model from {list(c.lr_grid)} at distance {c.tuning_distance} on seed "
             f"{c.lr_seed}" if c.learning_rates is None else "given")
    lines = [f"task '{c.task}': {TASKS[c.task]}",
             f"{c.seeds} seed(s) (0-{c.seeds - 1}), {c.steps} Adam steps of batch {c.batch_size}; "
             f"learning rate {tuned}",
             f"{'distance':<34}" + "".join(f"{d:>{width}}" for d in c.distances)]

    def interval(s: int | None) -> str:
        if s is None:
            return "not reached"
        return "0" if s == 0 else f"{max(s - c.eval_every + 1, 1)}-{s}"

    for name in c.models:
        lo, hi = result.accuracy_range(name)
        rows = {
            "accuracy (median)": [f"{a:.3f}" for a in result.median_accuracy(name)],
            "accuracy (min-max)": [f"{a:.2f}-{b:.2f}" for a, b in zip(lo, hi, strict=True)],
            f"seeds at >= {c.target:.0%}": [f"{k}/{c.seeds}" for k in result.seeds_at_target(name)],
            f"steps to {c.target:.0%} (median seed)": [interval(s)
                                                      for s in result.median_steps(name)],
            "‖∂r/∂x_far‖ untrained (median)": [
                f"{g:.1e}" for g in result.median("sensitivity_before", name)],
            "‖∂r/∂x_far‖ trained (median)": [
                f"{g:.1e}" for g in result.median("sensitivity_after", name)],
        }
        if name in result.holding_before:
            rows["units holding > 1/2, untrained"] = [
                f"{h:.0%}" for h in result.median("holding_before", name)]
            rows["units holding > 1/2, trained"] = [
                f"{h:.0%}" for h in result.median("holding_after", name)]
        lines.append(f"{name}: {result.parameters[name]} parameters, "
                     f"learning rate {result.learning_rate[name]:g}")
        lines += [f"  {label:<32}" + "".join(f"{v:>{width}}" for v in values)
                  for label, values in rows.items()]
    return "\n".join(lines)


# --- shipped results: provenance, loading, agreement --------------------------------------------

RESULTS = "results/longrange_full.json"
"""The shipped results, inside the package (`load_results` reads them)."""


def provenance(command: str, seconds: float) -> dict[str, Any]:
    """How, when and where results were made: the command, the date (UTC), Python, numpy, the
    BLAS libraries numpy uses (threadpoolctl: library, version, the CPU kernel architecture)
    and the machine (platform, processor, cores)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    blas = [{key: library.get(key) for key in ("internal_api", "version", "architecture")}
            for library in threadpool_info()]
    return {"command": command,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas,
            "machine": f"{platform.platform()}, {cpu}, {os.cpu_count()} cores",
            "seconds": round(seconds, 1)}


def results_json(results: Mapping[str, LongRangeResult], command: str) -> dict[str, Any]:
    """The shipped file's content: {"provenance": ..., "experiments": {task: to_json()}}."""
    seconds = sum(result.seconds for result in results.values())
    return {"provenance": provenance(command, seconds),
            "experiments": {task: result.to_json() for task, result in results.items()}}


def load_results(path: str | os.PathLike | None = None) -> dict[str, LongRangeResult]:
    """The results written by `python -m course_lib experiment longrange --json PATH`, by task
    ("marked", "steps_back"); default: the results shipped with the package (`RESULTS`). Each
    result's `provenance` says how they were made."""
    if path is None:
        text = resources.files("course_lib").joinpath(RESULTS).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    return {task: LongRangeResult.from_json(entry, data.get("provenance"))
            for task, entry in data["experiments"].items()}


def disagreements(shipped: LongRangeResult, fresh: LongRangeResult, *,
                  rtol_untrained: float = 1e-6, accuracy_tolerance: float = 0.02,
                  steps_tolerance: int = 1) -> list[str]:
    """Where a fresh run of a sub-grid of `shipped` (same sizes and learning rates, fewer
    models, distances or seeds) disagrees with the shipped numbers; [] when it agrees.

    What "agree" means, measurement by measurement:
    - before training nothing is random beyond the seed: the parameter counts are equal and
      the untrained Jacobians (`sensitivity_before`, the GRU's `holding_before`) equal to
      `rtol_untrained`, far above the rounding that another BLAS kernel or numpy's CPU
      dispatch changes (about 1e-15), far below any change of the code or the data;
    - after training, rounding differences are amplified, so a trained number is compared
      only where it is settled: at a distance where every shipped seed of that model reached
      the target within the first 100 steps, the fresh run's accuracy is within
      `accuracy_tolerance` of the shipped seed's and its steps to the target within
      `steps_tolerance` held-out checks (eval_every steps each).
    """
    problems: list[str] = []
    c = fresh.config
    columns = [shipped.config.distances.index(d) for d in c.distances]
    for name in c.models:
        if fresh.parameters[name] != shipped.parameters[name]:
            problems.append(f"{name}: {fresh.parameters[name]} parameters, shipped "
                            f"{shipped.parameters[name]}")
        for key in ("sensitivity_before", "holding_before"):
            if name not in getattr(fresh, key):
                continue
            new = getattr(fresh, key)[name]
            old = getattr(shipped, key)[name][: c.seeds, columns]
            if not np.allclose(new, old, rtol=rtol_untrained, atol=0):
                problems.append(f"{name}: untrained {key} {new.tolist()} != shipped {old.tolist()}")
        old_steps = shipped.steps_to_target[name][:, columns]
        for k, d in enumerate(c.distances):
            column = old_steps[:, k]
            if (column < 0).any() or column.max() > 100:
                continue  # not settled: one sample of a chaotic outcome
            for seed in range(c.seeds):
                a_new = fresh.accuracy[name][seed, k]
                a_old = shipped.accuracy[name][seed, columns[k]]
                s_new, s_old = fresh.steps_to_target[name][seed, k], column[seed]
                if abs(a_new - a_old) > accuracy_tolerance or s_new < 0 or (
                        abs(s_new - s_old) > steps_tolerance * c.eval_every):
                    problems.append(f"{name}, distance {d}, seed {seed}: accuracy {a_new:.3f} "
                                    f"in {s_new} steps, shipped {a_old:.3f} in {s_old}")
    return problems
