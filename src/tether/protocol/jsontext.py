"""JSON as Socket.IO peers write it: orjson for speed, the standard library for what only JavaScript allows.

``JSON.stringify`` of a string cut inside a surrogate pair (an emoji cut by ``slice``) writes a lone
surrogate escape, ``"cut \\ud83c"``, which ``JSON.parse`` reads back and node's socket.io echoes as is.
orjson refuses such strings both ways (they are not valid UTF-8). Every ordinary message keeps the one
orjson call; only a message that orjson refuses *for a surrogate* is read or written again by
:mod:`json`, which accepts lone surrogates and writes them as the same ``\\uXXXX`` escapes node writes.
Nothing else that orjson refuses (NaN, Infinity, bad syntax) is let through by the fallback.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Parse ``text`` as ``JSON.parse`` would (lone surrogate escapes included).

    Raises:
        orjson.JSONDecodeError: not valid JSON (also for input nested too deep for the fallback).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise
        try:
            return json.loads(
                bytes(text) if isinstance(text, memoryview | bytearray) else text,
                parse_constant=_no_constants,
            )
        except (ValueError, RecursionError):
            raise exc from None


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes; strings holding lone surrogates are written escaped, as node does.

    Raises:
        TypeError: ``value`` is not JSON serializable (bytes included: the caller moves those out).
    """
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "surrogates" not in str(exc):
            raise
        try:
            return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, RecursionError):
            raise exc from None
