"""The server-level API with python-socketio's names and semantics: calls addressed by sid or room.

:class:`SidApi` is a part of :class:`~tether.Server` (its methods are the server's). Each call acts on
the socket here when it lives in this process, and through the adapter otherwise: an ``enter_room`` for a
sid on another worker or node reaches it (the hub between workers, Redis between nodes, in node's
``@socket.io/redis-adapter`` request format). Changes are sent in order on one channel, so an emit that
follows a remote ``enter_room`` reaches the socket that joined.

Every call may be awaited or not: ``emit``, ``send``, ``enter_room``, ``leave_room``, ``close_room`` and
``disconnect`` act at once and return an object that awaiting completes immediately; ``call``,
``get_session``, ``save_session``, ``count`` and ``sleep`` are awaitables (``call`` and an emit with acks are
sent even if nobody awaits them). From a ``def`` handler's thread each call runs on the loop
(:mod:`tether.threads`).

Arguments, as in python-socketio: ``data`` is the event's one argument, a tuple is several, None is
none; ``to`` (or its alias ``room``) is a sid or a room, or a list of them, None for everyone;
``skip_sid`` leaves out a sid (or several). Tether also takes several positional arguments
(``server.emit("ev", a, b)``), as ``socket.emit`` does. The differences that remain are in
docs/migrating-from-python-socketio.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from ..broadcast import SENT, _Sent
from ..context import Socket
from ..errors import AckTimeout, ConnectionClosed, TetherError
from ..handler import wsgi_environ
from ..threads import bind_thread, in_loop, loop_of_thread, run_for_loop

if TYPE_CHECKING:
    from ..broadcast import BroadcastHost
    from ..cluster.base import Adapter
    from ..config import Config
    from ..context import Namespace
    from ..router import Router
    from .leader import Leadership

__all__ = ["MISSING", "RoomList", "SidApi", "current_server"]

log = logging.getLogger("tether.server")


CONNECTING: dict[str, Socket] = {}
"""Sockets whose connect hooks and ``connect`` handler run (not yet in their namespace's rooms), by sid,
kept by the lifecycle: a handler written for python-socketio calls ``enter_room(sid, ...)``,
``save_session(sid, ...)`` and ``get_session(sid)`` with the sid alone."""


_running: list[Any] = []
"""Servers started in this process and not shut down, oldest first."""


def current_server() -> Any:
    """The server running in this process (the latest started, if a test runs several): python-socketio
    apps import their module-level ``sio`` from anywhere; a Tether module calls this.

    Called in a thread that runs no event loop (a sync view of the app, a thread of its own), it also
    binds that thread to the server's loop (:func:`tether.threads.bind_thread`): the server's objects
    belong to the loop, and that thread's calls (``emit``, ``enter_room``...) then run there, as a ``def``
    handler's do.

    Returns:
        The :class:`tether.Server`.

    Raises:
        TetherError: no server has started in this process (or all have shut down).
    """
    if not _running:
        # The usual cause: `sio = tether.current_server()` at the top of a route file, which is imported
        # before the server starts (python-socketio apps make their `sio` at import time).
        raise TetherError(
            "no Tether server is running in this process yet: a route file is imported before the server"
            " starts, so call tether.current_server() inside a handler, or take the server as the argument"
            " of a @websocket.setup function"
        )
    server = _running[-1]
    loop = getattr(server, "_loop", None)
    if loop is not None and loop_of_thread() is not loop:
        bind_thread(loop)
    return server


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class RoomList(list[str]):
    """The rooms of a socket of this process: a list that may also be awaited (to itself)."""

    def __await__(self) -> Generator[Any, None, list[str]]:
        return self
        yield  # pragma: no cover - makes this a generator


def event_args(args: tuple[Any, ...], data: Any = MISSING) -> tuple[Any, ...]:
    """The arguments of an event given python-socketio's way (``data``) or Tether's (several).

    One value is python-socketio's ``data``: None is no argument, a tuple is several, anything else one.

    Raises:
        TypeError: both ``data=`` and positional arguments.
    """
    if data is not MISSING:
        if args:
            raise TypeError("give the event's data positionally or as data=, not both")
    elif len(args) == 1:
        data = args[0]
    else:
        return args
    if data is None:
        return ()
    return data if isinstance(data, tuple) else (data,)


def _targets(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _ack_args(value: Any) -> tuple[Any, ...]:
    """An ack value (Socket.emit's convention) back to the arguments the client sent."""
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


class SidApi:
    """python-socketio's ``AsyncServer`` calls (see the module docstring); mixed into ``Server``."""

    if TYPE_CHECKING:
        config: Config
        adapter: Adapter
        router: Router
        namespaces: dict[str, Namespace]
        leadership: Leadership
        _background: set[asyncio.Task[Any]]
        _deferred: list[_Deferred]

        # Emitting is declared once, in the emit chain's view of the server (tether.broadcast.BroadcastHost;
        # server/emit.py defines it). Not a Protocol base: its stubs would come before the definitions in
        # Server's MRO, and mypy would find Server abstract.
        broadcast = BroadcastHost.broadcast
        broadcast_with_acks = BroadcastHost.broadcast_with_acks
        local_sockets = BroadcastHost[Socket].local_sockets
        encode_for_broadcast = BroadcastHost.encode_for_broadcast
        broadcast_encoded = BroadcastHost.broadcast_encoded

        def get_socket(self, sid: str, namespace: str = "/") -> Socket | None: ...
        def join_socket(self, sock: Socket, room: str) -> None: ...
        def leave_socket(self, sock: Socket, room: str) -> None: ...

    # -- emitting -------------------------------------------------------------------------------------

    @in_loop
    def emit(
        self,
        event: str,
        *args: Any,
        data: Any = MISSING,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
    ) -> _Sent:
        """Send ``event`` to ``to`` (a sid, a room, several; None: everyone in ``namespace``) on every
        worker and node, ``skip_sid`` left out (python-socketio's ``AsyncServer.emit``).

        Args:
            callback: called with the client's ack arguments (``to`` must be one sid); it may be
                ``async def``. No answer within ``[handlers] ack_timeout``: it is not called (logged).
            ignore_queue: accepted for python-socketio code; Tether always delivers locally first.

        Returns:
            An object that may be awaited or not (the emit is sent already).

        Raises:
            ValueError: a ``callback`` with a target that is not one sid.
        """
        ns = namespace or "/"
        args = event_args(args, data)
        rooms = _targets(to if to is not None else room)
        except_rooms = _targets(skip_sid)
        if callback is None:
            self.broadcast(ns, event, args, rooms, except_rooms)
            return SENT
        if len(rooms) != 1:
            raise ValueError(
                "a callback needs to=<one sid>; for the answers of many use "
                "server.to(room).timeout(seconds).emit(...)"
            )
        future = self._call(ns, event, args, rooms[0], self.config.handlers.ack_timeout)
        future.add_done_callback(lambda f: self._run_callback(callback, event, f))
        return SENT

    def _run_callback(self, callback: Callable[..., Any], event: str, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.info("! no ack for %r, its callback is not called: %s", event, exc)
            return
        try:
            result = callback(*_ack_args(future.result()))
        except Exception:
            log.exception("! ack callback for %r failed", event)
            return
        if inspect.isawaitable(result):
            self._spawn_checked(result, f"ack callback for {event!r}")

    def _spawn_checked(self, awaitable: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("! %s failed", what)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @in_loop
    def send(
        self,
        data: Any,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
    ) -> _Sent:
        """``emit("message", data, ...)`` (python-socketio's ``send``)."""
        return self.emit(
            "message", data=data, to=to, room=room, skip_sid=skip_sid, namespace=namespace, callback=callback
        )

    @in_loop
    def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        ignore_queue: bool = False,
    ) -> asyncio.Future[Any]:
        """Emit ``event`` to one client (``to`` or ``sid``, on any worker or node) and wait for its ack.

        Returns:
            An awaitable of the answer: one value, a tuple for several, None for none (the emit is sent
            even if nobody awaits it).

        Raises:
            AckTimeout: no answer within ``timeout`` seconds (default ``[handlers] ack_timeout``; python-
                socketio raises its ``TimeoutError``; AckTimeout is a ``TimeoutError`` too).
            ConnectionClosed: the socket disconnected first, or there is no such sid anywhere.
            ValueError: no ``to``/``sid``.
        """
        target = to if to is not None else sid
        if not isinstance(target, str):
            raise ValueError("call() needs the sid of one client: to=sid")
        seconds = timeout if timeout is not None else self.config.handlers.ack_timeout
        return self._call(namespace or "/", event, event_args((), data), target, seconds)

    def _call(
        self, namespace: str, event: str, args: tuple[Any, ...], sid: str, timeout: float
    ) -> asyncio.Future[Any]:
        sock = self.get_socket(sid, namespace)
        if sock is not None:
            future = sock.emit(event, *args, ack=True, timeout=timeout)
            assert isinstance(future, asyncio.Future)
            future.add_done_callback(_retrieve)  # a call nobody awaits is not an error
            return future

        async def remote() -> Any:
            answers = await self.broadcast_with_acks(namespace, event, args, (sid,), (), timeout)
            if answers:
                return answers[0]
            if answers.expected == 0 and not answers.servers_missing:
                raise ConnectionClosed(1000, f"no socket {sid} in {namespace} on any worker or node")
            raise AckTimeout(event, timeout)

        future = asyncio.ensure_future(remote())
        future.add_done_callback(_retrieve)
        return future

    # -- rooms ----------------------------------------------------------------------------------------

    def _socket(self, sid: str | Socket, namespace: str | None) -> tuple[Socket | None, str, str]:
        if isinstance(sid, Socket):
            return sid, sid.namespace, sid.sid
        ns = namespace or "/"
        sock = self.get_socket(sid, ns)
        if sock is None:
            sock = CONNECTING.get(sid)
            if sock is not None and sock.namespace != ns:
                sock = None
        return sock, ns, sid

    def transport(self, sid: str, namespace: str | None = None) -> str | None:
        """python-socketio's ``transport(sid)``: ``"websocket"`` or ``"polling"`` (``socket.client``'s).

        Returns:
            The transport of a socket of this process; None for a sid this process does not hold (a
            socket on another worker or node: python-socketio too knows only its own process's clients).
        """
        sock, _, _ = self._socket(sid, namespace)
        return sock.client.conn.transport.value if sock is not None else None

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        """python-socketio's ``get_environ(sid)``: a WSGI-style dict of the request that opened the socket's
        connection (``REQUEST_METHOD``, ``PATH_INFO``, ``QUERY_STRING``, ``REMOTE_ADDR``, ``HTTP_*``; the
        request itself is ``socket.request``).

        Returns:
            The dict for a socket of this process; None for a sid this process does not hold.
        """
        sock, _, _ = self._socket(sid, namespace)
        return wsgi_environ(sock.client.request) if sock is not None else None

    @in_loop
    def enter_room(self, sid: str | Socket, room: str, namespace: str | None = None) -> _Sent:
        """Put the socket ``sid`` of ``namespace`` in ``room``, in whichever process it lives.

        Raises:
            TetherError: over ``[limits] max_rooms_per_socket`` (a socket of this process; a remote one
                logs it where it lives).
        """
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            self.join_socket(sock, room)
        elif self.adapter.remote:
            self.adapter.add_sockets(ns, (sid,), (), (room,))
        return SENT

    @in_loop
    def leave_room(self, sid: str | Socket, room: str, namespace: str | None = None) -> _Sent:
        """Take the socket ``sid`` of ``namespace`` out of ``room``, in whichever process it lives."""
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            self.leave_socket(sock, room)
        elif self.adapter.remote:
            self.adapter.del_sockets(ns, (sid,), (), (room,))
        return SENT

    @in_loop
    def close_room(self, room: str, namespace: str | None = None) -> _Sent:
        """Take every socket of ``namespace``, on every worker and node, out of ``room``."""
        self.adapter.del_sockets(namespace or "/", (room,), (), (room,))
        return SENT

    @in_loop
    def rooms(self, sid: str, namespace: str | None = None) -> RoomList | asyncio.Future[list[str]]:
        """The rooms of the socket ``sid``, its own sid room included (as python-socketio).

        Returns:
            For a socket of this process, the list at once (it may be awaited too). For one elsewhere, an
            awaitable of the list (empty when no process has that sid).
        """
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            return RoomList(sorted(sock.rooms))

        async def remote() -> list[str]:
            infos = await self.adapter.fetch_sockets(ns, (sid,))
            return sorted(infos[0].rooms) if infos else []

        return asyncio.ensure_future(remote())

    @in_loop
    def disconnect(
        self, sid: str | Socket, namespace: str | None = None, ignore_queue: bool = False
    ) -> _Sent:
        """Disconnect the socket ``sid`` from ``namespace`` wherever it lives (the client sees ``io server
        disconnect`` and does not reconnect)."""
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            sock.disconnect()
        elif self.adapter.remote:
            self.adapter.disconnect_sockets(ns, (sid,), (), False)
        return SENT

    # -- sessions: python-socketio's per-socket dict is Tether's (and socket.io's) ``socket.data`` -----

    @in_loop
    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The session of socket ``sid``: its ``socket.data`` dict (the live dict for a socket here, a
        copy fetched from the worker or node that has it otherwise: save it back with
        :meth:`save_session`).

        Raises:
            KeyError: no socket ``sid`` in ``namespace`` anywhere (python-socketio raises KeyError too).
        """
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            return sock.data
        infos = await self.adapter.fetch_sockets(ns, (sid,))
        if not infos:
            raise KeyError(f"no socket {sid} in {ns}")
        return dict(infos[0].data)

    @in_loop
    async def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Make ``session`` the ``socket.data`` of socket ``sid``, wherever it lives (a remote socket gets
        a copy: its values must be JSON/msgpack types)."""
        sock, ns, sid = self._socket(sid, namespace)
        if sock is not None:
            sock._data = session
        elif self.adapter.remote:
            self.adapter.set_data(ns, (sid,), dict(session))

    @contextlib.asynccontextmanager
    async def session(self, sid: str, namespace: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """``async with server.session(sid) as session:``: get, change, saved on exit."""
        data = await self.get_session(sid, namespace)
        yield data
        await self.save_session(sid, data, namespace)

    # -- counting -------------------------------------------------------------------------------------

    @in_loop
    async def count(self, room: str | Iterable[str] | None = None, namespace: str | None = None) -> int:
        """How many sockets are in ``room`` (any of several; None: the whole namespace) on every worker
        and node: the "how many are online" question. Each process is asked (within ``[redis]
        request_timeout``); a socket in several of the rooms counts once."""
        return len(await self.adapter.sids(namespace or "/", _targets(room)))

    # -- background tasks -----------------------------------------------------------------------------

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, once: bool = False, **kwargs: Any
    ) -> asyncio.Task[Any] | Any:
        """Run ``target(*args, **kwargs)`` in the background (python-socketio's call); ``async def`` on
        the loop, a plain ``def`` in a thread, whose Tether calls run on the loop as a ``def`` handler's
        do (:mod:`tether.threads`: ``server.call`` there gives a ``concurrent.futures.Future``). The task
        is cancelled when the server shuts down (a ``def`` target's thread is not interrupted).

        Args:
            once: run it in one process of the whole cluster only (see :mod:`.leader`): one worker of a
                host through the master, one node across hosts through a Redis lease; when that process
                dies another one starts it. The result is then a handle with ``cancel()``, ``running``
                (True where it runs now) and ``restarts``.

        Returns:
            The ``asyncio.Task`` (or, with ``once``, the handle).
        """
        if once:
            return self.leadership.add(target, args, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # A route file's setup runs when the server is built, which may be before any loop (the CLI
            # imports the app to check it): the task starts with the server instead.
            later = _Deferred(target, args, kwargs)
            self._deferred.append(later)
            return later
        return self._start_task(target, args, kwargs)

    def start_deferred_tasks(self) -> None:
        """Start the tasks asked for before the loop ran (called by ``startup``); from now on this is the
        server :func:`current_server` returns."""
        _running.append(self)
        deferred, self._deferred = self._deferred, []
        for later in deferred:
            if not later.cancelled:
                later.task = self._start_task(later.target, later.args, later.kwargs)
        self.leadership.start()

    def _start_task(
        self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(target):
            coro = target(*args, **kwargs)
        else:
            # Bound to the loop as a def handler's thread is: its emits, joins and calls run on the loop.
            coro = asyncio.to_thread(run_for_loop, loop, target, *args, **kwargs)
        task = loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    def sleep(self, seconds: float = 0) -> Awaitable[None]:
        """python-socketio's ``sleep``, for background tasks: on the loop ``asyncio.sleep(seconds)``, to
        await. In a thread that runs no loop (a ``def`` handler or background task, as Flask-SocketIO's
        ``socketio.sleep`` is called there) it sleeps that thread and returns an awaitable already done:
        a coroutine there would never be awaited, and the task's loop would spin without a pause."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            time.sleep(seconds)
            return SENT
        return asyncio.sleep(seconds)

    def cancel_background_tasks(self) -> None:
        """Stop every background task (shutdown's first step: a ``while True`` task would hold it)."""
        while self in _running:
            _running.remove(self)
        self.leadership.stop()
        for task in list(self._background):
            task.cancel()

    # -- python-socketio's registration names ---------------------------------------------------------

    def on(self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """``router.on``: register a handler (a decorator without ``handler``), as ``sio.on``."""
        return self.router.on(event, handler, namespace or "/")

    def on_server_side(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """``router.on_server_side``: a handler for other nodes' :meth:`server_side_emit` (node's
        ``io.on(event)``)."""
        return self.router.on_server_side(event, handler, namespace or "/")

    def event(self, handler: Any = None, *, namespace: str | None = None) -> Any:
        """``router.event``: ``@server.event``: the event named as the function, as ``sio.event``."""
        return self.router.event(handler, namespace=namespace or "/")

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register a :class:`tether.Namespace` or a python-socketio ``AsyncNamespace`` instance."""
        self.router.register_namespace(namespace_handler)
        namespace_handler._set_server(self)


class _Deferred:
    """A background task asked for before the event loop ran: it starts with the server."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an emit with acks nobody awaits is not an error


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("! background task failed", exc_info=task.exception())
