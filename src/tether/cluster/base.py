"""The adapter interface: how a broadcast made in one process reaches sockets in the others.

A server always delivers to its own sockets first (:meth:`Server.deliver_local`), then, when its
adapter is remote, calls :meth:`Adapter.publish`; every other process receives the message and
delivers it locally. Local-first keeps the common single-process case free of any bus.

An adapter sees its server only as a :class:`LocalNode` (and the server's sockets as
:class:`LocalSocket`): the few calls it needs to act on this process. The server implements them;
nothing in :mod:`tether.cluster` imports :mod:`tether.server`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import TetherError
from ..typing import EmitHook, OutgoingHook

if TYPE_CHECKING:
    from ..acks import AckCollector
    from ..protocol.parsers import Parser
    from ..recovery import Restored, SavedSession
    from ..rooms import Rooms
    from ..router import Router
    from .wire import SessionCommand

__all__ = ["Adapter", "BroadcastMessage", "LocalNode", "LocalSocket", "SocketInfo", "socket_info"]


class LocalSocket(Protocol):
    """A socket of this process, as an adapter acts on it (:class:`tether.Socket`)."""

    sid: str
    namespace: str
    user_id: str | None
    _data: dict[str, Any] | None

    @property
    def rooms(self) -> set[str]: ...

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def handshake(self) -> dict[str, Any]: ...

    def emit(
        self, event: str, *args: Any, ack: bool = False, timeout: float | None = None
    ) -> Awaitable[Any]: ...

    def join(self, room: str | Iterable[str]) -> Any: ...

    def leave(self, room: str | Iterable[str]) -> Any: ...

    def disconnect(self, close: bool = False) -> Any: ...


class LocalNamespace(Protocol):
    """A namespace of this process: its rooms, for cheap filtering before decoding a message."""

    @property
    def rooms(self) -> Rooms[Any]: ...


class EmitCounters(Protocol):
    """The server's counters of what it sent (:class:`tether.server.state.ServerState`)."""

    events_out: int
    """Event deliveries to sockets, every kind of emit (``tether infos``' EVENTS OUT, the admin UI's
    ``packetsOut``, ``/api/stats``)."""

    @property
    def observe(self) -> bool: ...

    @property
    def events_out_by_name(self) -> dict[str, int]:
        """Events sent, by name (bumped in place on the hot path; :meth:`count_out` adds a new name)."""
        ...

    def count_out(self, name: str, reached: int) -> None: ...


class RecoveryLink(Protocol):
    """Connection state recovery of this process, as the hub adapter uses it."""

    def take_over(self, pid: str) -> None:
        """The client of ``pid`` is back on another worker: close its connection here."""
        ...


class LocalNode(Protocol):
    """This process's server, as its adapter uses it (implemented by :class:`tether.Server`)."""

    debug: bool

    @property
    def recovery(self) -> RecoveryLink | None: ...

    @property
    def state(self) -> EmitCounters: ...

    @property
    def parser_cls(self) -> type[Parser]: ...

    @property
    def router(self) -> Router: ...

    @property
    def namespaces(self) -> Mapping[str, LocalNamespace]: ...

    @property
    def extensions(self) -> Mapping[str, Any]: ...

    @property
    def emit_hooks(self) -> Sequence[EmitHook]: ...

    @property
    def outgoing_hooks(self) -> Sequence[OutgoingHook]: ...

    def deliver_local(
        self,
        namespace: str,
        packets: list[bytes],
        rooms: Iterable[str] = (),
        except_rooms: Iterable[str] = (),
    ) -> int:
        """Write encoded packets to the matching sockets of this process; how many got them."""
        ...

    def local_sockets(
        self, namespace: str, rooms: Iterable[str] = (), except_rooms: Iterable[str] = ()
    ) -> Iterator[LocalSocket]:
        """The matching sockets of this process."""
        ...

    def get_socket(self, sid: str, namespace: str = "/") -> LocalSocket | None: ...

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A background task the server waits for on shutdown."""
        ...


log = logging.getLogger("tether.cluster")


@dataclass(frozen=True, slots=True)
class BroadcastMessage:
    """An emit to deliver in other processes: version 1 of the cluster wire format."""

    namespace: str
    event: str
    args: tuple[Any, ...]
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    version: int = 1


class Adapter:
    """Base adapter: one process, nothing to publish."""

    remote = False
    """True when :meth:`publish` must be called for other processes."""
    sequences_emits = False
    """True when this adapter gives emits their recovery offsets (the master hub with ``[recovery]`` on):
    the server then hands it every emit (:meth:`publish_sequenced`) and delivers only what comes back, and
    keeps and restores sessions through it."""
    last_seq = 0
    """With :attr:`sequences_emits`: the offset of the last emit delivered here."""

    def __init__(self) -> None:
        self.server: LocalNode | None = None

    def attach(self, server: LocalNode) -> None:
        self.server = server

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, message: BroadcastMessage, packets: list[bytes]) -> None:
        """Send ``message`` (already encoded as ``packets``) to the other processes."""
        return None

    def publish_sequenced(
        self,
        namespace: str,
        event: str,
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        packets: list[bytes],
        direct: bool,
        args: tuple[Any, ...] = (),
    ) -> None:
        """With :attr:`sequences_emits`: send an encoded emit (no offset yet) to be stamped and delivered
        (``args``: the emit's arguments, for adapters that carry them rather than the packets)."""
        raise NotImplementedError

    def base_offset(self, namespace: str) -> Any:
        """With :attr:`sequences_emits`: the offset a socket of ``namespace`` connecting now starts from
        (its client's offset until it gets a packet). Default: :attr:`last_seq` (one log for all)."""
        return self.last_seq

    def recovered(self, sock: LocalSocket, restored: Restored) -> list[bytes]:
        """With :attr:`sequences_emits`: ``sock`` of ``restored`` is in its rooms now; the packets delivered
        here since the session was read, which it must get too. Default: none can have been."""
        return []

    def persist_session(self, session: SavedSession) -> None:
        """With :attr:`sequences_emits`: keep a disconnected socket's state where any process finds it."""
        raise NotImplementedError

    def restore_session(
        self, pid: str, offset: str | None, namespace: str
    ) -> asyncio.Future[Restored | None]:
        """With :attr:`sequences_emits`: the session of ``pid`` and what it missed after ``offset``."""
        raise NotImplementedError

    def is_user_online_remote(self, user_room: str, namespace: str) -> bool:
        """True when another process has a socket in ``user_room`` of ``namespace``."""
        return False

    def user_online_changed(self, namespace: str, user_room: str, online: bool) -> None:
        """This process got its first socket in ``user_room`` (``online``) or lost its last one.

        Called by the server for rooms named by :meth:`Server.user_room` only, so that an adapter can
        answer :meth:`is_user_online_remote` without a round trip. Default: nothing to tell.
        """
        return None

    # -- cluster-wide operations ----------------------------------------------------------------------
    # Added with the Redis adapter. Each default acts on this process only, which is the whole answer for
    # a single process; a remote adapter does the same locally and asks the other processes.

    def add_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], join: tuple[str, ...]
    ) -> None:
        """Make the matching sockets (everywhere) join ``join`` (socket.io's ``socketsJoin``)."""
        for sock in list(self._server().local_sockets(namespace, rooms, except_rooms)):
            for room in join:
                try:
                    sock.join(room)
                except TetherError as exc:
                    log.warning("! %s cannot join %r: %s", sock.sid, room, exc)

    def del_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], leave: tuple[str, ...]
    ) -> None:
        """Make the matching sockets (everywhere) leave ``leave`` (socket.io's ``socketsLeave``)."""
        for sock in list(self._server().local_sockets(namespace, rooms, except_rooms)):
            sock.leave(leave)

    def disconnect_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], close: bool = False
    ) -> None:
        """Disconnect the matching sockets (everywhere); ``close`` also closes their connection."""
        for sock in list(self._server().local_sockets(namespace, rooms, except_rooms)):
            sock.disconnect(close)

    def set_data(self, namespace: str, rooms: tuple[str, ...], data: dict[str, Any]) -> None:
        """Replace ``socket.data`` of the sockets in ``rooms`` (everywhere): a copy of ``data`` each."""
        for sock in list(self._server().local_sockets(namespace, rooms)):
            sock._data = dict(data)

    async def broadcast_with_ack(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        timeout: float,
        collector: AckCollector,
    ) -> None:
        """Emit with acks in the other processes; their counts and answers go to ``collector``.

        The local sockets are the server's part. Default: no other process (``expect_servers(0)``).
        """
        collector.expect_servers(0)

    async def fetch_sockets(
        self, namespace: str, rooms: tuple[str, ...] = (), except_rooms: tuple[str, ...] = ()
    ) -> list[SocketInfo]:
        """The matching sockets of every process, as :class:`SocketInfo`."""
        return [socket_info(s) for s in self._server().local_sockets(namespace, rooms, except_rooms)]

    async def sids(self, namespace: str, rooms: tuple[str, ...] = ()) -> set[str]:
        """Sids of the sockets in any of ``rooms`` (all when empty), in every process."""
        return {s.sid for s in self._server().local_sockets(namespace, rooms)}

    async def all_rooms(self, namespace: str) -> set[str]:
        """Every room of ``namespace`` in every process, sid rooms included (as socket.io's ``allRooms``)."""
        ns = self._server().namespaces.get(namespace)
        if ns is None:
            return set()
        return {*ns.rooms.all_rooms(), *(s.sid for s in ns.rooms.select(()))}

    async def server_count(self) -> int:
        """How many processes share this adapter's bus (this one included)."""
        return 1

    def server_side_emit(self, namespace: str, packet: tuple[Any, ...]) -> None:
        """Send the server-side event ``packet`` (``(event, *args)``) to the other processes' handlers
        (node's ``serverSideEmit``; :mod:`.server_side`). Default: one process, nobody else to tell."""
        return None

    async def server_side_emit_with_ack(
        self, namespace: str, packet: tuple[Any, ...], timeout: float
    ) -> tuple[list[Any], int]:
        """Send ``packet`` asking every other process's handler for an answer; wait at most ``timeout``
        seconds.

        Returns:
            (the answers in arrival order, how many processes were expected to answer). Default: no other
            process, ``([], 0)`` (node's ``ack(null, [])`` when ``serverCount() - 1 <= 0``).
        """
        return [], 0

    async def is_user_online(self, user_room: str, namespace: str) -> bool:
        """Whether a socket in ``user_room`` is connected in any process."""
        ns = self._server().namespaces.get(namespace)
        return ns is not None and bool(ns.rooms.members(user_room))

    def publish_session(self, command: SessionCommand) -> None:
        """Tell the other processes about a session (``touch`` / ``end``); no-op for one process."""
        return None

    def deliver_session(self, command: SessionCommand) -> None:
        """Act here on a session command another process published: the sessions feature touches or
        ends the session (with the end's reason, which the page sees in ``session:ended``)."""
        server = self.server
        sessions = server.extensions.get("sessions") if server is not None else None
        if server is None or sessions is None:
            return
        if server.debug:
            log.debug("< session %s %s", command.type, command.session)
        method = getattr(sessions, "touch" if command.type == "touch" else "end_session", None)
        if method is None:
            return
        if command.type == "end" and command.reason is not None:
            result = method(command.session, command.reason)
        else:
            result = method(command.session)
        if inspect.isawaitable(result):
            server.spawn(_checked(result, f"sessions.{command.type}"))

    def stats(self) -> dict[str, Any]:
        """What ``GET /api/stats`` shows about the bus."""
        return {"driver": type(self).__name__, "remote": self.remote}

    def _server(self) -> LocalNode:
        if self.server is None:
            raise TetherError(f"{type(self).__name__} is not attached to a server")
        return self.server


@dataclass(frozen=True, slots=True)
class SocketInfo:
    """A socket of some process, as ``fetch_sockets`` returns it (socket.io's ``RemoteSocket`` data)."""

    id: str
    namespace: str
    rooms: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    handshake: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    node: str = ""
    """The uid of the node that has it; empty: this process."""


def socket_info(sock: LocalSocket, node: str = "") -> SocketInfo:
    return SocketInfo(
        sock.sid, sock.namespace, tuple(sorted(sock.rooms)), sock.data, sock.handshake, sock.user_id, node
    )


async def _checked(awaitable: Awaitable[Any], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("! %s failed", what)
