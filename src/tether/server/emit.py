"""Addressing and delivery: what the application emits reaches the right sockets, here and elsewhere.

Local first: an emit is encoded once, written to the matching sockets of this process, then handed to
the adapter for the other workers and nodes (:mod:`tether.cluster`), which deliver it with
:meth:`Emitting.deliver_local`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..cluster.base import BroadcastMessage
from ..context import BroadcastOperator
from .membership import Membership

__all__ = ["Emitting"]


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

    def of(self, namespace: str) -> BroadcastOperator:
        """The emit chain of ``namespace``."""
        return BroadcastOperator(self, namespace)

    def emit(self, event: str, *args: Any, namespace: str = "/") -> Any:
        """Send ``event`` to every client of ``namespace`` on every worker and node."""
        return BroadcastOperator(self, namespace).emit(event, *args)

    def to(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator:
        return BroadcastOperator(self, namespace).to(room)

    in_ = to

    def except_(self, room: str | Iterable[str], namespace: str = "/") -> BroadcastOperator:
        return BroadcastOperator(self, namespace).except_(room)

    def to_user(self, user_id: Any, namespace: str = "/") -> BroadcastOperator:
        """Every socket (every tab, every worker) bound to ``user_id``."""
        return BroadcastOperator(self, namespace, (self.user_room(user_id),))
