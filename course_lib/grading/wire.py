"""The wire format between the grader and its sandbox: bounded frames of plain numbers, no code.

A value (a case's inputs, or what a learner's function returned) becomes a small JSON tree
plus a list of numeric arrays (`encode`, `decode`). A message travels as one frame on a pipe:

    4 bytes   n, the length of the header (big-endian, at most MAX_HEADER_BYTES; the job's:
              MAX_JOB_HEADER_BYTES)
    n bytes   the header: a JSON object; its key "arrays" lists [dtype, shape] per array
    ...       the arrays' raw bytes, one after the other, exactly as many as the header says

Nothing is compressed, nothing is unpickled, and every length is known and bounded before a
byte of it is read: a frame cannot inflate, and a stream longer than `MAX_STREAM_BYTES` is
refused. `FrameReader` raises `WireError` on anything malformed; the grader then marks that
one submission `crashed: unreadable results`. Objects that are not numbers, arrays or
tuples/lists of them travel as their type name and a short repr only, and come back as a
stand-in of the same name (`course_lib/standin.py`, as in the checker's own child process), so
that the checker can still say "your result is a Liar, not a NumPy array".

This module imports only the standard library, numpy and standin.py, on purpose: it is copied
next to the sandbox's runner, which must not import course_lib.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import struct
from typing import Any

import numpy as np

if __package__:  # in course_lib
    from ..standin import stand_in
else:  # a standalone file in the sandbox, next to a copy of standin.py
    from standin import stand_in  # type: ignore[no-redef]

__all__ = ["WireError", "FrameReader", "encode", "decode", "frame", "send",
           "MAX_ARRAY_BYTES", "MAX_HEADER_BYTES", "MAX_JOB_HEADER_BYTES", "MAX_JOB_BYTES",
           "MAX_STREAM_BYTES"]

MAX_ARRAY_BYTES = 32 * 2**20
"""Larger arrays travel as their shape and dtype only (and fail the shape check)."""
MAX_HEADER_BYTES = 2**20
"""The JSON header of one frame the sandbox sends (and of a measured case's inputs)."""
MAX_JOB_HEADER_BYTES = 128 * 2**20
"""The JSON header of the job the grader sends: the code cells of any notebook the grader
accepts (submissions.MAX_NOTEBOOK_BYTES, 20 MiB) fit, even if each of its bytes became a 6-byte
escape such as \u0001 (tests/test_grading_limits.py checks that the two agree)."""
MAX_STREAM_BYTES = 128 * 2**20
"""Everything one attempt of a sandbox run may send back, headers and arrays together: the one
bound of the runner's pipe (the grader's reader uses it; BOUNDARY.md states it)."""
MAX_JOB_BYTES = 2 * MAX_JOB_HEADER_BYTES
"""The job's whole frame, as the runner reads it from stdin: its header and its cases' arrays."""
_MAX_ARRAYS = 4096  # in one frame (a job holds every case of its functions)
_MAX_ITEMS = 64
_MAX_DEPTH = 4
_MAX_DIMS = 32
_KINDS = "biufcUS"  # fixed-size dtypes: raw bytes, no objects

_ndarray, _generic, _asarray = np.ndarray, np.generic, np.asarray  # before learner code runs
_dumps, _loads, _write, _pack = json.dumps, json.loads, os.write, struct.pack
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


class WireError(ValueError):
    """A frame that does not follow the format (or exceeds its bounds)."""


# -- values -----------------------------------------------------------------------------------


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
        if array.nbytes > MAX_ARRAY_BYTES or len(arrays) >= _MAX_ARRAYS:
            return {"t": "big", "shape": list(array.shape), "dtype": array.dtype.str}
        arrays.append(array)
        return {"t": "array" if isinstance(value, _ndarray) else "scalar", "i": len(arrays) - 1}
    if type(value) in (tuple, list) and depth < _MAX_DEPTH and len(value) <= _MAX_ITEMS:
        return {
            "t": type(value).__name__,
            "items": [encode(item, arrays, depth + 1) for item in value],
        }
    return {"t": "object", "type": type(value).__name__[:60], "repr": _repr(value)}


def decode(tree: Any, arrays: list[np.ndarray], depth: int = 0) -> Any:
    """The value that `encode` described (objects come back as stand-ins, `standin.py`).

    Raises WireError for a tree that `encode` cannot have written."""
    if not isinstance(tree, dict) or depth > _MAX_DEPTH:
        raise WireError("a value is not a tree written by encode")
    kind = tree.get("t")
    try:
        if kind == "const" and tree["v"] in (None, True, False):
            return tree["v"]
        if kind == "int":
            return int(str(tree["v"])[:4000])
        if kind == "float":
            return float(str(tree["v"])[:40])
        if kind == "str":
            return str(tree["v"])[:200]
        if kind in ("array", "scalar"):
            index = tree["i"]
            if type(index) is not int or not 0 <= index < len(arrays):
                raise WireError("an array index out of range")
            return arrays[index] if kind == "array" else arrays[index][()]
        if kind == "big":
            shape = _shape(tree["shape"])
            return np.broadcast_to(np.zeros((), dtype=_dtype(tree["dtype"])), shape)
        if kind in ("tuple", "list") and isinstance(tree["items"], list):
            if len(tree["items"]) > _MAX_ITEMS:
                raise WireError("too many items")
            items = [decode(item, arrays, depth + 1) for item in tree["items"]]
            return tuple(items) if kind == "tuple" else items
        if kind == "object":
            return stand_in(str(tree["type"]), str(tree["repr"]))
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise WireError(f"a malformed value ({type(error).__name__})") from None
    raise WireError(f"unknown kind {str(kind)[:20]!r}")


# -- frames -----------------------------------------------------------------------------------


def frame(meta: dict[str, Any], arrays: list[np.ndarray] = ()) -> bytes:  # type: ignore[assignment]
    """One message as bytes: the length, the JSON header (with the arrays' layout), the data."""
    # ascontiguousarray makes a 0-d array (a loss, a numpy scalar) 1-d: keep every shape as it is
    arrays = [np.ascontiguousarray(array).reshape(np.shape(array)) for array in arrays]
    header = dict(meta, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    text = _dumps(header).encode("utf-8")
    return b"".join([_pack(">I", len(text)), text, *(a.tobytes() for a in arrays)])


def send(fd: int, meta: dict[str, Any], arrays: list[np.ndarray] = ()) -> None:  # type: ignore[assignment]
    """Write one frame to the file descriptor `fd` (all of it, even on a partial write)."""
    view = memoryview(frame(meta, arrays))
    while view:
        view = view[_write(fd, view):]


class FrameReader:
    """Turns the bytes read from a pipe into (header, arrays) messages, within fixed bounds.

    `feed(chunk)` returns the messages completed by `chunk`; raises WireError on a malformed
    frame or when the stream exceeds `limit` bytes in all."""

    def __init__(self, limit: int = MAX_STREAM_BYTES,
                 header_limit: int = MAX_HEADER_BYTES) -> None:
        self.limit, self.received, self.header_limit = limit, 0, header_limit
        self.buffer = bytearray()
        self.header: dict[str, Any] | None = None
        self.layout: list[tuple[np.dtype, tuple[int, ...], int]] = []
        self.needed = 4

    def feed(self, chunk: bytes) -> list[tuple[dict[str, Any], list[np.ndarray]]]:
        self.received += len(chunk)
        if self.received > self.limit:
            raise WireError(f"more than {self.limit} bytes were sent")
        self.buffer += chunk
        messages = []
        while len(self.buffer) >= self.needed:
            if self.header is None and self.needed == 4:
                self.needed = 4 + _header_length(bytes(self.buffer[:4]), self.header_limit)
            elif self.header is None:
                self.header, self.layout = _parse_header(bytes(self.buffer[4:self.needed]))
                del self.buffer[:self.needed]
                self.needed = sum(size for _, _, size in self.layout)
            else:
                messages.append((self.header, self._arrays()))
                self.header, self.layout, self.needed = None, [], 4
        return messages

    def _arrays(self) -> list[np.ndarray]:
        arrays, start = [], 0
        for dtype, shape, size in self.layout:
            data = bytes(self.buffer[start:start + size])
            arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape))
            start += size
        del self.buffer[:start]
        return arrays


def _header_length(prefix: bytes, limit: int) -> int:
    (length,) = struct.unpack(">I", prefix)
    if length > limit:
        raise WireError(f"a header of {length} bytes (at most {limit})")
    return length


def _parse_header(text: bytes) -> tuple[dict[str, Any], list[tuple[np.dtype, tuple, int]]]:
    try:
        header = _loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise WireError(f"a header that is not JSON ({type(error).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise WireError("a header without its list of arrays")
    entries = header.pop("arrays")
    if len(entries) > _MAX_ARRAYS:
        raise WireError(f"more than {_MAX_ARRAYS} arrays in a frame")
    layout = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise WireError("an array without its dtype and shape")
        dtype, shape = _dtype(entry[0]), _shape(entry[1])
        size = dtype.itemsize * math.prod(shape)
        if size > MAX_ARRAY_BYTES:
            raise WireError(f"an array of {size} bytes (at most {MAX_ARRAY_BYTES})")
        layout.append((dtype, shape, size))
    return header, layout


def _dtype(text: Any) -> np.dtype:
    try:
        dtype = np.dtype(str(text)[:16])
    except TypeError:
        raise WireError(f"an unknown dtype {str(text)[:16]!r}") from None
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"a dtype that is not plain numbers: {dtype}")
    return dtype


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(
        type(n) is int and 0 <= n < 2**40 for n in shape
    ):
        raise WireError("an invalid shape")
    return tuple(shape)


def _sendable(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return isinstance(dtype, np.dtype) and dtype.kind in _KINDS and dtype.fields is None


def _repr(value: Any) -> str:
    try:
        return _short.repr(value)
    except Exception:  # noqa: BLE001 - a learner's object with a broken repr
        return "?"
