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


@pytest.mark.parametrize("name", lr.STEPS_BACK_MODELS)
def test_model_gradients_match_central_differences(name: str) -> None:
    from course_lib.training import MarkedTokenTask, gradient_check

    model = lr.make_model(name, vocab_size=3, d_h=4, d_k=3, seed=1, n=5, d_pos=4)
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


def _readout(model, X: np.ndarray) -> np.ndarray:
    """The state each model reads out (h_n or o_n), from its input rows X: an independent path."""
    if isinstance(model, lr.RecurrentClassifier):
        return model._forward(X, *(model.params[k] for k in model._names))[:, -1]
    p = model.params
    return self_attention(X, p["W_Q"], p["W_K"], p["W_V"])[0][:, -1]


def _inputs(model, tokens: np.ndarray) -> np.ndarray:
    from course_lib.training import encode_tokens

    if isinstance(model, lr.PositionalAttentionClassifier):
        return model.encode(tokens)
    return encode_tokens(tokens, model.vocab_size)


@pytest.mark.parametrize("name", lr.STEPS_BACK_MODELS)
def test_input_gradient_dX_matches_central_differences(name: str) -> None:
    # dX, the gradient that reaches each input row
    from course_lib.training import MarkedTokenTask, cross_entropy

    model = lr.make_model(name, vocab_size=3, d_h=4, d_k=3, seed=2, n=4, d_pos=4)
    tokens, labels = MarkedTokenTask(n=4, vocab_size=3, distance=2)(np.random.default_rng(1), 2)
    model.loss_and_grads(tokens, labels)
    X = _inputs(model, tokens)

    def loss_at(X_new: np.ndarray) -> float:
        logits = _readout(model, X_new) @ model.params["W_out"] + model.params["b_out"]
        return cross_entropy(logits, labels)[0]

    eps, central = 1e-6, np.zeros_like(X)
    for index in np.ndindex(X.shape):
        step = np.zeros_like(X)
        step[index] = eps
        central[index] = (loss_at(X + step) - loss_at(X - step)) / (2 * eps)
    np.testing.assert_allclose(model.dX, central, atol=1e-8)


@pytest.mark.parametrize("name", lr.STEPS_BACK_MODELS)
def test_far_token_jacobian_matches_central_differences(name: str) -> None:
    model = lr.make_model(name, vocab_size=3, d_h=5, d_k=4, seed=3, n=6, d_pos=4)
    tokens = lr.StepsBackTask(n=6, vocab_size=3, k=5)(np.random.default_rng(2), 3)[0]
    position = 1
    J = lr.far_token_jacobian(model, tokens, position)
    d_r = model.params["W_out"].shape[0]
    assert J.shape == (3, d_r, 4)  # the token's row: 3 words and the mark, not its position
    X, eps = _inputs(model, tokens), 1e-6
    for c in range(4):
        step = np.zeros_like(X)
        step[:, position, c] = eps
        central = (_readout(model, X + step) - _readout(model, X - step)) / (2 * eps)
        np.testing.assert_allclose(J[:, :, c], central, atol=1e-8)
    norms = np.linalg.svd(J, compute_uv=False)[:, 0]
    assert lr.far_token_sensitivity(model, tokens, position) == pytest.approx(np.median(norms))


def test_far_token_jacobian_agrees_with_the_exact_formulas() -> None:
    # the attention layer: attention_input_jacobian; the RNN: rnn_input_jacobians (token 1)
    from course_lib.rnn import rnn_input_jacobians
    from course_lib.training import encode_tokens

    tokens = lr.StepsBackTask(n=7, vocab_size=4, k=6)(np.random.default_rng(4), 2)[0]
    attention = lr.make_model("attention", 4, d_k=3, seed=5)
    rnn = lr.make_model("rnn", 4, d_h=6, seed=5)
    p, q = attention.params, rnn.params
    for b in range(2):
        X = encode_tokens(tokens[b], 4)
        np.testing.assert_allclose(
            lr.far_token_jacobian(attention, tokens, 0)[b],
            lr.attention_input_jacobian(X, p["W_Q"], p["W_K"], p["W_V"], 6, 0), atol=1e-12)
        np.testing.assert_allclose(lr.far_token_jacobian(rnn, tokens, 0)[b],
                                   rnn_input_jacobians(X, q["W_xh"], q["W_hh"], q["b_h"])[-1],
                                   atol=1e-12)


def test_steps_back_task_names_the_token_k_steps_back() -> None:
    tokens, labels = lr.StepsBackTask(n=6, vocab_size=5, k=4)(np.random.default_rng(0), 50)
    assert tokens.shape == (50, 6) and tokens.dtype == np.int64 and tokens.max() < 5  # no marks
    np.testing.assert_array_equal(labels, tokens[:, 1])  # position n − k = 2, row 1
    with pytest.raises(ValueError, match="k must be"):
        lr.StepsBackTask(n=4, k=4)
    config = lr.LongRangeConfig.steps_back()
    assert lr.make_task(config, 8) == lr.StepsBackTask(n=9, vocab_size=8, k=8)
    assert config.models == (*lr.MODELS, lr.POSITIONS)


def test_attention_needs_positions_to_find_a_token_by_its_place() -> None:
    # swapping two tokens before the last leaves attention's readout unchanged without
    # positions (so it cannot tell which is k steps back) and changes it with them
    tokens = np.array([[0, 1, 2, 3, 1]])
    swapped = np.array([[2, 1, 0, 3, 1]])
    plain = lr.make_model("attention", 4, seed=0)
    np.testing.assert_allclose(plain.logits(tokens), plain.logits(swapped))
    positional = lr.make_model(lr.POSITIONS, 4, seed=0, n=5)
    assert not np.allclose(positional.logits(tokens), positional.logits(swapped))
    # the positions: sinusoidal, each row scaled to length 1, not learned
    assert np.allclose(np.linalg.norm(positional.positions, axis=1), 1)
    assert positional.encode(tokens).shape == (1, 5, 4 + 1 + 16)
    with pytest.raises(ValueError, match="sequence length"):
        lr.make_model(lr.POSITIONS, 4)


def test_update_gates_and_units_holding() -> None:
    from course_lib.rnn import gru_forward
    from course_lib.training import encode_tokens

    model = lr.make_model("gru", 3, d_h=4, seed=0)
    tokens = lr.StepsBackTask(n=5, vocab_size=3, k=4)(np.random.default_rng(1), 2)[0]
    z = lr.update_gates(model, tokens)
    p, X = model.params, encode_tokens(tokens, 3)
    h = gru_forward(X[:, :1], p["W_x"], p["W_h"], p["b_x"], p["b_h"])[:, 0]  # h_1
    a_2 = X[:, 1] @ p["W_x"][:, 4:8] + p["b_x"][4:8] + h @ p["W_h"][:, 4:8] + p["b_h"][4:8]
    z_2 = 1 / (1 + np.exp(-a_2))  # σ, written out: gate order r, z, n
    np.testing.assert_allclose(z[:, 1], z_2)
    kept = np.prod(z[:, 1:], axis=1)
    assert lr.units_holding(model, tokens, 0) == np.mean(kept > 0.5)
    model.params["b_x"][4:8] = 50.0  # gates wide open: every unit keeps its value
    assert lr.units_holding(model, tokens, 0) == 1.0
    with pytest.raises(ValueError, match="GRU"):
        lr.update_gates(lr.make_model("rnn", 3), tokens)


def test_parameter_counts_by_hand() -> None:
    V, d_h, d_k, d_pos = 8, 32, 16, 16
    d_in = V + 1
    assert lr.parameter_count(lr.make_model("rnn", V, d_h=d_h)) == (
        d_in * d_h + d_h * d_h + d_h + d_h * V + V)
    assert lr.parameter_count(lr.make_model("gru", V, d_h=d_h)) == (
        3 * (d_in * d_h + d_h * d_h + 2 * d_h) + d_h * V + V)
    attention = lr.make_model("attention", V, d_k=d_k)
    assert lr.parameter_count(attention) == 3 * d_in * d_k + d_k * V + V
    positional = lr.make_model(lr.POSITIONS, V, d_k=d_k, n=10, d_pos=d_pos)
    assert lr.parameter_count(positional) == 3 * (d_in + d_pos) * d_k + d_k * V + V


def test_recurrent_init_is_pytorchs_uniform() -> None:
    model = lr.make_model("gru", 8, d_h=25, seed=3)
    for name in ("W_x", "W_h", "b_x", "b_h"):
        assert np.abs(model.params[name]).max() <= 1 / 5
    with pytest.raises(ValueError, match="cell must be"):
        lr.RecurrentClassifier("lstm", 8)


TINY = {"distances": (1, 3), "seeds": 3, "steps": 40, "eval_every": 10, "eval_size": 32,
        "test_size": 64, "probe_size": 8, "lr_grid": (1e-2, 3e-2), "tuning_distance": 1,
        "vocab_size": 4, "d_h": 8, "d_k": 4, "d_pos": 4}


def test_experiment_on_a_tiny_grid_round_trips_through_json(tmp_path) -> None:
    import json

    config = lr.LongRangeConfig.steps_back(**TINY)
    calls = []
    result = lr.long_range_experiment(config, lambda *args: calls.append(args))
    runs = 4 * (2 + 2 * 3)  # four models: two tuning runs, then 2 distances x 3 seeds
    assert [call[:2] for call in calls] == [(k, runs) for k in range(1, runs + 1)]
    for name in config.models:
        assert result.accuracy[name].shape == (3, 2) and result.learning_rate[name] in (1e-2, 3e-2)
        assert (result.sensitivity_before[name] > 0).all()
        assert (name in result.holding_before) == (name == "gru")
    assert set(result.models) == {(n, d, s) for n in config.models for d in (1, 3)
                                  for s in range(3)}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(lr.results_json({"steps_back": result}, "the command")))
    back = lr.load_results(path)["steps_back"]
    assert back.config == config and back.provenance["command"] == "the command"
    for key in ("accuracy", "steps_to_target", "sensitivity_before", "sensitivity_after",
                "holding_before", "holding_after"):
        assert getattr(back, key).keys() == getattr(result, key).keys()
        for name, values in getattr(result, key).items():
            np.testing.assert_array_equal(getattr(back, key)[name], values)  # full precision
    assert lr.format_table(back) == lr.format_table(result)
    assert lr.disagreements(back, result) == []


def test_summaries_by_hand() -> None:
    config = lr.LongRangeConfig(distances=(2, 4, 8), seeds=3, eval_every=10)
    steps = np.array([[20, -1, 50], [40, 100, -1], [30, -1, -1]])
    accuracy = np.array([[1.0, 0.5, 0.95], [0.99, 0.92, 0.2], [0.9, 0.1, 0.3]])
    result = lr.LongRangeResult(config, {"rnn": 1}, {"rnn": 0.01}, {"rnn": accuracy},
                                {"rnn": steps}, {}, {})
    assert result.median_steps("rnn") == [30, None, None]  # not reached counts as the most
    assert result.seeds_at_target("rnn").tolist() == [3, 1, 1]
    np.testing.assert_allclose(result.median_accuracy("rnn"), [0.99, 0.5, 0.3])
    np.testing.assert_allclose(result.accuracy_range("rnn"), [[0.9, 0.1, 0.2], [1.0, 0.92, 0.95]])


def test_learning_rate_choice_ranks_accuracy_then_speed(monkeypatch) -> None:
    runs = {1e-3: lr.RunResult(0.9, None, np.zeros(1), np.zeros(1), 0.5),
            1e-2: lr.RunResult(1.0, 200, np.zeros(1), np.zeros(1), 0.2),
            3e-2: lr.RunResult(1.0, 100, np.zeros(1), np.zeros(1), 0.3)}
    seen = []

    def fake_run(name, distance, rate, seed, config):
        seen.append((distance, seed))
        return runs[rate]

    monkeypatch.setattr(lr, "train_run", fake_run)
    config = lr.LongRangeConfig(lr_grid=tuple(runs))
    assert lr.choose_learning_rate("gru", config) == 3e-2  # same accuracy, fewer steps
    assert set(seen) == {(config.tuning_distance, config.lr_seed)}  # never a reported seed
    assert config.lr_seed >= config.seeds
    assert lr.choose_learning_rate("gru", config, runs) == 3e-2


# --- the shipped results ------------------------------------------------------------------------


def test_shipped_results_are_the_commands_full_grids_with_their_provenance() -> None:
    shipped = lr.load_results()
    assert set(shipped) == {"marked", "steps_back"}
    # made with the command's current settings: a change of a default needs new shipped data
    assert shipped["marked"].config == lr.LongRangeConfig()
    assert shipped["steps_back"].config == lr.LongRangeConfig.steps_back()
    for result in shipped.values():
        c = result.config
        assert c.seeds >= 5 and max(c.distances) >= 64 and c.learning_rates is None
        p = result.provenance
        assert p["command"].startswith("python -m course_lib experiment longrange")
        assert {"date", "python", "numpy", "blas", "machine", "seconds"} <= set(p)
        assert all("architecture" in library for library in p["blas"])
        for name in c.models:
            assert result.accuracy[name].shape == (c.seeds, len(c.distances))
            assert set(np.unique(result.steps_to_target[name])) <= {-1, *range(0, c.steps + 1,
                                                                             c.eval_every)}
            assert result.learning_rate[name] in c.lr_grid
    # the quick run (lesson 06's live run) uses the learning rates the full grid's tuning chose
    assert dict(lr.LongRangeConfig.quick().learning_rates) == shipped["marked"].learning_rate


@pytest.mark.parametrize("task, models", [("marked", lr.MODELS),
                                          ("steps_back", ("attention", lr.POSITIONS))])
def test_shipped_results_agree_with_a_fresh_run_of_a_small_grid(task, models) -> None:
    # What "agree" means is `disagreements`' docstring: untrained numbers to 1e-6 (rounding
    # across BLAS kernels is ~1e-15), trained ones only where they are settled (every shipped
    # seed reached 90% within 100 steps), within 0.02 accuracy and one held-out check.
    from dataclasses import replace

    shipped = lr.load_results()[task]
    config = replace(shipped.config, models=models, distances=(2, 4), seeds=1,
                     learning_rates=tuple(shipped.learning_rate.items()))
    fresh = lr.long_range_experiment(config)
    settled = [(name, d) for name in models for k, d in enumerate(config.distances)
               if 0 <= shipped.steps_to_target[name][:, k].min()
               and shipped.steps_to_target[name][:, k].max() <= 100]
    assert settled, "nothing trained is compared: the test would only check untrained numbers"
    assert lr.disagreements(shipped, fresh) == []
    # and it can fail: a shipped number nudged beyond each tolerance is caught
    name, d = settled[0]
    for key, change in [("sensitivity_before", lambda a: a * (1 + 1e-5)),
                        ("accuracy", lambda a: a - 0.05),
                        ("steps_to_target", lambda a: a + 2 * config.eval_every)]:
        tampered = replace(shipped, **{key: {**getattr(shipped, key)}})
        values = getattr(tampered, key)[name] = getattr(shipped, key)[name].copy()
        values[0, shipped.config.distances.index(d)] = change(
            values[0, shipped.config.distances.index(d)])
        assert lr.disagreements(tampered, fresh), key


def test_command_line_prints_the_tables_and_writes_the_json(tmp_path, monkeypatch,
                                                            capsys) -> None:
    from course_lib.__main__ import main

    rates = (("rnn", 1e-2), ("gru", 1e-2), ("attention", 1e-2), (lr.POSITIONS, 1e-2))
    tiny = {**TINY, "seeds": 1, "distances": (1, 2), "learning_rates": rates}
    real = lr.LongRangeConfig

    class Tiny(real):
        def __new__(cls, *args, **kwargs):
            return real(*args, **{**tiny, **kwargs})

    monkeypatch.setattr(lr, "LongRangeConfig", Tiny)
    path = tmp_path / "out" / "longrange.json"
    assert main(["experiment", "longrange", "--seeds", "2", "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "2 seed(s) (0-1), 40 Adam steps" in out and "steps to 90%" in out and str(path) in out
    assert "task 'marked'" in out and "task 'steps_back'" in out
    assert "training" in err and "12/12" in err and "16/16" in err  # models x distances x seeds
    results = lr.load_results(path)
    assert set(results) == {"marked", "steps_back"} and results["marked"].config.seeds == 2
    assert results["marked"].provenance["command"] == (
        f"python -m course_lib experiment longrange --seeds 2 --json {path}")
    with pytest.raises(SystemExit):
        main(["experiment", "longrange", "--seeds", "0"])
