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


# --- trained models and the experiment -------------------------------------------------------


@pytest.mark.parametrize("name", lr.MODELS)
def test_model_gradients_match_central_differences(name: str) -> None:
    from course_lib.training import MarkedTokenTask, gradient_check

    model = lr.make_model(name, vocab_size=3, d_h=4, d_k=3, seed=1)
    tokens, labels = MarkedTokenTask(n=5, vocab_size=3, distance=3)(np.random.default_rng(0), 4)
    loss, grads, logits = model.loss_and_grads(tokens, labels)
    np.testing.assert_allclose(logits, model.logits(tokens))

    def f(params):
        saved = dict(model.params)
        model.params.update(params)
        try:
            return model.loss_and_grads(tokens, labels)[0]
        finally:
            model.params.update(saved)

    errors = gradient_check(f, model.params, grads)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", lr.MODELS)
def test_input_gradient_dX_matches_central_differences(name: str) -> None:
    # dX, the gradient that reaches each input row: what the experiment reads at the marked token
    from course_lib.training import MarkedTokenTask, cross_entropy, encode_tokens

    model = lr.make_model(name, vocab_size=3, d_h=4, d_k=3, seed=2)
    tokens, labels = MarkedTokenTask(n=4, vocab_size=3, distance=2)(np.random.default_rng(1), 2)
    model.loss_and_grads(tokens, labels)
    X = encode_tokens(tokens, 3)
    W_out = model.params["W_out"]

    def loss_at(X_new: np.ndarray) -> float:
        if name == "attention":
            from course_lib.attention import self_attention
            p = model.params
            O, _ = self_attention(X_new, p["W_Q"], p["W_K"], p["W_V"])
            last = O[:, -1]
        else:
            last = model._forward(X_new, *(model.params[k] for k in model._names))[:, -1]
        return cross_entropy(last @ W_out + model.params["b_out"], labels)[0]

    eps, central = 1e-6, np.zeros_like(X)
    for index in np.ndindex(X.shape):
        step = np.zeros_like(X)
        step[index] = eps
        central[index] = (loss_at(X + step) - loss_at(X - step)) / (2 * eps)
    np.testing.assert_allclose(model.dX, central, atol=1e-8)


def test_parameter_counts_by_hand() -> None:
    V, d_h, d_k = 8, 32, 16
    d_in = V + 1
    assert lr.parameter_count(lr.make_model("rnn", V, d_h=d_h)) == (
        d_in * d_h + d_h * d_h + d_h + d_h * V + V)
    assert lr.parameter_count(lr.make_model("gru", V, d_h=d_h)) == (
        3 * (d_in * d_h + d_h * d_h + 2 * d_h) + d_h * V + V)
    attention = lr.make_model("attention", V, d_k=d_k)
    assert lr.parameter_count(attention) == 3 * d_in * d_k + d_k * V + V


def test_recurrent_init_is_pytorchs_uniform() -> None:
    model = lr.make_model("gru", 8, d_h=25, seed=3)
    for name in ("W_x", "W_h", "b_x", "b_h"):
        assert np.abs(model.params[name]).max() <= 1 / 5
    with pytest.raises(ValueError, match="cell must be"):
        lr.RecurrentClassifier("lstm", 8)


def test_experiment_on_a_tiny_grid_gives_the_issue_json() -> None:
    import json

    config = lr.LongRangeConfig(distances=(1, 3), seeds=2, steps=40, eval_every=10,
                                eval_size=32, test_size=64, lr_grid=(1e-2, 3e-2),
                                tuning_distance=1, vocab_size=4, d_h=8, d_k=4)
    calls = []
    result = lr.long_range_experiment(config, lambda *args: calls.append(args))
    assert calls[-1][:2] == (3 * (2 + 2 * 2), 3 * (2 + 2 * 2))  # every run reported, tuning too
    data = json.loads(json.dumps(result.to_json()))  # plain JSON: no numpy types left
    assert data["distances"] == [1, 3] and data["seeds"] == 2 and data["steps"] == 40
    assert set(data["models"]) == {"rnn", "gru", "attention"}
    for name, entry in data["models"].items():
        assert len(entry["accuracy"]) == 2 and len(entry["steps_to_90"]) == 2
        assert all(s is None or isinstance(s, int) for s in entry["steps_to_90"])
        assert entry["learning_rate"] in (1e-2, 3e-2)
        np.testing.assert_allclose(entry["accuracy"], result.accuracy[name].mean(axis=0),
                                   atol=1e-4)
        assert all(lo <= m <= hi for lo, m, hi in zip(entry["accuracy_min"], entry["accuracy"],
                                                       entry["accuracy_max"], strict=True))
        assert all(g > 0 for g in entry["gradient_at_marked_token"])
    table = lr.format_table(result)
    assert "rnn:" in table and "attention:" in table and "steps to 90%" in table


def test_steps_to_90_is_the_slowest_seed_or_none() -> None:
    config = lr.LongRangeConfig(distances=(2, 4, 8), seeds=2)
    steps = np.array([[25, -1, 50], [75, 100, -1]])
    result = lr.LongRangeResult(config, {}, {}, {}, {"rnn": steps}, {}, {})
    assert result.steps_to_90("rnn") == [75, None, None]


def test_learning_rate_choice_ranks_accuracy_then_speed(monkeypatch) -> None:
    runs = {1e-3: lr.RunResult(0.9, None, np.ones(1), np.zeros(1), np.zeros(1), 0.5),
            1e-2: lr.RunResult(1.0, 200, np.ones(1), np.zeros(1), np.zeros(1), 0.2),
            3e-2: lr.RunResult(1.0, 100, np.ones(1), np.zeros(1), np.zeros(1), 0.3)}
    seen = []

    def fake_run(name, distance, rate, seed, config):
        seen.append((distance, seed))
        return runs[rate]

    monkeypatch.setattr(lr, "train_run", fake_run)
    config = lr.LongRangeConfig(lr_grid=tuple(runs))
    assert lr.choose_learning_rate("gru", config) == 3e-2  # same accuracy, fewer steps
    assert set(seen) == {(config.tuning_distance, config.lr_seed)}  # never a reported seed
    assert config.lr_seed >= config.seeds
    fixed = lr.LongRangeConfig.quick()
    assert lr.choose_learning_rate("rnn", fixed) == lr.QUICK_LEARNING_RATES["rnn"]


def test_default_grid_reaches_64_and_quick_is_a_subset() -> None:
    full, quick = lr.LongRangeConfig(), lr.LongRangeConfig.quick()
    assert max(full.distances) >= 64 and full.seeds >= 3
    assert set(quick.distances) <= set(full.distances)
    assert quick.steps <= full.steps and set(quick.lr_grid) == set(full.lr_grid)
    assert set(lr.QUICK_LEARNING_RATES.values()) <= set(full.lr_grid)


def test_command_line_prints_the_table_and_writes_the_json(tmp_path, monkeypatch, capsys) -> None:
    import json

    from course_lib.__main__ import main

    tiny = lr.LongRangeConfig(distances=(1, 2), seeds=1, steps=20, eval_every=10, eval_size=16,
                              test_size=32, vocab_size=3, d_h=4, d_k=3,
                              learning_rates=(("rnn", 1e-2), ("gru", 1e-2), ("attention", 1e-2)))
    monkeypatch.setattr(lr.LongRangeConfig, "quick", classmethod(lambda cls: tiny))
    path = tmp_path / "longrange.json"
    assert main(["experiment", "longrange", "--quick", "--seeds", "2", "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "2 seed(s), 20 Adam steps" in out and "steps to 90%" in out and str(path) in out
    assert "training" in err and "12/12" in err  # the progress: 3 models x 2 distances x 2 seeds
    data = json.loads(path.read_text())
    assert data["seeds"] == 2 and data["steps"] == 20 and data["distances"] == [1, 2]
    assert set(data["models"]) == {"rnn", "gru", "attention"}
    with pytest.raises(SystemExit):
        main(["experiment", "longrange", "--seeds", "0"])
