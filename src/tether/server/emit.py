"""Addressing and delivery: what the application emits reaches the right sockets, here and elsewhere.

Local first: an emit is encoded once, written to the matching sockets of this process, then handed to
the adapter for the other workers and nodes (:mod:`tether.cluster`), which deliver it with
:meth:`Emitting.deliver_local`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from picows import WSMsgType

from ..acks import AckCollector, Answers
from ..broadcast import SENT, BroadcastOperator, _Sent
from ..cluster.base import BroadcastMessage
from ..errors import ConnectionClosed, TetherError
from ..protocol.engineio import Binary
from ..router import SERVER_SIDE_RESERVED
from ..threads import in_loop
from .membership import Membership

if TYPE_CHECKING:
    from ..context import Socket
    from .client import Client

__all__ = ["Emitting"]

log = logging.getLogger("tether.server")


_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY


class Emitting(Membership):
    """The emit API of the server (a layer of :class:`~tether.server.Server`)."""

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
        self.broadcast_encoded(namespace, event, args, rooms, except_rooms, packets)

    def encode_for_broadcast(self, namespace: str, event: str, args: tuple[Any, ...]) -> list[bytes] | None:
        """``args`` encoded for :meth:`broadcast_encoded`, in any thread (a pure function of its arguments);
        None when the emit must be encoded on the loop (recovery on: its offset is taken there).

        Raises:
            LocalProtocolError: an argument cannot be encoded.
        """
        if self.recovery is not None:
            return None
        return self.parser_cls.encode_event(namespace, event, args)

    def broadcast_encoded(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        packets: list[bytes],
    ) -> None:
        """The rest of :meth:`broadcast` once ``packets`` (``args`` encoded, with their offset when a local
        recovery log stamped them) are made: local delivery, the adapter, the counts and hooks."""
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
        # Client.send's first branch written out: a broadcast is one Python call per recipient (the
        # room iterator) instead of two. Any client not plainly open on a WebSocket goes through send().
        # Its frames go out directly, after what the write batch holds (they keep their order): a
        # broadcast is a burst of writes already, and its first recipients get it sooner (W2).
        frames = [(_BINARY if type(p) is Binary else _TEXT, p) for p in packets]
        self.writes.flush()
        for sock in ns.rooms.select(rooms, except_rooms):
            # Every socket of this server belongs to one of its Clients (ClientLink is the context's view).
            client: Client = sock.client  # type: ignore[assignment]
            pending = sock._pending
            if pending is not None:
                # Still connecting (its connect handler runs): nothing reaches it before its CONNECT
                # reply; this goes right after it, or never if the handler refuses it.
                pending.extend(packets)
            elif client.fast_ws:
                ws = client.ws
                for msg_type, p in frames:
                    ws.send(msg_type, p)
            else:
                client.send(packets)
            n += 1
        self.state.events_out += n
        return n

    def of(self, namespace: str) -> BroadcastOperator[Socket]:
        """The emit chain of ``namespace``."""
        return BroadcastOperator(self, namespace)

    def to(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator[Socket]:
        return BroadcastOperator(self, namespace).to(room)

    in_ = to

    def except_(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator[Socket]:
        return BroadcastOperator(self, namespace).except_(room)

    def to_user(self, user_id: Any, namespace: str = "/") -> BroadcastOperator[Socket]:
        """Every socket (every tab, every worker) bound to ``user_id``."""
        return BroadcastOperator(self, namespace, (self.user_room(user_id),))

    def broadcast_with_acks(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...] = (),
        except_rooms: tuple[str, ...] = (),
        timeout: float = 5.0,
    ) -> asyncio.Task[Answers]:
        """Emit to the target sockets of every worker and node, each asked for an ack; socket.io 4.5's
        broadcast with acks (:mod:`tether.acks`). The local sockets get it now; the returned Task
        gathers the answers for at most ``timeout`` seconds."""
        collector = AckCollector()
        futures: list[asyncio.Future[Any]] = []
        for sock in list(self.local_sockets(namespace, rooms, except_rooms)):
            try:
                future = sock.emit(event, *args, ack=True, timeout=timeout)
            except ConnectionClosed:
                continue
            assert isinstance(future, asyncio.Future)
            futures.append(future)
        collector.add_local(futures)

        async def gather() -> Answers:
            try:
                await self.adapter.broadcast_with_ack(
                    namespace, event, args, rooms, except_rooms, timeout, collector
                )
            except Exception as exc:  # the local answers still count
                log.error("! emit %r with acks not sent to other processes: %s", event, exc)
                collector.expect_servers(0)
            return await collector.wait(timeout)

        task = asyncio.get_running_loop().create_task(gather())
        task.add_done_callback(_retrieve)
        return task

    # -- server-side events (node's serverSideEmit; tether.cluster.server_side) ----------------------------

    @in_loop
    def server_side_emit(self, event: str, *args: Any, namespace: str = "/") -> _Sent:
        """Send ``event`` with ``args`` to the server-side handlers (:meth:`tether.Router.on_server_side`)
        of every other node of the cluster; this one's are not called (node's ``io.serverSideEmit``).

        Every driver carries it in node's wire format, so Tether and node servers hear each other: the
        workers' hub, ``redis`` (``@socket.io/redis-adapter``'s request type 6) and ``redis-streams``
        (``ClusterAdapter``'s SERVER_SIDE_EMIT on pub/sub). Awaiting the result completes at once.

        Raises:
            TetherError: a name node reserves (``connect``, ``connection``, ``new_namespace``).
            ClusterError: an argument msgpack cannot encode.
        """
        _check_server_side(event)
        self.adapter.server_side_emit(namespace, (event, *args))
        return SENT

    @in_loop
    def server_side_emit_with_ack(
        self, event: str, *args: Any, namespace: str = "/", timeout: float = 5.0
    ) -> asyncio.Task[Answers]:
        """:meth:`server_side_emit`, and the answer (the handler's return value) of every other node, for at
        most ``timeout`` seconds (node's ``serverSideEmitWithAck``, whose timeout is 5 s).

        The nodes expected are those listening on the namespace (``PUBSUB NUMSUB`` less this one, as node's
        adapter counts them). Node rejects when one is missing; the returned Task resolves to
        :class:`~tether.Answers` in both cases: ``timed_out`` and ``missing`` (nodes that did not answer).

        Raises:
            TetherError: a reserved name (at once).
            ClusterError: an argument msgpack cannot encode (from the Task).
        """
        _check_server_side(event)

        async def gather() -> Answers:
            answers, expected = await self.adapter.server_side_emit_with_ack(
                namespace, (event, *args), timeout
            )
            return Answers(answers, expected, timed_out=len(answers) < expected)

        task = asyncio.get_running_loop().create_task(gather())
        task.add_done_callback(_retrieve)
        return task


def _check_server_side(event: str) -> None:
    if not isinstance(event, str) or event in SERVER_SIDE_RESERVED:
        raise TetherError(f"{event!r} is a reserved event name (or not a name): not a server-side event")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an emit with acks nobody awaits is not an error
