"""The state every part of the server shares: config, routes, clients, namespaces, hooks and tasks.

The server is built in layers, each a class in its own module that adds one responsibility to the one
below it (see docs/design.md, "Layers"):

    ServerCore (core.py)     what everything shares; no behaviour but tasks and error reports
    Membership (membership.py) who is where: namespaces, rooms, users
    Emitting   (emit.py)       addressing and delivery of what the application sends
    Lifecycle  (lifecycle.py)  a client's life: handshake, namespace CONNECT, DISCONNECT, close
    Receiver   (receive.py)    what a client sends: events, acks, CONNECT/DISCONNECT -> the layers above
    Server     (server.py)     the facade: listen, run, shut down, extensions

A layer calls only the layers below it, so each can be read alone and nothing imports in a circle. The
transports (:mod:`.http`, :mod:`.websocket`) drive a :class:`~.receive.Receiver`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import os
import socket as socket_module
import ssl
from collections.abc import Callable
from typing import Any, Protocol

from ..cluster import make_adapter
from ..cluster.base import Adapter
from ..config import Config
from ..context import Namespace, Socket, SocketHost
from ..errors import ConfigError
from ..handler import Handler
from ..protocol.parsers import PARSERS, Parser
from ..router import Router, load_route_file
from ..threads import BlockWatch, HandlerPool
from ..typing import EmitHook, OutgoingHook
from .client import Client
from .heartbeat import Heartbeat, resolution_for
from .recovery import Recovery
from .state import ServerState
from .writes import WriteBatch

__all__ = ["AppMount", "ServerCore", "new_sid"]

log = logging.getLogger("tether.server")

ConnectHook = Callable[[Socket, Any], Any]
EventHook = Callable[[Socket, str], None]
DisconnectHook = Callable[[Socket, str], None]
AcceptHook = Callable[[Socket], None]
"""Called with a socket once its CONNECT was accepted (after the ``connect`` route)."""
EventArgsHook = Callable[[Socket, str, list[Any]], None]
"""``(socket, event, args)`` for every event a client sends, with its arguments (the admin UI)."""
RoomHook = Callable[[Socket, str, bool], None]
"""``(socket, room, joined)`` when a socket enters (True) or leaves (False) a named room."""
HandlerHook = Callable[[str, str, float, bool], None]
"""``(namespace, event, seconds, ok)`` when an event handler finished."""
ForeignSidHandler = Callable[[str, Any, bytes], bool]
"""``(sid, transport, request bytes)`` -> True when it took the connection (another worker owns ``sid``)."""


class AppMount(Protocol):
    """A mounted ASGI application, as the server uses it (:class:`.app_door.AppDoor`)."""

    def request_path(self, data: bytes) -> str | None:
        """The path of the request starting ``data``; None until the request line is complete."""
        ...

    def owns(self, path: str) -> bool:
        """True when ``path`` is Tether's (Engine.IO, API, routes), not the application's."""
        ...

    def take(self, transport: asyncio.Transport, data: bytes) -> None:
        """Give ``transport`` (``data`` read so far) to the application."""
        ...

    async def startup(self) -> None:
        """Run the application's lifespan startup."""
        ...

    async def shutdown(self, timeout: float) -> None:
        """Run the application's lifespan shutdown, within ``timeout`` seconds."""
        ...


def new_sid(prefix: str = "") -> str:
    """A random 20-character URL-safe id (120 bits), with an optional worker prefix."""
    return prefix + base64.urlsafe_b64encode(os.urandom(15)).decode()


class ServerCore:
    """What every layer of the server shares. Not used alone: see :class:`~tether.server.Server`."""

    _host: SocketHost
    """The whole server as its sockets see it: set by :class:`~tether.server.Server` to itself (a layer
    below the facade is not a complete host)."""

    def __init__(
        self,
        config: Config | None = None,
        router: Router | None = None,
        *,
        handler: Handler | None = None,
        adapter: Adapter | None = None,
        parser: type[Parser] | None = None,
    ) -> None:
        self.config = config or Config.load()
        ws = self.config.websocket
        if router is None:
            router = (
                load_route_file(ws.route_file, base_dir=self.config.base_dir) if ws.route_file else Router()
            )
        self.router = router
        self.handler = handler or _load_object(ws.handler, Handler, "websocket.handler", self.config)()
        self.parser_cls: type[Parser] = parser or _load_parser(ws.parser, self.config)
        self.adapter: Adapter = adapter or make_adapter(self.config)
        self.clients: dict[str, Client] = {}
        self.namespaces: dict[str, Namespace] = {"/": Namespace("/")}
        self.state = ServerState()
        self.sid_prefix = ""
        self.debug = self.config.server.debug
        self.connect_hooks: list[ConnectHook] = []
        """Called ``(socket, auth)`` before the ``connect`` route; may raise :class:`Reject` (auth)."""
        self.event_hooks: list[EventHook] = []
        """Called ``(socket, event_name)`` for every event a client sends (activity, metrics)."""
        self.disconnect_hooks: list[DisconnectHook] = []
        self.accept_hooks: list[AcceptHook] = []
        self.event_args_hooks: list[EventArgsHook] = []
        self.room_hooks: list[RoomHook] = []
        self.outgoing_hooks: list[OutgoingHook] = []
        """These four are for observers that need more than counts (the admin UI, :mod:`tether.admin`);
        each is one empty-list check on its path when nothing is installed."""
        self.emit_hooks: list[EmitHook] = []
        """Called after every emit with how many local sockets it reached (metrics)."""
        self.handler_hooks: list[HandlerHook] = []
        """Called when an event handler finishes, with its duration (metrics); timing is off without hooks."""
        self.foreign_sid_handler: ForeignSidHandler | None = None
        """Consulted by the transports for a request naming a sid this process does not have: the manager
        hands the connection to the worker that owns it (sticky long-polling with several workers)."""
        self.http_routes: dict[tuple[str, str], Any] = {}
        """``(method, path)`` -> ``async fn(request, body) -> (status, headers, body)``; path may end in
        ``*``."""
        self.extensions: dict[str, Any] = {}
        self.app_door: AppMount | None = None
        """The mounted ASGI application (``app`` or ``[app] asgi``), served for every path not Tether's."""
        self._servers: list[asyncio.base_events.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._per_ip: dict[str, int] = {}
        self.writes = WriteBatch(self.config.server.write_batch)
        """The WebSocket frames of this loop iteration (see :mod:`.writes`)."""
        self.heartbeat = Heartbeat(resolution_for(ws.ping_interval, ws.ping_timeout, ws.connect_timeout))
        self._event_rate = self.config.limits.event_rate
        self._max_name_length = self.config.limits.max_name_length
        self._closed_polls: dict[str, tuple[Client, float]] = {}
        """Polling sessions closed while no GET was held: the close packet waits here for the next GET."""
        self.sockets: list[socket_module.socket] = []
        self.ssl_context: ssl.SSLContext | None = None
        handlers = self.config.handlers
        self.handler_pool: HandlerPool | None = HandlerPool(handlers.threads) if handlers.threads else None
        """Threads of plain ``def`` handlers (:mod:`tether.threads`); None: they run on the loop."""
        self.block_watch = BlockWatch(handlers.block_warning)
        self._block_warning = handlers.block_warning
        self._background: set[asyncio.Task[Any]] = set()
        self._deferred: list[Any] = []
        self.recovery: Recovery | None = None
        """Connection state recovery (``[recovery] max_disconnection_duration`` > 0, Socket.IO parser)."""

    def block_watcher(self, handler: Any, event: str) -> Callable[[float], None] | None:
        """What times the steps of an ``async def`` handler for ``[handlers] block_warning`` (None: off,
        or a ``def`` handler, which runs in a thread and may block)."""
        if not self._block_warning or hasattr(handler, "__tether_sync__"):
            return None
        watch = self.block_watch
        return lambda seconds: watch.check(handler, event, seconds)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A background task the server waits for on shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _handler_failed(self, sock: Socket, event: str, exc: BaseException) -> None:
        self.state.handler_errors += 1
        log.error(
            "! handler for %r failed (sid=%s namespace=%s): %s: %s",
            event,
            sock.sid,
            sock.namespace,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    @property
    def connection_count(self) -> int:
        return len(self.clients)


def _load_object(spec: str, default: type[Any], key: str, config: Config) -> Any:
    if not spec:
        return default
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except Exception as exc:
        raise ConfigError(config.source, key, f"cannot load {spec!r}: {exc}") from exc


def _load_parser(spec: str, config: Config) -> type[Parser]:
    if spec in PARSERS:
        return PARSERS[spec]
    cls = _load_object(spec, Parser, "websocket.parser", config)
    if not (isinstance(cls, type) and issubclass(cls, Parser)):
        raise ConfigError(config.source, "websocket.parser", f"{spec!r} is not a tether.Parser subclass")
    return cls
