"""Tether inside any ASGI server: :class:`ASGIApp` (see :mod:`tether.asgi` for what it does).

The application object: its lifecycle (lifespan, or the first request), where each request goes
(Tether's paths, ``static_files``, ``other_asgi_app``, 404), its logs under the ASGI server's logging, and
the warning for a second process on one address with the memory driver. The HTTP exchange, the
WebSocket stand-ins and the file streaming are :mod:`.exchange`'s, :mod:`.websocket`'s and :mod:`.files`'.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from picows import WSUpgradeResponseWithListener

from .. import logs, port_lock
from ..config import Config
from ..handler import Headers, Request
from ..router import Router, load_route_file
from ..server.paths import TetherPaths, warn_shadowed
from ..server.server import Server
from ..server.websocket import _listener_factory
from ..static_files import StaticFiles, check_static_files, get_static_file
from .exchange import Exchange
from .files import plain, send_file, static_file
from .spec import ASGIApplication, Message, Receive, Scope, Send
from .websocket import BINARY, TEXT, AsgiWebSocket, Frame, Upgrade

__all__ = ["ASGIApp"]

log = logging.getLogger("tether.asgi")
"""Named for the package: the name users and the ASGI server's log lines know."""

LOG_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"
"""Tether's records under an ASGI server whose own logger has no handler (see
:func:`tether.logs.follow_server_logging`)."""


class ASGIApp:
    """An ASGI 3 application serving Tether (and ``other_asgi_app`` for every other path).

    The arguments are python-socketio's ``socketio.ASGIApp(socketio_server, other_asgi_app=None,
    static_files=None, socketio_path='socket.io', on_startup=None, on_shutdown=None)``, in that order, then
    Tether's ``config``. Each request goes to the first of: Tether's paths (Engine.IO, the client bundle,
    ``/tether/*``...), ``static_files``, ``other_asgi_app``, 404.

    Args:
        routes_or_server: a route file (path or module name, as ``[websocket] route_file``), a
            :class:`~tether.router.Router`, or a :class:`~tether.server.server.Server` not started yet.
        other_asgi_app: the ASGI app for every path that is not Tether's; ``None``: 404.
        static_files: python-socketio's mapping of URL path -> filename, or -> ``{"filename": ...,
            "content_type": ...}``; a filename ending in ``/`` is a directory served under that URL
            prefix (its index: the ``""`` key's file, default ``index.html``). Relative filenames are
            relative to the working directory. Only GET and HEAD (other methods: 405); a mapped path whose
            file does not exist goes on to ``other_asgi_app`` (or 404), as python-socketio's; nothing
            outside a mapped directory is served (``..``, symlinks out). Content type: the entry's, else
            engineio's table by extension, else :func:`mimetypes.guess_type`, else
            ``application/octet-stream``. A ``str`` here is ``socketio_path`` (Tether's third argument
            before ``static_files``). Streamed in :data:`~.files.CHUNK` bytes with ``Content-Length``.
        socketio_path: the Engine.IO path, as python-socketio's ``socketio_path`` (``"socket.io"``) or
            Tether's ``[websocket] path`` (``"/socket.io/"``); ``None``: the config's.
        on_startup: called (sync or async) once Tether has started, as python-socketio's.
        on_shutdown: called once Tether has stopped.
        config: the config of the server built from routes (default: ``Config.from_env()``, so
            ``TETHER_CONFIG`` and ``TETHER_*`` apply). Ignored with a Server.

    Raises:
        tether.errors.ConfigError: ``static_files`` of the wrong shape.
        TypeError: ``socketio_path`` or ``config`` given twice (positionally in Tether's old order and by
            keyword).
    """

    serves_tether = True
    """Marks Tether itself for ``tether start --app``, which refuses it (:mod:`tether.server.app_door`
    reads this attribute rather than importing this module, which imports the server)."""

    def __init__(
        self,
        routes_or_server: str | Router | Server,
        other_asgi_app: ASGIApplication | None = None,
        static_files: StaticFiles | str | None = None,
        socketio_path: str | None = None,
        on_startup: Callable[[], Any] | None = None,
        on_shutdown: Callable[[], Any] | None = None,
        *,
        config: Config | None = None,
    ) -> None:
        # Tether's order before static_files was (routes, other_asgi_app, socketio_path, config, ...): a str
        # third and a Config fourth are still taken as they were meant.
        if isinstance(socketio_path, Config):
            if config is not None:
                raise TypeError("ASGIApp() got config twice (the fourth argument and config=)")
            config, socketio_path = socketio_path, None
        if isinstance(static_files, str):
            if socketio_path is not None:
                raise TypeError(
                    "ASGIApp() got socketio_path twice (a str third argument is socketio_path; "
                    "static_files is a dict)"
                )
            static_files, socketio_path = None, static_files
        self.static_files = check_static_files(static_files) if static_files else {}
        if isinstance(routes_or_server, Server):
            server = routes_or_server
            if socketio_path is not None and _normal(socketio_path) != server.config.websocket.path:
                server.config = server.config.replace(websocket={"path": _normal(socketio_path)})
        else:
            config = config or Config.from_env()
            if socketio_path is not None:
                config = config.replace(websocket={"path": _normal(socketio_path)})
            router = routes_or_server
            if isinstance(router, str):
                router = load_route_file(router, base_dir=config.base_dir)
            server = Server(config, router)
        self.server = server
        self.other_asgi_app = other_asgi_app
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self._paths: TetherPaths | None = None
        self._started: asyncio.Future[None] | None = None
        self._ws_factory: Any = None
        self._address_checked = False
        self._address: Any = None  # scope["server"] whose lock this app took (tether.port_lock)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Start Tether (adapter, heartbeats); idempotent. Called on ``lifespan.startup`` or the first
        request."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                logs.follow_server_logging(LOG_FORMAT, sys.stderr)
                await self.server.start_embedded()
                cfg = self.server.config
                log.info(
                    "tether started inside the ASGI server (pid %d): Socket.IO at %s, [room] driver %s",
                    os.getpid(),
                    cfg.websocket.path,
                    cfg.room.driver,
                )
                self._paths = TetherPaths(self.server)
                warn_shadowed(self._paths, self.other_asgi_app)
                metrics = self.server.config.metrics
                if metrics.enabled and metrics.listen:
                    # That listener is run by tether start's master, which an ASGI server does not have.
                    log.warning(
                        "! metrics.listen %s is not served under an ASGI server (tether start's master"
                        " serves it); set [metrics] key to serve %s on this port behind a bearer key",
                        metrics.listen,
                        metrics.path,
                    )
                if self.on_startup is not None:
                    await _maybe_await(self.on_startup())
            except BaseException as exc:
                self._started.set_exception(exc)
                raise
            self._started.set_result(None)
        await self._started

    async def shutdown(self) -> None:
        """Close every client (they reconnect elsewhere) and stop, as ``tether stop`` does."""
        if self._started is None:
            return
        if self._address is not None:
            port_lock.release(self._address)
            self._address = None
        self._address_checked = False
        await self.server.shutdown()
        self._started = None
        if self.on_shutdown is not None:
            await _maybe_await(self.on_shutdown())

    # -- ASGI -----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._paths is None:
            await self.startup()
        assert self._paths is not None
        if not self._address_checked:
            self._check_address(scope)
        if self._paths.owns(scope["path"]):
            if kind == "http":
                await self._http(scope, receive, send)
                return
            if kind == "websocket":
                await self._websocket(scope, receive, send)
                return
        if kind == "http" and self.static_files:
            found = get_static_file(scope["path"], self.static_files)
            if found is not None and os.path.isfile(found[0]):
                await static_file(scope, send, *found)
                return
        if self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)
        elif kind == "http" and self.server.config.server.static_dir:
            # As the front door: [server] static_dir answers the GETs no route took (or 404). With an
            # other_asgi_app that app has them, as with tether start --app.
            await self._http(scope, receive, send)
        elif kind == "http":
            await plain(send, 404, b"Not Found")
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    def _check_address(self, scope: Scope) -> None:
        """Warn once when another process serves this address with the memory driver (``uvicorn
        --workers N``...): see :mod:`tether.port_lock`. ASGI gives the address in request scopes only
        (``scope["server"]``), so this runs at the first request, not at lifespan startup."""
        self._address_checked = True
        if self.server.config.room.driver != "memory":
            return
        server = scope.get("server")
        if not port_lock.shares_address(server):
            self._address = server
        else:
            log.warning(
                "! another process serves %s with Tether too (uvicorn --workers, hypercorn -w, gunicorn"
                ' workers?): with [room] driver = "memory" each process has its own rooms and sessions,'
                " so emits miss the other processes' clients and polling sessions break without sticky"
                ' sessions. Set [room] driver = "redis", or run one process, or use tether start --app'
                " (workers with a hub, sticky polling built in)",
                _address(server),
            )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = self.other_asgi_app
        if other is None:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self.startup()
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        # The other app's lifespan runs inside Tether's: Tether starts before the app's startup and
        # stops after its shutdown.
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
            return message

        async def wrapped_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.shutdown()
            await send(message)

        await other(scope, wrapped_receive, wrapped_send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        limit = server.config.websocket.max_payload
        body = bytearray()
        more = True
        too_big = False
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > limit:
                # Routed from its head alone, as the front door routes a body over max_payload: what node
                # answers before reading a body (an unknown session, a refused content type) comes first.
                too_big = True
                break
        headers = Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        client = scope.get("client")
        remote = client[0] if client else ""
        request = Request(scope["method"], scope["path"], query, headers, remote)
        exchange = Exchange(server, remote)
        server.state.http_requests += 1
        exchange.route(request, None if too_big else bytes(body))
        response = exchange.response
        if not response.done():
            # A held long-poll GET: answered when packets are queued, or ended by the client going away.
            gone: asyncio.Future[Any] = asyncio.ensure_future(_wait_disconnect(receive))
            waiting: set[asyncio.Future[Any]] = {response, gone}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not response.done():
                exchange.connection_lost(None)
                return
            gone.cancel()
        status, out_headers, out = response.result()
        if exchange.file is not None:  # [server] static_dir, /tether/*: streamed from the file
            await send_file(scope, send, exchange.file, out_headers)
            return
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers.items()]
        raw.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": out if scope["method"] != "HEAD" else b""})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        query_string = scope.get("query_string", b"")
        path = scope.get("raw_path") or scope["path"].encode("latin-1")
        client = scope.get("client")
        remote = client[0] if client else ""
        headers = Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
        target = path + (b"?" + query_string if query_string else b"")
        listener = _listener_factory(self.server, remote, headers)(Upgrade(target))
        if isinstance(listener, WSUpgradeResponseWithListener):  # refused: the status and reason Tether gives
            refusal = listener.response
            if "websocket.http.response" in scope.get("extensions", {}):
                hdrs = [(b"content-type", b"application/json")]
                await send(
                    {"type": "websocket.http.response.start", "status": refusal.status, "headers": hdrs}
                )
                await send({"type": "websocket.http.response.body", "body": bytes(refusal.body or b"")})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        ws = AsgiWebSocket(send, listener, self.server.config.limits.send_buffer_bytes)
        listener.on_ws_connected(ws)
        try:
            while not ws.closed:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    if text is not None:
                        listener.on_ws_frame(ws, Frame(TEXT, text.encode()))
                    else:
                        listener.on_ws_frame(ws, Frame(BINARY, message.get("bytes") or b""))
                elif kind == "websocket.disconnect":
                    ws.peer_gone()
                    break
        finally:
            if not ws.reported:
                ws.reported = True
                listener.on_ws_disconnected(ws)
            await ws.flushed()


def _address(server: Any) -> str:
    host, port = server[0], server[1]
    return f"{host}:{port}" if port is not None else str(host)


def _normal(path: str) -> str:
    """python-socketio's ``socket.io`` and Tether's ``/socket.io/`` name the same path."""
    return "/" + path.strip("/") + "/"


async def _maybe_await(result: Any) -> None:
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
