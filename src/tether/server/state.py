"""Counters a worker keeps about itself: what ``tether infos`` and ``/metrics`` read.

Observed, never acted on.."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ServerState"]


@dataclass(slots=True)
class ServerState:
    started_at: float = 0.0
    connections_total: int = 0
    sockets: int = 0
    events_in: int = 0
    events_out: int = 0
    handler_errors: int = 0
    rejected: int = 0
    protocol_errors: int = 0
    slow_consumers: int = 0
    """Times a client went over its send buffer's high-water mark."""
    dropped_messages: int = 0
    """Packets not sent to slow consumers (``drop`` policy, or while a ``disconnect`` is pending)."""
    rate_limited: int = 0
    http_requests: int = 0
    handshakes: int = 0
    draining: bool = False
    disconnects: dict[str, int] = field(default_factory=dict)
