"""Room membership of one namespace as a plain data structure (no I/O).

Every socket is in the room named by its own sid, as in Socket.IO. That room is implicit: it is not
stored, since a dict and a set per idle connection for a room nobody joins cost about 0.5 KiB, a twentieth
of the whole per-connection budget. Named rooms map to insertion-ordered dicts so that delivery order
is stable and removal is O(1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Rooms"]

T = TypeVar("T")

_NO_ROOMS: frozenset[str] = frozenset()


class Rooms(Generic[T]):
    """Members of type ``T`` (sockets) keyed by sid, and the named rooms they are in."""

    __slots__ = ("_members", "_rooms", "_rooms_of")

    def __init__(self) -> None:
        self._members: dict[str, T] = {}
        self._rooms: dict[str, dict[str, T]] = {}
        self._rooms_of: dict[str, set[str]] = {}
        """Named rooms of each sid that joined at least one."""

    def add(self, sid: str, member: T) -> None:
        """Add a member; it is in the room of its own sid from now on."""
        self._members[sid] = member

    def remove(self, sid: str) -> T | None:
        """Remove a member from every room. Returns it, or None if it was not here."""
        member = self._members.pop(sid, None)
        for room in self._rooms_of.pop(sid, _NO_ROOMS):
            members = self._rooms.get(room)
            if members is not None:
                members.pop(sid, None)
                if not members:
                    del self._rooms[room]
        return member

    def join(self, sid: str, room: str) -> bool:
        """Put ``sid`` in ``room``. Returns False if ``sid`` is not a member."""
        member = self._members.get(sid)
        if member is None:
            return False
        if room == sid:
            return True
        self._rooms.setdefault(room, {})[sid] = member
        self._rooms_of.setdefault(sid, set()).add(room)
        return True

    def leave(self, sid: str, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None and members.pop(sid, None) is not None:
            rooms = self._rooms_of[sid]
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[sid]
            if not members:
                del self._rooms[room]

    def get(self, sid: str) -> T | None:
        return self._members.get(sid)

    def rooms_of(self, sid: str) -> set[str]:
        """The rooms of ``sid``, its own sid room included (empty if it is not a member)."""
        if sid not in self._members:
            return set()
        return {sid, *self._rooms_of.get(sid, _NO_ROOMS)}

    def is_in(self, sid: str, room: str) -> bool:
        return room in self._rooms_of.get(sid, _NO_ROOMS) or (room == sid and sid in self._members)

    def room_count_of(self, sid: str) -> int:
        """Named rooms ``sid`` is in (its own sid room does not count)."""
        return len(self._rooms_of.get(sid, _NO_ROOMS))

    def members(self, room: str) -> dict[str, T]:
        """The members of ``room`` (read-only: do not mutate the result)."""
        members = self._rooms.get(room)
        if members is not None:
            return members
        member = self._members.get(room)
        return {room: member} if member is not None else {}

    def _excluded(self, rooms: Iterable[str]) -> set[str]:
        excluded: set[str] = set()
        for room in rooms:
            members = self._rooms.get(room)
            if members is not None:
                excluded.update(members)
            elif room in self._members:
                excluded.add(room)
        return excluded

    def select(self, rooms: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[T]:
        """Members in any of ``rooms`` (all members when ``rooms`` is empty), minus those in ``exclude``.

        Each member is yielded once even when it is in several of the rooms.
        """
        rooms = tuple(rooms)
        excluded = self._excluded(exclude) if exclude else _NO_ROOMS
        if not rooms:
            if not excluded:
                yield from self._members.values()
                return
            for sid, m in self._members.items():
                if sid not in excluded:
                    yield m
            return
        if len(rooms) == 1:
            for sid, m in self.members(rooms[0]).items():
                if sid not in excluded:
                    yield m
            return
        seen: set[str] = set(excluded)
        for room in rooms:
            for sid, m in self.members(room).items():
                if sid not in seen:
                    seen.add(sid)
                    yield m

    def all_rooms(self) -> list[str]:
        """Named rooms (not the sid rooms) that have members."""
        return list(self._rooms)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, sid: object) -> bool:
        return sid in self._members
