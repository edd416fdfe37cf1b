"""Room membership of one namespace as a plain data structure (no I/O).

Every socket is in the room named by its own sid, as in Socket.IO. Rooms map to insertion-ordered dicts
so that iteration order (delivery order of a broadcast) is stable and removal is O(1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Rooms"]

T = TypeVar("T")


class Rooms(Generic[T]):
    """Members of type ``T`` (sockets) keyed by sid, and the rooms they are in."""

    __slots__ = ("_members", "_rooms", "_rooms_of")

    def __init__(self) -> None:
        self._members: dict[str, T] = {}
        self._rooms: dict[str, dict[str, T]] = {}
        self._rooms_of: dict[str, set[str]] = {}

    def add(self, sid: str, member: T) -> None:
        """Add a member; it joins the room of its own sid."""
        self._members[sid] = member
        self._rooms_of[sid] = set()
        self.join(sid, sid)

    def remove(self, sid: str) -> T | None:
        """Remove a member from every room. Returns it, or None if it was not here."""
        member = self._members.pop(sid, None)
        for room in self._rooms_of.pop(sid, ()):
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
        self._rooms.setdefault(room, {})[sid] = member
        self._rooms_of[sid].add(room)
        return True

    def leave(self, sid: str, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None and members.pop(sid, None) is not None:
            self._rooms_of[sid].discard(room)
            if not members:
                del self._rooms[room]

    def get(self, sid: str) -> T | None:
        return self._members.get(sid)

    def rooms_of(self, sid: str) -> set[str]:
        return set(self._rooms_of.get(sid, ()))

    def room_count_of(self, sid: str) -> int:
        return len(self._rooms_of.get(sid, ()))

    def members(self, room: str) -> dict[str, T]:
        """The members of ``room`` (read-only view: do not mutate)."""
        return self._rooms.get(room, {})

    def select(self, rooms: Iterable[str], exclude: Iterable[str] = ()) -> Iterator[T]:
        """Members in any of ``rooms`` (all members when ``rooms`` is empty), minus those in ``exclude`` rooms.

        Each member is yielded once even when it is in several of the rooms.
        """
        rooms = tuple(rooms)
        excluded: set[str] = set()
        for room in exclude:
            excluded.update(self._rooms.get(room, ()))
        if not rooms:
            source: Iterable[tuple[str, T]] = self._members.items()
            if not excluded:
                yield from self._members.values()
                return
            for sid, m in source:
                if sid not in excluded:
                    yield m
            return
        if len(rooms) == 1:
            for sid, m in self._rooms.get(rooms[0], {}).items():
                if sid not in excluded:
                    yield m
            return
        seen: set[str] = set(excluded)
        for room in rooms:
            for sid, m in self._rooms.get(room, {}).items():
                if sid not in seen:
                    seen.add(sid)
                    yield m

    def all_rooms(self) -> list[str]:
        """Rooms other than the sid rooms."""
        return [r for r in self._rooms if r not in self._members]

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, sid: object) -> bool:
        return sid in self._members
