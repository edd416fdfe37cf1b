"""The HTTP front door: one asyncio protocol per TCP connection, parsing requests with httptools.

It serves Engine.IO long-polling (GET holds until packets are queued, POST delivers packets), the
routes other modules register (API, metrics), the JS helper and static files. A WebSocket upgrade is
handed to picows with the bytes read so far (:func:`.websocket.adopt`), so WebSocket and polling share
one port: picows alone only serves body-less GETs, and polling needs POST.

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
import mimetypes
import time
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from sys import intern
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import httptools
import orjson

from ..errors import InvalidPacket, PayloadTooBig, RemoteProtocolError
from ..handler import Headers, Request
from ..protocol.connection import State, Transport
from .origins import origin_allowed, warn_refused
from .websocket import adopt

if TYPE_CHECKING:
    from .client import Client
    from .core import AppMount
    from .receive import Receiver

__all__ = ["HttpProtocol"]

log = logging.getLogger("tether.http")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class HttpProtocol(asyncio.Protocol):
    """One TCP connection speaking HTTP/1.1 until it upgrades to WebSocket."""

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
        self._poll_client: Client | None = None
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
        client = self._poll_client
        if client is not None and client.poll_waiter is self:
            client.poll_waiter = None
            # A polling client whose held GET's connection dropped: node socket.io 4.8 reports it as
            # "transport error" (the request's "close" is an error of the polling transport).
            self.server.close_client(client, "transport error", send_close=False)

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
        self.server.state.protocol_errors += 1
        self._drop_polling_session()
        self._respond_error(413, 3, "Payload too large", close=True)
        raise _Abort

    def _drop_polling_session(self) -> None:
        """A polling POST too big to read: its session lost packets, so it ends (as engine.io does)."""
        url = httptools.parse_url(bytes(self._url))
        path = unquote(url.path.decode("latin-1"))
        if path.rstrip("/") != self.server.config.websocket.path.rstrip("/") or not url.query:
            return
        sid = dict(parse_qsl(url.query.decode("latin-1"), keep_blank_values=True)).get("sid")
        client = self.server.clients.get(sid) if sid else None
        if client is not None and client.conn.transport is Transport.POLLING:
            self.server.close_client(client, "transport error", send_close=True)

    def on_message_complete(self) -> None:
        if self._upgrade:
            return  # feed_data raises HttpParserUpgrade next
        self._in_request = False
        self._reading_head = True
        self._head_bytes = 0
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        method = self.parser.get_method().decode()
        url = httptools.parse_url(bytes(self._url))
        path = unquote(url.path.decode("latin-1"))
        query = dict(parse_qsl(url.query.decode("latin-1"), keep_blank_values=True)) if url.query else {}
        request = Request(method, path, query, self._headers, self.remote)
        item = (request, bytes(self._body), self._message_keep_alive)
        if self._busy or self._waiting:
            self._waiting.append(item)  # answered after the ones before it
            return
        self._dispatch(item)

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

    def _route(self, request: Request, body: bytes) -> None:
        cfg = self.server.config.websocket
        path = request.path
        if path == cfg.path or path == cfg.path.rstrip("/"):
            self._engineio(request, body)
            return
        routes = self.server.http_routes
        fn = routes.get((request.method, path))
        if fn is None:
            for (method, pattern), candidate in routes.items():
                if method == request.method and pattern.endswith("*") and path.startswith(pattern[:-1]):
                    fn = candidate
                    break
        if fn is not None:
            self.server.spawn(self._run_route(fn, request, body))
            return
        if request.method in ("GET", "HEAD"):
            if path.startswith("/tether/"):
                self._static(STATIC_DIR, path[len("/tether/") :])
                return
            static_dir = self.server.config.server.static_dir
            if static_dir:
                name = path.lstrip("/") or "index.html"
                if name.endswith("/"):
                    name += "index.html"
                self._static(Path(self.server.config.resolve_path(static_dir)), name)
                return
        self._respond(404, {"Content-Type": "text/plain"}, b"Not Found")

    async def _run_route(self, fn: Any, request: Request, body: bytes) -> None:
        try:
            status, headers, out = await fn(request, body)
        except Exception:
            log.exception("! route %s %r failed", request.method, request.path)
            status, headers, out = 500, {"Content-Type": "text/plain"}, b"Internal Server Error"
        self._respond(status, headers, out)

    def _static(self, folder: Path, name: str) -> None:
        """Serve ``folder/name``: 404 for anything outside the folder, a dotfile or dot-folder (``.env``,
        ``.git/``), or a name the file system refuses (too long: ENAMETOOLONG); 400 for a NUL byte, which
        no file name holds."""
        if "\x00" in name:
            self._respond(400, {"Content-Type": "text/plain"}, b"Bad Request")
            return
        try:
            if any(part.startswith(".") for part in name.split("/")):
                raise FileNotFoundError(name)  # dotfiles are private by convention; "..": traversal
            root = folder.resolve()
            target = (root / name).resolve()
            if root not in target.parents and target != root:
                raise FileNotFoundError(name)  # path traversal (a symlink pointing out)
            data = target.read_bytes()
        except OSError:  # not found, a folder, no permission, a name too long, ...
            self._respond(404, {"Content-Type": "text/plain"}, b"Not Found")
            return
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/javascript":
            ctype += "; charset=utf-8"
        self._respond(200, {"Content-Type": ctype, "Cache-Control": "no-cache"}, data)

    # -- Engine.IO long-polling -----------------------------------------------------------------------

    def _cors(self, request: Request) -> dict[str, str] | None:
        """CORS headers for this request, or None when its Origin is not allowed."""
        origin = request.headers.get("origin")
        cfg = self.server.config.websocket
        if not origin_allowed(
            origin,
            request.headers.get("host"),
            cfg.allowed_origins,
            self.server.ssl_context is not None,
            cfg.allowed_hosts,
        ):
            return None
        if origin is None:
            return {}
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if cfg.cors_credentials and "*" not in cfg.allowed_origins:
            # Credentials for any origin is what browsers refuse for "*": every site could act as its
            # visitors (config.WebSocketConfig.cors_credentials).
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _engineio(self, request: Request, body: bytes) -> None:
        server = self.server
        cors = self._cors(request)
        if cors is None:
            warn_refused(request.headers.get("origin", ""), request.path)
            self._respond_error(403, 4, "Origin not allowed")
            return
        if request.method == "OPTIONS":
            cors.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": request.headers.get(
                        "access-control-request-headers", "content-type"
                    ),
                    "Access-Control-Max-Age": "600",
                }
            )
            self._respond(204, cors, b"")
            return
        q = request.query
        if q.get("EIO") != "4":
            self._respond_error(400, 5, "Unsupported protocol version", cors)
            return
        transport = q.get("transport")
        if transport == "websocket":
            self._respond_error(400, 3, "WebSocket transport needs an Upgrade request", cors)
            return
        if transport != "polling":
            self._respond_error(400, 0, "Transport unknown", cors)
            return
        sid = q.get("sid")
        if sid is None:
            if request.method != "GET":
                self._respond_error(400, 2, "Bad handshake method", cors)
                return
            if not server.admit(request):
                self._respond_error(
                    503 if server.at_capacity(request) else 403, 4, "Connection refused", cors
                )
                return
            opened = server.new_connection(Transport.POLLING, request)
            server.state.handshakes += 1
            self._respond(
                200,
                {**cors, "Content-Type": "text/plain; charset=UTF-8"},
                opened.conn.open_packet(upgrades=True),
            )
            server.client_opened(opened)
            return
        client = server.clients.get(sid)
        if client is not None and server.expire_if_due(client):
            client = None  # timed out a moment ago: the timer had not run yet
        if client is None:
            # Another worker's session (the sid's prefix says which): the connection goes there.
            if server.foreign_sid_handler is not None and self._hand_to_owner(
                sid, self._request_bytes(request, body)
            ):
                return
            last = server.take_closed_poll(sid) if request.method == "GET" else None
            if last is not None:
                self._respond(200, {**cors, "Content-Type": "text/plain; charset=UTF-8"}, last)
                return
            self._respond_error(400, 1, "Session ID unknown", cors)
            return
        if client.conn.transport is not Transport.POLLING:
            self._respond_error(400, 3, "Session is not on polling", cors)
            return
        if request.method == "GET":
            if client.poll_waiter is not None:
                # engine.io closes a session that polls twice at once: it is a broken client.
                server.close_client(client, "transport error", send_close=True)
                self._respond_error(400, 3, "Overlapping GET requests", cors)
                return
            payload = client.take_payload()
            if payload is not None:
                self._respond(200, {**cors, "Content-Type": "text/plain; charset=UTF-8"}, payload)
                return
            self._poll_cors = cors
            self._poll_client = client
            client.poll_waiter = self
            # Read on while the GET is held: a client that closes the connection (a tab closed, a network
            # switch) is seen at once (connection_lost: "transport close"), not a heartbeat later.
            assert self.transport is not None
            self.transport.resume_reading()
            return
        if request.method == "POST":
            if request.headers.get("content-type") == "application/octet-stream":
                # Engine.IO v4 polling bodies are text (binary messages go base64-encoded in them): engine.io
                # 6 (node socket.io 4.8) refuses this exact type as "invalid content" and ends the session;
                # any other type, or none, is read as text (test_polling_content_type_vs_node.py).
                server.state.protocol_errors += 1
                server.close_client(client, "transport error", send_close=True)
                self._respond_error(400, 3, "Invalid content: Engine.IO v4 polling bodies are text", cors)
                return
            try:
                events = client.conn.receive_payload(body)
            except PayloadTooBig:
                server.state.protocol_errors += 1
                server.close_client(client, "transport error", send_close=True)
                self._respond_error(413, 3, "Payload too large", cors)
                return
            except RemoteProtocolError as exc:
                server.state.protocol_errors += 1
                # As node: a Socket.IO-level error is "forced close", an Engine.IO one "parse error".
                why = "forced close" if isinstance(exc, InvalidPacket) else "parse error"
                server.close_client(client, why, send_close=True)
                # Not as node: engine.io answers such a POST 200 "ok" after decoding it, whatever decoding
                # did to the session; a 400 with the cause tells the client its body was refused (and a body
                # that is not UTF-8 is refused here, where node turns its bad bytes into U+FFFD and delivers
                # the altered event). docs/guide.md "Polling request bodies".
                self._respond_error(400, 3, str(exc), cors)
                return
            self._respond(200, {**cors, "Content-Type": "text/html"}, b"ok")
            if events:
                server.receive(client, events)
            if client.conn.state is State.CLOSED:
                server.close_client(
                    client, client.conn.close_reason or "client namespace disconnect", send_close=False
                )
            return
        self._respond_error(400, 2, "Bad handshake method", cors)

    def _request_bytes(self, request: Request, body: bytes) -> bytes:
        """The current request as bytes again, for the worker it is handed to (the parser consumed it)."""
        head = [f"{request.method} {self._url.decode('latin-1')} HTTP/1.1\r\n"]
        for name, value in request.headers.items():
            if name not in ("content-length", "transfer-encoding"):
                head.append(f"{name}: {value}\r\n")
        head.append(f"content-length: {len(body)}\r\n\r\n")
        return "".join(head).encode("latin-1") + body

    def respond_payload(self, body: bytes) -> None:
        """Answer the held polling GET (called by the Client)."""
        cors = getattr(self, "_poll_cors", {})
        self._poll_client = None
        self._respond(200, {**cors, "Content-Type": "text/plain; charset=UTF-8"}, body)

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
