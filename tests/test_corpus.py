"""The GPT's corpus (course_lib.corpus): Python's help topics, the character tokenizer, batches."""

from __future__ import annotations

import gzip
import platform
from importlib import resources

import numpy as np
import pytest

from course_lib import corpus as corpus_module
from course_lib.corpus import (
    SNAPSHOT,
    SNAPSHOT_DIGEST,
    SNAPSHOT_PYTHON,
    UNKNOWN,
    CharTokenizer,
    corpus_digest,
    corpus_text,
    installed_help_topics,
    join_help_topics,
    load_corpus,
    sample_batch,
    sample_batch_with_repeats,
    split,
    write_snapshot,
)

SNAPSHOT_PYTHONS = platform.python_implementation() == "CPython" and (
    platform.python_version() == SNAPSHOT_PYTHON)


def test_the_corpus_is_the_shipped_snapshot_with_its_recorded_digest() -> None:
    text = corpus_text()
    assert corpus_digest(text) == SNAPSHOT_DIGEST
    assert len(text) == 465_126 and len(set(text)) == 103  # the numbers the docstrings give
    shipped = resources.files("course_lib").joinpath(SNAPSHOT).read_bytes()
    assert gzip.decompress(shipped).decode("utf-8") == text
    assert len(shipped) < 200_000, "gzip keeps it small"
    notice = resources.files("course_lib").joinpath(
        SNAPSHOT.replace(".txt.gz", ".NOTICE.md")).read_text(encoding="utf-8")
    for fact in (SNAPSHOT_DIGEST, "CPython 3.11.7", "PSF License Version 2",
                 "Python Software Foundation; All Rights Reserved", "--write-snapshot"):
        assert fact in notice, fact


def test_the_help_topics_are_joined_in_sorted_order_one_blank_line_apart() -> None:
    assert join_help_topics({"with": "W.", "if": "I.", "assert": "A."}) == "A.\n\nI.\n\nW."
    from pydoc_data.topics import topics

    text = installed_help_topics()  # this Python's own: the recipe holds on every version
    offset = 0
    for name in sorted(topics):  # each topic in turn, a blank line after it
        assert text[offset:offset + len(topics[name])] == topics[name], name
        offset += len(topics[name]) + 2
    assert offset == len(text) + 2
    assert len(text) > 300_000, "the help topics are several hundred thousand characters"


@pytest.mark.skipif(not SNAPSHOT_PYTHONS, reason=f"the snapshot holds CPython {SNAPSHOT_PYTHON}'s "
                    f"help topics; this is {platform.python_implementation()} "
                    f"{platform.python_version()}, whose topics differ")
def test_on_the_snapshots_python_the_snapshot_is_the_installed_help_topics() -> None:
    assert corpus_text() == installed_help_topics()


def test_write_snapshot_writes_a_text_that_reads_back_the_same(tmp_path) -> None:
    text = "Lambda \u03bb, caf\u00e9\r\nand a line.\n"
    path = tmp_path / "a" / "snapshot.txt.gz"
    assert write_snapshot(path, text) == corpus_digest(text)
    assert gzip.decompress(path.read_bytes()).decode("utf-8") == text
    first = path.read_bytes()
    write_snapshot(path, text)
    assert path.read_bytes() == first, "no time stamp: the same text gives the same bytes"


def test_the_command_compares_and_refuses_to_write_another_text(monkeypatch, capsys) -> None:
    assert corpus_module.main([]) == 0
    printed = capsys.readouterr().out
    assert SNAPSHOT_DIGEST in printed and "help topics" in printed
    written = []
    monkeypatch.setattr(corpus_module, "installed_help_topics", lambda: "another text")
    monkeypatch.setattr(corpus_module, "write_snapshot",
                        lambda path=None, text=None: written.append(text))
    assert corpus_module.main(["--write-snapshot"]) == 1 and written == []
    assert "not written" in capsys.readouterr().err
    assert corpus_module.main(["--write-snapshot", "--new-corpus"]) == 0
    assert written == ["another text"]


def test_tokenizer_round_trips_the_corpus_and_maps_unseen_characters_to_unknown() -> None:
    text = corpus_text()
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.vocab_size == len(set(text)) + 1
    assert tokenizer.chars[0] == UNKNOWN and list(tokenizer.chars[1:]) == sorted(set(text))
    tokens = tokenizer.encode(text)
    assert tokens.dtype == np.int64 and tokens.shape == (len(text),)
    assert 0 not in tokens
    assert tokenizer.decode(tokens) == text
    unseen = tokenizer.encode("a\u00e9\u4e2db")  # é and 中 are not in the help topics
    assert unseen.tolist() == [tokenizer.chars.index("a"), 0, 0, tokenizer.chars.index("b")]
    assert tokenizer.decode(unseen) == f"a{UNKNOWN}{UNKNOWN}b"
    assert tokenizer.decode(tokens[:12].reshape(3, 4)) == text[:12]
    assert CharTokenizer(tokenizer.chars) == tokenizer


def test_tokenizer_refuses_a_bad_vocabulary_and_bad_tokens() -> None:
    with pytest.raises(ValueError, match="unknown symbol"):
        CharTokenizer("abc")
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer(UNKNOWN + "aba")
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="vocab_size − 1 = 3"):
        tokenizer.decode([4])
    with pytest.raises(ValueError, match="whole numbers"):
        tokenizer.decode(np.array([1.0]))
    assert tokenizer.encode("").shape == (0,) and tokenizer.decode([]) == ""


def test_split_is_contiguous_and_deterministic() -> None:
    tokens = np.arange(1000)
    train, heldout = split(tokens, 0.1)
    assert len(train) == 900 and len(heldout) == 100
    assert np.array_equal(np.concatenate([train, heldout]), tokens)
    train[0] = -1
    assert tokens[0] == 0, "split returns copies"
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="heldout_fraction"):
            split(tokens, bad)
    with pytest.raises(ValueError, match="too few"):
        split(np.arange(3), 0.01)
    with pytest.raises(ValueError, match="one sequence"):
        split(np.zeros((2, 5), dtype=int))


def test_sample_batch_gives_windows_and_their_next_tokens() -> None:
    tokens = np.arange(100, 400)
    inputs, targets = sample_batch(tokens, 16, 10, np.random.default_rng(3))
    assert inputs.shape == targets.shape == (16, 10)
    assert inputs.dtype == targets.dtype == np.int64
    assert np.array_equal(targets, inputs + 1), "targets are the inputs one token later"
    assert np.all(np.diff(inputs, axis=1) == 1), "each row is a window of the text"
    assert inputs.min() >= 100 and targets.max() <= 399
    again = sample_batch(tokens, 16, 10, np.random.default_rng(3))
    assert np.array_equal(again[0], inputs) and np.array_equal(again[1], targets)
    ends = {int(sample_batch(np.arange(12), 1, 10, np.random.default_rng(s))[1][0, -1])
            for s in range(50)}
    assert ends == {10, 11}, "every window, up to the one that ends at the last token"
    with pytest.raises(ValueError, match="longer than n_ctx"):
        sample_batch(np.arange(10), 2, 10, np.random.default_rng(0))



def _repeated_passage(window: np.ndarray) -> tuple[int, int] | None:
    """(start, length) of the longest passage of 8 or more tokens written twice in a row."""
    n = len(window)
    for m in range(n // 2, 7, -1):
        for s in range(n - 2 * m + 1):
            if np.array_equal(window[s:s + m], window[s + m:s + 2 * m]):
                return s, m
    return None


def test_sample_batch_with_repeats_writes_a_passage_twice_in_the_chosen_share() -> None:
    tokens = np.arange(1000, 5000)  # no token twice: any repeat is one the sampler wrote
    rng = np.random.default_rng(4)
    inputs, targets = sample_batch_with_repeats(tokens, 64, 40, rng, fraction=0.5)
    assert inputs.shape == targets.shape == (64, 40) and inputs.dtype == np.int64
    assert np.array_equal(inputs[:, 1:], targets[:, :-1]), "targets: the windows one later"
    windows = np.concatenate([inputs, targets[:, -1:]], axis=1)  # (B, T + 1)
    found = [_repeated_passage(w) for w in windows]
    with_repeat = [f for f in found if f is not None]
    assert 20 <= len(with_repeat) <= 44, "about half of 64 (binomial, 3 standard deviations)"
    lengths = {m for _, m in with_repeat}
    assert min(lengths) >= 8 and max(lengths) <= 20 and len(lengths) > 3, lengths
    assert len({s for s, _ in with_repeat}) > 3, "the passage's place varies"
    for window, f in zip(windows, found, strict=True):
        if f is not None:
            s, m = f
            passage = window[s:s + m]
            assert np.all(np.diff(passage) == 1), "the passage is consecutive text"
    every = sample_batch_with_repeats(tokens, 16, 40, np.random.default_rng(5), fraction=1.0)
    assert all(_repeated_passage(np.append(x, y[-1])) for x, y in zip(*every, strict=True))
    plain = sample_batch_with_repeats(tokens, 16, 40, np.random.default_rng(5), fraction=0.0)
    assert np.array_equal(plain[0], sample_batch(tokens, 16, 40, np.random.default_rng(5))[0])
    again = sample_batch_with_repeats(tokens, 64, 40, np.random.default_rng(4), fraction=0.5)
    assert np.array_equal(again[0], inputs), "seeded"


def test_sample_batch_with_repeats_refuses_what_cannot_be_done() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        sample_batch_with_repeats(np.arange(100), 2, 20, rng, fraction=1.5)
    with pytest.raises(ValueError, match="no room for a passage of 8"):
        sample_batch_with_repeats(np.arange(100), 2, 12, rng, fraction=0.5)
    x, _ = sample_batch_with_repeats(np.arange(100), 2, 12, rng, fraction=0.0)
    assert x.shape == (2, 12), "no passage asked for: any n_ctx"


def test_load_corpus_splits_the_tokenized_text() -> None:
    corpus = load_corpus()
    text = corpus_text()
    assert corpus.digest == corpus_digest(text)
    assert len(corpus.train) + len(corpus.heldout) == len(text)
    assert abs(len(corpus.heldout) / len(text) - 0.1) < 1e-4
    assert corpus.tokenizer.decode(corpus.heldout) == text[len(corpus.train):]
    small = load_corpus(0.5, text="abcdef")
    assert small.tokenizer.decode(small.train) == "abc"
