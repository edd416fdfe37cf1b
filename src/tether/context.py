"""The ``socket`` every handler gets.

``emit`` sends at once and returns an object that may be awaited or not: ``await socket.emit(...)``
(as in the route examples) and a bare ``socket.emit(...)`` both work, and neither creates a coroutine
per message. With ``ack=True`` it returns a future that resolves to the client's answer. ``join``,
``leave`` and ``disconnect`` act at once too and return the same awaitable-or-not object, so the
``await sio.enter_room(...)`` habit of python-socketio works. ``socket.to(room)``, ``socket.broadcast``
and ``socket.to_user(...)`` are emit chains (:mod:`tether.broadcast`).

The server is seen here through small interfaces, :class:`SocketHost` (what a socket asks of the server,
including :class:`~tether.broadcast.BroadcastHost`, what an emit chain asks) and :class:`ClientLink` (what
a socket writes to), which :class:`~tether.server.Server` and :class:`~tether.server.client.Client`
implement: this module imports nothing from :mod:`tether.server` (the counters it bumps are
:class:`~tether.cluster.base.EmitCounters`), so the server builds sockets without an import circle.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .broadcast import SENT, BroadcastHost, BroadcastOperator, _Sent
from .errors import AckTimeout, ConnectionClosed
from .rooms import Rooms
from .threads import _local, call_in_loop, in_loop
from .typing import EmitHook, OutgoingHook

if TYPE_CHECKING:
    from .cluster.base import EmitCounters
    from .handler import Request
    from .protocol.connection import Connection
    from .protocol.parsers import Parser

__all__ = [
    "BroadcastHost",
    "BroadcastOperator",
    "ClientLink",
    "Namespace",
    "PacketLog",
    "Socket",
    "SocketHost",
]


class Namespace:
    """A namespace's sockets and rooms."""

    __slots__ = ("name", "rooms")

    def __init__(self, name: str) -> None:
        self.name = name
        self.rooms: Rooms[Socket] = Rooms()


class ClientLink(Protocol):
    """The Engine.IO session a socket belongs to, as the socket uses it (:class:`.server.client.Client`)."""

    conn: Connection
    parser: Parser
    request: Request
    remote: str
    sockets: dict[str, Socket]
    connecting: dict[str, Socket]

    @property
    def sid(self) -> str: ...

    def send(self, packets: list[bytes]) -> None: ...


class PacketLog(Protocol):
    """Connection state recovery as an emit uses it (:class:`tether.server.recovery.Recovery`)."""

    remote: bool

    def send_remote(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        direct: bool,
    ) -> None: ...

    def encode(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
    ) -> list[bytes]: ...


class SocketHost(BroadcastHost["Socket"], Protocol):
    """The server as a socket (and a route file, through ``socket.server``) uses it.

    Implemented by :class:`~tether.server.Server`; the methods are documented there. It is the whole
    contract between this module and the server: a feature that needs more of ``socket.server`` adds it
    here (mypy then checks that the server has it).
    """

    @property
    def state(self) -> EmitCounters: ...

    ssl_context: ssl.SSLContext | None

    @property
    def emit_hooks(self) -> Sequence[EmitHook]: ...

    @property
    def outgoing_hooks(self) -> Sequence[OutgoingHook]: ...

    @property
    def recovery(self) -> PacketLog | None: ...

    @property
    def extensions(self) -> Mapping[str, Any]: ...

    def join_socket(self, sock: Socket, room: str) -> None: ...

    def leave_socket(self, sock: Socket, room: str) -> None: ...

    def disconnect_socket(self, sock: Socket, reason: str, notify: bool) -> None: ...

    def close_connection(self, sock: Socket, reason: str) -> None: ...

    @staticmethod
    def user_room(user_id: Any) -> str: ...

    def of(self, namespace: str) -> BroadcastOperator[Socket]: ...

    def emit(self, event: str, *args: Any, namespace: str | None = None) -> Any: ...

    def to(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator[Socket]: ...

    def except_(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator[Socket]: ...

    def to_user(self, user_id: Any, namespace: str = "/") -> BroadcastOperator[Socket]: ...

    def is_user_online(self, user_id: Any, namespace: str = "/") -> bool: ...

    async def user_online(self, user_id: Any, namespace: str = "/") -> bool: ...

    def get_socket(self, sid: str, namespace: str = "/") -> Socket | None: ...


class Socket:
    """One client in one namespace. Handlers receive it as their first argument."""

    __slots__ = (
        "_ack_seq",
        "_acks",
        "_data",
        "_ns",
        "_pending",
        "_recovery_base",
        "client",
        "connected",
        "namespace",
        "pid",
        "recovered",
        "server",
        "session_id",
        "sid",
        "user_id",
    )

    def __init__(self, sid: str, namespace: Namespace, client: ClientLink, server: SocketHost) -> None:
        self.sid = sid
        self.namespace = namespace.name
        self._ns = namespace
        self.client = client
        self.server = server
        self.connected = True
        self.user_id: str | None = None
        self.session_id: str | None = None
        self._data: dict[str, Any] | None = None
        self._ack_seq = 0
        self._acks: dict[int, asyncio.Future[Any]] | None = None
        self._pending: list[bytes] | None = None
        """Packets emitted while the ``connect`` handler runs: sent right after the CONNECT reply."""
        self.pid: str | None = None
        """Private id of connection state recovery (``[recovery]``); None when recovery is off."""
        self.recovered = False
        """True when this socket is a recovered one: same sid, rooms and ``data``, missed packets replayed
        (Socket.IO 4.6 connection state recovery; see docs/recovery.md)."""
        self._recovery_base: int | str = 0

    def __repr__(self) -> str:
        return f"<Socket sid={self.sid} namespace={self.namespace}>"

    @property
    def data(self) -> dict[str, Any]:
        """Free for the application: per-socket state (made on first use: most sockets never need one)."""
        if self._data is None:
            self._data = {}
        return self._data

    # -- sending --------------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, ack: bool = False, timeout: float | None = None) -> Awaitable[Any]:
        """Send ``event`` to this client.

        Args:
            ack: when True, the returned future resolves to the client's ack (one argument: the value;
                several: a tuple).
            timeout: with ``ack``, seconds before the future fails with :class:`~tether.AckTimeout`.
                It fails with :class:`~tether.ConnectionClosed` if the socket disconnects first.

        From a ``def`` handler's thread the emit is done on the loop (:mod:`tether.threads`), and an ack
        is a ``concurrent.futures.Future``.

        Raises:
            ConnectionClosed: the socket is disconnected.
        """
        loop = _local.loop
        if loop is not None:
            if not ack and self.server.recovery is None:
                return self._emit_from_thread(loop, event, args)
            return call_in_loop(loop, self.emit, event, *args, ack=ack, timeout=timeout)  # type: ignore[no-any-return]
        if not self.connected:
            raise ConnectionClosed(1000, f"socket {self.sid} is disconnected")
        if not ack:
            recovery = self.server.recovery
            if recovery is None or (recovery.remote and self._pending is not None):
                # (Remote: what the connect handler emits goes right after the CONNECT reply, no offset.)
                packets = self.client.parser.encode_event(self.namespace, event, args)
            elif recovery.remote:
                # Through the master, which stamps the offset and sends it back to this worker only.
                recovery.send_remote(self.namespace, event, args, (self.sid,), (), True)
                return SENT
            else:
                # As socket.io with recovery on: a direct emit is an emit to the sid room, with an offset.
                packets = recovery.encode(self.namespace, event, args, (self.sid,), ())
            self._write(event, args, packets)
            return SENT
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ack_seq += 1
        ack_id = self._ack_seq
        if self._acks is None:
            self._acks = {}
        self._acks[ack_id] = future
        if timeout is not None:
            handle = loop.call_later(timeout, self._ack_timeout, ack_id, event, timeout)
            future.add_done_callback(lambda _f: handle.cancel())
        self._write(event, args, self.client.parser.encode_event(self.namespace, event, args, ack_id))
        return future

    def _emit_from_thread(self, loop: asyncio.AbstractEventLoop, event: str, args: tuple[Any, ...]) -> _Sent:
        """An emit without ack from a ``def`` handler's pool thread: encoded here (an argument that cannot
        be encoded raises in the handler, as on the loop), written by the loop without this thread waiting.

        The loop runs what threads hand it in order, so the handler's emits reach the client in call
        order and before its ack (its return value comes back to the loop the same way, after them).
        Waiting for each write instead cost a round trip between the threads per emit: two wake-ups and
        two GIL hand-overs, about half of what a ``def`` echo cost.
        """
        if not self.connected:
            raise ConnectionClosed(1000, f"socket {self.sid} is disconnected")
        packets = self.client.parser.encode_event(self.namespace, event, args)
        loop.call_soon_threadsafe(self._write_from_thread, event, args, packets)
        return SENT

    def _write_from_thread(self, event: str, args: tuple[Any, ...], packets: list[bytes]) -> None:
        """On the loop: the rest of :meth:`emit` for packets a pool thread encoded (see above)."""
        if self.connected:  # else it disconnected since: as an emit to a socket that has just gone
            self._write(event, args, packets)

    def _write(self, event: str, args: tuple[Any, ...], packets: list[bytes]) -> None:
        """Send an emit's encoded ``packets`` (held back while the connect handler runs) and count it."""
        if self._pending is not None:
            self._pending.extend(packets)
        else:
            self.client.send(packets)
        server = self.server
        state = server.state
        state.events_out += 1
        if state.observe:
            counts = state.events_out_by_name
            n = counts.get(event)
            if n is None:
                state.count_out(event, 1)  # a new name: the table is bounded there
            else:
                counts[event] = n + 1
        if server.emit_hooks:  # tested first: an empty list's loop still makes an iterator per emit
            for hook in server.emit_hooks:
                hook(self.namespace, event, 1)
        if server.outgoing_hooks:
            for outgoing in server.outgoing_hooks:
                outgoing(self.namespace, event, args, (self.sid,), ())

    def send(self, *args: Any) -> Awaitable[Any]:
        """``emit("message", *args)``: what laravel-swoole pages listen for."""
        return self.emit("message", *args)

    def _ack_timeout(self, ack_id: int, event: str, timeout: float) -> None:
        future = self._acks.pop(ack_id, None) if self._acks else None
        if future is not None and not future.done():
            future.set_exception(AckTimeout(event, timeout))

    def _receive_ack(self, ack_id: int, args: list[Any]) -> bool:
        """Resolve the future of ``ack_id``; False for an id never sent (or already answered)."""
        future = self._acks.pop(ack_id, None) if self._acks else None
        if future is None:
            return False
        if not future.done():
            future.set_result(args[0] if len(args) == 1 else (tuple(args) if args else None))
        return True

    # -- broadcasting ---------------------------------------------------------------------------------

    def to(self, room: str | Iterable[str]) -> BroadcastOperator[Socket]:
        """Target ``room`` (or a sid), this socket excluded."""
        return BroadcastOperator(self.server, self.namespace, except_rooms=(self.sid,)).to(room)

    in_ = to

    def except_(self, room: str | Iterable[str]) -> BroadcastOperator[Socket]:
        return BroadcastOperator(self.server, self.namespace, except_rooms=(self.sid,)).except_(room)

    @property
    def broadcast(self) -> BroadcastOperator[Socket]:
        """Everyone in this namespace but this socket."""
        return BroadcastOperator(self.server, self.namespace, except_rooms=(self.sid,))

    def to_user(self, user_id: Any) -> BroadcastOperator[Socket]:
        """Every socket (every tab, every worker) of ``user_id``; this socket only if it is that user's."""
        return BroadcastOperator(self.server, self.namespace, (self.server.user_room(user_id),))

    # -- rooms ----------------------------------------------------------------------------------------

    @in_loop
    def join(self, room: str | Iterable[str]) -> _Sent:
        """Enter ``room`` (or several), at once; the result may be awaited or not.

        Raises:
            TetherError: over ``[limits] max_rooms_per_socket``.
        """
        for r in (room,) if isinstance(room, str) else room:
            self.server.join_socket(self, r)
        return SENT

    enter_room = join

    @in_loop
    def leave(self, room: str | Iterable[str]) -> _Sent:
        """Leave ``room`` (or several), at once; the result may be awaited or not."""
        for r in (room,) if isinstance(room, str) else room:
            self.server.leave_socket(self, r)
        return SENT

    leave_room = leave

    @property
    def rooms(self) -> set[str]:
        """The rooms this socket is in, its own sid room included."""
        return self._ns.rooms.rooms_of(self.sid)

    # -- users ----------------------------------------------------------------------------------------

    @property
    def request(self) -> Request:
        """The HTTP request that opened this connection: the WebSocket upgrade, or the first polling GET.

        ``request.headers`` (names case-insensitive), ``request.cookies`` (``{name: value}``),
        ``request.query`` and ``request.remote`` are what the browser sent to Tether's origin: with the
        app on the same origin (``tether start --app``), its session cookie is there, and the connect
        handler can turn it into a user (``tether.contrib.django``, ``tether.contrib.starlette``).
        """
        return self.client.request

    @in_loop
    def login_using(self, user_id: Any) -> None:
        """Bind this socket to ``user_id``: ``to_user(user_id)`` reaches it from any worker."""
        if self.user_id is not None:
            self.leave(self.server.user_room(self.user_id))
        self.user_id = str(user_id)
        self.join(self.server.user_room(user_id))

    @in_loop
    def logout(self) -> None:
        """Unbind this socket from its user."""
        if self.user_id is not None:
            self.leave(self.server.user_room(self.user_id))
            self.user_id = None

    # -- lifecycle ------------------------------------------------------------------------------------

    @in_loop
    def disconnect(self, close: bool = False) -> _Sent:
        """Disconnect this socket from its namespace (client reason ``io server disconnect``), at once;
        the result may be awaited or not.

        Args:
            close: also close the client's connection, every namespace of it (node's
                ``socket.disconnect(true)``).
        """
        self.server.disconnect_socket(self, "server namespace disconnect", notify=True)
        if close:
            self.server.close_connection(self, "server namespace disconnect")
        return SENT

    @property
    def handshake(self) -> dict[str, Any]:
        """The request that opened the connection, shaped as node's ``socket.handshake``: ``headers``
        (lower-case names), ``address``, ``xdomain``, ``secure``, ``url`` and ``query``."""
        req = self.client.request
        query = "&".join(f"{k}={v}" for k, v in req.query.items())
        return {
            # A plain dict of lower-case str keys, as node's handshake.headers (a Request built by hand
            # may carry any mapping).
            "headers": {str(k).lower(): str(v) for k, v in req.headers.items()},
            "address": req.remote,
            "xdomain": "origin" in req.headers,
            "secure": self.server.ssl_context is not None,
            "url": req.path + ("?" + query if query else ""),
            "query": dict(req.query),
        }
