"""The HTTP front door's routes: what each request on a :class:`.http_connection.HttpConnection` gets.

It serves Engine.IO long-polling (GET holds until packets are queued, POST delivers packets), the
routes other modules register (API, metrics), the JS helper and static files. The connection itself
(parsing, limits, pipelining, responses) and the hand-offs (a WebSocket upgrade to picows, so that
WebSocket and polling share one port: picows alone only serves body-less GETs, and polling needs POST)
are :mod:`.http_connection`'s.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidPacket, PayloadTooBig, RemoteProtocolError
from ..handler import Request
from ..protocol.connection import State, Transport
from .http_connection import HttpConnection
from .origins import origin_allowed, warn_refused

if TYPE_CHECKING:
    from .client import Client

__all__ = ["HttpProtocol", "find_static"]

log = logging.getLogger("tether.http")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


_STATIC_ERRORS = {400: b"Bad Request", 404: b"Not Found"}


def find_static(folder: Path, name: str) -> tuple[Path, str] | int:
    """The file for ``folder/name`` and its content type, or the status to answer instead: 404 for
    anything outside the folder, a dotfile or dot-folder (``.env``, ``.git/``), or a name the file system
    refuses (too long: ENAMETOOLONG); 400 for a NUL byte, which no file name holds. Whether the file
    exists is the reader's to find out (a folder or a missing file: 404 there)."""
    if "\x00" in name:
        return 400
    try:
        if any(part.startswith(".") for part in name.split("/")):
            return 404  # dotfiles are private by convention; "..": traversal
        root = folder.resolve()
        target = (root / name).resolve()
    except OSError:
        return 404
    if root not in target.parents and target != root:
        return 404  # path traversal (a symlink pointing out)
    ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype == "application/javascript":
        ctype += "; charset=utf-8"
    return target, ctype


class HttpProtocol(HttpConnection):
    """The front door: one per TCP connection (see :class:`.http_connection.HttpConnection`)."""

    _poll_client: Client | None = None
    """The client whose polling GET this connection holds; class defaults, so that the many connections
    that never hold a GET pay nothing for them."""
    _poll_cors: dict[str, str] = {}  # never mutated: a held GET sets its own

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        client = self._poll_client
        if client is not None and client.poll_waiter is self:
            client.poll_waiter = None
            # A polling client whose held GET's connection dropped: node socket.io 4.8 reports it as
            # "transport error" (the request's "close" is an error of the polling transport).
            self.server.close_client(client, "transport error", send_close=False)

    # -- routing --------------------------------------------------------------------------------------

    def _route(self, request: Request, body: bytes | None) -> None:
        cfg = self.server.config.websocket
        path = request.path
        if path == cfg.path or path == cfg.path.rstrip("/"):
            self._engineio(request, body)
            return
        if body is None:
            self.server.state.protocol_errors += 1
            self._respond_error(413, 3, "Payload too large")
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
        """Serve ``folder/name`` (see :func:`find_static`), read whole: the front door writes one response."""
        found = find_static(folder, name)
        if isinstance(found, int):
            self._respond(found, {"Content-Type": "text/plain"}, _STATIC_ERRORS[found])
            return
        target, ctype = found
        try:
            data = target.read_bytes()
        except OSError:  # not found, a folder, no permission, ...
            self._respond(404, {"Content-Type": "text/plain"}, b"Not Found")
            return
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

    def _engineio(self, request: Request, body: bytes | None) -> None:
        """An Engine.IO request, checked in engine.io's order: origin, protocol version, transport,
        session, then for a POST the content type and the body. ``body`` None: over ``max_payload``, not
        read; what node answers from the head alone is answered the same (an unknown session: 400; a POST
        of ``application/octet-stream``: 400), and a body too big for a live session is 413."""
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
            # Another worker's session (the sid's prefix says which): the connection goes there. A body
            # over max_payload is not read: its head alone goes, and the owner answers from it (its
            # Content-Length) as for a session of its own.
            if server.foreign_sid_handler is not None:
                if body is not None:
                    data = self._request_bytes(request, body)
                elif request.headers.get("content-length", "").isdigit():
                    data = self._raw_head()
                else:
                    # A chunked body partly read here: it cannot be replayed whole to the owner.
                    server.state.protocol_errors += 1
                    self._respond_error(413, 3, "Payload too large", cors)
                    return
                if self._hand_to_owner(sid, data):
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
        if request.method != "POST" and body is None:
            # A GET (or another method) with a body over max_payload: not a poll to hold on a connection
            # that ends now. The session lost what the client sent, so it ends too.
            server.state.protocol_errors += 1
            server.close_client(client, "transport error", send_close=True)
            self._respond_error(413, 3, "Payload too large", cors)
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
                if body is None:
                    limit = server.config.websocket.max_payload
                    announced = request.headers.get("content-length", "")
                    raise PayloadTooBig(int(announced) if announced.isdigit() else limit + 1, limit)
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
        cors = self._poll_cors
        self._poll_client = None
        self._respond(200, {**cors, "Content-Type": "text/plain; charset=UTF-8"}, body)
