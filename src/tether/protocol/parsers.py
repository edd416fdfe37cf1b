"""Frame parsers: how an Engine.IO message maps to events and back (laravel-swoole's ``parser`` setting).

A parser instance lives for one connection (it may hold state, e.g. binary attachments in flight);
encoders are static so a broadcast is encoded once for all recipients. Every encoder returns Engine.IO
MESSAGE encodings: UTF-8 ``bytes`` beginning with ``4`` for text, :class:`~.engineio.Binary` for binary.

* :class:`SocketIOParser` (default): Socket.IO v5 packets, namespaces, acks, binary attachments.
* :class:`JsonParser`: ``{"event": "name", "data": ...}`` text messages; one namespace ``/``; a message
  may carry ``"ack": n`` and the answer is ``{"ack": n, "data": ...}``.
* :class:`RawParser`: every message is a ``message`` event with the text or bytes as its argument, and
  ``emit("message", x)`` sends ``x`` as is: a plain Engine.IO server.

A user parser subclasses :class:`Parser` and is named in config as ``module:Class``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ..errors import LocalProtocolError, RemoteProtocolError
from . import jsontext
from . import socketio as sio
from .engineio import Binary
from .events import Ack, ClientEvent, Connect, Disconnect, Event

__all__ = ["JsonParser", "Parser", "RawParser", "SocketIOParser"]


class Parser:
    """Base class of frame parsers. Subclasses implement every method."""

    name: ClassVar[str] = "custom"
    requires_connect: ClassVar[bool] = False
    """True: the client sends CONNECT per namespace. False: it is connected to ``/`` when it opens."""
    supports_namespaces: ClassVar[bool] = False
    max_depth: int = sio.MAX_DEPTH
    """Deepest nesting of arrays and objects a message may hold; the server sets it on each instance from
    ``[limits] max_depth``. A decoder that builds nested values refuses deeper ones with
    :class:`RemoteProtocolError` (see :func:`tether.protocol.socketio.check_depth`)."""

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        """Events in one Engine.IO MESSAGE's data (``str`` text, ``bytes`` binary).

        Raises:
            RemoteProtocolError: the message breaks this parser's format.
        """
        raise NotImplementedError

    @staticmethod
    def encode_event(
        namespace: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
    ) -> list[bytes]:
        raise NotImplementedError

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        raise NotImplementedError

    @staticmethod
    def encode_connect(namespace: str, sid: str, pid: str | None = None) -> list[bytes]:
        """The CONNECT reply; ``pid`` is the private id of connection state recovery (none when off)."""
        return []

    @staticmethod
    def encode_connect_error(namespace: str, data: dict[str, Any]) -> list[bytes]:
        return []

    @staticmethod
    def encode_disconnect(namespace: str) -> list[bytes]:
        return []


_NO_ATTACHMENTS: list[bytes] = []  # shared and never appended to: a binary packet gets its own list


class SocketIOParser(Parser):
    name = "socketio"
    requires_connect = True
    supports_namespaces = True

    __slots__ = ("_attachments", "_pending", "max_depth")

    def __init__(self, max_depth: int = sio.MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._pending: sio.Packet | None = None
        self._attachments: list[bytes] = _NO_ATTACHMENTS

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        if isinstance(message, bytes):
            pending = self._pending
            if pending is None:
                raise RemoteProtocolError("binary message without a binary packet announcing it")
            self._attachments.append(message)
            if len(self._attachments) < pending.attachments:
                return []
            data = sio.reconstruct(pending.data, self._attachments)
            self._pending = None
            self._attachments = _NO_ATTACHMENTS
            return [self._to_event(pending, data)]
        if self._pending is not None:
            raise RemoteProtocolError("text packet while binary attachments were expected")
        # Fast path for the most common packet, 2["name",...] on "/" without ack: skips Packet.decode.
        if message[:2] == "2[":
            try:
                data = jsontext.loads(message[1:])
            except orjson.JSONDecodeError as exc:
                raise RemoteProtocolError(f"invalid JSON in Socket.IO packet: {exc}") from exc
            if type(data) is not list or not data or type(data[0]) is not str:
                raise RemoteProtocolError("EVENT payload must be an array starting with the event name")
            if sio.is_reserved_event(data[0]):
                raise RemoteProtocolError(f"reserved event name {data[0][:40]!r}")
            sio.check_depth(message, data, self.max_depth)
            return [Event("/", data[0], data[1:])]
        packet = sio.Packet.decode(message, self.max_depth)
        if packet.attachments:
            self._pending = packet
            self._attachments = []
            return []
        return [self._to_event(packet, packet.data)]

    @staticmethod
    def _to_event(packet: sio.Packet, data: Any) -> ClientEvent:
        t = packet.type
        if t is sio.PacketType.EVENT or t is sio.PacketType.BINARY_EVENT:
            return Event(packet.namespace, data[0], data[1:], packet.id)
        if t is sio.PacketType.ACK or t is sio.PacketType.BINARY_ACK:
            assert packet.id is not None  # checked by Packet._validate
            return Ack(packet.namespace, packet.id, data)
        if t is sio.PacketType.CONNECT:
            return Connect(packet.namespace, data)
        return Disconnect(packet.namespace, "client namespace disconnect")

    encode_event = staticmethod(sio.encode_event)

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        if namespace == "/":
            # The common answer: 43<id>[...] in one orjson call; bytes inside (TypeError) go the general way.
            try:
                return [b"43" + str(ack_id).encode() + orjson.dumps(args)]
            except TypeError:
                pass
        return sio.Packet(sio.PacketType.ACK, namespace, list(args), ack_id).encode()

    @staticmethod
    def encode_connect(namespace: str, sid: str, pid: str | None = None) -> list[bytes]:
        # socket.io socket.ts _onconnect: {sid, pid}; the client's socket.recovered is "same pid as before".
        data = {"sid": sid} if pid is None else {"sid": sid, "pid": pid}
        return sio.Packet(sio.PacketType.CONNECT, namespace, data).encode()

    @staticmethod
    def encode_connect_error(namespace: str, data: dict[str, Any]) -> list[bytes]:
        # socket.io-client reads ``message`` into Error.message and ``data`` into Error.data; the fields
        # are also kept at the top level for clients that read the packet as is (python-socketio).
        payload = {**data, "message": str(data.get("message", "Connection rejected by server"))}
        if "data" not in data and data.keys() - {"message"}:
            # Nothing beyond the message: exactly {"message": ...}, as node sends for a plain Error (and
            # for "Invalid namespace").
            payload["data"] = data
        return sio.Packet(sio.PacketType.CONNECT_ERROR, namespace, payload).encode()

    @staticmethod
    def encode_disconnect(namespace: str) -> list[bytes]:
        return sio.Packet(sio.PacketType.DISCONNECT, namespace).encode()


class JsonParser(Parser):
    name = "json"

    __slots__ = ("max_depth",)

    def __init__(self, max_depth: int = sio.MAX_DEPTH) -> None:
        self.max_depth = max_depth

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        if isinstance(message, bytes):
            raise RemoteProtocolError("the json parser takes text messages only")
        try:
            obj = jsontext.loads(message)
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(f"invalid JSON: {exc}") from exc
        sio.check_depth(message, obj, self.max_depth)
        if not isinstance(obj, dict):
            raise RemoteProtocolError('expected an object {"event": ..., "data": ...}')
        ack = obj.get("ack")
        if ack is not None and (not isinstance(ack, int) or isinstance(ack, bool) or ack < 0):
            raise RemoteProtocolError('"ack" must be a non-negative integer')
        event = obj.get("event")
        if event is None and ack is not None:
            return [Ack("/", ack, [obj.get("data")])]
        if not isinstance(event, str) or not event:
            raise RemoteProtocolError('"event" must be a non-empty string')
        if sio.is_reserved_event(event):
            raise RemoteProtocolError(f"reserved event name {event[:40]!r}")
        args = [obj["data"]] if "data" in obj else []
        return [Event("/", event, args, ack)]

    @staticmethod
    def encode_event(
        namespace: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
    ) -> list[bytes]:
        msg: dict[str, Any] = {"event": event}
        if args:
            msg["data"] = args[0] if len(args) == 1 else list(args)
        if ack_id is not None:
            msg["ack"] = ack_id
        return [b"4" + _dumps_json(msg)]

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        data = args[0] if len(args) == 1 else (list(args) if args else None)
        return [b"4" + _dumps_json({"ack": ack_id, "data": data})]


class RawParser(Parser):
    name = "raw"

    __slots__ = ()

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        return [Event("/", "message", [message])]

    @staticmethod
    def encode_event(
        namespace: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
    ) -> list[bytes]:
        out: list[bytes] = []
        for arg in args:
            if isinstance(arg, bytes | bytearray | memoryview):
                out.append(Binary(arg))
            elif isinstance(arg, str):
                out.append(b"4" + arg.encode())
            else:
                out.append(b"4" + _dumps_json(arg))
        return out

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        return RawParser.encode_event(namespace, "message", args)


def _dumps_json(value: Any) -> bytes:
    try:
        return jsontext.dumps(value)
    except TypeError as exc:
        raise LocalProtocolError(f"value is not JSON serializable: {exc}") from exc


PARSERS: dict[str, type[Parser]] = {"socketio": SocketIOParser, "json": JsonParser, "raw": RawParser}
