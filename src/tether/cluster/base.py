"""The adapter interface: how a broadcast made in one process reaches sockets in the others.

A server always delivers to its own sockets first (:meth:`Server.deliver_local`), then, when its
adapter is remote, calls :meth:`Adapter.publish`; every other process receives the message and
delivers it locally. Local-first keeps the common single-process case free of any bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server.server import Server

__all__ = ["Adapter", "BroadcastMessage"]


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

    def __init__(self) -> None:
        self.server: Server | None = None

    def attach(self, server: Server) -> None:
        self.server = server

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, message: BroadcastMessage, packets: list[bytes]) -> None:
        """Send ``message`` (already encoded as ``packets``) to the other processes."""
        return None

    def is_user_online_remote(self, user_room: str, namespace: str) -> bool:
        """True when another process has a socket in ``user_room`` of ``namespace``."""
        return False

    def user_online_changed(self, namespace: str, user_room: str, online: bool) -> None:
        """This process got its first socket in ``user_room`` (``online``) or lost its last one.

        Called by the server for rooms named by :meth:`Server.user_room` only, so that an adapter can
        answer :meth:`is_user_online_remote` without a round trip. Default: nothing to tell.
        """
        return None
