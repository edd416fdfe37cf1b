"""The hub's channel frames: length, kind byte, msgpack body (the layout is in :mod:`tether.cluster.hub`).

Sans-I/O: what both ends of a channel, the worker (:mod:`.adapter`) and the master (:mod:`.relay`),
encode and decode; :class:`FrameReader` splits the bytes a transport read.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from ...errors import ClusterError
from ...protocol.engineio import Binary
from ...recovery import SavedSession
from ..base import BroadcastMessage

__all__ = [
    "ANSWER",
    "BROADCAST",
    "CONTROL",
    "COUNT",
    "DELIVER",
    "EMIT",
    "GONE",
    "KEEP",
    "MAX_FRAME",
    "PRESENCE",
    "RELAYED",
    "REQUEST",
    "RESTORE",
    "RESTORED",
    "SESSION",
    "TAKE_OVER",
    "WIRE_VERSION",
    "FrameReader",
    "Presence",
    "body_of",
    "decode_broadcast",
    "encode_broadcast",
    "forget_worker",
    "frame",
    "pack",
    "record_presence",
    "session_fields",
    "session_from",
    "unpack",
]

BROADCAST = b"B"[0]
PRESENCE = b"P"[0]
GONE = b"G"[0]
CONTROL = b"C"[0]
SESSION = b"S"[0]
REQUEST = b"Q"[0]
COUNT = b"N"[0]
ANSWER = b"A"[0]
RELAYED = frozenset({BROADCAST, PRESENCE, SESSION, REQUEST, ANSWER})
"""Frame kinds a worker sends that the master passes on (:meth:`Hub.relay`)."""
EMIT = b"E"[0]
DELIVER = b"D"[0]
KEEP = b"K"[0]
RESTORE = b"R"[0]
RESTORED = b"T"[0]
TAKE_OVER = b"X"[0]

WIRE_VERSION = 1
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame accepted on a channel: well above ``max_payload``, small enough to catch a corrupt length."""

_HEADER = struct.Struct("!I")
_BINARY_EXT = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, Binary):
        return msgpack.ExtType(_BINARY_EXT, bytes(obj))
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot send {type(obj).__name__} between workers")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _BINARY_EXT:
        return Binary(data)
    return msgpack.ExtType(code, data)


def pack(obj: Any) -> bytes:
    # Binary is a bytes subclass: strict_types makes msgpack hand it to _default instead of packing it as bin.
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def frame(kind: int, body: Any) -> bytes:
    """One channel frame: length, kind byte, msgpack body."""
    payload = pack(body)
    return _HEADER.pack(len(payload) + 1) + bytes((kind,)) + payload


class FrameReader:
    """Splits the bytes of a channel into ``(kind, frame bytes)``; sans-I/O, fed by the transport.

    The frame bytes returned include the header, so the master can relay them without re-encoding.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes read from the channel; return the frames now complete.

        Raises:
            ClusterError: a frame longer than :data:`MAX_FRAME` or empty (the channel is corrupt).
        """
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length == 0 or length > MAX_FRAME:
                raise ClusterError("hub", f"bad frame length {length}")
            end = pos + 4 + length
            if end > n:
                break
            out.append((buf[pos + 4], bytes(buf[pos:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out


def body_of(raw: bytes) -> Any:
    """The decoded body of a frame returned by :meth:`FrameReader.feed`."""
    return unpack(memoryview(raw)[5:])


def encode_broadcast(message: BroadcastMessage, packets: list[bytes], parser: str, with_args: bool) -> bytes:
    """The B frame for ``message``; ``with_args`` adds the arguments for workers with another parser.

    Raises:
        TypeError: ``with_args`` and an argument msgpack cannot carry.
    """
    args = list(message.args) if with_args else None
    return frame(
        BROADCAST,
        [
            WIRE_VERSION,
            parser,
            message.namespace,
            message.event,
            message.rooms,
            message.except_rooms,
            packets,
            args,
        ],
    )


def decode_broadcast(raw: bytes) -> tuple[BroadcastMessage, str, list[bytes], bool]:
    """``(message, parser name, packets, has_args)`` of a B frame (``message.args`` is ``()`` without args).

    Raises:
        ClusterError: an unknown wire version.
    """
    body = body_of(raw)
    if body[0] != WIRE_VERSION:
        raise ClusterError("hub", f"broadcast frame version {body[0]} (this worker speaks {WIRE_VERSION})")
    _, parser, namespace, event, rooms, except_rooms, packets, args = body
    message = BroadcastMessage(namespace, event, tuple(args or ()), tuple(rooms), tuple(except_rooms))
    return message, parser, packets, args is not None


def session_fields(session: SavedSession) -> list[Any]:
    """A saved session as the body of a K frame (and the session of an A frame)."""
    return [
        session.pid,
        session.sid,
        session.namespace,
        session.rooms,
        session.data,
        session.user_id,
        session.session_id,
        session.base,
    ]


def session_from(fields: list[Any], now: float) -> SavedSession:
    """The saved session of a K frame's body, disconnected at ``now``.

    Raises:
        ClusterError: a body of the wrong shape.
    """
    try:
        pid, sid, namespace, rooms, data, user_id, session_id, base = fields
        return SavedSession(pid, sid, namespace, tuple(rooms), data, user_id, session_id, int(base), now)
    except (TypeError, ValueError) as exc:
        raise ClusterError("hub", f"bad saved session: {exc}") from exc


Presence = dict[tuple[str, str], set[int]]
"""``(namespace, user room)`` -> ids of the workers that have a socket in it: the master's whole table, and
each worker's table of the others."""


def record_presence(table: Presence, raw: bytes) -> None:
    """Apply a P frame to ``table``."""
    namespace, room, online, wid = body_of(raw)
    key = (namespace, room)
    if online:
        table.setdefault(key, set()).add(wid)
        return
    wids = table.get(key)
    if wids is not None:
        wids.discard(wid)
        if not wids:
            del table[key]


def forget_worker(table: Presence, wid: int) -> None:
    """Remove worker ``wid`` from every entry of ``table`` (it is gone: a G frame, or the master saw it)."""
    for key in [k for k, wids in table.items() if wid in wids]:
        wids = table[key]
        wids.discard(wid)
        if not wids:
            del table[key]
