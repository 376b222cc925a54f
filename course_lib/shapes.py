"""Input checks shared by the math modules, with errors in the course's words.

numpy's own errors ("matmul: Input operand 1 has a mismatch in its core dimension 0 ...")
tell a learner little. These helpers turn inputs into float arrays and check shapes, naming
the course's symbols (`X`, `W_Q`, `d_model`, `d_k`, ...) in every message.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["as_float_array", "check_count", "check_positive", "check_mask", "float_dtype"]


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The float dtype of a result: the inputs' common float dtype, float64 for integers."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def as_float_array(x: object, name: str, min_ndim: int = 2, shape_hint: str = "") -> np.ndarray:
    """`x` as a numeric numpy array with at least `min_ndim` axes (no copy when already one).

    Integer and boolean inputs are accepted (they become float64 in the math); anything that
    is not numbers raises a `TypeError` naming `name`.
    """
    try:
        array = np.asarray(x)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{name} could not be turned into a numpy array: {error}") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers; got an array of dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}.")
    if array.ndim < min_ndim:
        expected = f" {shape_hint}" if shape_hint else ""
        raise ValueError(
            f"{name} must have at least {min_ndim} axes{expected}; got shape {array.shape}."
        )
    return array


def check_positive(value: object, name: str) -> float:
    """`value` as a Python float, or a `ValueError` if it is not a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, Real | np.number):
        raise TypeError(f"{name} must be a positive number; got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return value


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """`value` as an int, or a `ValueError` if it is not a whole number >= `minimum`.

    minimum=0 for a number of tokens (an empty sequence is allowed), 1 for a width or a size.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        wanted = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise ValueError(f"{name} must be {wanted}; got {value!r}.")
    return int(value)


def check_mask(mask: object, scores_shape: tuple[int, ...]) -> np.ndarray:
    """`mask` as a boolean array that broadcasts against scores of shape `(..., n_q, n_k)`.

    The course's convention (as in PyTorch's `scaled_dot_product_attention`): `True` means
    "may attend", `False` blocks the score.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be boolean (True = may attend, False = blocked); got dtype {mask.dtype}. "
            "Convert it according to what its numbers mean: 0/1 with 1 = may attend, "
            "mask.astype(bool); an additive mask of 0 and -inf (PyTorch's float attn_mask, "
            "added to the scores, e.g. from nn.Transformer.generate_square_subsequent_mask), "
            "mask == 0 (not mask.astype(bool): that makes -inf True, the mask inverted). A "
            "boolean mask from torch.nn.MultiheadAttention (attn_mask or key_padding_mask, "
            "True = may NOT attend) becomes ~mask; one for scaled_dot_product_attention "
            "(True = may attend) is used as it is."
        )
    try:
        np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {mask.shape} does not fit the scores of shape {scores_shape}: "
            f"it must be (n_q, n_k) = {scores_shape[-2:]} or broadcast to it."
        ) from None
    return mask
