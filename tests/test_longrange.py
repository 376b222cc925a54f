"""Long-range dependencies (course_lib.longrange): path lengths, exact Jacobians, decay, recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib import longrange as lr
from course_lib.attention import causal_mask, self_attention


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10])
def test_path_lengths_match_hand_counts(n: int) -> None:
    rnn, attention = lr.rnn_dependency_graph(n), lr.attention_dependency_graph(n)
    # RNN: 1 -> 2 -> ... -> t takes t - 1 steps; attention reaches every token in one step
    assert lr.path_lengths(rnn, 1) == {t: t - 1 for t in range(1, n + 1)}
    assert lr.path_lengths(attention, 1) == {t: 0 if t == 1 else 1 for t in range(1, n + 1)}
    assert lr.shortest_path_length(rnn, 1, n) == n - 1
    assert lr.shortest_path_length(attention, 1, n) == min(n - 1, 1)


def test_small_graphs_by_hand() -> None:
    assert lr.rnn_dependency_graph(3) == {1: [2], 2: [3], 3: []}
    assert lr.attention_dependency_graph(2) == {1: [1, 2], 2: [1, 2]}
    # causal: token j feeds only the tokens i >= j, so information never flows backwards
    causal = lr.attention_dependency_graph(4, causal_mask(4))
    assert causal == {1: [1, 2, 3, 4], 2: [2, 3, 4], 3: [3, 4], 4: [4]}
    assert lr.shortest_path_length(causal, 1, 4) == 1
    with pytest.raises(ValueError, match="cannot be reached"):
        lr.shortest_path_length(causal, 4, 1)
    # BFS takes the shortcut, not the first path it sees
    assert lr.shortest_path_length({1: [2, 4], 2: [3], 3: [4], 4: []}, 1, 4) == 1


def test_attention_jacobian_matches_central_differences() -> None:
    rng = np.random.default_rng(0)
    n, d_model, d_k, d_v = 5, 4, 3, 2
    X = rng.standard_normal((n, d_model))
    W_Q, W_K = rng.standard_normal((d_model, d_k)), rng.standard_normal((d_model, d_k))
    W_V = rng.standard_normal((d_model, d_v))
    eps = 1e-6
    for i in range(n):
        for j in range(n):
            J = lr.attention_input_jacobian(X, W_Q, W_K, W_V, i, j)
            assert J.shape == (d_v, d_model)
            central = np.empty((d_v, d_model))
            for b in range(d_model):
                step = np.zeros_like(X)
                step[j, b] = eps
                plus = self_attention(X + step, W_Q, W_K, W_V)[0][i]
                minus = self_attention(X - step, W_Q, W_K, W_V)[0][i]
                central[:, b] = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(J, central, atol=1e-7, err_msg=f"i = {i}, j = {j}")


def test_gradient_norms_are_spectral_norms_of_the_jacobians() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 3))
    W = [rng.standard_normal((3, 3)) for _ in range(3)]
    norms = lr.attention_gradient_norms(X, *W)
    expected = [np.linalg.svd(lr.attention_input_jacobian(X, *W, t, 0))[1][0] for t in range(4)]
    np.testing.assert_allclose(norms, expected)


def test_fit_decay_rate_recovers_an_exponential() -> None:
    t = np.arange(1, 20)
    rate, intercept = lr.fit_decay_rate(t, 3.0 * np.exp(-0.4 * t))
    assert rate == pytest.approx(-0.4) and intercept == pytest.approx(math.log(3.0))


def test_random_recurrent_matrix_has_the_requested_spectral_radius() -> None:
    W = lr.random_recurrent_matrix(16, 0.7, np.random.default_rng(2))
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.7)


def test_rnn_gradient_decays_faster_for_a_smaller_spectral_radius() -> None:
    t = np.arange(2, 41)
    rates = {rho: lr.fit_decay_rate(t, lr.rnn_gradient_decay(40, rho)[1:])[0] for rho in (0.5, 0.9)}
    assert rates[0.9] < -0.05  # contractive: the gradient shrinks with distance
    assert rates[0.5] < rates[0.9] - 0.2  # and faster the smaller the spectral radius
    assert rates[0.5] <= math.log(0.5) + 0.05  # at least as fast as ρ per step (tanh' <= 1)


def test_attention_gradient_does_not_decay_with_distance() -> None:
    norms = lr.attention_gradient_decay(40)
    rate, _ = lr.fit_decay_rate(np.arange(2, 41), norms[1:])
    assert abs(rate) < 0.01
    early, late = norms[1:11].mean(), norms[-10:].mean()  # distances 1-10 against 30-39
    assert 0.5 < late / early < 2


def test_readout_is_exact_on_separable_features() -> None:
    labels = np.array([0, 1, 2, 1, 0, 2])
    features = lr.one_hot(labels, 3) * 2.0 + 1.0
    W = lr.fit_readout(features, labels, 3)
    assert W.shape == (4, 3)
    assert lr.readout_accuracy(W, features, labels) == 1.0
    assert lr.readout_accuracy(W, features, (labels + 1) % 3) == 0.0


def test_position_features() -> None:
    np.testing.assert_array_equal(lr.position_features(3, "onehot", 5), np.eye(3, 5))
    assert lr.position_features(7, "sinusoidal", 4).shape == (7, 4)
    with pytest.raises(ValueError, match="d_pos >= n"):
        lr.position_features(6, "onehot", 4)
    with pytest.raises(ValueError, match="onehot"):
        lr.position_features(3, "learned", 4)


def test_recall_attention_stays_near_one_while_the_rnn_falls_to_chance() -> None:
    ns = [1, 2, 32]
    rnn = lr.rnn_recall_accuracy(ns, n_train=600, n_test=400)
    assert rnn[0] == 1.0 and rnn[1] > 0.95
    assert rnn[2] < 0.25  # chance is 1/8 = 0.125
    for positions in ("onehot", "sinusoidal"):
        attention = lr.attention_recall_accuracy(ns, positions=positions, n_train=600, n_test=400)
        assert attention.min() > 0.99, positions


def test_blurry_attention_recalls_less() -> None:
    # a query that barely prefers position 1 mixes in the other tokens: recall degrades
    sharp = lr.attention_recall_accuracy([32], sharpness=16.0, n_train=600, n_test=400)
    blurry = lr.attention_recall_accuracy([32], sharpness=1.0, n_train=600, n_test=400)
    assert blurry[0] < sharp[0] - 0.2
