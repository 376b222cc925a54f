"""The wire format between the grader and its sandbox: plain numbers only, never code.

A value (a case's inputs, or what a learner's function returned) becomes a small JSON tree
plus a list of numeric arrays; both are stored in one `.npz` file (the JSON as bytes in the
entry `meta`) and read back with `allow_pickle=False`, so a file cannot carry code. Objects
that are not numbers, arrays or tuples/lists of them travel as their type name and a short
repr only, and come back as a `Opaque` placeholder of the same name, so that the checker can
still say "your result is a Liar, not a NumPy array".

This module imports only the standard library and numpy, on purpose: it is copied next to the
sandbox's runner, which must not import course_lib.
"""

from __future__ import annotations

import json
import os
import reprlib
from typing import Any

import numpy as np

__all__ = ["Opaque", "encode", "decode", "save", "load", "MAX_ARRAY_BYTES", "MAX_FILE_BYTES"]

MAX_ARRAY_BYTES = 32 * 2**20
"""Larger arrays travel as their shape and dtype only (and fail the shape check)."""
MAX_FILE_BYTES = 128 * 2**20
"""A results file larger than this is not read."""
_MAX_ITEMS = 64
_MAX_DEPTH = 4
_KINDS = "biufcUS"  # dtypes that np.save writes without pickle

_ndarray, _generic, _asarray = np.ndarray, np.generic, np.asarray  # before learner code runs
_dumps, _loads, _replace = json.dumps, json.loads, os.replace
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


class Opaque:
    """Stands in, in the grader, for an object the learner returned that is not plain data."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text

    __str__ = __repr__


def encode(value: Any, arrays: list[np.ndarray], depth: int = 0) -> Any:
    """`value` as a JSON tree; its arrays are appended to `arrays` and referenced by index."""
    if value is None or type(value) is bool:
        return {"t": "const", "v": value}
    if type(value) is int:
        return {"t": "int", "v": str(value)[:4000]}
    if type(value) is float:
        return {"t": "float", "v": repr(value)}
    if type(value) is str:
        return {"t": "str", "v": value[:200]}
    if isinstance(value, _ndarray | _generic) and _sendable(value):
        array = _asarray(value)
        if array.nbytes > MAX_ARRAY_BYTES:
            return {"t": "big", "shape": list(array.shape), "dtype": array.dtype.str}
        arrays.append(array)
        return {"t": "array" if isinstance(value, _ndarray) else "scalar", "i": len(arrays) - 1}
    if type(value) in (tuple, list) and depth < _MAX_DEPTH and len(value) <= _MAX_ITEMS:
        return {
            "t": type(value).__name__,
            "items": [encode(item, arrays, depth + 1) for item in value],
        }
    return {"t": "object", "type": type(value).__name__[:60], "repr": _repr(value)}


def decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The value that `encode` described (objects come back as `Opaque` placeholders)."""
    kind = tree["t"]
    if kind == "const":
        if tree["v"] not in (None, True, False):
            raise ValueError("bad constant")
        return tree["v"]
    if kind == "int":
        return int(tree["v"])
    if kind == "float":
        return float(tree["v"])
    if kind == "str":
        return str(tree["v"])
    if kind in ("array", "scalar"):
        array = arrays[f"a{int(tree['i'])}"]
        return array if kind == "array" else array[()]
    if kind == "big":
        shape = tuple(int(n) for n in tree["shape"])
        return np.broadcast_to(np.zeros((), dtype=np.dtype(str(tree["dtype"]))), shape)
    if kind in ("tuple", "list"):
        items = [decode(item, arrays) for item in tree["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "object":
        name = str(tree["type"])
        name = name if name.isidentifier() else "object"
        return type(name, (Opaque,), {})(str(tree["repr"])[:200])
    raise ValueError(f"unknown kind {kind!r}")


def save(path: str, meta: Any, arrays: list[np.ndarray]) -> None:
    """Write `meta` (JSON) and `arrays` to `path` (.npz) atomically."""
    entries = {f"a{i}": array for i, array in enumerate(arrays)}
    entries["meta"] = np.frombuffer(_dumps(meta).encode("utf-8"), dtype=np.uint8)
    partial = path + ".partial.npz"
    np.savez(partial, **entries)
    _replace(partial, path)


def load(path: str) -> tuple[Any, dict[str, np.ndarray]]:
    """(meta, arrays) from a file written by `save`; never unpickles anything."""
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ValueError(f"{os.path.basename(path)} is larger than {MAX_FILE_BYTES} bytes")
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    meta = _loads(arrays.pop("meta").tobytes().decode("utf-8"))
    return meta, arrays


def _sendable(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return isinstance(dtype, np.dtype) and dtype.kind in _KINDS and dtype.fields is None


def _repr(value: Any) -> str:
    try:
        return _short.repr(value)
    except Exception:  # noqa: BLE001 - a learner's object with a broken repr
        return "?"
