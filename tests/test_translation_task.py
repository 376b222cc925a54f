"""The dates task (course_lib.translation_task): the words and the rule on worked examples, the
vocabularies, seeded splits with no held-out date in training and longer sources held out, and
batches."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from course_lib.translation_task import (
    BOS,
    EOS,
    PAD,
    SOURCE_VOCAB,
    TARGET_LENGTH,
    TARGET_VOCAB,
    day_words,
    make_batch,
    make_data,
    render,
    sample_batch,
    year_words,
)


@pytest.fixture(scope="module")
def data():
    return make_data(seed=0)


def _rule(example) -> list[str]:
    """The rule as text: for each target character, the words it comes from."""
    return [" ".join(example.source[i] for i in positions) for positions in example.aligned]


def test_worked_examples_with_their_alignments() -> None:
    e = render(datetime.date(2026, 3, 21), article=True)
    assert " ".join(e.source) == "the twenty first of March two thousand twenty six"
    assert e.target == "2026-03-21"
    assert _rule(e) == ["two thousand", "two thousand", "twenty", "six", "", "March", "March",
                        "", "twenty", "first"]
    e = render(datetime.date(1905, 12, 3))
    assert " ".join(e.source) == "third December nineteen oh five" and e.target == "1905-12-03"
    assert _rule(e) == ["nineteen", "nineteen", "oh", "five", "", "December", "December", "",
                        "third", "third"]


@pytest.mark.parametrize("year, words, third, fourth", [
    (1900, "nineteen hundred", "hundred", "hundred"),
    (1913, "nineteen thirteen", "thirteen", "thirteen"),
    (1940, "nineteen forty", "forty", "forty"),
    (2000, "two thousand", "thousand", "thousand"),
    (2006, "two thousand six", "thousand six", "six"),
    (2019, "two thousand nineteen", "nineteen", "nineteen"),
    (2099, "two thousand ninety nine", "ninety", "nine"),
])
def test_every_kind_of_year(year, words, third, fourth) -> None:
    assert " ".join(year_words(year)) == words
    rule = _rule(render(datetime.date(year, 1, 1)))
    assert rule[2:4] == [third, fourth]


def test_days_in_words() -> None:
    assert day_words(1) == ("first",) and day_words(20) == ("twentieth",)
    assert day_words(30) == ("thirtieth",) and day_words(31) == ("thirty", "first")
    with pytest.raises(ValueError):
        day_words(32)


def test_every_measured_character_names_words_and_separators_none() -> None:
    for ordinal in range(datetime.date(1900, 1, 1).toordinal(),
                         datetime.date(2099, 12, 31).toordinal(), 97):
        e = render(datetime.date.fromordinal(ordinal), article=ordinal % 2 == 0)
        assert len(e.target) == TARGET_LENGTH == len(e.aligned)
        assert e.aligned[4] == e.aligned[7] == ()  # the "-"s
        assert all(e.aligned[t] for t in (0, 1, 2, 3, 5, 6, 8, 9))
        assert all(e.source[i] not in ("the", "of") for a in e.aligned for i in a)


def test_the_vocabularies() -> None:
    assert SOURCE_VOCAB.tokens[PAD] == TARGET_VOCAB.tokens[PAD] == "<pad>"
    assert TARGET_VOCAB.tokens[BOS] == "<bos>" and TARGET_VOCAB.tokens[EOS] == "<eos>"
    assert len(SOURCE_VOCAB) == 66 and len(TARGET_VOCAB) == 14
    ids = SOURCE_VOCAB.encode(["the", "first", "of", "May"])
    assert SOURCE_VOCAB.decode(ids) == ["the", "first", "of", "May"]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        SOURCE_VOCAB.encode(["Tuesday"])


def test_the_splits_are_seeded_disjoint_and_the_longer_sources_longer(data) -> None:
    again = make_data.__wrapped__(seed=0)  # made again, not the cached splits
    assert again.train[:50] == data.train[:50] and again.longer == data.longer
    assert make_data.__wrapped__(seed=1).longer != data.longer
    train_dates = {e.date for e in data.train}
    assert not train_dates & {e.date for e in data.heldout + data.longer}
    longest = max(len(e.source) for e in data.train)
    assert longest == data.max_train_length == 7
    assert all(len(e.source) > longest for e in data.longer)
    assert all(len(e.source) <= longest for e in data.heldout)
    assert len(data.heldout) == len(data.longer) == 500


def test_a_batch_pads_the_sources_and_shifts_the_target(data) -> None:
    examples = [data.train[0], data.longer[0]]
    batch = make_batch(examples)
    n = max(len(e.source) for e in examples)
    assert batch.src.shape == (2, n) and batch.tgt_in.shape == (2, TARGET_LENGTH + 1)
    assert np.array_equal(batch.src_is_token, batch.src != PAD)
    assert batch.src_is_token.sum(axis=1).tolist() == [len(e.source) for e in examples]
    assert np.all(batch.tgt_in[:, 0] == BOS) and np.all(batch.tgt_out[:, -1] == EOS)
    assert np.array_equal(batch.tgt_in[:, 1:], batch.tgt_out[:, :-1])
    assert "".join(TARGET_VOCAB.decode(batch.tgt_out[1, :-1])) == examples[1].target
    assert batch.aligned.shape == (2, TARGET_LENGTH + 1, n)
    assert not batch.aligned[:, -1].any()  # EOS comes from no word
    assert not (batch.aligned & ~batch.src_is_token[:, None, :]).any()  # never on padding


def test_sample_batch_is_seeded(data) -> None:
    a = sample_batch(data.train, 8, np.random.default_rng(1))
    b = sample_batch(data.train, 8, np.random.default_rng(1))
    assert np.array_equal(a.src, b.src) and len(a) == 8
