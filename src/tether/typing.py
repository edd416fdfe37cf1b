"""Names for the values that move through Tether, so a room and a sid cannot be swapped silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NewType, TypeAlias

__all__ = ["Data", "EmitHook", "Namespace", "OutgoingHook", "Room", "Sid", "WireMessage"]

Sid = NewType("Sid", str)
"""A Socket.IO socket id: one per client per namespace; every socket is in the room of its own sid."""

Room = NewType("Room", str)
"""A room name. A sid is also a room."""

Namespace = NewType("Namespace", str)
"""A Socket.IO namespace such as ``"/"`` or ``"/chat"``."""

Data: TypeAlias = Any
"""A JSON-compatible value, possibly with ``bytes`` inside (sent as binary attachments)."""

WireMessage: TypeAlias = "str | bytes"
"""One Engine.IO message payload: text (``str``) or binary (``bytes``)."""

EmitHook: TypeAlias = Callable[[str, str, int], None]
"""``(namespace, event, sockets reached)`` after an emit left this process's sockets."""

OutgoingHook: TypeAlias = Callable[[str, str, tuple[Any, ...], tuple[str, ...], tuple[str, ...]], None]
"""``(namespace, event, args, rooms, except_rooms)`` of an emit delivered in this process (a socket's
own emit: ``rooms == (sid,)``); the admin UI's ``event_sent``."""
