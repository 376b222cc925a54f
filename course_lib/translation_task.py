"""A toy translation task the course generates: English dates in words to ISO dates.

    "the twenty first of March two thousand twenty six"   ->   "2026-03-21"
    "third December nineteen oh five"                       ->   "1905-12-03"

Why this task: its alignments can be checked by eye, and it has what translation has. The
source and target differ in length (4 to 9 words against 10 characters) and in order (day,
month, year against year, month, day: a reordering); some source words translate to nothing
("the", "of"), one word to two characters ("December" -> "12") and two words to one character
or two ("two thousand" -> "20"). Every date from 1 January 1900 to 31 December 2099, with or
without "the ... of", seeded, generated here: nothing is downloaded.

Tokens: the source is cut into words (a word is the unit of meaning here: "twenty" is one
token, and a map of attention has one column per word a person can read), the target into
characters (each digit is what a word or two of the source says). Ids: the source's
`SOURCE_VOCAB` (0 = padding), the target's `TARGET_VOCAB` (0 = padding, 1 = BOS, the token the
decoder starts from, 2 = EOS, the token that ends a translation).

The alignment rule (`Example.aligned`): for each target character, the source words it comes
from. Year "YYYY": the first two digits from the century words ("nineteen" or "two
thousand"); the third from the word that gives the tens ("twenty" .. "ninety", a teen word
"ten" .. "nineteen", "oh" in "nineteen oh five", "hundred" in "nineteen hundred", or, for 2000
to 2009, the words after "two": "thousand" and the unit word); the fourth from the unit word
("five"), or the teen word, or the tens word when the year ends in 0 ("nineteen twenty"), or
"hundred" / "thousand" for 1900 / 2000. Month "MM": both digits from the month's name. Day
"DD": from the day's word ("third", "twentieth"); for a two-word day, the first digit from
"twenty" / "thirty" and the second from the ordinal ("first"). The separators "-" and EOS come
from no word: they are left out of the alignment measurement.

The splits (`make_data`): dates are shuffled (seeded) into a training pool and a held-out
pool, so no held-out date was ever seen. Training and held-out examples have at most
`max_train_length` source words; the `longer` examples, held-out dates only, have more words
than any training source.

Course data layer: numpy and the standard library only.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from course_lib.shapes import check_count

__all__ = [
    "MONTHS",
    "Example",
    "day_words",
    "year_words",
    "render",
    "Vocabulary",
    "SOURCE_VOCAB",
    "TARGET_VOCAB",
    "PAD",
    "BOS",
    "EOS",
    "TARGET_LENGTH",
    "TranslationData",
    "make_data",
    "Batch",
    "make_batch",
    "sample_batch",
]

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
_UNITS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINALS = ("", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
             "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth")
FIRST_DATE, LAST_DATE = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
TARGET_LENGTH = 10
"""Characters of every target, "YYYY-MM-DD" (the decoder then predicts EOS: 11 positions)."""


def day_words(day: int) -> tuple[str, ...]:
    """The day of the month as an ordinal in words: 3 -> ("third",), 21 -> ("twenty", "first"),
    30 -> ("thirtieth",)."""
    if not 1 <= day <= 31:
        raise ValueError(f"day must be 1 .. 31; got {day}.")
    if day <= 20:
        return (_ORDINALS[day],)
    if day == 30:
        return ("thirtieth",)
    return (_TENS[day // 10], _ORDINALS[day % 10])


def year_words(year: int) -> tuple[str, ...]:
    """A year of 1900 .. 2099 as it is said: 1905 -> ("nineteen", "oh", "five"), 1900 ->
    ("nineteen", "hundred"), 2000 -> ("two", "thousand"), 2026 -> ("two", "thousand",
    "twenty", "six")."""
    if not 1900 <= year <= 2099:
        raise ValueError(f"year must be 1900 .. 2099; got {year}.")
    century, rest = divmod(year, 100)
    words = ("nineteen",) if century == 19 else ("two", "thousand")
    if rest == 0:
        return words + (("hundred",) if century == 19 else ())
    if rest < 10:
        return words + (("oh",) if century == 19 else ()) + (_UNITS[rest],)
    if rest < 20:
        return words + (_TEENS[rest - 10],)
    return words + (_TENS[rest // 10],) + ((_UNITS[rest % 10],) if rest % 10 else ())


@dataclass(frozen=True)
class Example:
    """One sentence pair: `source` words, `target` characters ("YYYY-MM-DD") and the alignment
    rule: aligned[t], the positions of the source words target character t comes from (empty
    for "-")."""

    date: datetime.date
    source: tuple[str, ...]
    target: str
    aligned: tuple[tuple[int, ...], ...]


def render(date: datetime.date, article: bool = False) -> Example:
    """The example of `date`: "[the] <day> [of] <Month> <year>" -> "YYYY-MM-DD", with its rule.

    article: say "the twenty first of March" rather than "twenty first March".
    """
    if not FIRST_DATE <= date <= LAST_DATE:
        raise ValueError(f"the task's dates run from {FIRST_DATE} to {LAST_DATE}; got {date}.")
    day = day_words(date.day)
    source = (("the",) if article else ()) + day + (("of",) if article else ())
    day_at = list(range(int(article), int(article) + len(day)))  # the day's word positions
    month_at = len(source)
    source += (MONTHS[date.month - 1],)
    year = year_words(date.year)
    year_at = list(range(len(source), len(source) + len(year)))
    source += year
    century = year_at[:1] if date.year < 2000 else year_at[:2]  # "nineteen" | "two thousand"
    after = year_at[len(century):]  # the words after the century's, 0 to 2 of them
    rest = date.year % 100
    if not after:  # 2000: "two thousand"
        tens, units = year_at[1:2], year_at[1:2]  # "thousand"
    elif rest < 10 and date.year >= 2000:  # "two thousand six"
        tens, units = year_at[1:], after[-1:]
    else:  # "hundred" | "oh five" | a teen | "twenty [six]"
        tens, units = after[:1], after[-1:]
    day_first, day_second = day_at[:1], day_at[-1:]  # the same word for a one-word day
    aligned = (century, century, tens, units, (), (month_at,), (month_at,), (),
               tuple(day_first), tuple(day_second))
    target = date.isoformat()
    return Example(date, source, target, tuple(tuple(a) for a in aligned))


@dataclass(frozen=True)
class Vocabulary:
    """Tokens and their ids: tokens[i] is the token of id i. Id 0 is always padding."""

    tokens: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """The id of one token (ValueError for a token outside the vocabulary)."""
        try:
            return self._ids()[token]
        except KeyError:
            raise ValueError(f"{token!r} is not in the vocabulary.") from None

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of a sequence of tokens, int64 (len,)."""
        return np.array([self.id(token) for token in tokens], dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The tokens of ids (padding included, as "<pad>")."""
        return [self.tokens[int(i)] for i in np.asarray(ids).reshape(-1)]

    def _ids(self) -> dict[str, int]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = {token: i for i, token in enumerate(self.tokens)}
            object.__setattr__(self, "_cache", cached)
        return cached


def _all_source_words() -> tuple[str, ...]:
    words = {"the", "of", *MONTHS}
    for day in range(1, 32):
        words.update(day_words(day))
    for year in range(1900, 2100):
        words.update(year_words(year))
    return tuple(sorted(words))


PAD, BOS, EOS = 0, 1, 2
SOURCE_VOCAB = Vocabulary(("<pad>",) + _all_source_words())
"""The source's 65 words, after padding (id 0)."""
TARGET_VOCAB = Vocabulary(("<pad>", "<bos>", "<eos>") + tuple("0123456789-"))
"""The target's characters: padding, BOS, EOS, the digits and "-" (14 tokens)."""


@dataclass(frozen=True)
class TranslationData:
    """The task's splits: `train` and `heldout` (held-out dates) with at most
    `max_train_length` source words, `longer` (held-out dates) with more."""

    train: tuple[Example, ...]
    heldout: tuple[Example, ...]
    longer: tuple[Example, ...]
    max_train_length: int
    seed: int


@functools.lru_cache(maxsize=4)
def make_data(seed: int = 0, max_train_length: int = 7, heldout_fraction: float = 0.1,
              n_heldout: int = 500, n_longer: int = 500) -> TranslationData:
    """The splits of the task, deterministic for a seed (about 2 s: kept for the next call with
    the same arguments, the splits being immutable).

    Every date of 1900 .. 2099 is rendered with and without "the ... of"; the dates are
    shuffled and the first `heldout_fraction` of them held out. train: every rendering of a
    training date with at most max_train_length words (shuffled). heldout: n_heldout renderings
    of held-out dates with at most max_train_length words; longer: n_longer renderings of
    held-out dates with more words than that (sources longer than any in training).
    """
    check_count(max_train_length, "max_train_length")
    rng = np.random.default_rng(seed)
    first, last = FIRST_DATE.toordinal(), LAST_DATE.toordinal()
    ordinals = rng.permutation(np.arange(first, last + 1))
    n_out = int(round(heldout_fraction * len(ordinals)))

    def examples(pool: np.ndarray) -> list[Example]:
        dates = [datetime.date.fromordinal(int(o)) for o in pool]
        return [render(date, article) for date in dates for article in (False, True)]

    train = [e for e in examples(ordinals[n_out:]) if len(e.source) <= max_train_length]
    out = examples(ordinals[:n_out])
    short = [e for e in out if len(e.source) <= max_train_length]
    long = [e for e in out if len(e.source) > max_train_length]
    if not long:
        raise ValueError(f"no source has more than max_train_length = {max_train_length} "
                         "words (the longest have 9).")

    def pick(items: list[Example], n: int) -> tuple[Example, ...]:
        order = rng.permutation(len(items))[:n]
        return tuple(items[i] for i in order)

    return TranslationData(pick(train, len(train)), pick(short, n_heldout),
                           pick(long, n_longer), max_train_length, seed)


@dataclass(frozen=True)
class Batch:
    """A batch of examples as arrays, the sources padded to the longest (n_src words).

    src (B, n_src) int64 ids (0 = padding); src_is_token (B, n_src) bool, True for a real word
    (`attention.padding_mask(src_is_token)` masks the padding); tgt_in (B, T) the decoder's
    input, BOS then the target's characters; tgt_out (B, T) what it must predict at each
    position, the characters then EOS (T = TARGET_LENGTH + 1 = 11); aligned (B, T, n_src)
    bool, the alignment rule (row t: the source words target token tgt_out[:, t] comes from;
    all False for "-" and EOS).
    """

    src: np.ndarray
    src_is_token: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    aligned: np.ndarray

    def __len__(self) -> int:
        return int(self.src.shape[0])


def make_batch(examples: Sequence[Example]) -> Batch:
    """The `Batch` of `examples`, in their order."""
    if not examples:
        raise ValueError("a batch needs at least one example.")
    n_src = max(len(e.source) for e in examples)
    B, T = len(examples), TARGET_LENGTH + 1
    src = np.zeros((B, n_src), dtype=np.int64)
    tgt_in = np.full((B, T), BOS, dtype=np.int64)
    tgt_out = np.full((B, T), EOS, dtype=np.int64)
    aligned = np.zeros((B, T, n_src), dtype=bool)
    for b, example in enumerate(examples):
        src[b, :len(example.source)] = SOURCE_VOCAB.encode(example.source)
        characters = TARGET_VOCAB.encode(tuple(example.target))
        tgt_in[b, 1:] = characters
        tgt_out[b, :-1] = characters
        for t, positions in enumerate(example.aligned):
            aligned[b, t, list(positions)] = True
    return Batch(src, src != PAD, tgt_in, tgt_out, aligned)


def sample_batch(examples: Sequence[Example], batch_size: int,
                 rng: np.random.Generator) -> Batch:
    """`batch_size` examples drawn uniformly with replacement, as a `Batch`."""
    batch_size = check_count(batch_size, "batch_size")
    return make_batch([examples[int(i)] for i in rng.integers(0, len(examples), batch_size)])
