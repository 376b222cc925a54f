"""The text the course's GPT learns from: Python's own help topics, as characters.

The corpus is the text of `help("if")`, `help("with")` and the other topics of Python's
interactive help (`pydoc_data.topics.topics`): English prose about Python with code examples,
written by the Python documentation's authors and distributed under the PSF Licence Version 2.
Those topics differ between Python versions, and every number a lesson computes from the corpus
(held-out losses, live training, samples) would differ with them. So the course ships the text it
learned from: a snapshot of CPython 3.11.7's help topics, the 79 topics joined in sorted order of
their names (465,126 characters, 103 distinct ones), gzip-compressed in
`course_lib/texts/python_help_topics.txt.gz` (its provenance and licence beside it, in
`python_help_topics.NOTICE.md`). It reads the same on every Python, and nothing is downloaded.

- `corpus_text()`: the course's corpus, the shipped snapshot (its SHA-256 is `SNAPSHOT_DIGEST`,
  the digest the committed checkpoint records);
- `installed_help_topics()`: the same recipe (`join_help_topics`) applied to this Python's own
  `pydoc_data`, for comparison: equal to the snapshot on CPython 3.11.7, different on others;
- `write_snapshot()`: the maintainers' command that makes the snapshot
  (`python -m course_lib.corpus --write-snapshot`, on CPython 3.11.7);
- `CharTokenizer`: one token per character. Its vocabulary is every character of the text it is
  built from, plus one unknown symbol "\ufffd" (token 0) for any character it has not seen (a
  prompt's, say). Mapping rare characters to the unknown symbol would save little: in the
  corpus, characters seen fewer than 10 times are 4 of the 103 (13 of 465k characters), fewer
  than 100 times 27 of them (0.2 % of the text), so every character is kept;
- `split(tokens)`: a contiguous train / held-out split (the held-out text is the end of the
  corpus, text the model never trains on, not characters scattered through its training text);
- `sample_batch(tokens, batch_size, n_ctx, rng)`: random windows of n_ctx tokens and the same
  windows shifted by one, the targets of next-token prediction;
- `sample_batch_with_repeats(tokens, batch_size, n_ctx, rng, fraction)`: the same windows, a
  `fraction` of them carrying a passage of the text written twice in a row, so that copying
  from the context pays (lesson 12's second model, which forms an induction head);
- `load_corpus()`: all of it at once (tokenizer, train and held-out tokens, digest).

Imports numpy and the standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from course_lib.shapes import check_count

__all__ = [
    "UNKNOWN",
    "SNAPSHOT",
    "SNAPSHOT_DIGEST",
    "SNAPSHOT_PYTHON",
    "corpus_text",
    "corpus_digest",
    "join_help_topics",
    "installed_help_topics",
    "write_snapshot",
    "CharTokenizer",
    "split",
    "sample_batch",
    "sample_batch_with_repeats",
    "Corpus",
    "load_corpus",
]

UNKNOWN = "\ufffd"
"""The unknown symbol, token 0: what a character outside the vocabulary becomes."""


SNAPSHOT = "texts/python_help_topics.txt.gz"
"""The shipped corpus, relative to the course_lib package: UTF-8 text, gzip-compressed."""

SNAPSHOT_DIGEST = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"
"""The SHA-256 of the shipped corpus, `corpus_digest(corpus_text())`: the checkpoint records it."""

SNAPSHOT_PYTHON = "3.11.7"
"""The CPython whose help topics the snapshot holds."""


def join_help_topics(topics: Mapping[str, str]) -> str:
    """The topics' texts in sorted order of their names, one blank line ("\\n\\n") apart."""
    return "\n\n".join(topics[name] for name in sorted(topics))


def installed_help_topics() -> str:
    """This Python's own help topics (`pydoc_data.topics.topics`), joined by `join_help_topics`.

    Not the course's corpus: the same text as `corpus_text()` on CPython 3.11.7 only. Other
    versions document other features: 459,073 characters on 3.10.13, 465,126 on 3.11.7,
    492,311 on 3.12.1, 510,742 on 3.13.0.
    """
    from pydoc_data.topics import topics

    return join_help_topics(topics)


def corpus_text() -> str:
    """The course's corpus: CPython 3.11.7's help topics, as shipped with the course, one string.

    `installed_help_topics()` as it was on CPython 3.11.7 (465,126 characters), read from the
    package's gzip-compressed snapshot `SNAPSHOT`: the same text on every Python, so every
    number computed from it is the same on every machine. Its digest is `SNAPSHOT_DIGEST`.
    """
    compressed = resources.files("course_lib").joinpath(SNAPSHOT).read_bytes()
    return gzip.decompress(compressed).decode("utf-8")


def corpus_digest(text: str) -> str:
    """The SHA-256 of the text (UTF-8), in hex: recorded beside a model trained on it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CharTokenizer:
    """A character-level tokenizer: token i is the character `chars[i]`.

    chars: the vocabulary, one character per token, distinct; `chars[0]` is the unknown symbol
    `UNKNOWN`, which every character outside the vocabulary encodes to. Build one from a text
    with `CharTokenizer.from_text(text)` (its characters in sorted order, after the unknown
    symbol); rebuild a saved one with `CharTokenizer(chars)`.
    """

    chars: str

    def __post_init__(self) -> None:
        if not self.chars or self.chars[0] != UNKNOWN:
            raise ValueError(f"the vocabulary must start with the unknown symbol {UNKNOWN!r}.")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("the vocabulary's characters must be distinct.")
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is the unknown symbol and every character of `text`."""
        return cls(UNKNOWN + "".join(sorted(set(text) - {UNKNOWN})))

    @property
    def vocab_size(self) -> int:
        """The number of tokens, the unknown symbol included."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """The tokens of `text`: shape (len(text),), int64; unseen characters become token 0."""
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        return np.fromiter((index.get(ch, 0) for ch in text), dtype=np.int64, count=len(text))

    def decode(self, tokens: Iterable[int] | np.ndarray) -> str:
        """The text of a sequence of tokens (any shape is read in order); token 0 is "\ufffd"."""
        tokens = np.asarray(tokens).reshape(-1)
        if tokens.size and (not np.issubdtype(tokens.dtype, np.integer)
                            or tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens must be whole numbers from 0 to vocab_size − 1 = "
                             f"{self.vocab_size - 1}.")
        return "".join(self.chars[t] for t in tokens.tolist())


def split(tokens: np.ndarray, heldout_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout): the first 1 − heldout_fraction of the tokens, and the rest.

    Contiguous and deterministic: the held-out part is the end of the sequence, so no window
    of held-out text also appears in the training text (except across the one boundary).
    Returns copies. heldout_fraction must be in (0, 1) and leave both parts non-empty.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one sequence (1 axis); got shape {tokens.shape}.")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1; got {heldout_fraction!r}.")
    n_train = int(round(len(tokens) * (1 - heldout_fraction)))
    if not 0 < n_train < len(tokens):
        raise ValueError(f"{len(tokens)} tokens are too few to split at {heldout_fraction}.")
    return tokens[:n_train].copy(), tokens[n_train:].copy()


def sample_batch(tokens: np.ndarray, batch_size: int, n_ctx: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of next-token prediction: (inputs (B, T), targets (B, T)), T = n_ctx, int64.

    Each row is a window tokens[s : s + T] at a start s drawn uniformly (with `rng`) from
    0 .. len(tokens) − T − 1; its targets are the window one token later, tokens[s+1 : s+T+1]:
    targets[b, t] is the token that follows inputs[b, :t+1].
    """
    tokens = np.asarray(tokens)
    batch_size, n_ctx = check_count(batch_size, "batch_size"), check_count(n_ctx, "n_ctx")
    if tokens.ndim != 1 or len(tokens) <= n_ctx:
        raise ValueError(f"tokens must be one sequence longer than n_ctx = {n_ctx}; "
                         f"got shape {tokens.shape}.")
    starts = rng.integers(0, len(tokens) - n_ctx, size=batch_size)  # (B,)
    windows = starts[:, None] + np.arange(n_ctx + 1)  # (B, T + 1)
    chunk = tokens[windows].astype(np.int64)  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]


def sample_batch_with_repeats(tokens: np.ndarray, batch_size: int, n_ctx: int,
                              rng: np.random.Generator,
                              fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """`sample_batch`'s windows, where each window, with probability `fraction`, carries a
    passage of the text written twice in a row: (inputs (B, T), targets (B, T)), int64.

    Each of the B windows of T + 1 tokens (inputs and targets together) is drawn as in
    `sample_batch`. Then, with probability `fraction`, a passage p of m tokens is cut from
    another random place of `tokens` (m uniform in 8 .. ⌊(T + 1) / 2⌋) and written over the
    window at a random start s, twice: window[s : s + m] = window[s + m : s + 2m] = p. Within
    the second copy the next token is the one that followed the same token in the first: a
    model that looks back and copies predicts it. The passage's length and place vary, so a
    head that always looks a fixed distance back does not do it.

    Raises ValueError when fraction is not in [0, 1], or is above 0 with T + 1 < 16 (no room
    for two passages of 8). Consumes `rng` as `sample_batch` does, then more.
    """
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}.")
    inputs, targets = sample_batch(tokens, batch_size, n_ctx, rng)  # (B, T) each
    longest = (n_ctx + 1) // 2  # two copies fit in the T + 1 tokens
    if fraction > 0 and longest < 8:
        raise ValueError(f"n_ctx = {n_ctx} leaves no room for a passage of 8 tokens written "
                         "twice; use n_ctx >= 15.")
    tokens = np.asarray(tokens)
    window = np.concatenate([inputs, targets[:, -1:]], axis=1)  # (B, T + 1)
    for row in np.flatnonzero(rng.random(len(window)) < fraction):
        m = int(rng.integers(8, longest + 1))  # the passage's length
        s = int(rng.integers(0, n_ctx + 2 - 2 * m))  # where its first copy starts
        source = int(rng.integers(0, len(tokens) - m + 1))
        passage = tokens[source:source + m]
        window[row, s:s + m] = window[row, s + m:s + 2 * m] = passage  # p, then p again
    return window[:, :-1], window[:, 1:]


@dataclass(frozen=True)
class Corpus:
    """The corpus ready for training: its tokenizer, its train and held-out tokens, its digest.

    tokenizer: `CharTokenizer.from_text(text)` of the whole text (so that the held-out text has
    no unknown characters); train, heldout: `split(tokenizer.encode(text), heldout_fraction)`;
    digest: `corpus_digest(text)`, which names the text (`SNAPSHOT_DIGEST` for the course's).
    """

    tokenizer: CharTokenizer
    train: np.ndarray
    heldout: np.ndarray
    digest: str


def load_corpus(heldout_fraction: float = 0.1, text: str | None = None) -> Corpus:
    """The course's corpus (`corpus_text()`, or `text`), tokenized and split."""
    text = corpus_text() if text is None else text
    tokenizer = CharTokenizer.from_text(text)
    train, heldout = split(tokenizer.encode(text), heldout_fraction)
    return Corpus(tokenizer, train, heldout, corpus_digest(text))


def write_snapshot(path: str | Path | None = None, text: str | None = None) -> str:
    """Write `text` (default: `installed_help_topics()`) as the gzip snapshot; return its digest.

    path: default, the package's `SNAPSHOT`. gzip at level 9 with no time stamp and no file name
    in its header, so the same text gives the same bytes (with the same zlib).
    """
    text = installed_help_topics() if text is None else text
    path = Path(__file__).parent / SNAPSHOT if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    return corpus_digest(text)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m course_lib.corpus`: compare this Python's help topics with the shipped corpus.

    With --write-snapshot, write them as the snapshot: refused (exit status 1) when their digest
    is not `SNAPSHOT_DIGEST` unless --new-corpus is given, since a new corpus invalidates the
    committed checkpoint (retrain it, and set SNAPSHOT_DIGEST and SNAPSHOT_PYTHON).
    """
    parser = argparse.ArgumentParser(prog="python -m course_lib.corpus", description=main.__doc__)
    parser.add_argument("--write-snapshot", action="store_true",
                        help=f"write this Python's help topics to course_lib/{SNAPSHOT}")
    parser.add_argument("--new-corpus", action="store_true",
                        help="with --write-snapshot: write them even if they are another text")
    args = parser.parse_args(argv)
    installed = installed_help_topics()
    digest = corpus_digest(installed)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    same = digest == SNAPSHOT_DIGEST
    print(f"{python}'s help topics: {len(installed):,} characters, SHA-256 {digest}")
    print(f"the course's corpus (CPython {SNAPSHOT_PYTHON}): SHA-256 {SNAPSHOT_DIGEST}: "
          + ("the same text" if same else "another text"))
    if not args.write_snapshot:
        return 0
    if not same and not args.new_corpus:
        print("not written: this is not the course's corpus (--new-corpus writes it anyway; "
              "then retrain the checkpoint and update SNAPSHOT_DIGEST, SNAPSHOT_PYTHON).",
              file=sys.stderr)
        return 1
    write_snapshot(text=installed)
    print(f"wrote {Path(__file__).parent / SNAPSHOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
