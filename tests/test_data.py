"""The course data: the embedding table, the sentences and the designed projections."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from course_lib import attention, data

DATA_PY = Path(data.__file__)


def test_table_has_a_handful_of_named_dimensions_and_8_to_12_distinct_words() -> None:
    words, E = data.vocabulary(), data.embedding_table()
    assert 8 <= len(words) <= 12 and len(set(words)) == len(words)
    assert 4 <= len(data.EMBEDDING_DIMS) <= 8
    assert E.shape == (len(words), len(data.EMBEDDING_DIMS))
    assert len({tuple(row) for row in E}) == len(words), "two words share an embedding"
    for word, row in zip(words, E, strict=True):
        assert np.array_equal(data.embedding(word), row)


def test_every_sentence_embeds_row_by_row() -> None:
    for sentence in data.SENTENCES.values():
        tokens = data.tokenize(sentence)
        X = data.embed(sentence)
        assert X.shape == (len(tokens), len(data.EMBEDDING_DIMS))
        for i, token in enumerate(tokens):
            assert np.array_equal(X[i], data.embedding(token))


def test_returned_arrays_are_fresh_copies() -> None:
    data.embedding_table()[:] = 99
    data.embedding("cat")[:] = 99
    data.embed(data.SENTENCES["short"])[:] = 99
    W_Q, _, _ = data.designed_projections()
    W_Q[:] = 99
    assert data.embedding_table().max() <= 1
    assert data.designed_projections()[0].max() < 99


def test_unknown_word_names_the_vocabulary() -> None:
    with pytest.raises(KeyError, match="cat"):
        data.embedding("zebra")


def test_designed_projection_shapes_match_the_feature_names() -> None:
    W_Q, W_K, W_V = data.designed_projections()
    d_model = len(data.EMBEDDING_DIMS)
    assert W_Q.shape == W_K.shape == (d_model, len(data.QK_FEATURES))
    assert W_V.shape == (d_model, len(data.VALUE_FEATURES))


def test_the_pronoun_attends_to_its_noun() -> None:
    sentence = data.SENTENCES["pronoun"]
    tokens = data.tokenize(sentence)
    O, weights = attention.self_attention(data.embed(sentence), *data.designed_projections())
    it, cat = tokens.index("it"), tokens.index("cat")
    assert int(np.argmax(weights[it])) == cat
    assert weights[it, cat] > 0.9
    _, _, W_V = data.designed_projections()
    assert np.allclose(O[it], weights[it] @ (data.embed(sentence) @ W_V))


def test_data_imports_numpy_only() -> None:
    tree = ast.parse(DATA_PY.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"numpy", "__future__"}


def test_synthetic_image_has_one_colour_per_patch() -> None:
    image, p = data.synthetic_image(), data.IMAGE_PATCH_SIZE
    assert image.shape == (48, 48, 3) and image.dtype == np.float64
    assert image.min() >= 0.0 and image.max() <= 1.0
    patches = image.reshape(6, p, 6, p, 3).transpose(0, 2, 1, 3, 4).reshape(36, p * p, 3)
    assert np.all(patches == patches[:, :1])  # every patch is one colour
    red = np.array([0.85, 0.10, 0.10])
    assert [i for i in range(36) if np.allclose(patches[i, 0], red)] == [13, 14, 19, 20, 28]
    image[:] = 0.0
    assert data.synthetic_image().max() > 0.0  # a fresh array every call
