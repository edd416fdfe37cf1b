"""One HTTP/1.1 connection of the front door, parsed with httptools, until it is handed on.

:class:`HttpConnection` reads requests and writes responses; what each request gets is its subclass's
(:class:`.http.HttpProtocol`: Engine.IO long-polling, registered routes, static files). It hands the
connection on whole when it stops being plain HTTP for Tether: a WebSocket upgrade to picows
(:func:`.websocket.adopt`), a request for a mounted ASGI app to the app's door, a request for another
worker's session to that worker.

Requests on one connection are answered one at a time and in order, one response each (RFC 9112 §9.3.2):
reading pauses while a response is pending (a held long-poll GET, an async route), which also bounds
what a pipelining client can make us buffer. The parser is fed one request head at a time (split at its
blank line), then a body of known length, so that requests that arrive together in one read are not
all parsed, and routed, before the first is answered. A response to HEAD has the headers of the GET
answer and no body.

``[limits] http_max_header_size`` counts the raw bytes of a request head as received (request line,
header lines with their whitespace, the blank line); ``http_max_headers`` counts header lines. Both answer
431 and close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from http import HTTPStatus
from sys import intern
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

import httptools
import orjson

from ..handler import Headers, Request
from .websocket import adopt

if TYPE_CHECKING:
    from .core import AppMount
    from .receive import Receiver

__all__ = ["HttpConnection"]

log = logging.getLogger("tether.http")

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class HttpConnection(asyncio.Protocol):
    """One TCP connection speaking HTTP/1.1 until it upgrades to WebSocket (or is handed on).

    Subclasses answer requests: :meth:`_route` is called with each complete request, one at a time.
    """

    def __init__(self, server: Receiver) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.remote = ""
        self._url = bytearray()
        self._headers = Headers()
        self._raw_headers: list[bytes] = []  # header lines as received, to hand an upgrade to another worker
        self._header_bytes = 0
        self._header_count = 0
        self._head_bytes = 0  # raw bytes of the current request head so far
        self._head_tail = b""  # the last bytes of the head read so far, to find a blank line split in two
        self._reading_head = True  # False from the end of a head to the end of its message
        self._body_left: int | None = None  # body bytes still to come, when the request said how many
        self._message_keep_alive = True
        self._waiting: list[tuple[Request, bytes, bool]] = []  # complete requests behind the busy one
        self._head_only = False  # the response being written answers a HEAD
        self._body = bytearray()
        self._upgrade = False
        self._busy = False
        self._in_request = False  # bytes of a request have arrived and it is not complete yet
        self._pipelined = bytearray()
        self._closed = False
        self._keep_alive = True
        self._timeout: asyncio.TimerHandle | None = None
        self._peek = b""  # the start of a request line, while an app is mounted (see app_door)
        self.handoff_allowed = True
        """False on a connection another worker handed over: it is never passed on again."""

    # -- asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if peer else ""
        self._arm_timeout()

    def _arm_timeout(self) -> None:
        # Slowloris guard: a request must arrive complete within handshake_timeout.
        timeout = self.server.config.limits.handshake_timeout
        self._timeout = asyncio.get_running_loop().call_later(timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timeout = None
        if self._busy or self.transport is None:
            return
        if self._in_request:
            self._respond_error(408, 3, "Request timeout", close=True)
            return
        # An idle keep-alive connection: close it without a word. A 408 written now would be read by a
        # client that reuses the connection as the answer to the request it is about to send.
        self.transport.close()
        self._closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timeout is not None:
            self._timeout.cancel()

    def data_received(self, data: bytes) -> None:
        if self._busy or self._waiting:
            # Only a held long-poll GET reads while busy (to notice a client that goes away); a request sent
            # before its response (pipelining) waits for it, and reading stops until then.
            self._pipelined += data
            assert self.transport is not None
            self.transport.pause_reading()
            return
        limit = self.server.config.limits.http_max_header_size
        while data:
            door = self.server.app_door
            if door is not None and not self._in_request:
                # An ASGI app is mounted: a request for a path not Tether's goes to it, connection and all.
                if self._peek:
                    data, self._peek = self._peek + data, b""
                path = door.request_path(data)
                if path is None:
                    self._peek = data
                    return
                if not door.owns(path):
                    self._to_app(door, data)
                    return
            if self._reading_head:
                # Up to the blank line that ends this head: what is counted against the limit is exactly
                # what the client sent, whitespace and all.
                buf = self._head_tail + data
                end = buf.find(b"\r\n\r\n")
                n = len(data) if end < 0 else end + 4 - len(self._head_tail)
                self._head_tail = buf[-3:] if end < 0 else b""
                self._head_bytes += n
                if self._head_bytes > limit:
                    self._headers_too_large()
                    return
            elif self._body_left is not None:
                n = min(len(data), self._body_left)
                self._body_left -= n
            else:
                # A chunked body: its end is the parser's to find, so what follows it in this read (another
                # request) is parsed too; on_message_complete queues such a request behind the busy one.
                n = len(data)
            chunk, data = data[:n], data[n:]
            if not self._feed(chunk) or not data:
                return
            if self._busy or self._waiting:
                self._pipelined += data
                assert self.transport is not None
                self.transport.pause_reading()
                return

    def _feed(self, data: bytes) -> bool:
        """Parse ``data``; False when the connection is no longer ours to read (closed, upgraded)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # httptools stops at the end of the upgrade request; what follows is already WebSocket data.
            self._hand_off(data[exc.args[0] :])
            return False
        except httptools.HttpParserCallbackError as exc:
            # httptools wraps what our callbacks raise. _Abort: the error response went out already. Anything
            # else escaped request handling (on_message_complete routes the request): a bug, not a bad client.
            if not isinstance(exc.__context__, _Abort):
                log.error("! request from %s failed", self.remote, exc_info=exc.__context__)
                if not self._closed:
                    self._respond_error(500, 3, "Internal server error", close=True)
            return False
        except httptools.HttpParserError as exc:
            if not self._closed:
                self._respond_error(400, 3, f"Bad HTTP request: {exc}", close=True)
            return False
        return not self._closed and self.transport is not None

    # -- httptools callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_request = True
        self._url.clear()
        self._headers = Headers()
        self._raw_headers = []
        self._header_bytes = 0
        self._header_count = 0
        self._body.clear()
        self._upgrade = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        self._check_header_size()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.server.config.limits.http_max_headers:
            self._headers_too_large()
        # The raw bytes are counted in data_received; this count (names and values) covers a head that
        # follows a chunked body in the same read, which is fed to the parser whole.
        self._header_bytes += len(name) + len(value)
        self._check_header_size()
        # Interned: a WebSocket connection keeps its request's headers for its lifetime, every client sends
        # the same dozen names, and most of their values repeat from client to client.
        key = intern(name.decode("latin-1").lower())
        text = value.decode("latin-1")
        self._headers[key] = intern(text) if len(text) <= 16 or key in _SHARED_VALUES else text
        self._raw_headers.append(name + b": " + value + b"\r\n")

    def _check_header_size(self) -> None:
        if self._header_bytes > self.server.config.limits.http_max_header_size:
            self._headers_too_large()

    def _headers_too_large(self) -> None:
        self.server.state.protocol_errors += 1
        self._respond_error(431, 3, "Request header fields too large", close=True)
        raise _Abort

    def on_headers_complete(self) -> None:
        self._upgrade = bool(self.parser.should_upgrade())
        self._message_keep_alive = bool(self.parser.should_keep_alive())
        self._reading_head = False
        length = self._headers.get("content-length", "")
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        self._body_left = int(length) if length.isdigit() and not chunked else None
        if self._body_left is None and not chunked:
            self._body_left = 0  # no body (a request body needs Content-Length or chunked: RFC 9112 §6.3)
        if length.isdigit() and int(length) > self.server.config.websocket.max_payload:
            # Refuse on the announced size: no need to read (and hold) a megabyte to learn it is too big.
            self._payload_too_large()

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self.server.config.websocket.max_payload:
            self._payload_too_large()

    def _payload_too_large(self) -> None:
        """A body over ``max_payload`` (announced or read): the request is routed from its head alone
        (``_route(request, None)``), so that what node answers before it reads a body (an unknown session,
        a refused content type) comes first, as there; the connection ends with the answer, since the rest
        of the body is not read."""
        self._keep_alive = False
        self._route(self._request(), None)  # counts the protocol error where it answers 413
        if not self._closed:
            self.server.state.protocol_errors += 1
            self._respond_error(413, 3, "Payload too large", close=True)
        raise _Abort

    def on_message_complete(self) -> None:
        if self._upgrade:
            return  # feed_data raises HttpParserUpgrade next
        self._in_request = False
        self._reading_head = True
        self._head_bytes = 0
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        item = (self._request(), bytes(self._body), self._message_keep_alive)
        if self._busy or self._waiting:
            self._waiting.append(item)  # answered after the ones before it
            return
        self._dispatch(item)

    def _request(self) -> Request:
        """The request whose head the parser has read."""
        method = self.parser.get_method().decode()
        url = httptools.parse_url(bytes(self._url))
        path = unquote(url.path.decode("latin-1"))
        query = dict(parse_qsl(url.query.decode("latin-1"), keep_blank_values=True)) if url.query else {}
        return Request(method, path, query, self._headers, self.remote)

    def _raw_head(self) -> bytes:
        """The current request's line and headers as the client sent them, without its body."""
        start = b"%b %b HTTP/1.1\r\n" % (self.parser.get_method(), bytes(self._url))
        return start + b"".join(self._raw_headers) + b"\r\n"

    def _dispatch(self, item: tuple[Request, bytes, bool]) -> None:
        request, body, keep_alive = item
        self._busy = True
        self._keep_alive = keep_alive
        self._head_only = request.method == "HEAD"
        assert self.transport is not None
        self.transport.pause_reading()
        self.server.state.http_requests += 1
        self._route(request, body)

    def _next_waiting(self) -> None:
        if self._closed or self.transport is None or self._busy:
            return
        self._dispatch(self._waiting.pop(0))

    def _route(self, request: Request, body: bytes | None) -> None:
        """Answer ``request`` with :meth:`_respond`: the routes of :class:`.http.HttpProtocol`. ``body``
        None: the body is over ``[websocket] max_payload`` and was not read."""
        raise NotImplementedError

    # -- routing --------------------------------------------------------------------------------------

    def _hand_off(self, tail: bytes) -> None:
        """Give the connection to picows: replay a handshake request to it (rebuilt from what httptools
        parsed) and whatever the client sent after it.

        The request is rebuilt rather than kept as raw bytes because it need not be the first one on the
        connection: aiohttp (python-socketio's client) sends its upgrade on the keep-alive connection of an
        earlier polling request. picows is given only the request line and the handshake's headers:
        the connection keeps this parser's :class:`Headers` as its ``Request.headers``, so picows' copy
        of every header (a ``CIMultiDict``, ~1 KiB per idle connection) is not made. ``Connection`` is
        replayed as plain ``Upgrade``: httptools already found the ``upgrade`` token in it, and picows
        accepts no other value, so Firefox's ``keep-alive, Upgrade`` would be refused with a 400.
        """
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        assert self.transport is not None
        method = self.parser.get_method()
        url = bytes(self._url)
        if b"sid=" in url:
            head = [method, b" ", url, b" HTTP/1.1\r\n", *self._raw_headers, b"\r\n"]
            if self._foreign_upgrade(b"".join(head) + tail):
                return
        headers = self._headers
        handshake = b"%b %b HTTP/1.1\r\nUpgrade: %b\r\nConnection: Upgrade\r\n%b\r\n" % (
            method,
            url,
            headers.get("upgrade", "").encode("latin-1"),
            # What picows checks (key, version) or refuses (a body) in a handshake.
            b"".join(_replayed(headers, name) for name in _HANDSHAKE_HEADERS),
        )
        # This object is garbage from here on; drop what it holds now rather than when the loop lets go.
        self.parser = None  # type: ignore[assignment]
        self._headers = Headers()
        self._raw_headers = []
        self._body = bytearray()
        adopt(self.server, self.transport, handshake + tail, self.remote, headers)

    def _to_app(self, door: AppMount, data: bytes) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        transport = self.transport
        assert transport is not None
        self.transport = None
        self._closed = True
        door.take(transport, data)

    # -- sessions of other workers --------------------------------------------------------------------

    def _foreign_upgrade(self, raw: bytes) -> bool:
        """A WebSocket upgrade for another worker's polling session: hand the connection over."""
        url = httptools.parse_url(bytes(self._url))
        path = unquote(url.path.decode("latin-1"))
        cfg = self.server.config.websocket
        if path != cfg.path and path != cfg.path.rstrip("/"):
            return False
        sid = (
            dict(parse_qsl(url.query.decode("latin-1"), keep_blank_values=True)).get("sid")
            if url.query
            else None
        )
        return self._hand_to_owner(sid, raw) if sid else False

    def _hand_to_owner(self, sid: str, data: bytes) -> bool:
        """Give this connection to the worker that owns ``sid``, if there is one; True when it took it."""
        handler = self.server.foreign_sid_handler
        transport = self.transport
        if handler is None or not self.handoff_allowed or transport is None or sid in self.server.clients:
            return False
        if not handler(sid, transport, data):
            return False
        # The handler closed the transport (it passed a duplicate of the socket on): forget it.
        self._closed = True
        self.transport = None
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        return True

    # -- responses ------------------------------------------------------------------------------------

    def _respond_error(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        body = orjson.dumps({"code": code, "message": message})
        self._respond(status, {**(headers or {}), "Content-Type": "application/json"}, body, close=close)

    def _respond(self, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
        transport = self.transport
        if transport is None or self._closed or transport.is_closing():
            return
        close = close or not self._keep_alive
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n")
        head.append(f"Content-Length: {len(body)}\r\nDate: {formatdate(time.time(), usegmt=True)}\r\n")
        head.append("Connection: close\r\n\r\n" if close else "\r\n")
        # HEAD: the headers a GET would get, Content-Length included, and no body (RFC 9110 §9.3.2): a body
        # here would be read as the start of the next response.
        transport.write("".join(head).encode("latin-1") + (b"" if self._head_only else body))
        self._busy = False
        self._head_only = False
        if close:
            transport.close()
            self._closed = True
            self._waiting.clear()
            return
        self._arm_timeout()
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._next_waiting)
            return
        if self._pipelined:
            # Not from here: we may be inside a parser callback. Reading stays paused until it is fed, so
            # nothing newer overtakes it.
            asyncio.get_running_loop().call_soon(self._feed_pipelined)
            return
        transport.resume_reading()

    def _feed_pipelined(self) -> None:
        data = bytes(self._pipelined)
        self._pipelined.clear()
        if self._closed or self.transport is None:
            return
        self.transport.resume_reading()
        self.data_received(data)


class _Abort(Exception):
    """Stop parsing: a response (an error) has been sent already."""


_SHARED_VALUES = frozenset(
    (
        "user-agent",
        "origin",
        "accept-encoding",
        "accept-language",
        "sec-websocket-extensions",
        "cache-control",
    )
)
"""Headers longer than 16 characters whose values are still the same for many clients (interned)."""

_HANDSHAKE_HEADERS = ("sec-websocket-version", "sec-websocket-key", "content-length", "transfer-encoding")


def _replayed(headers: Headers, name: str) -> bytes:
    """``Name: value\r\n`` for the handshake replayed to picows, or nothing when the client sent none
    (picows then answers the 400 that names what is missing)."""
    value = headers.get(name)
    return b"" if value is None else b"%b: %b\r\n" % (name.encode(), value.encode("latin-1"))
