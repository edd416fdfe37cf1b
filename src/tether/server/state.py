"""Counters a worker keeps about itself: what ``tether infos`` and ``/metrics`` read.

Observed, never acted on.."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "MAX_NAMES", "ServerState"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the handler latency histogram; +Inf is implied."""

MAX_NAMES = 200
"""Distinct event names kept per table; more are counted under ``_other``. Incoming events are counted
under their name only when it has a route (``_unrouted`` otherwise), and no name a client sends is longer
than ``[limits] max_name_length``: a table holds at most 200 names of bounded length."""


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
    observe: bool = False
    """Keep the per-event-name tables below (set by :mod:`tether.metrics`). They are updated inline on
    the hot path, a dict update each, because a hook call per event cost about a fifth of an echo."""
    events_in_by_name: dict[str, int] = field(default_factory=dict)
    events_out_by_name: dict[str, int] = field(default_factory=dict)
    handler_latency: dict[str, list[float]] = field(default_factory=dict)
    """event -> bucket counts (len(LATENCY_BUCKETS) + 1, the last is +Inf), then the sum, then failures."""

    def count_in(self, name: str) -> None:
        table = self.events_in_by_name
        n = table.get(name)
        if n is None:
            name = _bounded(table, name)
            n = table.get(name, 0)
        table[name] = n + 1

    def count_out(self, name: str, reached: int) -> None:
        table = self.events_out_by_name
        n = table.get(name)
        if n is None:
            name = _bounded(table, name)
            n = table.get(name, 0)
        table[name] = n + reached

    def time_handler(self, name: str, seconds: float, ok: bool) -> None:
        row = self.handler_latency.get(name)
        if row is None:
            key = _bounded(self.handler_latency, name)
            row = self.handler_latency.get(key)
            if row is None:
                row = self.handler_latency[key] = [0.0] * (len(LATENCY_BUCKETS) + 3)
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[-2] += seconds
        if not ok:
            row[-1] += 1


def _bounded(table: Mapping[str, object], name: str) -> str:
    if name in table or len(table) < MAX_NAMES:
        return name
    return "_other"
