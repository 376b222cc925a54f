"""Long-range dependencies, measured: an Elman RNN against one self-attention layer (lesson 06).

Three measurements, each in the course's notation (positions are numbered 1 .. n in the text
and 0 .. n − 1 in the arrays):

- path length: the fewest steps information takes from token 1 to token n, found by a
  breadth-first search in each model's dependency graph (RNN: n − 1, self-attention: 1);
- gradient decay: ‖∂h_t/∂x_1‖ of a tanh RNN (a product of t − 1 step Jacobians, from
  `course_lib.rnn.rnn_input_jacobians`) against ‖∂o_t/∂x_1‖ of self-attention (exact, from
  `attention_input_jacobian`), with the fitted exponential decay rate;
- recall: recover token 1 from the last RNN state h_n, or from the output o_n of one attention
  step whose query asks for position 1, with a least-squares linear readout.

The experiment code imports numpy and the math modules only (no plotting).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from course_lib.attention import attention_weights, sinusoidal_positions, softmax
from course_lib.rnn import rnn_forward, rnn_input_jacobians
from course_lib.shapes import check_count

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
    "one_hot",
    "position_features",
    "fit_readout",
    "readout_accuracy",
    "rnn_recall_accuracy",
    "attention_recall_accuracy",
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
    rate, intercept = np.polyfit(np.asarray(t, dtype=float), np.log(norms), 1)
    return float(rate), float(intercept)


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


# --- recall ----------------------------------------------------------------------------------


def one_hot(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Token ids of shape (...,) as one-hot rows of shape (..., vocab_size), float64."""
    return np.eye(vocab_size)[tokens]


def position_features(n: int, kind: str, d_pos: int) -> np.ndarray:
    """Position features P of shape (n, d_pos): "onehot" (row t = e_t, needs d_pos ≥ n) or
    "sinusoidal" (`sinusoidal_positions(n, d_pos)`)."""
    if kind == "onehot":
        if d_pos < n:
            raise ValueError(f"one-hot positions need d_pos >= n; got d_pos = {d_pos}, n = {n}.")
        return np.eye(n, d_pos)
    if kind == "sinusoidal":
        return sinusoidal_positions(n, d_pos)
    raise ValueError(f'kind must be "onehot" or "sinusoidal"; got {kind!r}.')


def fit_readout(
    features: np.ndarray, labels: np.ndarray, vocab_size: int, ridge: float = 1e-6
) -> np.ndarray:
    """A least-squares linear readout: W minimising ‖[F, 1] W − Y‖² + ridge · ‖W‖², Y the one-hot
    labels, that is W = (F̃ᵀ F̃ + ridge · I)⁻¹ F̃ᵀ Y with F̃ = [F, 1].

    The tiny ridge only makes W unique when features repeat (n = 1 gives vocab_size distinct
    states). Shapes: features F (m, d), labels (m,) -> W (d + 1, vocab_size), last row a bias.
    """
    F = np.hstack([features, np.ones((len(features), 1))])
    gram = F.T @ F + ridge * np.eye(F.shape[1])
    return np.linalg.solve(gram, F.T @ one_hot(labels, vocab_size))


def readout_accuracy(W: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of rows whose largest readout score [F, 1] W is at the true label."""
    F = np.hstack([features, np.ones((len(features), 1))])
    return float(np.mean(np.argmax(F @ W, axis=1) == labels))


def _train_test_accuracy(features: np.ndarray, labels: np.ndarray, n_train: int, V: int) -> float:
    """Fit the readout on the first n_train rows, return its accuracy on the others."""
    W = fit_readout(features[:n_train], labels[:n_train], V)
    return readout_accuracy(W, features[n_train:], labels[n_train:])


def rnn_recall_accuracy(
    ns: Sequence[int],
    *,
    vocab_size: int = 8,
    d_h: int = 64,
    spectral_radius: float = 0.9,
    input_scale: float = 0.3,
    n_train: int = 1000,
    n_test: int = 500,
    seed: int = 0,
) -> np.ndarray:
    """Test accuracy of recovering token 1 from the last RNN state h_n, for each n in `ns`.

    Random token sequences (uniform over `vocab_size`) enter as one-hot rows x_t; one random RNN
    (W_xh ~ N(0, input_scale²), W_hh of spectral radius ρ, b_h = 0) encodes them. For each n a
    least-squares readout is fitted on h_n of `n_train` sequences and tested on `n_test` more
    (h_n of a sequence of length n is state n of a longer run: the RNN never looks ahead).
    Chance level is 1 / vocab_size. Returns shape (len(ns),).
    """
    rng = np.random.default_rng(seed)
    tokens = rng.integers(vocab_size, size=(n_train + n_test, max(ns)))
    W_xh = rng.standard_normal((vocab_size, d_h)) * input_scale
    W_hh = random_recurrent_matrix(d_h, spectral_radius, rng)
    H = rnn_forward(one_hot(tokens, vocab_size), W_xh, W_hh, np.zeros(d_h))  # (m, n_max, d_h)
    return np.array([_train_test_accuracy(H[:, n - 1], tokens[:, 0], n_train, vocab_size)
                     for n in ns])


def attention_recall_accuracy(
    ns: Sequence[int],
    *,
    positions: str = "onehot",
    vocab_size: int = 8,
    d_pos: int = 64,
    sharpness: float = 16.0,
    n_train: int = 1000,
    n_test: int = 500,
    seed: int = 0,
) -> np.ndarray:
    """Test accuracy of recovering token 1 from the output o_n of one attention step, per n.

    Each token's row is x_t = [one-hot token | p_t], p_t its position features (`positions`:
    "onehot" or "sinusoidal", width d_pos). Keys are the positions, K = P; values are the
    tokens, V = one-hot rows; the last token's query asks for position 1,
    q_n = sharpness · √d_pos · p_1 / ‖p_1‖², so that the scaled score of position 1 is exactly
    `sharpness`. Then o_n = Σ_j α_nj v_j with α_n = softmax(q_n Kᵀ / √d_pos), and the same
    least-squares readout as for the RNN is fitted on o_n. Returns shape (len(ns),).
    """
    rng = np.random.default_rng(seed)
    tokens = rng.integers(vocab_size, size=(n_train + n_test, max(ns)))
    accuracies = []
    for n in ns:
        P = position_features(n, positions, d_pos)  # the keys, (n, d_pos)
        q_n = sharpness * math.sqrt(d_pos) * P[0] / (P[0] @ P[0])
        alpha_n = attention_weights(q_n[None, :], P)[0]  # (n,): the share of each v_j in o_n
        O_n = alpha_n @ one_hot(tokens[:, :n], vocab_size)  # (m, vocab_size)
        accuracies.append(_train_test_accuracy(O_n, tokens[:, 0], n_train, vocab_size))
    return np.array(accuracies)
