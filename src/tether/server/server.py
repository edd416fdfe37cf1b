"""The server facade: a Tether server in one process, built from the layers of this package.

Phases follow Uvicorn: :meth:`Server.startup` binds (or adopts a socket from the master),
:meth:`Server.main_loop` runs until told to stop, :meth:`Server.shutdown` tells clients to reconnect
and waits for handlers. One timer per process drives every connection's heartbeat and connect deadline
(:mod:`.heartbeat`), instead of one timer handle per connection.

The rest lives in the layers (see :mod:`.core`): who is where (:mod:`.membership`), emits
(:mod:`.emit`), the connect/close lifecycle (:mod:`.lifecycle`), and what clients send (:mod:`.receive`).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import logging
import math
import socket as socket_module
import ssl
import time
from typing import Any

from ..cluster.base import Adapter
from ..config import Config
from ..context import Namespace
from ..handler import Handler
from ..protocol.parsers import Parser
from ..router import Router
from .http import HttpProtocol
from .leader import Leadership
from .lifecycle import close_reason
from .membership import USER_ROOM_PREFIX
from .receive import Receiver
from .recovery import Recovery
from .sid_api import SidApi

__all__ = ["USER_ROOM_PREFIX", "Namespace", "Server", "close_reason", "run_server"]

log = logging.getLogger("tether.server")


class Server(SidApi, Receiver):
    """A Tether server in one process. See :func:`run_server` for the common way to run one.

    python-socketio's server calls (``emit(..., to=sid)``, ``enter_room(sid, room)``, ``call``,
    ``get_session``, ``start_background_task``...) come from :class:`~.sid_api.SidApi`.
    """

    def __init__(
        self,
        config: Config | None = None,
        router: Router | None = None,
        *,
        handler: Handler | None = None,
        adapter: Adapter | None = None,
        parser: type[Parser] | None = None,
        app: Any = None,
    ) -> None:
        super().__init__(config, router, handler=handler, adapter=adapter, parser=parser)
        self._host = self
        if self.config.recovery.max_disconnection_duration > 0 and self.parser_cls.requires_connect:
            self.recovery = Recovery(self)
        self.adapter.attach(self)
        self.leadership = Leadership(self)
        for namespace_handler in self.router.namespace_handlers:
            namespace_handler._set_server(self)
        install_extensions(self)
        for setup in self.router.setups:
            setup(self)  # the route file's own wiring (HTTP routes, hooks), after the extensions
        app = app if app is not None else self.config.app.asgi
        if app:
            from .app_door import AppDoor  # uvicorn is imported only when an app is mounted

            self.app_door = AppDoor(self, app)

    # -- phases ---------------------------------------------------------------------------------------

    async def startup(self, sock: socket_module.socket | None = None) -> None:
        """Listen on ``sock`` (from the master) or bind ``[server] host:port``; start the sweep timer.

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        loop = self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        cfg = self.config.server
        if cfg.tls_cert:
            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_context.load_cert_chain(
                self.config.resolve_path(cfg.tls_cert), self.config.resolve_path(cfg.tls_key)
            )
        if sock is None:
            sock = socket_module.socket(socket_module.AF_INET6 if ":" in cfg.host else socket_module.AF_INET)
            sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_REUSEADDR, 1)
            sock.bind((cfg.host, cfg.port))
        if self.app_door is not None:
            await self.app_door.startup()  # the app's lifespan, before this process takes a connection
        sock.setblocking(False)
        self.sockets.append(sock)
        create_server = loop.create_server
        if cfg.net == "aiofastnet":
            # picows' own transport library (a picows dependency). Measured here: about 4 KiB more per idle
            # connection than uvloop and no clear CPU gain on a noisy machine, so uvloop is the default.
            import aiofastnet

            create_server = functools.partial(aiofastnet.create_server, loop)
        server = await create_server(
            lambda: HttpProtocol(self), sock=sock, backlog=2048, ssl=self.ssl_context
        )
        self._servers.append(server)
        await self.adapter.start()
        self._sweeper = loop.create_task(self._sweep_forever())
        self.start_deferred_tasks()
        self.state.started_at = time.time()
        log.info("tether listening on %s", self.url)

    async def start_embedded(self) -> None:
        """Start without a socket of its own: another server owns the port and passes requests in
        (:class:`tether.asgi.ASGIApp` under uvicorn, hypercorn...). Starts the adapter, the timers and the
        background tasks, as :meth:`start` does (from now on :func:`tether.current_server` returns it)."""
        self._stopping = asyncio.Event()
        loop = self._loop = asyncio.get_running_loop()
        await self.adapter.start()
        self._sweeper = loop.create_task(self._sweep_forever())
        self.start_deferred_tasks()
        self.state.started_at = time.time()

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1]) if self.sockets else self.config.server.port

    @property
    def url(self) -> str:
        host = self.sockets[0].getsockname()[0] if self.sockets else self.config.server.host
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}"

    async def main_loop(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def stop_accepting(self) -> None:
        """Close the listening sockets of this process; open connections go on (a reload's first step)."""
        for server in self._servers:
            server.close()

    async def shutdown(self, reason: str = "server shutting down", timeout: float | None = None) -> None:
        """Stop accepting; close every client so that it reconnects; wait for running handlers."""
        timeout = self.config.server.stop_timeout if timeout is None else timeout
        self.cancel_background_tasks()
        self.stop_accepting()
        self.state.draining = True
        for client in list(self.clients.values()):
            # No Engine.IO close packet: python-socketio treats one as final ("io server disconnect"-like)
            # and does not reconnect. A WebSocket closed with 1012 (service restart) is "transport close"
            # for every client, and a polling client gets a noop, then "Session ID unknown": both reconnect.
            self.close_client(client, reason, send_close=False, ws_code=1012)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.app_door is not None:
            await self.app_door.shutdown(timeout)
        await self.adapter.stop()
        for server in self._servers:
            await server.wait_closed() if not self.clients else None
        self._servers.clear()
        if self.handler_pool is not None:
            self.handler_pool.shutdown()

    async def _sweep_forever(self) -> None:
        """The one heartbeat timer of this process: sleep until the next deadline, handle what is due."""
        loop = asyncio.get_running_loop()
        heartbeat = self.heartbeat

        def wake_now() -> None:
            if not wake.done():
                wake.set_result(None)

        heartbeat.on_earlier = wake_now
        try:
            while True:
                now = time.monotonic()
                wake: asyncio.Future[None] = loop.create_future()
                handle = loop.call_later(heartbeat.wake_time(now) - now, wake_now)
                try:
                    await wake
                finally:
                    handle.cancel()
                try:
                    self.sweep(time.monotonic())
                except Exception:  # pragma: no cover - a bug here must not stop heartbeats for good
                    log.exception("! heartbeat sweep failed")
        finally:
            heartbeat.on_earlier = None
            heartbeat.armed_at = math.inf

    def add_http_route(self, method: str, path: str, fn: Any) -> None:
        """Serve ``method path`` on the Tether port (API, metrics, static files)."""
        self.http_routes[(method.upper(), path)] = fn


EXTENSIONS = ("tether.sessions", "tether.metrics", "tether.api", "tether.client_bundle", "tether.admin")
"""Feature modules wired into every server: each has ``install(server)``, which registers hooks and routes
on the server and reads its own config section. Core modules never import them (metrics observe, they
do not drive)."""


def install_extensions(server: Server) -> None:
    for name in EXTENSIONS:
        if importlib.util.find_spec(name) is None:
            continue  # feature not part of this build
        importlib.import_module(name).install(server)


async def run_server(config: Config | None = None, router: Router | None = None, **kwargs: Any) -> Server:
    """Build and start a server (``port = 0`` picks a free port: see ``server.port``).

    Stop it with :meth:`Server.shutdown`.
    """
    server = Server(config, router, **kwargs)
    await server.startup()
    return server
