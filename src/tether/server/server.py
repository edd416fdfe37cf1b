"""The server: namespaces, rooms, event routing and the emit API, around the transports.

Phases follow Uvicorn: :meth:`Server.startup` binds (or adopts a socket from the master),
:meth:`Server.main_loop` runs until told to stop, :meth:`Server.shutdown` tells clients to reconnect
and waits for handlers. One timer per process drives every connection's heartbeat and connect deadline
(:mod:`.heartbeat`), instead of one timer handle per connection.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import importlib.util
import inspect
import logging
import os
import socket as socket_module
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ..cluster import make_adapter
from ..cluster.base import Adapter, BroadcastMessage
from ..config import Config
from ..context import BroadcastOperator, Socket
from ..errors import ConfigError, ConnectionClosed, Reject, TetherError
from ..handler import Handler, Request
from ..protocol.connection import PING, Connection, State, Timer, Transport
from ..protocol.events import Ack, ClientEvent, Connect, Disconnect, Event
from ..protocol.parsers import PARSERS, Parser
from ..rooms import Rooms
from ..router import Router, load_route_file
from ..threads import BlockWatch, HandlerPool
from .client import Client
from .dispatch import NOT_DONE, continue_in_task, run_handler
from .heartbeat import TICK, Heartbeat
from .leader import Leadership
from .recovery import Recovery
from .sid_api import SidApi
from .state import ServerState

if TYPE_CHECKING:
    from .app_door import AppDoor

__all__ = ["Namespace", "Server", "run_server"]

log = logging.getLogger("tether.server")

CLOSE_LINGER = 5.0
"""Seconds a closed WebSocket may take to flush what is still buffered before it is aborted."""

_ABORT_REASONS = frozenset({"slow consumer", "ping timeout"})

ConnectHook = Callable[[Socket, Any], Any]
EventHook = Callable[[Socket, str], None]
DisconnectHook = Callable[[Socket, str], None]
EmitHook = Callable[[str, str, int], None]
"""``(namespace, event, sockets reached)`` after an emit left this process's sockets."""
AcceptHook = Callable[[Socket], None]
"""Called with a socket once its CONNECT was accepted (after the ``connect`` route)."""
EventArgsHook = Callable[[Socket, str, list[Any]], None]
"""``(socket, event, args)`` for every event a client sends, with its arguments (the admin UI)."""
RoomHook = Callable[[Socket, str, bool], None]
"""``(socket, room, joined)`` when a socket enters (True) or leaves (False) a named room."""
OutgoingHook = Callable[[str, str, tuple[Any, ...], tuple[str, ...], tuple[str, ...]], None]
"""``(namespace, event, args, rooms, except_rooms)`` of an emit delivered in this process (a socket's
own emit: ``rooms == (sid,)``); the admin UI's ``event_sent``."""
HandlerHook = Callable[[str, str, float, bool], None]
"""``(namespace, event, seconds, ok)`` when an event handler finished."""
ForeignSidHandler = Callable[[str, Any, bytes], bool]
"""``(sid, transport, request bytes)`` -> True when it took the connection (another worker owns ``sid``)."""

USER_ROOM_PREFIX = "user:"

UNROUTED = "_unrouted"
"""The one metrics label of every event name without a route of its own (a catch-all's included)."""


def close_reason(text: str) -> bytes:
    """``text`` as a WebSocket close reason: at most 123 bytes (RFC 6455 §5.5), cut between characters."""
    return text.encode()[:123].decode("utf-8", "ignore").encode()


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    future.exception()


def new_sid(prefix: str = "") -> str:
    """A random 20-character URL-safe id (120 bits), with an optional worker prefix."""
    return prefix + base64.urlsafe_b64encode(os.urandom(15)).decode()


class Namespace:
    """A namespace's sockets and rooms."""

    __slots__ = ("name", "rooms")

    def __init__(self, name: str) -> None:
        self.name = name
        self.rooms: Rooms[Socket] = Rooms()


class Server(SidApi):
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
        self._servers: list[asyncio.base_events.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._per_ip: dict[str, int] = {}
        self.heartbeat = Heartbeat()
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
        if self.config.recovery.max_disconnection_duration > 0 and self.parser_cls.requires_connect:
            self.recovery = Recovery(self)
        self.adapter.attach(self)
        self.leadership = Leadership(self)
        for namespace_handler in self.router.namespace_handlers:
            namespace_handler._set_server(self)
        install_extensions(self)
        for setup in self.router.setups:
            setup(self)  # the route file's own wiring (HTTP routes, hooks), after the extensions
        self.app_door: AppDoor | None = None
        """The mounted ASGI application (``app`` or ``[app] asgi``), served for every path not Tether's."""
        app = app if app is not None else self.config.app.asgi
        if app:
            from .app_door import AppDoor  # uvicorn is imported only when an app is mounted

            self.app_door = AppDoor(self, app)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def startup(self, sock: socket_module.socket | None = None) -> None:
        """Listen on ``sock`` (from the master) or bind ``[server] host:port``; start the sweep timer.

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        from .http import HttpProtocol  # the transport imports the server; import here to keep that one-way

        loop = asyncio.get_running_loop()
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
        (:class:`tether.asgi.ASGIApp` under uvicorn, hypercorn...). Starts the adapter and the timers."""
        self._stopping = asyncio.Event()
        await self.adapter.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
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
        while True:
            await asyncio.sleep(TICK)
            try:
                self.sweep(time.monotonic())
            except Exception:  # pragma: no cover - a bug here must not stop heartbeats for good
                log.exception("! heartbeat sweep failed")

    def sweep(self, now: float) -> None:
        """Send the pings and enforce the timeouts that are due at ``now``."""
        for sid, (_client, deadline) in list(self._closed_polls.items()):
            if now >= deadline:
                del self._closed_polls[sid]
        self.heartbeat.run(now, self._on_timer)
        if self.recovery is not None and not self.recovery.remote:
            self.recovery.log.expire(now)

    def _on_timer(self, client: Client, action: Timer) -> None:
        if action is Timer.PING:
            if client.conn.transport is Transport.BARE:
                if client.ws is not None:
                    client.ws.send_ping()
            elif client.ws is not None and client.conn.state is State.OPEN:
                client.send_raw_frame(PING)
            else:
                client.conn.queue([PING])
                client.send([])
        elif action is Timer.TIMEOUT:
            self.close_client(client, "ping timeout", send_close=False)
        else:
            self.close_client(client, "connect timeout", send_close=True)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A background task the server waits for on shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- clients (called by the transports) -----------------------------------------------------------

    def new_connection(self, transport: Transport, request: Request, sid: str | None = None) -> Client:
        """A new Engine.IO session for a handshake on ``transport``."""
        ws = self.config.websocket
        parser = self.parser_cls()
        parser.max_depth = self.config.limits.max_depth
        conn = Connection(
            sid or new_sid(self.sid_prefix),
            parser,
            transport,
            now=time.monotonic(),
            ping_interval=ws.ping_interval,
            ping_timeout=ws.ping_timeout,
            connect_timeout=ws.connect_timeout,
            max_payload=ws.max_payload,
        )
        client = Client(self, conn, request)
        self.clients[conn.sid] = client
        self.heartbeat.schedule(client)
        self._per_ip[request.remote] = self._per_ip.get(request.remote, 0) + 1
        self.state.connections_total += 1
        return client

    def at_capacity(self, request: Request) -> bool:
        """Whether ``[limits] max_connections`` or ``max_connections_per_ip`` refuses this request."""
        limits = self.config.limits
        if limits.max_connections and len(self.clients) >= limits.max_connections:
            return True
        return bool(
            limits.max_connections_per_ip
            and self._per_ip.get(request.remote, 0) >= limits.max_connections_per_ip
        )

    def admit(self, request: Request) -> bool:
        """Limits, then the lifecycle handler's ``on_open``: may this request open a connection?"""
        if self.at_capacity(request):
            self.state.rejected += 1
            return False
        try:
            return bool(self.handler.on_open(request))
        except Exception:
            log.exception("! handler.on_open failed; refusing %s", request.remote)
            return False

    def client_opened(self, client: Client) -> None:
        """The transport is ready: connect to ``/`` when the parser has no CONNECT of its own."""
        if not client.parser.requires_connect or client.conn.transport is Transport.BARE:
            auth = dict(client.request.query)
            self._connect(client, Connect("/", auth), reply=client.parser.requires_connect)

    def receive(self, client: Client, events: list[ClientEvent]) -> None:
        """Act on what a client sent."""
        for ev in events:
            t = type(ev)
            if t is Event:
                assert isinstance(ev, Event)
                self.receive_event(client, ev.namespace, ev.name, ev.args, ev.ack_id)
                if client.conn.state is State.CLOSED:
                    return
            elif t is Ack:
                assert isinstance(ev, Ack)
                sock = client.sockets.get(ev.namespace)
                acked = sock is not None and sock._receive_ack(ev.id, ev.args)
                if not acked and self.debug:
                    log.debug("< %s ack %s never asked for: ignored", client.sid, ev.id)
            elif t is Connect:
                assert isinstance(ev, Connect)
                # Each CONNECT costs a reply (or a connect handler): a flood of them is limited like events.
                if self._event_rate and not self._within_rate(client, self._event_rate):
                    if client.conn.state is State.CLOSED:
                        return
                    continue
                self._connect(client, ev)
            elif t is Disconnect:
                assert isinstance(ev, Disconnect)
                if ev.namespace is None:
                    self.close_client(client, ev.reason, send_close=False)
                    return
                sock = client.sockets.get(ev.namespace)
                if sock is not None:
                    self.disconnect_socket(sock, ev.reason, notify=False)

    def receive_event(
        self, client: Client, namespace: str, name: str, args: list[Any], ack_id: int | None
    ) -> None:
        """One event from a client: rate limit, hooks, route, and the ack with the handler's result.

        This is the hot path of every message; the WebSocket transport calls it directly for the common
        ``42[...]`` frame without building an Event. Handlers run eagerly (see :mod:`.dispatch`). With
        handler hooks (metrics) a handler is timed with two clock reads; closures are made only for a
        handler that suspends.
        """
        state = self.state
        state.events_in += 1
        if len(name) > self._max_name_length:
            self._name_too_long(client, "event name")
            return
        if self._event_rate and not self._within_rate(client, self._event_rate):
            return
        sock = client.sockets.get(namespace)
        if sock is None:
            if self.debug:
                log.debug("< %s event %r for unconnected namespace %s", client.sid, name, namespace)
            return
        for hook in self.event_hooks:
            hook(sock, name)
        for args_hook in self.event_args_hooks:
            args_hook(sock, name, args)
        handler = self.router.get(namespace, name)
        timed = state.observe or self.handler_hooks
        if timed:
            if state.observe:
                # A client chooses event names: only routed ones (chosen by the app) get a row of their own.
                state.count_in(name if handler is not None else UNROUTED)
            started = perf_counter()
        else:
            started = 0.0
        try:
            if handler is not None:
                result = handler(sock, *args)
            else:
                handler = self.router.get(namespace, "*")
                if handler is None:
                    if self.debug:
                        log.debug("< %s no route for %r in %s: ignored", sock.sid, name, namespace)
                    return
                result = handler(sock, name, *args)
            if type(result) is CoroutineType:
                coro = result
                step = perf_counter() if self._block_warning else 0.0
                try:
                    yielded = coro.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    if step:
                        self._check_block(handler, name, step)
                    self._suspended(sock, name, ack_id, coro, yielded, started, handler)
                    return
                if step:
                    self._check_block(handler, name, step)
        except Exception as exc:
            if timed:
                self._report_handler(namespace, name, started, False)
            self._handler_failed(sock, name, exc)
            return
        if timed:
            self._report_handler(namespace, name, started, True)
        if ack_id is not None:
            self._send_ack(sock, ack_id, result)

    def _name_too_long(self, client: Client, what: str) -> None:
        """A client sent a name longer than ``[limits] max_name_length``: a protocol error (close 1008)."""
        self.state.protocol_errors += 1
        limit = self._max_name_length
        log.info("! %s protocol error from %s: %s over %d characters", client.sid, client.remote, what, limit)
        self.close_client(
            client, "parse error", send_close=True, ws_code=1008, ws_reason=f"{what} over {limit} characters"
        )

    def _report_handler(self, namespace: str, name: str, started: float, ok: bool) -> None:
        elapsed = perf_counter() - started
        if self.state.observe:
            routed = self.router.get(namespace, name) is not None
            self.state.time_handler(name if routed else UNROUTED, elapsed, ok)
        for hook in self.handler_hooks:
            hook(namespace, name, elapsed, ok)

    def _check_block(self, handler: Any, name: str, step_started: float) -> None:
        elapsed = perf_counter() - step_started
        if elapsed >= self._block_warning:
            self.block_watch.check(handler, name, elapsed)

    def _suspended(
        self,
        sock: Socket,
        name: str,
        ack_id: int | None,
        coro: Any,
        yielded: Any,
        started: float,
        handler: Any = None,
    ) -> None:
        """The handler awaits something: let a Task finish it, then time it and ack."""
        timed = bool(self.state.observe or self.handler_hooks)
        namespace = sock.namespace

        def on_done(result: Any) -> None:
            if timed:
                self._report_handler(namespace, name, started, True)
            if ack_id is not None:
                self._send_ack(sock, ack_id, result)

        def on_error(exc: BaseException) -> None:
            if timed:
                self._report_handler(namespace, name, started, False)
            self._handler_failed(sock, name, exc)

        watch = None
        if self._block_warning and handler is not None and not hasattr(handler, "__tether_sync__"):
            watch = lambda seconds: self.block_watch.check(handler, name, seconds)  # noqa: E731
        continue_in_task(
            coro,
            yielded,
            on_done,
            on_error,
            self.config.limits.handler_timeout,
            self._tasks,
            watch,
            self._block_warning,
        )

    def _within_rate(self, client: Client, rate: float) -> bool:
        limits = self.config.limits
        if client.take_rate_token(time.monotonic(), rate, limits.event_burst):
            return True
        self.state.rate_limited += 1
        if client.rate_violations > limits.rate_disconnect_after:
            self.close_client(client, "rate limit", send_close=True, ws_code=1008)
        elif client.rate_violations == 1:
            # One error event per episode of refusals: the client learns why, and a flood is not amplified.
            sock = client.sockets.get("/") or next(iter(client.sockets.values()), None)
            if sock is not None:
                client.send(
                    client.parser.encode_event(
                        sock.namespace,
                        "tether:error",
                        ({"code": 429, "message": "event rate limit exceeded"},),
                    )
                )
        return False

    def _send_ack(self, sock: Socket, ack_id: int, result: Any) -> None:
        if not sock.connected:
            return
        args = result if isinstance(result, tuple) else (() if result is None else (result,))
        try:
            sock.client.send(sock.client.parser.encode_ack(sock.namespace, ack_id, args))
        except TetherError as exc:
            log.error("! ack %s for %s: %s", ack_id, sock.sid, exc)

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

    # -- namespaces -----------------------------------------------------------------------------------

    def _connect(self, client: Client, ev: Connect, reply: bool = True) -> None:
        parser = client.parser
        name = ev.namespace
        if name in client.sockets:
            return
        if len(name) > self._max_name_length:
            self._name_too_long(client, "namespace")
            return
        if name != "/" and not self.router.has_namespace(name):
            client.send(parser.encode_connect_error(name, {"message": "Invalid namespace"}))
            return
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = Namespace(name)
        recovery = self.recovery
        if recovery is not None and recovery.wants_restore(ev.auth):
            # At once with a local log; when the master answers with the hub's (the client sends nothing
            # on this namespace before the CONNECT reply).
            recovery.restore(client, name, ev.auth, lambda r: self._connect_socket(client, ev, reply, ns, r))
            return
        self._connect_socket(client, ev, reply, ns, None)

    def _connect_socket(self, client: Client, ev: Connect, reply: bool, ns: Namespace, restored: Any) -> None:
        """Make the socket of a CONNECT (a recovered one when ``restored``), run the hooks and the handler."""
        name = ns.name
        if client.conn.state is State.CLOSED or name in client.sockets:
            return  # gone, or connected meanwhile, while the master looked for the session
        recovery = self.recovery
        if restored is not None:
            sock = self._recovered_socket(client, ns, restored)
        else:
            sock = Socket(new_sid(), ns, client, self)
            if recovery is not None:
                sock.pid = recovery.new_pid()
        try:
            for hook in self.connect_hooks:
                result = hook(sock, ev.auth)
                if inspect.isawaitable(result):
                    # Hooks run synchronously: an async one would be skipped unawaited, i.e. let everyone in.
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError(f"connect hook {hook!r} is async; connect hooks must be plain functions")
        except Reject as exc:
            self._refuse(sock, exc.data)
            return
        except Exception as exc:
            # Fail closed: a hook is auth middleware, and a broken check must not let the client in.
            self._handler_failed(sock, "connect hook", exc)
            self._refuse(sock, {"message": "Connection rejected by server"})
            return
        if restored is not None:
            # The hooks (the sessions' token check: a logged-out session stays out) let it in: now the
            # missed packets, before anything new (the socket is in its rooms since _recovered_socket).
            if restored.packets:
                client.send(restored.packets)
            if recovery is not None and recovery.skip_connect_handler:
                self._accept(sock, reply)
                return
        handler = self.router.get(name, "connect")
        if handler is None:
            self._accept(sock, reply)
            return
        sock._pending = []
        result = run_handler(
            handler,
            (sock, ev.auth),
            lambda res: self._connect_result(sock, res, None, reply),
            lambda exc: self._connect_result(sock, None, exc, reply),
            self.config.limits.handler_timeout,
            self._tasks,
        )
        if result is not NOT_DONE:
            self._connect_result(sock, result, None, reply)

    def _recovered_socket(self, client: Client, ns: Namespace, restored: Any) -> Socket:
        """The socket of a recovered session, in its rooms, with its sid, data, user and session.

        The missed packets go right after the connect hooks, before the CONNECT reply, as the reference
        sends them; the socket is in its rooms from here on, so nothing emitted meanwhile is missed.
        """
        saved = restored.session
        sock = Socket(saved.sid, ns, client, self)
        sock.pid = saved.pid
        sock.recovered = True
        sock._data = saved.data
        sock.user_id = saved.user_id
        sock.session_id = saved.session_id
        rooms = ns.rooms
        rooms.add(sock.sid, sock)
        for room in saved.rooms:
            if room != sock.sid:
                rooms.join(sock.sid, room)
                if room.startswith(USER_ROOM_PREFIX) and len(rooms.members(room)) == 1:
                    self.adapter.user_online_changed(sock.namespace, room, True)
        if self.adapter.sequences_emits:
            # In its rooms from here on: what the adapter delivered here since the session was read, too.
            restored.packets.extend(self.adapter.recovered(sock, restored))
        if self.debug:
            log.debug("= %s recovered: %d missed packets", sock.sid, len(restored.packets))
        return sock

    def _connect_result(self, sock: Socket, result: Any, exc: BaseException | None, reply: bool) -> None:
        client = sock.client
        if client.conn.state is State.CLOSED:
            return
        if exc is None and result is not False:
            self._accept(sock, reply, connect_handler_ran=True)
            return
        if isinstance(exc, Reject):
            data = exc.data
        else:
            if exc is not None:
                self._handler_failed(sock, "connect", exc)
            data = {"message": "Connection rejected by server"}
        self._refuse(sock, data)

    def _refuse(self, sock: Socket, data: dict[str, Any]) -> None:
        """Answer a CONNECT with CONNECT_ERROR ``data``, whichever hook or handler refused it."""
        client = sock.client
        self.state.rejected += 1
        # The socket may have joined rooms inside a hook or the handler: undo that.
        sock._ns.rooms.remove(sock.sid)
        sock.connected = False
        sock._pending = None
        client.send(client.parser.encode_connect_error(sock.namespace, data))
        # A bare /ws page has no Engine.IO session to go on with and, with the json or raw parser, no
        # CONNECT_ERROR frame either: refused with nothing else connected, the WebSocket closes (1008).
        if client.conn.transport is Transport.BARE and not client.sockets:
            self.close_client(client, "connect rejected", send_close=False, ws_code=1008)

    def _accept(self, sock: Socket, reply: bool, connect_handler_ran: bool = False) -> None:
        client = sock.client
        ns = sock._ns
        if sock.sid not in ns.rooms:
            ns.rooms.add(sock.sid, sock)
        client.sockets[sock.namespace] = sock
        client.conn.namespace_connected()
        if reply:
            # What the connect handler emitted waits in sock._pending: it goes right after this reply.
            packets = client.parser.encode_connect(sock.namespace, sock.sid, sock.pid)
            if packets:
                client.send(packets)
        pending, sock._pending = sock._pending, None
        if pending:
            client.send(pending)
        self.state.sockets += 1
        if self.recovery is not None:
            self.recovery.accepted(sock)
        for hook in self.accept_hooks:
            try:
                hook(sock)
            except Exception:
                log.exception("! accept hook failed for %s", sock.sid)

    def join_socket(self, sock: Socket, room: str) -> None:
        """Put ``sock`` (of this process) in ``room``; ``enter_room`` takes a sid of any process.

        Raises:
            TetherError: over ``[limits] max_rooms_per_socket`` (its own sid room does not count).
        """
        limit = self.config.limits.max_rooms_per_socket
        if len(room) > self._max_name_length:
            limit = self._max_name_length
            raise TetherError(f"room name of {len(room)} characters is over {limit} (limits.max_name_length)")
        rooms = sock._ns.rooms
        if sock.sid not in rooms:
            rooms.add(sock.sid, sock)
        if limit and rooms.room_count_of(sock.sid) >= limit and not rooms.is_in(sock.sid, room):
            raise TetherError(f"socket {sock.sid} is in {limit} rooms already (limits.max_rooms_per_socket)")
        rooms.join(sock.sid, room)
        if room.startswith(USER_ROOM_PREFIX) and len(rooms.members(room)) == 1:
            self.adapter.user_online_changed(sock.namespace, room, True)
        for hook in self.room_hooks:
            hook(sock, room, True)

    def leave_socket(self, sock: Socket, room: str) -> None:
        """Take ``sock`` (of this process) out of ``room``; ``leave_room`` takes a sid of any process."""
        rooms = sock._ns.rooms
        rooms.leave(sock.sid, room)
        if room.startswith(USER_ROOM_PREFIX) and not rooms.members(room):
            self.adapter.user_online_changed(sock.namespace, room, False)
        for hook in self.room_hooks:
            hook(sock, room, False)

    def disconnect_socket(self, sock: Socket, reason: str, notify: bool) -> None:
        """Remove ``sock`` from its namespace; ``notify`` sends the client a DISCONNECT packet."""
        if not sock.connected:
            return
        client = sock.client
        if notify and client.conn.state is not State.CLOSED:
            client.send(client.parser.encode_disconnect(sock.namespace))
        sock.connected = False
        client.sockets.pop(sock.namespace, None)
        if self.recovery is not None:
            self.recovery.socket_closed(sock, reason)  # before it leaves its rooms: they are kept
        rooms = sock._ns.rooms
        if self.adapter.remote:
            user_rooms = [r for r in rooms.rooms_of(sock.sid) if r.startswith(USER_ROOM_PREFIX)]
            rooms.remove(sock.sid)
            for room in user_rooms:
                if not rooms.members(room):
                    self.adapter.user_online_changed(sock.namespace, room, False)
        else:
            rooms.remove(sock.sid)
        self.state.sockets -= 1
        if sock._acks:
            # A handler awaiting this client's ack learns why it will never come, as an exception it can
            # catch; cancelling the future instead looked like the handler itself had been cancelled.
            gone = ConnectionClosed(1000, f"socket {sock.sid} disconnected: {reason}")
            for fut in sock._acks.values():
                if not fut.done():
                    fut.set_exception(gone)
                    fut.add_done_callback(_mark_retrieved)  # an emit nobody awaits is not an error
            sock._acks.clear()
        for hook in self.disconnect_hooks:
            try:
                hook(sock, reason)
            except Exception:
                log.exception("! disconnect hook failed for %s", sock.sid)
        handler = self.router.get(sock.namespace, "disconnect")
        if handler is not None:
            on_error = lambda exc: self._handler_failed(sock, "disconnect", exc)  # noqa: E731
            run_handler(handler, (sock, reason), None, on_error, 0.0, self._tasks)
        if notify and client.conn.transport is Transport.BARE and not client.sockets:
            self.close_client(client, reason, send_close=False)

    def close_client(
        self, client: Client, reason: str, send_close: bool, ws_code: int = 1000, ws_reason: str | None = None
    ) -> None:
        """End a client's session: every socket is disconnected with ``reason``, then the transport closes.

        ``ws_code`` and ``ws_reason`` (default: ``reason``) go in the WebSocket close frame, so that a
        protocol error can tell the peer exactly what was wrong while handlers see ``parse error``.
        """
        conn = client.conn
        if self.clients.get(conn.sid) is not client:
            return
        del self.clients[conn.sid]
        client.fast_ws = False
        self.heartbeat.cancel(client)
        remaining = self._per_ip.get(client.remote, 1) - 1
        if remaining > 0:
            self._per_ip[client.remote] = remaining
        else:
            self._per_ip.pop(client.remote, None)
        was_open = conn.state is not State.CLOSED
        if send_close and was_open and not client.strip_prefix:
            if client.ws is not None and conn.transport is not Transport.BARE:
                client.send_raw_frame(b"1")
            elif client.ws is None:
                conn.queue([b"1"])
                client._flush_poll()
                if conn.queued_messages:
                    # No GET is held: keep the close for the client's next poll, as engine.io does, or the
                    # client would learn of it only as a 400 for an unknown sid.
                    deadline = time.monotonic() + self.config.websocket.ping_timeout
                    self._closed_polls[conn.sid] = (client, deadline)
        conn.close(reason)
        for sock in list(client.sockets.values()):
            self.disconnect_socket(sock, reason, notify=False)
        self.state.disconnects[reason] = self.state.disconnects.get(reason, 0) + 1
        try:
            self.handler.on_close(client, reason)
        except Exception:
            log.exception("! handler.on_close failed for %s", conn.sid)
        ws = client.ws
        if ws is not None:
            code = ws_code if reason not in ("ping timeout",) else 1001
            try:
                from picows import WSCloseCode

                if not ws.is_close_frame_sent:  # RFC 6455 §5.5.1: one close frame per side
                    ws.send_close(WSCloseCode(code), close_reason(ws_reason or reason))
            except Exception:
                pass
            # A graceful close waits until the peer has read what is buffered. A peer that stopped reading
            # (slow consumer) or answering (ping timeout) never will: it would keep the socket and the buffer
            # for as long as TCP keeps probing a zero window, i.e. forever. Abort those; give the others a
            # bounded linger.
            graceful = reason not in _ABORT_REASONS
            # Asked before closing: a closed TLS transport cannot tell its buffer size any more.
            under = ws.underlying_transport
            linger = graceful and not under.is_closing() and under.get_write_buffer_size()
            ws.disconnect(graceful)
            if linger:
                asyncio.get_running_loop().call_later(CLOSE_LINGER, ws.disconnect, False)
        elif client.poll_waiter is not None:
            waiter, client.poll_waiter = client.poll_waiter, None
            # The session is over whoever ended it: a held GET learns it from a close packet (as engine.io
            # answers it), not a noop that sends the client back for a GET that can only fail. Except when
            # the server goes away (1012, see shutdown): then that failing GET is what makes python-socketio
            # reconnect, where a close packet would make it give up.
            waiter.respond_payload(b"6" if ws_code == 1012 else b"1")
        if self.debug:
            log.debug("= %s closed: %s", conn.sid, reason)

    def take_closed_poll(self, sid: str) -> bytes | None:
        """The last packets, ending with close, of a polling session closed between two GETs; None if none."""
        entry = self._closed_polls.get(sid)
        if entry is None:
            return None
        conn = entry[0].conn
        body = conn.take_payload()
        if not conn.queued_messages:
            del self._closed_polls[sid]
        return body

    def on_slow_consumer(self, client: Client) -> None:
        """``client`` went over its send buffer's high-water mark: count it and apply the policy.

        Called once per episode (the transport's ``pause_writing``, or a polling queue over its marks);
        the client drops what it is sent until the episode ends. ``disconnect`` closes it on the next loop
        turn, not here: we may be inside a broadcast iterating the rooms the close would change.
        """
        self.state.slow_consumers += 1
        policy = self.config.limits.slow_consumer_policy
        log.info(
            "! %s slow consumer (%s): send buffer over its high-water mark, %s",
            client.sid,
            client.remote,
            policy,
        )
        if policy == "disconnect":
            asyncio.get_running_loop().call_soon(self.close_client, client, "slow consumer", False, 1008)

    # -- emitting -------------------------------------------------------------------------------------

    def broadcast(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...] = (),
        except_rooms: tuple[str, ...] = (),
    ) -> None:
        """Encode once; deliver to local sockets; hand to the adapter for other workers and nodes."""
        recovery = self.recovery
        if recovery is None:
            packets = self.parser_cls.encode_event(namespace, event, args)
        elif recovery.remote:
            # The master stamps the offset and delivers it everywhere, here too, in one order.
            recovery.send_remote(namespace, event, args, rooms, except_rooms, False)
            for outgoing in self.outgoing_hooks:
                outgoing(namespace, event, args, rooms, except_rooms)
            return
        else:
            packets = recovery.encode(namespace, event, args, rooms, except_rooms)
        n = self.deliver_local(namespace, packets, rooms, except_rooms)
        for outgoing in self.outgoing_hooks:
            outgoing(namespace, event, args, rooms, except_rooms)
        if self.adapter.remote:
            self.adapter.publish(BroadcastMessage(namespace, event, args, rooms, except_rooms), packets)
        if self.state.observe and n:
            self.state.count_out(event, n)
        for hook in self.emit_hooks:
            hook(namespace, event, n)

    def deliver_local(
        self,
        namespace: str,
        packets: list[bytes],
        rooms: Iterable[str] = (),
        except_rooms: Iterable[str] = (),
    ) -> int:
        """Write encoded packets to the matching sockets of this process. Returns how many got them."""
        ns = self.namespaces.get(namespace)
        if ns is None:
            return 0
        n = 0
        for sock in ns.rooms.select(rooms, except_rooms):
            sock.client.send(packets)
            n += 1
        self.state.events_out += n
        return n

    def local_sockets(
        self, namespace: str, rooms: Iterable[str] = (), except_rooms: Iterable[str] = ()
    ) -> Iterator[Socket]:
        ns = self.namespaces.get(namespace)
        if ns is None:
            return iter(())
        return ns.rooms.select(rooms, except_rooms)

    def of(self, namespace: str) -> BroadcastOperator:
        """The emit chain of ``namespace``."""
        return BroadcastOperator(self, namespace)

    def to(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator:
        return BroadcastOperator(self, namespace).to(room)

    in_ = to

    def except_(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator:
        return BroadcastOperator(self, namespace).except_(room)

    @staticmethod
    def user_room(user_id: Any) -> str:
        """The room every socket of ``user_id`` is in after ``login_using``."""
        return f"{USER_ROOM_PREFIX}{user_id}"

    def to_user(self, user_id: Any, namespace: str = "/") -> BroadcastOperator:
        """Every socket (every tab, every worker) bound to ``user_id``."""
        return BroadcastOperator(self, namespace, (self.user_room(user_id),))

    def is_user_online(self, user_id: Any, namespace: str = "/") -> bool:
        """True when a socket of ``user_id`` is connected here (cluster-wide with a remote adapter)."""
        ns = self.namespaces.get(namespace)
        if ns is not None and ns.rooms.members(self.user_room(user_id)):
            return True
        return self.adapter.is_user_online_remote(self.user_room(user_id), namespace)

    async def user_online(self, user_id: Any, namespace: str = "/") -> bool:
        """Cluster-wide :meth:`is_user_online`: asks the other nodes (within ``[redis] request_timeout``)."""
        return await self.adapter.is_user_online(self.user_room(user_id), namespace)

    def get_socket(self, sid: str, namespace: str = "/") -> Socket | None:
        ns = self.namespaces.get(namespace)
        return ns.rooms.get(sid) if ns is not None else None

    def add_http_route(self, method: str, path: str, fn: Any) -> None:
        """Serve ``method path`` on the Tether port (API, metrics, static files)."""
        self.http_routes[(method.upper(), path)] = fn

    @property
    def connection_count(self) -> int:
        return len(self.clients)


EXTENSIONS = ("tether.sessions", "tether.metrics", "tether.api", "tether.client_bundle", "tether.admin")
"""Feature modules wired into every server: each has ``install(server)``, which registers hooks and routes
on the server and reads its own config section. Core modules never import them (metrics observe, they
do not drive)."""


def install_extensions(server: Server) -> None:
    for name in EXTENSIONS:
        if importlib.util.find_spec(name) is None:
            continue  # feature not part of this build
        importlib.import_module(name).install(server)


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
        raise ConfigError(
            config.source, "websocket.parser", f"{spec!r} is not a tether.parsers.Parser subclass"
        )
    return cls


async def run_server(config: Config | None = None, router: Router | None = None, **kwargs: Any) -> Server:
    """Build and start a server (``port = 0`` picks a free port: see ``server.port``).

    Stop it with :meth:`Server.shutdown`.
    """
    server = Server(config, router, **kwargs)
    await server.startup()
    return server
