"""The WebSocket transport: picows frames in and out of a Client.

Connections arrive through the HTTP front door (:mod:`.http`), which hands an upgrade request to a
picows ``WSProtocol`` with :func:`adopt`. picows parses frames in Cython and writes each encoded packet
as one frame; this module only maps frames to :class:`~tether.protocol.connection.Connection` calls.
"""

from __future__ import annotations

import asyncio
import logging
from sys import intern
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict
from orjson import JSONDecodeError
from orjson import loads as _loads
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from ..errors import InvalidPacket, PayloadTooBig, RemoteProtocolError
from ..handler import Headers, Request
from ..protocol.connection import Transport
from ..protocol.parsers import SocketIOParser
from ..protocol.socketio import RESERVED_EVENTS, RESERVED_PREFIXES
from .client import Client
from .lifecycle import NO_STATUS, close_reason, send_empty_close
from .origins import origin_allowed, warn_refused

if TYPE_CHECKING:
    from .receive import Receiver

__all__ = ["WebSocketListener", "adopt"]

log = logging.getLogger("tether.websocket")


class _PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows logs a client's malformed frame (too big, bad opcode) at ERROR. For Tether that is the
    client's fault, logged at INFO like the protocol errors Tether finds itself: at ERROR, any client
    could flood the error log."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR and isinstance(msg, str) and msg.startswith("WS parser error"):
            level = logging.INFO
        super().log(level, msg, *args, **kwargs)


# One adapter for all connections: picows makes a child Logger per connection when given a Logger,
# which costs about 1 KiB each and is never freed; an adapter is passed through as is.
_PICOWS_LOG = _PicowsLog(logging.getLogger("tether.picows"), {})
# picows logs every accepted and closed connection at INFO: at 5k handshakes/s that is the log.
logging.getLogger("tether.picows").setLevel(logging.WARNING)

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE
_PONG = WSMsgType.PONG
_CONTINUATION = WSMsgType.CONTINUATION

FRAME_ERROR = "transport error"
"""Disconnect reason of a broken WebSocket frame or message (1002 from picows or a fragment, not UTF-8 1007,
over ``max_payload`` 1009): node's ``ws`` fails the socket, which engine.io ends as "transport error"
(checked against node in tests/server/test_disconnect_reasons_vs_node.py)."""

_REASON_BY_CODE = {1002: FRAME_ERROR, 1007: FRAME_ERROR, 1009: FRAME_ERROR}
"""Disconnect reason for the close codes picows closes with on its own."""


class _Detached(asyncio.Protocol):
    """The protocol a transport passes through on its way from the HttpProtocol to picows.

    uvloop keeps the last plain protocol's ``data_received`` on the transport even after a buffered
    protocol takes over: once this one's (not the HttpProtocol's, which would then live as long as the
    WebSocket). A function in the instance, not a method: a bound method would be a new 64-byte object
    kept per connection (W3, issue 16).
    """

    def __init__(self) -> None:
        self.data_received = _discard  # type: ignore[method-assign]


def _discard(data: bytes) -> None:
    return None


_DETACHED = _Detached()

READ_BUFFER_INIT_SIZE = 2048
"""picows' smallest read buffer: idle connections dominate a push service; the buffer grows on demand."""


class WebSocketListener(WSListener):
    """Frames of one WebSocket connection -> its Client."""

    __slots__ = (
        "_fragment_count",
        "_fragment_size",
        "_fragment_type",
        "_fragments",
        "client",
        "conn",
        "fast",
        "parser",
        "server",
        "transport",
        "upgrading",
    )

    def __init__(self, server: Receiver, client: Client, upgrading: bool) -> None:
        self.server = server
        self.client = client
        self.conn = client.conn
        self.upgrading = upgrading
        self.transport: WSTransport | None = None
        self._fragments: list[bytes] | None = None
        self._fragment_type: WSMsgType = _TEXT
        self._fragment_size = 0
        self._fragment_count = 0
        parser = client.parser
        # The hot path applies to Socket.IO framing on an Engine.IO WebSocket (not while probing an upgrade).
        self.fast = (
            isinstance(parser, SocketIOParser)
            and not upgrading
            and client.conn.transport is Transport.WEBSOCKET
        )
        self.parser: Any = parser  # the hot path reads SocketIOParser._pending, only when self.fast

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        request = getattr(transport, "request", None)
        if request is not None:
            # picows keeps the handshake request on the transport for the connection's lifetime; Tether's
            # Request has the headers already, and picows has no further use for them (W3, issue 16).
            request.headers = _NO_HEADERS
        transport.underlying_transport.set_write_buffer_limits(
            high=self.server.config.limits.send_buffer_bytes
        )
        client = self.client
        server = self.server
        if self.upgrading:
            return
        client.attach_websocket(transport)
        if self.conn.transport is Transport.WEBSOCKET:
            client.send_raw_frame(self.conn.open_packet(upgrades=False))
        server.client_opened(client)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if transport.is_close_frame_sent:
            return  # RFC 6455 §5.5.1: after our close frame, what the peer still sends is discarded
        mt = frame.msg_type
        if mt is _TEXT and self.fast and frame.fin:
            # Hot path: 42["name",...] on "/" without ack id, straight from the frame bytes to the route.
            # Also 42<ack id>[...] (an event that wants an answer). Anything else, or anything invalid,
            # takes the general path below, which says precisely what is wrong.
            payload = frame.get_payload_as_bytes()
            if payload == b"3":
                # The pong of every idle client every ping_interval: most of what an idle server does.
                self.conn.receive_pong()
                return
            if self.parser._pending is not None:
                start = -1  # a binary event's attachments are awaited: the general path
            elif payload[:3] == b"42[":  # (one slice and compare: less than startswith's argument parsing)
                ack_id: int | None = None
                start = 2
            elif payload[:2] == b"42":
                start = payload.find(b"[", 2)
                digits = payload[2:start]
                if 0 < len(digits) <= 15 and digits.isdigit():
                    ack_id = int(digits)
                else:
                    start = -1
            else:
                start = -1
            if start > 0:
                try:
                    # A bytes slice, not a memoryview of the payload: a copy of a message costs less
                    # than a view and its buffer export (~1,500 instructions per echo, bench/icount.py).
                    data = _loads(payload[start:])
                except JSONDecodeError:
                    data = None
                # Nesting is at most the count of opening brackets (see protocol.socketio.check_depth);
                # a message with more than [limits] max_depth of them takes the general path.
                # A reserved name (42["connect",...]) takes the general path, which refuses it.
                if type(data) is list and data:
                    name = data[0]
                    if (
                        type(name) is str
                        and name not in RESERVED_EVENTS
                        # (Every reserved prefix has a colon: a name without one skips startswith, whose
                        # argument parsing costs more than the rest of this test.)
                        and (":" not in name or not name.startswith(RESERVED_PREFIXES))
                        # Valid JSON nesting d levels has d opening and d closing brackets, so one shorter
                        # than 2 * (max_depth + 1) cannot nest deeper: no count (two C calls with
                        # argument parsing, ~1,500 instructions, on every echo of the benchmark's size).
                        and (
                            len(payload) - start <= 2 * (depth := self.parser.max_depth) + 1
                            or payload.count(b"[") + payload.count(b"{") <= depth
                        )
                    ):
                        self.server.receive_event(self.client, "/", name, data[1:], ack_id)
                        return
            try:
                self._receive(transport, payload.decode())
            except UnicodeDecodeError:
                self._fail(transport, 1007, "invalid UTF-8 in text frame")
            return
        if not frame.fin or mt is _CONTINUATION:
            self._on_fragment(transport, frame)
            return
        if mt is _TEXT:
            try:
                text = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self._fail(transport, 1007, "invalid UTF-8 in text frame")
                return
            self._receive(transport, text)
        elif mt is _BINARY:
            self._receive(transport, frame.get_payload_as_bytes())
        elif mt is _PONG:
            self.conn.receive_pong()
        elif mt is _CLOSE:
            # The peer closes: answer with its code, or with no code when it sent none (picows has already
            # refused invalid codes with 1002). The session ends as "transport close", as in node.
            code = frame.get_close_code().value if frame.payload_size >= 2 else NO_STATUS
            client = self.client
            live = self.server.clients.get(client.sid) is client and client.ws is transport
            if live and not self.upgrading:
                self.server.close_client(client, "transport close", send_close=False, ws_code=code)
            else:
                self.server.writes.flush()  # frames of this iteration go before the close frame
                if code == NO_STATUS:
                    send_empty_close(transport)
                else:
                    transport.send_close(WSCloseCode(code))
            transport.disconnect()

    def _on_fragment(self, transport: WSTransport, frame: WSFrame) -> None:
        # RFC 6455 §5.4: a message may come in fragments; picows hands them over one by one.
        if frame.msg_type is not _CONTINUATION:
            if self._fragments is not None:
                self._fail(transport, 1002, "new message before the fragmented one ended")
                return
            self._fragments = []
            self._fragment_type = frame.msg_type
            self._fragment_size = 0
            self._fragment_count = 0
        elif self._fragments is None:
            self._fail(transport, 1002, "continuation frame without a message")
            return
        part = frame.get_payload_as_bytes()
        self._fragment_size += len(part)
        if self._fragment_size > self.conn.max_payload:
            self._fail(transport, 1009, "message too big")
            return
        # Counted as well as measured: ten million empty continuation frames add no bytes, yet each costs
        # a list slot and a frame's work ([limits] max_fragments).
        self._fragment_count += 1
        if self._fragment_count > self.server.config.limits.max_fragments:
            self._fail(transport, 1009, "message in too many fragments")
            return
        if part:
            self._fragments.append(part)
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = None
            if self._fragment_type is _TEXT:
                try:
                    self._receive(transport, data.decode())
                except UnicodeDecodeError:
                    self._fail(transport, 1007, "invalid UTF-8 in text frame")
            else:
                self._receive(transport, data)

    def _receive(self, transport: WSTransport, message: str | bytes) -> None:
        conn = self.conn
        try:
            if self.upgrading:
                if not isinstance(message, str):
                    raise RemoteProtocolError("binary frame during upgrade")
                reply = conn.receive_probe_message(message)
                if reply is not None:
                    transport.send(_TEXT, reply)
                    if self.client.poll_waiter is not None:
                        self.client._flush_poll()  # the held GET: a noop (or what is queued), at once
                else:
                    self.upgrading = False
                    self.fast = isinstance(self.parser, SocketIOParser)
                    self.client.attach_websocket(transport)
                    self.client.flush_to_websocket()
                return
            if self.client.strip_prefix and isinstance(message, str):
                events = conn.parser.decode(message)
            else:
                if conn.transport is Transport.BARE and message == "2":
                    self.client.send_raw_frame(b"3")
                    return
                events = conn.receive_message(message)
        except PayloadTooBig as exc:
            self._fail(transport, 1009, str(exc))
            return
        except InvalidPacket as exc:
            # A Socket.IO-level error: node's socket.io closes the Engine.IO socket, "forced close".
            self._fail(transport, 1002, str(exc), "forced close")
            return
        except RemoteProtocolError as exc:
            self._fail(transport, 1002, str(exc), "parse error")  # an invalid Engine.IO packet, as engine.io
            return
        if events:
            self.server.receive(self.client, events)

    def _fail(self, transport: WSTransport, code: int, reason: str, why: str = FRAME_ERROR) -> None:
        """Close for a protocol error: ``code`` and ``reason`` go in the close frame, ``why`` to handlers."""
        self.server.state.protocol_errors += 1
        log.info("! %s protocol error from %s: %s", self.conn.sid, self.client.remote, reason)
        # The close frame carries the precise reason; close_client then sends no second one. Frames of
        # this iteration go before it.
        self.server.writes.flush()
        transport.send_close(WSCloseCode(code), close_reason(reason))
        if self.upgrading:
            # Only the probing WebSocket goes; the session carries on over polling.
            self.conn.cancel_upgrade()
            transport.disconnect()
            return
        if self.server.clients.get(self.conn.sid) is self.client:
            # Handlers see node's reason; the close frame says what was wrong.
            self.server.close_client(
                self.client,
                why,
                send_close=False,
                ws_code=code,
                ws_reason=reason,
            )
        transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.upgrading:
            self.conn.cancel_upgrade()
            return
        client = self.client
        if client.ws is transport and self.server.clients.get(client.sid) is client:
            reason = "transport close"
            handshake = transport.close_handshake
            if handshake is not None and handshake.sent is not None and not handshake.recv_then_sent:
                # Not closed by the peer nor by us (close_client ran first): picows closed it itself,
                # for a frame over max_payload (1009) or a broken frame (1002).
                code = int(handshake.sent.code)
                if code in _REASON_BY_CODE:
                    reason = _REASON_BY_CODE[code]
                    self.server.state.protocol_errors += 1
                    log.info(
                        "! %s protocol error from %s: %s",
                        self.conn.sid,
                        self.client.remote,
                        handshake.sent.reason,
                    )
            self.server.close_client(client, reason, send_close=False)

    def pause_writing(self) -> None:
        # picows forwards the transport's pause_writing: its buffer passed [limits] send_buffer_bytes
        # (set as the high-water mark in on_ws_connected). From here on Client.send drops, so the buffer
        # grows by at most the frame that crossed the mark.
        if not self.client.paused:
            self.client.set_paused(True)
            self.server.on_slow_consumer(self.client)

    def resume_writing(self) -> None:
        self.client.set_paused(False)


_NO_HEADERS = CIMultiDict[str]()
"""What picows' request keeps once the handshake is done: an empty mapping shared by every connection."""

_SWITCHING = WSUpgradeResponse.create_101_response()
"""The one 101 response every handshake answers with. picows writes a response out at once (setting its
``Sec-WebSocket-Accept`` just before) and then only keeps a reference on the transport: one shared object
instead of a response and its ``CIMultiDict`` per connection (~0.8 KiB per idle connection, issue 16 W3)."""


def _bad(status: int, code: int, message: str) -> WSUpgradeResponseWithListener:
    import orjson

    body = orjson.dumps({"code": code, "message": message})
    return WSUpgradeResponseWithListener(
        WSUpgradeResponse.create_error_response(status, body, {"Content-Type": "application/json"}), None
    )


def _listener_factory(server: Receiver, remote: str, headers: Headers) -> Any:
    remote = intern(remote)

    def factory(req: WSUpgradeRequest) -> Any:
        path, _, qs = req.path.decode("latin-1").partition("?")
        # Interned: every idle connection would otherwise hold its own copies of "EIO", "transport",
        # "websocket", the path and the peer address (~0.4 KiB of a ~10 KiB budget).
        query = {
            intern(k): intern(v) if len(v) <= 16 else v for k, v in parse_qsl(qs, keep_blank_values=True)
        }
        path = intern(path)
        cfg = server.config.websocket
        if not origin_allowed(
            headers.get("origin"),
            headers.get("host"),
            cfg.allowed_origins,
            server.ssl_context is not None,
            cfg.allowed_hosts,
        ):
            warn_refused(headers.get("origin", ""), path)
            return _bad(403, 4, "Origin not allowed")
        request = Request("GET", path, query, headers, remote)
        if path.rstrip("/") == cfg.ws_path.rstrip("/"):
            transport = Transport.BARE
        else:
            if query.get("EIO") != "4":
                return _bad(400, 5, "Unsupported protocol version")
            if query.get("transport") != "websocket":
                return _bad(400, 0, "Transport unknown")
            sid = query.get("sid")
            if sid:
                client = server.clients.get(sid)
                if client is None:
                    return _bad(400, 1, "Session ID unknown")
                try:
                    client.conn.begin_upgrade()
                except RemoteProtocolError as exc:
                    return _bad(400, 3, str(exc))
                return WebSocketListener(server, client, upgrading=True)
            transport = Transport.WEBSOCKET
        if not server.admit(request):
            return _bad(503 if server.at_capacity(request) else 403, 4, "Connection refused")
        client = server.new_connection(transport, request)
        return WebSocketListener(server, client, upgrading=False)

    return factory


def _answered_with_shared_101(factory: Any) -> Any:
    """``factory`` for picows: a listener it returns goes out with :data:`_SWITCHING`, not a new 101."""

    def answered(req: WSUpgradeRequest) -> Any:
        listener = factory(req)
        if isinstance(listener, WebSocketListener):
            return WSUpgradeResponseWithListener(_SWITCHING, listener)
        return listener

    return answered


def adopt(server: Receiver, transport: asyncio.Transport, data: bytes, remote: str, headers: Headers) -> None:
    """Switch ``transport`` to a picows WSProtocol and replay ``data`` (the handshake request) into it.

    ``headers`` are the request's headers as Tether's HTTP parser read them: they become the
    connection's ``Request.headers`` (``data`` need only carry what picows checks in a handshake).
    """
    cfg = server.config
    proto = WSProtocol(
        None,
        None,
        False,
        _answered_with_shared_101(_listener_factory(server, remote, headers)),
        _PICOWS_LOG,
        True,
        cfg.limits.handshake_timeout,
        False,
        20.0,
        20.0,
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,
        cfg.websocket.max_payload,
        None,
        READ_BUFFER_INIT_SIZE,
    )
    # uvloop caches the plain protocol's data_received and keeps it when the new protocol is a buffered
    # one: the HttpProtocol (and what it holds) would live as long as the WebSocket. Passing through a
    # shared, empty protocol first leaves only that one cached.
    transport.set_protocol(_DETACHED)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    view = memoryview(data)
    while view:
        buf = proto.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]
        if transport.is_closing():
            break
