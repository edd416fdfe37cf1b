"""The Redis Streams adapter's entries and saved sessions, as node's adapter writes them (sans-I/O).

The shapes :class:`~.streams.RedisStreamsAdapter` writes to and reads from Redis, with no I/O: the
fields of one stream entry, the ``data`` field's encoding, entry ids, and a saved session's value
(``redis-streams-adapter`` ``adapter.ts``, ``socket.io-adapter`` ``cluster-adapter.ts``, 0.3)::

    XADD <stream> MAXLEN ~ <max_len> * uid <node uid> nsp <namespace> type <n> data <payload>
      type 3 BROADCAST   data = {"packet": {"type": 2, "data": [event, ...args], "nsp": nsp},
                                 "opts": {"rooms": [...], "except": [...], "flags": {}}}
                         (node's flags: {"volatile": true} gets no offset, and Tether does not replay it)
      type 4 SOCKETS_JOIN / 5 SOCKETS_LEAVE   data = {"opts": ..., "rooms": [...]}
      type 6 DISCONNECT_SOCKETS               data = {"opts": ..., "close": bool}
      type 100 SET_DATA (Tether's own)        data = {"opts": ..., "data": {...}}
      payload: JSON text, or base64 of msgpack when an argument is binary (JSON starts with "{").
    SET <session_prefix><pid> base64(msgpack({"sid", "pid", "rooms", "data", "tether"})) PX <window ms>

An entry id (``1733000000000-0``: milliseconds, a sequence number) is also the offset a recovering
client sends back.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import msgpack
import orjson

from ..recovery import SavedSession
from .wire import Request, RequestType, has_binary

__all__ = [
    "BROADCAST",
    "DISCONNECT_SOCKETS",
    "ID",
    "SOCKETS_JOIN",
    "SOCKETS_LEAVE",
    "broadcast_data",
    "change_data",
    "decode_data",
    "decode_session",
    "encode_data",
    "encode_session",
    "is_volatile",
    "js_hash_code",
    "parse_id",
    "stream_name",
]

BROADCAST, SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS = 3, 4, 5, 6
ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
"""A stream entry id, as Redis writes it (``<ms>-<seq>``)."""


def js_hash_code(text: str) -> int:
    """Java's ``String.hashCode`` as node's adapter computes it in JavaScript (``util.ts`` ``hashCode``):
    over UTF-16 code units, wrapped to a signed 32-bit integer at each step."""
    h = 0
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i : i + 2], "little")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def stream_name(base: str, namespace: str, count: int) -> str:
    """The stream a namespace's entries go to (node's ``computeStreamName``): ``base`` for one stream,
    else ``<base>-<hashCode(namespace) % count>`` with JavaScript's ``%``, whose sign is the dividend's (a
    namespace with a negative hash goes to ``<base>--<i>``, as in node)."""
    if count == 1:
        return base
    h = js_hash_code(namespace)
    index = abs(h) % count
    return f"{base}-{-index if h < 0 else index}"


def parse_id(value: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair; ``ValueError`` if it is not one."""
    if not ID.fullmatch(value):
        raise ValueError(f"not a stream id: {value!r}")
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)


def encode_data(data: Any) -> str:
    """A message's ``data`` field as node writes it: JSON, or base64 msgpack when binary."""
    if has_binary(data):
        return base64.b64encode(msgpack.packb(data, use_bin_type=True)).decode()
    return orjson.dumps(data).decode()


def decode_data(text: str) -> Any:
    """The ``data`` field read back: JSON when it starts with ``{``, else base64 msgpack."""
    if text.startswith("{"):
        return orjson.loads(text)
    return msgpack.unpackb(base64.b64decode(text), raw=False)


def is_volatile(opts: Any) -> bool:
    """Whether a BROADCAST entry's ``opts`` say ``volatile`` (node's ``io.volatile.emit``): node delivers
    it without an offset (``cluster-adapter.ts`` ``addOffsetIfNecessary``: ``flags.volatile`` defined)."""
    flags = opts.get("flags") if isinstance(opts, dict) else None
    return isinstance(flags, dict) and flags.get("volatile") is not None


def broadcast_data(
    namespace: str,
    event: str,
    args: tuple[Any, ...],
    rooms: tuple[str, ...],
    except_rooms: tuple[str, ...],
) -> dict[str, Any]:
    """A BROADCAST entry's ``data``: the EVENT packet and who it is for."""
    packet = {"type": 2, "data": [event, *args], "nsp": namespace}
    opts = {"rooms": list(rooms), "except": list(except_rooms), "flags": {}}
    return {"packet": packet, "opts": opts}


def change_data(request: Request) -> dict[str, Any]:
    """A join, leave, disconnect or set-data request as its entry's ``data`` (the type is ``CHANGES``')."""
    opts = {"rooms": list(request.target_rooms), "except": list(request.except_rooms), "flags": {}}
    data: dict[str, Any] = {"opts": opts}
    if request.type is RequestType.REMOTE_DISCONNECT:
        data["close"] = request.close
    elif request.type is RequestType.REMOTE_SET_DATA:
        data["data"] = request.data
    else:
        data["rooms"] = list(request.rooms)
    return data


def encode_session(session: SavedSession) -> str:
    """A saved session's value as node's adapter writes it (msgpack, base64).

    Raises:
        TypeError: ``session.data`` holds something msgpack cannot carry.
    """
    body = {
        "sid": session.sid,
        "pid": session.pid,
        "rooms": list(session.rooms),
        "data": session.data if session.data is not None else {},
        # Tether's own fields (node ignores them): user and session binding, the offset at connect.
        "tether": {"user_id": session.user_id, "session_id": session.session_id, "base": session.base},
    }
    return base64.b64encode(msgpack.packb(body, use_bin_type=True)).decode()


def decode_session(raw: bytes | str) -> dict[str, Any]:
    """A saved session's value read back (node's fields, and Tether's under ``"tether"``)."""
    body: dict[str, Any] = msgpack.unpackb(base64.b64decode(raw), raw=False)
    return body
