"""The encoder-decoder (course_lib.seq2seq) and its training (course_lib.seq2seq_training): the
gradients against central differences, padding and causality, greedy decoding, the alignment
measurement, a seeded loop, checkpoints, the command line and the committed checkpoint."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from course_lib import seq2seq_training as st
from course_lib.__main__ import main
from course_lib.seq2seq import (
    BOS,
    EOS,
    GRUSeq2SeqConfig,
    Seq2SeqConfig,
    gru_seq2seq_loss_and_gradients,
    gru_translate,
    init_gru_seq2seq,
    init_seq2seq,
    seq2seq_attention,
    seq2seq_forward,
    seq2seq_loss_and_gradients,
    translate,
)
from course_lib.training import numerical_gradient, relative_error
from course_lib.translation_task import make_batch, make_data

ROOT = Path(__file__).resolve().parents[1]
TINY = Seq2SeqConfig(9, 7, d_model=4, n_heads=2, n_encoder_layers=2, n_decoder_layers=2, d_ff=6)


def _tiny_params(seed: int = 0) -> dict[str, np.ndarray]:
    """float64 parameters, perturbed away from the initialisation so every path carries
    gradient."""
    rng = np.random.default_rng(seed)
    params = init_seq2seq(TINY, rng, dtype=np.float64)
    return {name: value + (0 if name.endswith("embedding") else 0.3)
            * rng.standard_normal(value.shape) for name, value in params.items()}


SRC = np.array([[3, 4, 5, 0], [6, 7, 8, 2]])  # the first source padded
TGT_IN = np.array([[BOS, 3, 4], [BOS, 5, 6]])
TGT_OUT = np.array([[3, 4, EOS], [5, 6, EOS]])


@pytest.fixture(scope="module")
def data():
    return make_data()


def test_the_gradients_match_central_differences() -> None:
    params = _tiny_params()
    loss, grads = seq2seq_loss_and_gradients(params, TINY, SRC, TGT_IN, TGT_OUT)
    numerical = numerical_gradient(
        lambda p: seq2seq_loss_and_gradients(p, TINY, SRC, TGT_IN, TGT_OUT)[0], params)
    for name in params:
        error = relative_error(grads[name], numerical[name])
        assert error < 1e-7 or np.allclose(grads[name], numerical[name], rtol=0, atol=1e-8), (
            name, error)
    assert grads["src_embedding"][0].tolist() == [0] * TINY.d_model  # padding: no gradient
    assert set(grads) == set(params)


def test_padding_changes_nothing_and_the_decoder_is_causal() -> None:
    params = _tiny_params(1)
    logits = seq2seq_forward(params, TINY, SRC, TGT_IN)
    alone = seq2seq_forward(params, TINY, SRC[:1, :3], TGT_IN[:1])  # no padding at all
    assert np.allclose(logits[0], alone[0])
    later = TGT_IN.copy()
    later[:, 2] = 6  # change the last target token: the earlier positions must not move
    assert np.allclose(seq2seq_forward(params, TINY, SRC, later)[:, :2], logits[:, :2])


def test_the_maps_have_the_shapes_of_their_rectangles() -> None:
    maps = seq2seq_attention(_tiny_params(), TINY, SRC, TGT_IN)
    assert [m.shape for m in maps["encoder"]] == [(2, 2, 4, 4)] * 2
    assert [m.shape for m in maps["decoder"]] == [(2, 2, 3, 3)] * 2
    assert [m.shape for m in maps["cross"]] == [(2, 2, 3, 4)] * 2
    assert np.all(maps["cross"][0][0, :, :, 3] == 0)  # the padded word gets no attention
    assert np.allclose(maps["cross"][1].sum(axis=-1), 1)


def test_greedy_decoding_stops_at_eos_and_pads_after_it() -> None:
    params = _tiny_params(2)
    params["W_out"][:] = 0
    params["W_out"][:, EOS] = 1e-3  # a model that writes EOS first, whatever the source
    params["decoder_ln_beta"][:] = 1
    params["decoder_ln_gamma"][:] = 0
    out = translate(params, TINY, SRC, max_length=5)
    assert out.tolist() == [[EOS], [EOS]]
    params = _tiny_params(3)
    batch = translate(params, TINY, SRC, max_length=4)
    single = translate(params, TINY, SRC[1], max_length=4)
    assert batch.shape[0] == 2 and np.array_equal(batch[1, :len(single)], single)
    for row in batch:
        if EOS in row.tolist():
            assert np.all(row[row.tolist().index(EOS) + 1:] == 0)


def test_the_configuration_and_the_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="divide"):
        Seq2SeqConfig(9, 7, d_model=6, n_heads=4)
    with pytest.raises(ValueError, match="BOS"):
        Seq2SeqConfig(9, 2)
    params = _tiny_params()
    with pytest.raises(ValueError, match="0 .. 8"):
        seq2seq_forward(params, TINY, SRC + 9, TGT_IN)
    with pytest.raises(ValueError, match="at least one word"):
        seq2seq_forward(params, TINY, np.zeros((1, 3), dtype=int), TGT_IN[:1])


def test_initialisation_is_seeded_and_named() -> None:
    a = init_seq2seq(TINY, np.random.default_rng(0))
    b = init_seq2seq(TINY, np.random.default_rng(0))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert all(v.dtype == np.float32 for v in a.values())
    assert "decoder.1.cross_W_Q" in a and "encoder.0.W_1" in a and a["W_out"].shape == (4, 7)


# --- the measurements ------------------------------------------------------------------------


def test_attention_spread_evenly_scores_the_chance_share(data) -> None:
    config = st.default_config(d_model=16, n_heads=2, n_layers=1)
    params = init_seq2seq(config, np.random.default_rng(0))
    params["decoder.0.cross_W_Q"][:] = 0  # every score 0: even weights over the real words
    batch = make_batch(data.heldout[:20] + data.longer[:5])
    share = st.alignment_share(params, config, batch)
    assert share.shape == (1, 2)
    assert np.allclose(share, st.chance_share(batch), atol=1e-6)
    assert 0.1 < st.chance_share(batch) < 0.3


def test_exact_match_compares_the_whole_translation(data) -> None:
    config = st.default_config(d_model=16, n_heads=2, n_layers=1)
    params = init_seq2seq(config, np.random.default_rng(0))
    assert st.exact_match(params, config, data.heldout[:7]).tolist() == [False] * 7


def test_a_short_run_is_seeded_and_records_the_maps(data) -> None:
    config = st.default_config(d_model=16, n_heads=2, n_layers=1)
    settings = st.Seq2SeqSettings(steps=4, batch_size=4, eval_every=2, eval_size=6, warmup=1)
    a = st.train_seq2seq(config, settings, data)
    b = st.train_seq2seq(config, settings, data)
    assert np.array_equal(a.history.loss, b.history.loss) and len(a.history.loss) == 4
    assert a.eval_steps.tolist() == [0, 2, 4]
    n = len(a.example.source)
    assert a.snapshots.shape == (3, 1, 2, 11, n) and a.alignment.shape == (3, 1, 2)
    assert a.alignment_by_position.shape == (3, 1, 2, 11)
    assert np.isnan(a.alignment_by_position[0, 0, 0, [4, 7, 10]]).all()
    assert len(a.outputs) == 3 and a.example == data.longer[0]
    assert np.allclose(a.snapshots.sum(axis=-1), 1, atol=1e-5)


def test_checkpoint_round_trip(tmp_path, data) -> None:
    config = st.default_config(d_model=16, n_heads=2, n_layers=1)
    settings = st.Seq2SeqSettings(steps=2, batch_size=4, eval_every=1, eval_size=4, warmup=1)
    run = st.train_seq2seq(config, settings, data)
    path = st.save_seq2seq_checkpoint(tmp_path / "a" / "s.npz", run, config, {"seed": 0})
    checkpoint = st.load_seq2seq_checkpoint(path)
    assert checkpoint.config == config and checkpoint.provenance == {"seed": 0}
    assert all(np.array_equal(checkpoint.params[k], v) for k, v in run.params.items())
    assert checkpoint.evaluations == run.evaluations and checkpoint.example == run.example
    assert np.array_equal(checkpoint.snapshots, run.snapshots)
    assert checkpoint.outputs == run.outputs
    assert np.array_equal(checkpoint.run.alignment, run.alignment)


def test_train_seq2seq_command_writes_a_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "tiny.npz"
    argv = ["train", "seq2seq", "--steps", "2", "--seeds", "1", "--d-model", "8", "--n-heads",
            "2", "--n-layers", "1", "--batch-size", "2", "--seed", "5", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "seed 6: exact match" in printed and "main run, seed 5" in printed
    checkpoint = st.load_seq2seq_checkpoint(out)
    p = checkpoint.provenance
    assert p["command"] == "python -m course_lib " + " ".join(argv)
    assert p["seed"] == 5 and p["settings"]["steps"] == 2 and p["seeds"]["seed"] == [6]
    assert checkpoint.config.d_model == 8 and len(checkpoint.history.loss) == 2


# --- the committed checkpoint ----------------------------------------------------------------

SHIPPED = ROOT / "course_lib" / st.CHECKPOINT
needs_checkpoint = pytest.mark.skipif(not SHIPPED.is_file(), reason="no committed checkpoint")


@pytest.fixture(scope="module")
def shipped() -> st.Seq2SeqCheckpoint:
    return st.load_seq2seq_checkpoint()


@needs_checkpoint
def test_the_checkpoint_ships_with_the_package_and_is_small(shipped) -> None:
    assert resources.files("course_lib").joinpath(st.CHECKPOINT).is_file()
    assert SHIPPED.stat().st_size < 1_000_000


@needs_checkpoint
def test_the_checkpoint_records_how_it_was_made(shipped) -> None:
    p = shipped.provenance
    assert p["command"].startswith("python -m course_lib train seq2seq")
    assert "--out course_lib/results/seq2seq_translation.npz" in p["command"]
    for key in ("date", "python", "numpy", "blas", "machine", "seconds", "seed", "final",
                "seeds", "data", "settings"):
        assert key in p, key
    assert p["settings"]["seed"] == p["seed"]
    assert p["settings"]["steps"] == len(shipped.history.loss)


@needs_checkpoint
def test_the_checkpoint_translates_longer_sources_over_seeds(shipped) -> None:
    final, seeds = shipped.provenance["final"], shipped.provenance["seeds"]
    assert len(seeds["seed"]) >= 3
    assert min(seeds["longer_accuracy"] + [final["longer_accuracy"]]) >= 0.9
    assert min(seeds["heldout_accuracy"] + [final["heldout_accuracy"]]) >= 0.9
    longest = shipped.provenance["data"]["source_words"]
    assert longest["longer"][0] > longest["train"][1]


@needs_checkpoint
def test_the_alignment_forms_well_above_chance(shipped) -> None:
    run = shipped.run
    assert run.alignment[0].max() < run.chance + 0.05  # at the start: about even
    assert run.alignment[-1].max() > run.chance + 0.3
    assert min(shipped.provenance["seeds"]["best_head_alignment"]) > run.chance + 0.3


@pytest.fixture(scope="module")
def shipped_data(shipped):
    recorded = shipped.provenance["data"]
    return make_data(recorded["seed"], recorded["max_train_length"])


@needs_checkpoint
def test_the_shipped_model_translates_as_recorded(shipped, shipped_data) -> None:
    n = shipped.provenance["settings"]["eval_size"]
    correct = st.exact_match(shipped.params, shipped.config, shipped_data.longer[:n])
    # the examples the last evaluation measured: the same share, but for rounding near a tie
    assert abs(correct.mean() - shipped.evaluations[-1].longer_accuracy) <= 0.01


@needs_checkpoint
def test_retraining_from_the_recorded_seed_repeats_the_first_steps(shipped, shipped_data) -> None:
    settings = st.Seq2SeqSettings(**{k: v for k, v in shipped.provenance["settings"].items()
                                     if k in {f.name for f in dataclasses.fields(
                                         st.Seq2SeqSettings)}})
    steps = 6
    run = st.train_seq2seq(shipped.config, dataclasses.replace(settings, eval_size=4),
                           shipped_data, steps=steps)
    assert np.allclose(run.history.loss, shipped.history.loss[:steps], rtol=0, atol=1e-4), (
        run.history.loss, shipped.history.loss[:steps])
    assert np.allclose(run.history.lr, shipped.history.lr[:steps], rtol=1e-6)


# --- the GRU encoder-decoder, with and without attention -----------------------------------------


@pytest.mark.parametrize("attention", [False, True])
def test_the_gru_gradients_match_central_differences(attention) -> None:
    config = GRUSeq2SeqConfig(9, 7, d_h=3, attention=attention)
    rng = np.random.default_rng(4)
    params = {k: v + 0.3 * rng.standard_normal(v.shape)
              for k, v in init_gru_seq2seq(config, rng, dtype=np.float64).items()}
    loss, grads = gru_seq2seq_loss_and_gradients(params, config, SRC, TGT_IN, TGT_OUT)
    numerical = numerical_gradient(
        lambda p: gru_seq2seq_loss_and_gradients(p, config, SRC, TGT_IN, TGT_OUT)[0], params)
    for name in params:
        error = relative_error(grads[name], numerical[name])
        assert error < 1e-6 or np.allclose(grads[name], numerical[name], rtol=0, atol=1e-8), (
            name, error)
    assert ("W_Q" in params) == attention


def test_the_gru_ignores_the_padding_after_the_words() -> None:
    config = GRUSeq2SeqConfig(9, 7, d_h=3, attention=True)
    params = init_gru_seq2seq(config, np.random.default_rng(5), dtype=np.float64)
    padded = gru_translate(params, config, SRC, max_length=3)
    alone = gru_translate(params, config, SRC[:1, :3], max_length=3)
    assert np.array_equal(padded[0], alone[0])


def test_train_seq2seq_rnn_command_writes_its_results(tmp_path, capsys) -> None:
    out = tmp_path / "rnn.npz"
    argv = ["train", "seq2seq-rnn", "--steps", "2", "--seeds", "1", "--d-model", "4",
            "--batch-size", "2", "--out", str(out)]
    assert main(argv) == 0
    assert "gru+attention, seed 0: exact match" in capsys.readouterr().out
    saved = st.load_rnn_comparison(out)
    assert saved["provenance"]["command"] == "python -m course_lib " + " ".join(argv)
    results = saved["results"]
    assert set(results["models"]) == {"gru", "gru+attention"}
    assert results["lengths"] == list(range(4, 10))
    assert len(results["models"]["gru"]["by_length"]["9"]) == 1


RNN_SHIPPED = ROOT / "course_lib" / st.RNN_RESULTS


@pytest.mark.skipif(not RNN_SHIPPED.is_file(), reason="no committed RNN comparison")
def test_the_rnn_comparison_records_attention_removing_the_bottleneck() -> None:
    saved = st.load_rnn_comparison()
    p, results = saved["provenance"], saved["results"]
    assert p["command"].startswith("python -m course_lib train seq2seq-rnn")
    assert "--out course_lib/results/seq2seq_rnn.npz" in p["command"]
    models = results["models"]
    assert len(models["gru"]["seeds"]) >= 3 and len(models["gru+attention"]["seeds"]) >= 3
    # the same budget: without attention the GRU has barely started; with it, it translates,
    # longer sources included, on every seed
    assert max(models["gru"]["heldout"] + models["gru"]["longer"]) < 0.2
    assert min(models["gru+attention"]["heldout"] + models["gru+attention"]["longer"]) > 0.95
    assert all(min(a) > 0.95 for a in models["gru+attention"]["by_length"].values())
    assert results["lengths"][-1] > results["max_train_length"]
