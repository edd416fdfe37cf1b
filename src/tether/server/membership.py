"""Who is where: the namespaces of this process, their rooms, and the users bound to sockets.

A namespace's rooms are a plain :class:`~tether.rooms.Rooms`; a user is a room named
``user:<id>`` (:meth:`Membership.user_room`), so that reaching "every tab of a user" is a room emit and a
remote adapter learns only when a user's first socket arrives or last one leaves here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..context import Socket
from ..errors import TetherError
from .core import ServerCore

__all__ = ["USER_ROOM_PREFIX", "Membership"]

USER_ROOM_PREFIX = "user:"


class Membership(ServerCore):
    """Rooms and users of the namespaces of this process (a layer of :class:`~tether.server.Server`)."""

    def join_socket(self, sock: Socket, room: str) -> None:
        """Put ``sock`` (of this process) in ``room``; ``enter_room`` takes a sid of any process.

        Raises:
            TetherError: over ``[limits] max_rooms_per_socket`` (its own sid room does not count).
        """
        if not sock.connected:
            return  # refused, or its client left while it was connecting: it must leave no trace
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

    def _remove_from_rooms(self, sock: Socket) -> None:
        """Take ``sock`` out of every room; a user whose last socket here it was goes offline."""
        rooms = sock._ns.rooms
        user_rooms = [r for r in rooms.rooms_of(sock.sid) if r.startswith(USER_ROOM_PREFIX)]
        rooms.remove(sock.sid)
        for room in user_rooms:
            if not rooms.members(room):
                self.adapter.user_online_changed(sock.namespace, room, False)

    def leave_socket(self, sock: Socket, room: str) -> None:
        """Take ``sock`` (of this process) out of ``room``; ``leave_room`` takes a sid of any process."""
        rooms = sock._ns.rooms
        rooms.leave(sock.sid, room)
        if room.startswith(USER_ROOM_PREFIX) and not rooms.members(room):
            self.adapter.user_online_changed(sock.namespace, room, False)
        for hook in self.room_hooks:
            hook(sock, room, False)

    def local_sockets(
        self, namespace: str, rooms: Iterable[str] = (), except_rooms: Iterable[str] = ()
    ) -> Iterator[Socket]:
        ns = self.namespaces.get(namespace)
        if ns is None:
            return iter(())
        return ns.rooms.select(rooms, except_rooms)

    @staticmethod
    def user_room(user_id: Any) -> str:
        """The room every socket of ``user_id`` is in after ``login_using``."""
        return f"{USER_ROOM_PREFIX}{user_id}"

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
