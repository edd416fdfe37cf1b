"""What a client did, as decoded by a parser: the values :meth:`Connection.receive_message` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Ack", "ClientEvent", "Connect", "Disconnect", "Event"]


@dataclass(frozen=True, slots=True)
class Connect:
    """The client asks to join ``namespace``; ``auth`` is its CONNECT payload (or query params on ``/ws``)."""

    namespace: str
    auth: Any = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The client left ``namespace`` (``namespace=None``: the whole connection) for ``reason``."""

    namespace: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Event:
    """An event with its arguments; ``ack_id`` is set when the client waits for an answer."""

    namespace: str
    name: str
    args: list[Any]
    ack_id: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The client's answer to an event the server emitted with an ack id."""

    namespace: str
    id: int
    args: list[Any]


ClientEvent = Connect | Disconnect | Event | Ack
