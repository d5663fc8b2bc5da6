"""What crosses between the sandboxed program and the grader: length-framed JSON of plain data.

Plain data is None, bool, int, float, str, bytes and lists, tuples, sets, frozensets and dicts of
them. Containers travel as tagged JSON arrays (``["L", ...]``, ``["T", ...]``,
``["D", [k, v], ...]``) so a tuple stays a tuple and a dict may have int keys. The trusted side
decodes with ``json.loads`` and builds only built-in types: no pickle, no marshal, no object of
the model's making ever reaches the grader, so an always-equal object or an ``int`` subclass
with a doctored ``__eq__`` arrives as plain data or not at all.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

MAX_DEPTH = 200
_HEADER = struct.Struct(">I")
_SMALL_INT = 2**53


class WireError(Exception):
    """The peer sent something that is not a well-formed message of plain data."""


class WireTimeout(WireError):
    pass


# --- plain data <-> JSON trees --------------------------------------------------------------------


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON tree for ``value``; lenient on the sending side (an int subclass becomes an int)."""
    if depth > MAX_DEPTH:
        raise ValueError("data nested too deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        value = int.__int__(value)
        return value if -_SMALL_INT < value < _SMALL_INT else ["I", format(value, "x")]
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes | bytearray):
        return ["B", bytes(value).hex()]
    depth += 1
    if isinstance(value, list):
        return ["L", *(encode(v, depth) for v in value)]
    if isinstance(value, tuple):
        return ["T", *(encode(v, depth) for v in value)]
    if isinstance(value, frozenset):
        return ["F", *(encode(v, depth) for v in value)]
    if isinstance(value, set):
        return ["S", *(encode(v, depth) for v in value)]
    if isinstance(value, dict):
        return ["D", *([encode(k, depth), encode(v, depth)] for k, v in value.items())]
    raise TypeError(f"{type(value).__name__} is not plain data")


def decode(tree: Any, depth: int = 0) -> Any:
    """Strict inverse of :func:`encode`: builds only built-in types, raises WireError otherwise."""
    kind = type(tree)
    if tree is None or kind is bool or kind is int or kind is float or kind is str:
        return tree
    if kind is not list or not tree or type(tree[0]) is not str or depth > MAX_DEPTH:
        raise WireError("not plain data")
    tag, items = tree[0], tree[1:]
    depth += 1
    try:
        if tag == "L":
            return [decode(v, depth) for v in items]
        if tag == "T":
            return tuple(decode(v, depth) for v in items)
        if tag == "S":
            return {decode(v, depth) for v in items}
        if tag == "F":
            return frozenset(decode(v, depth) for v in items)
        if tag == "D":
            out = {}
            for pair in items:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("bad dict item")
                out[decode(pair[0], depth)] = decode(pair[1], depth)
            return out
        if tag == "I" and len(items) == 1 and type(items[0]) is str:
            return int(items[0], 16)
        if tag == "B" and len(items) == 1 and type(items[0]) is str:
            return bytes.fromhex(items[0])
    except (TypeError, ValueError) as e:  # unhashable key, bad hex
        raise WireError(f"not plain data: {e}") from None
    raise WireError(f"unknown tag {tag!r}")


# --- framing over file descriptors ----------------------------------------------------------------


def _wait(fd: int, event: int, deadline: float | None) -> None:
    poller = select.poll()
    poller.register(fd, event)
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if poller.poll(None if left is None else int(left * 1000) + 1):
            return
        if left is not None and time.monotonic() >= deadline:
            raise WireTimeout("timed out")


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write ``data`` to ``fd``; with a deadline the fd must be non-blocking."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            _wait(fd, select.POLLOUT, deadline)
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[n:]


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """``n`` bytes from ``fd``, or None at end of file before the first byte."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            _wait(fd, select.POLLIN, deadline)
        try:
            chunk = os.read(fd, min(n - got, 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:
            if got:
                raise WireError("message cut short")
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def send_msg(fd: int, obj: Any, deadline: float | None = None) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    write_all(fd, _HEADER.pack(len(body)) + body, deadline)


def recv_msg(fd: int, deadline: float | None = None, limit: int = 64 << 20) -> Any:
    """The next message, or None at end of file. Raises WireError when over ``limit`` bytes."""
    header = read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise WireError(f"message of {size} bytes is over the {limit}-byte limit")
    body = read_exact(fd, size, deadline)
    if body is None:
        raise WireError("message cut short")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise WireError(f"bad message: {str(e)[:100]}") from None
