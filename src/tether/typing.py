"""Names for the values that move through Tether, so a room and a sid cannot be swapped silently."""

from __future__ import annotations

from typing import Any, NewType, TypeAlias

__all__ = ["Data", "Namespace", "Room", "Sid", "WireMessage"]

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
