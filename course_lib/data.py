"""The course's data: a small hand-made embedding table, its example sentences and projections.

Real models learn embeddings with hundreds of unnamed dimensions. Here every word is a row of
d_model = 7 numbers, each with a name, so that the numbers in the lessons mean something:

    noun      the word names a thing            (cat, mat)
    animate   the thing is alive                (cat)
    action    the word is something done        (sat; weakly was)
    state     the word describes how one is     (tired)
    place     the word is about where           (on; a little mat)
    refers    the word points at something else (it; a little the)
    link      the word joins parts of a clause  (on, because; a little the, was)

`designed_projections()` gives hand-made W_Q, W_K, W_V in the same spirit: their d_k = 3
query/key features and d_v = 4 value features are named too (see `QK_FEATURES` and
`VALUE_FEATURES`). With them, the pronoun "it" attends to "cat" (lesson 04).

Every function returns fresh arrays: changing what you get back never changes the table.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EMBEDDING_DIMS",
    "QK_FEATURES",
    "VALUE_FEATURES",
    "SENTENCES",
    "vocabulary",
    "embedding_table",
    "embedding",
    "tokenize",
    "embed",
    "designed_projections",
    "IMAGE_PATCH_SIZE",
    "synthetic_image",
]

EMBEDDING_DIMS: tuple[str, ...] = (
    "noun",
    "animate",
    "action",
    "state",
    "place",
    "refers",
    "link",
)

# One row per word, one column per entry of EMBEDDING_DIMS.
_TABLE: dict[str, tuple[float, ...]] = {
    #           noun animate action state place refers link
    "the":     (0.0, 0.0,    0.0,   0.0,  0.0,  0.5,   0.5),
    "cat":     (1.0, 1.0,    0.0,   0.0,  0.0,  0.0,   0.0),
    "mat":     (1.0, 0.0,    0.0,   0.0,  0.5,  0.0,   0.0),
    "sat":     (0.0, 0.0,    1.0,   0.0,  0.0,  0.0,   0.0),
    "on":      (0.0, 0.0,    0.0,   0.0,  1.0,  0.0,   1.0),
    "because": (0.0, 0.0,    0.0,   0.0,  0.0,  0.0,   1.0),
    "it":      (0.0, 0.0,    0.0,   0.0,  0.0,  1.0,   0.0),
    "was":     (0.0, 0.0,    0.5,   0.0,  0.0,  0.0,   0.5),
    "tired":   (0.0, 0.0,    0.0,   1.0,  0.0,  0.0,   0.0),
}  # fmt: skip

SENTENCES: dict[str, str] = {
    "short": "the cat sat on the mat",
    "pronoun": "the cat sat on the mat because it was tired",
    "swapped": "the mat sat on the cat",
}
"""Example sentences by name; every word is in the embedding table."""

QK_FEATURES: tuple[str, ...] = ("living thing", "action", "place")
"""Names of the d_k = 3 columns of Q and K: a query asks for them, a key offers them."""

VALUE_FEATURES: tuple[str, ...] = ("noun", "animate", "action", "state")
"""Names of the d_v = 4 columns of V: the meaning a token passes on when attended to."""


def vocabulary() -> list[str]:
    """The words of the embedding table, in the order of its rows."""
    return list(_TABLE)


def embedding_table() -> np.ndarray:
    """The whole embedding table E, one row per word of `vocabulary()`.

    Shape: (n_words, d_model) with d_model = len(EMBEDDING_DIMS) = 7; float64.
    """
    return np.array(list(_TABLE.values()), dtype=np.float64)


def embedding(word: str) -> np.ndarray:
    """The embedding of one word: its row of the table, shape (d_model,)."""
    try:
        return np.array(_TABLE[word], dtype=np.float64)
    except KeyError:
        raise KeyError(f"{word!r} is not in the table; the words are {vocabulary()}.") from None


def tokenize(sentence: str) -> list[str]:
    """The tokens of a sentence: its lower-case words, split on spaces."""
    return sentence.lower().split()


def embed(sentence: str) -> np.ndarray:
    """The matrix X of a sentence: row i is the embedding of token i.

    Shape: (n, d_model) with n the number of tokens.
    """
    return np.stack([embedding(token) for token in tokenize(sentence)])


def designed_projections() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand-made projections (W_Q, W_K, W_V) for the embedding table.

    Shapes: W_Q and W_K (d_model, d_k) = (7, 3), W_V (d_model, d_v) = (7, 4). Entry [r, c]
    says how much embedding dimension r feeds feature c (`QK_FEATURES`, `VALUE_FEATURES`):

    - keys (what a token offers): an animate word offers "living thing", an action word
      offers "action", a place word offers "place" (each with weight 2);
    - queries (what a token looks for): "it" (refers) looks hard for a living thing
      (weight 4); a state word ("tired") looks for a living thing to describe; an action
      word looks for who did it and where; a noun looks for what it did;
    - values (what a token passes on): the meaning dimensions noun, animate, action and
      state, copied unchanged.

    So q_it · k_cat = 4 · 2 = 8 while q_it · k_j = 0 for every other word j.
    """
    d = {name: r for r, name in enumerate(EMBEDDING_DIMS)}
    f = {name: c for c, name in enumerate(QK_FEATURES)}
    W_K = np.zeros((len(EMBEDDING_DIMS), len(QK_FEATURES)))
    W_K[d["animate"], f["living thing"]] = 2.0
    W_K[d["action"], f["action"]] = 2.0
    W_K[d["place"], f["place"]] = 2.0
    W_Q = np.zeros_like(W_K)
    W_Q[d["refers"], f["living thing"]] = 4.0
    W_Q[d["state"], f["living thing"]] = 2.0
    W_Q[d["action"], f["living thing"]] = 1.0
    W_Q[d["action"], f["place"]] = 1.0
    W_Q[d["noun"], f["action"]] = 1.0
    W_V = np.zeros((len(EMBEDDING_DIMS), len(VALUE_FEATURES)))
    for c, name in enumerate(VALUE_FEATURES):
        W_V[d[name], c] = 1.0
    return W_Q, W_K, W_V


IMAGE_PATCH_SIZE = 8
"""Side in pixels of the square patches `synthetic_image()` is designed to be cut into."""


def synthetic_image() -> np.ndarray:
    """A small RGB picture made in code, for self-attention over image patches (lesson 08).

    48 × 48 pixels, values in [0, 1], shape (48, 48, 3): a 6 × 6 grid of patches of
    `IMAGE_PATCH_SIZE` = 8 pixels. Light-blue sky over green grass; a red house of 2 × 2
    patches on the left, a small red ball on the right (one patch), a yellow sun in the sky
    and a white cloud. Every object fills whole patches, so each patch has one colour.
    """
    p = IMAGE_PATCH_SIZE
    colours = {
        "sky": (0.60, 0.80, 0.95),
        "grass": (0.30, 0.65, 0.25),
        "red": (0.85, 0.10, 0.10),
        "yellow": (0.98, 0.85, 0.15),
        "white": (0.97, 0.97, 0.97),
    }
    patches = [  # the colour of each patch, row by row
        ["sky", "white", "white", "sky", "yellow", "sky"],
        ["sky", "sky", "sky", "sky", "sky", "sky"],
        ["sky", "red", "red", "sky", "sky", "sky"],
        ["grass", "red", "red", "grass", "grass", "grass"],
        ["grass", "grass", "grass", "grass", "red", "grass"],
        ["grass", "grass", "grass", "grass", "grass", "grass"],
    ]
    image = np.empty((len(patches) * p, len(patches[0]) * p, 3))
    for r, row in enumerate(patches):
        for c, name in enumerate(row):
            image[r * p:(r + 1) * p, c * p:(c + 1) * p] = colours[name]
    return image
