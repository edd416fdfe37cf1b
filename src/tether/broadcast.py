"""Emit chains: ``server.to(room).except_(other).emit(...)``, ``socket.broadcast.emit(...)``, and the
awaitable-or-not object an emit returns.

A :class:`BroadcastOperator` is an emit target: a namespace, rooms to include (none: everyone) and rooms
to exclude. ``server.to(room).timeout(5).emit("question", data)`` asks every recipient, on every worker and
node, for an ack and resolves to their :class:`~tether.acks.Answers` (socket.io 4.5's broadcast with acks).

The server is seen here through :class:`BroadcastHost`, the emit chain's own interface, which
:class:`~tether.server.Server` implements. It is generic in the socket type that ``sockets()`` returns
(:class:`tether.context.Socket`, which builds chains too): this module imports neither the server nor the
socket, so both import it without a circle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .threads import _local, call_in_loop, in_loop

if TYPE_CHECKING:
    from .acks import Answers
    from .cluster.base import Adapter, SocketInfo
    from .config import Config

__all__ = ["SENT", "BroadcastHost", "BroadcastOperator"]

SocketT = TypeVar("SocketT")
"""The socket type a chain's :meth:`BroadcastOperator.sockets` returns (:class:`tether.context.Socket`)."""
SocketT_co = TypeVar("SocketT_co", covariant=True)


class BroadcastHost(Protocol[SocketT_co]):
    """The server as an emit chain uses it (implemented by :class:`~tether.server.Server`)."""

    adapter: Adapter
    config: Config

    def broadcast(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...] = (),
        except_rooms: tuple[str, ...] = (),
    ) -> None: ...

    def broadcast_with_acks(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...] = (),
        except_rooms: tuple[str, ...] = (),
        timeout: float = 5.0,
    ) -> asyncio.Task[Answers]: ...

    def local_sockets(
        self, namespace: str, rooms: Iterable[str] = (), except_rooms: Iterable[str] = ()
    ) -> Iterator[SocketT_co]: ...

    def encode_for_broadcast(
        self, namespace: str, event: str, args: tuple[Any, ...]
    ) -> list[bytes] | None: ...

    def broadcast_encoded(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        packets: list[bytes],
    ) -> None: ...


class _Sent:
    """What a fire-and-forget emit returns: awaiting it completes immediately."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "<sent>"


SENT = _Sent()


class BroadcastOperator(Generic[SocketT]):
    """An emit target: a namespace, rooms to include (none: everyone) and rooms to exclude.

    Built by ``server.to(room)``, ``socket.to(room)``, ``socket.broadcast`` and friends; immutable, so a
    chain can be kept and reused.
    """

    __slots__ = ("_except", "_namespace", "_rooms", "_server", "_timeout")

    def __init__(
        self,
        server: BroadcastHost[SocketT],
        namespace: str,
        rooms: tuple[str, ...] = (),
        except_rooms: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> None:
        self._server = server
        self._namespace = namespace
        self._rooms = rooms
        self._except = except_rooms
        self._timeout = timeout

    def to(self, room: str | Iterable[str]) -> BroadcastOperator[SocketT]:
        """Also target ``room`` (a room name or a sid; or several)."""
        rooms = (room,) if isinstance(room, str) else tuple(room)
        return BroadcastOperator(
            self._server, self._namespace, self._rooms + rooms, self._except, self._timeout
        )

    in_ = to

    def except_(self, room: str | Iterable[str]) -> BroadcastOperator[SocketT]:
        """Leave out the members of ``room``."""
        rooms = (room,) if isinstance(room, str) else tuple(room)
        return BroadcastOperator(
            self._server, self._namespace, self._rooms, self._except + rooms, self._timeout
        )

    def timeout(self, seconds: float) -> BroadcastOperator[SocketT]:
        """Ask every recipient for an ack and wait at most ``seconds`` for the answers (socket.io's
        ``timeout()``): :meth:`emit` then returns an awaitable of :class:`~tether.acks.Answers`."""
        if seconds <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {seconds!r}")
        return BroadcastOperator(self._server, self._namespace, self._rooms, self._except, seconds)

    def emit(
        self, event: str, *args: Any, ack: bool = False, timeout: float | None = None
    ) -> Awaitable[Answers] | _Sent:
        """Send ``event`` to every target socket on every worker and node; encoded once.

        Args:
            ack: ask every recipient for an ack (also implied by :meth:`timeout` or ``timeout``).
            timeout: seconds to wait for the acks; default the chain's :meth:`timeout`, else
                ``[handlers] ack_timeout``.

        Returns:
            Without acks, an object that may be awaited or not. With acks, an awaitable (a Task: the emit
            is sent even if nobody awaits it) of :class:`~tether.acks.Answers`: every recipient's answer,
            with ``missing`` the count of those that did not answer in time.
        """
        loop = _local.loop
        if loop is not None:
            packets = (
                self._server.encode_for_broadcast(self._namespace, event, args)
                if not ack and timeout is None and self._timeout is None
                else None
            )
            if packets is not None:
                # From a def handler's thread, as Socket.emit: encoded here, sent by the loop, not waited for.
                loop.call_soon_threadsafe(
                    self._server.broadcast_encoded,
                    self._namespace,
                    event,
                    args,
                    self._rooms,
                    self._except,
                    packets,
                )
                return SENT
            return call_in_loop(loop, self.emit, event, *args, ack=ack, timeout=timeout)  # type: ignore[no-any-return]
        if timeout is None:
            timeout = self._timeout
        if not ack and timeout is None:
            self._server.broadcast(self._namespace, event, args, self._rooms, self._except)
            return SENT
        seconds = timeout if timeout is not None else self._server.config.handlers.ack_timeout
        return self._server.broadcast_with_acks(
            self._namespace, event, args, self._rooms, self._except, seconds
        )

    def emit_with_ack(self, event: str, *args: Any) -> Awaitable[Answers]:
        """socket.io's ``emitWithAck``: ``emit(..., ack=True)``."""
        return self.emit(event, *args, ack=True)  # type: ignore[return-value]

    def send(self, *args: Any) -> _Sent:
        """``emit("message", *args)``."""
        self.emit("message", *args)
        return SENT

    def sockets(self) -> list[SocketT]:
        """The target sockets that live in this process."""
        return list(self._server.local_sockets(self._namespace, self._rooms, self._except))

    # Cluster-wide, through the adapter (this process alone with the in-process adapter); socket.io names.

    async def fetch_sockets(self) -> list[SocketInfo]:
        """The target sockets of every node: id, rooms, data, handshake, user_id."""
        return await self._server.adapter.fetch_sockets(self._namespace, self._rooms, self._except)

    async def count(self) -> int:
        """How many target sockets are connected on all nodes (exclusions are not applied)."""
        return len(await self._server.adapter.sids(self._namespace, self._rooms))

    @in_loop
    def sockets_join(self, room: str | Iterable[str]) -> None:
        """Make the target sockets of every node join ``room``."""
        rooms = (room,) if isinstance(room, str) else tuple(room)
        self._server.adapter.add_sockets(self._namespace, self._rooms, self._except, rooms)

    @in_loop
    def sockets_leave(self, room: str | Iterable[str]) -> None:
        """Make the target sockets of every node leave ``room``."""
        rooms = (room,) if isinstance(room, str) else tuple(room)
        self._server.adapter.del_sockets(self._namespace, self._rooms, self._except, rooms)

    @in_loop
    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the target sockets of every node; ``close`` also closes their connections."""
        self._server.adapter.disconnect_sockets(self._namespace, self._rooms, self._except, close)
