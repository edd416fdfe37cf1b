"""Prometheus metrics, aggregated over every worker, served where the operator says.

Where: never on the public port by accident. ``[metrics] listen`` (``127.0.0.1:9502``) is a separate
listener run by the master (:mod:`tether.metrics_listener`); ``[metrics] key`` also serves ``[metrics]
path`` on the service port to requests carrying ``Authorization: Bearer KEY`` (compared in constant time;
401 without it, 403 with another key). With neither, metrics are counted but not served over HTTP.

Metrics observe and never drive: :func:`install` registers hooks on the server (events in, emits out,
handler durations) that count into plain dicts, and reads :class:`~tether.server.state.ServerState` when
scraped. Nothing here is imported by the core.

Aggregation over workers: each worker keeps its own counters; a scrape that lands on any worker asks the
master (over the worker's channel, see :mod:`tether.manager`) for every worker's :meth:`Metrics.snapshot`,
sums them and renders the sum, so one scrape sees the whole instance. The master adds the last counters
of workers that exited, so totals never go down on a reload or a crash. This was chosen over
prometheus-client's multiprocess mode, which needs a shared folder of mmap files, cannot sum gauges
without per-metric modes and leaves files behind dead workers; the master already talks to every worker.

Label cardinality is bounded: event names come from clients, so only names with a route get their own
label (``_unrouted`` otherwise) and at most :data:`MAX_NAMES` names are kept (``_other`` after that).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .server.state import LATENCY_BUCKETS, MAX_NAMES

if TYPE_CHECKING:
    from .handler import Request
    from .server.server import Server

__all__ = ["BUCKETS", "MAX_NAMES", "Metrics", "aggregate", "install", "render"]

BUCKETS = LATENCY_BUCKETS


Snapshot = dict[str, Any]
Collect = Callable[[], Awaitable[tuple[list[Snapshot], dict[str, float]]]]
"""``server.extensions["metrics.collect"]``: every worker's snapshot plus instance gauges (manager)."""

_COUNTERS = ("handshakes", "rejected", "handler_errors", "protocol_errors", "slow_consumers", "http_requests")
_GAUGES = ("connections", "sockets", "queued_messages", "send_buffer_bytes")


class Metrics:
    """One worker's counters. Built by :func:`install`; read with :meth:`snapshot`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        # The per-name tables live on ServerState, updated inline by the server (see ServerState.observe).
        server.state.observe = True
        self.events_in = server.state.events_in_by_name
        self.events_out = server.state.events_out_by_name
        self.latency = server.state.handler_latency

    def _events_in_routed(self) -> dict[str, int]:
        """``events_in`` with the names no namespace routes folded into ``_unrouted``."""
        router = self.server.router
        namespaces = router.namespaces() or ["/"]
        out: dict[str, int] = {}
        for name, n in self.events_in.items():
            routed = name == "_other" or any(
                router.get(ns, name) is not None or router.get(ns, "*") is not None for ns in namespaces
            )
            key = name if routed else "_unrouted"
            out[key] = out.get(key, 0) + n
        return out

    def snapshot(self) -> Snapshot:
        """This worker's metrics as plain data (msgpack/JSON-able), the unit of aggregation."""
        server = self.server
        state = server.state
        queued = 0
        buffered = 0
        for client in server.clients.values():
            queued += client.conn.queued_messages
            ws = client.ws
            if ws is not None:
                try:
                    buffered += ws.underlying_transport.get_write_buffer_size()
                except Exception:
                    continue
        return {
            "connections": len(server.clients),
            "sockets": state.sockets,
            "handshakes": state.connections_total,
            "rejected": state.rejected,
            "handler_errors": state.handler_errors,
            "protocol_errors": state.protocol_errors,
            "slow_consumers": state.slow_consumers,
            "http_requests": state.http_requests,
            "queued_messages": queued,
            "send_buffer_bytes": buffered,
            "disconnects": dict(state.disconnects),
            # Connection state recovery with this process's own log (with workers the master's log is
            # reported with the instance gauges; with Redis Streams the stream is the log).
            "recovery": recovery_stats(server),
            "events_in": self._events_in_routed(),
            "events_out": dict(self.events_out),
            "latency": {k: list(v) for k, v in self.latency.items()},
        }


def recovery_stats(server: Any) -> dict[str, int]:
    """The recovery log's sizes and counters when this process keeps its own (else empty)."""
    recovery = getattr(server, "recovery", None)
    if recovery is None or recovery.remote:
        return {}
    return dict(recovery.log.stats())


def _add_counts(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


def aggregate(snapshots: Iterable[Snapshot], counters_only: bool = False) -> Snapshot:
    """Sum worker snapshots; ``counters_only`` leaves gauges out (for the totals of exited workers)."""
    total: Snapshot = {k: 0 for k in _COUNTERS}
    if not counters_only:
        total.update({k: 0 for k in _GAUGES})
    for key in ("disconnects", "events_in", "events_out", "latency", "recovery"):
        total[key] = {}
    for snap in snapshots:
        for key in _COUNTERS if counters_only else _COUNTERS + _GAUGES:
            total[key] += snap.get(key, 0)
        for key in ("disconnects", "events_in", "events_out", "recovery"):
            _add_counts(total[key], snap.get(key, {}))
        for name, row in snap.get("latency", {}).items():
            mine = total["latency"].setdefault(name, [0.0] * len(row))
            for i, v in enumerate(row):
                mine[i] += v
    return total


# The instance-wide values the master adds (tether.manager.sampling.metrics_inputs), or a lone server's
# uptime; other keys (the recovery log's sizes) get their name as help.
_INSTANCE_HELP = {
    "workers": "Workers ready to serve",
    "worker_restarts_total": "Workers replaced after they exited",
    "reloads_total": "Rolling reloads done",
    "uptime_seconds": "Seconds since the instance started",
    "hub_frames_relayed_total": "Frames the master relayed between workers",
    "hub_backlog_bytes": "Bytes waiting to be written between the master and its workers",
}


class _Families:
    def __init__(self, snap: Snapshot, instance: dict[str, float]) -> None:
        self.snap = snap
        self.instance = instance

    def collect(self) -> Iterator[Any]:
        s = self.snap
        yield GaugeMetricFamily(
            "tether_connections", "Open Engine.IO connections", value=s.get("connections", 0)
        )
        yield GaugeMetricFamily(
            "tether_sockets", "Connected Socket.IO sockets (namespaces)", value=s.get("sockets", 0)
        )
        yield CounterMetricFamily("tether_handshakes", "Engine.IO sessions opened", value=s["handshakes"])
        yield CounterMetricFamily("tether_rejected", "Connections or namespaces refused", value=s["rejected"])
        yield CounterMetricFamily("tether_handler_errors", "Handlers that raised", value=s["handler_errors"])
        yield CounterMetricFamily(
            "tether_protocol_errors", "Clients that broke the protocol", value=s["protocol_errors"]
        )
        yield CounterMetricFamily(
            "tether_slow_consumers", "Times a client's send buffer overflowed", value=s["slow_consumers"]
        )
        yield CounterMetricFamily("tether_http_requests", "HTTP requests served", value=s["http_requests"])
        for key, help_text in (
            ("events_in", "Events received from clients, by event name"),
            ("events_out", "Event deliveries to sockets, by event name"),
        ):
            fam = CounterMetricFamily(f"tether_{key}", help_text, labels=["event"])
            for name, n in sorted(s[key].items()):
                fam.add_metric([name], n)
            yield fam
        recovery = s.get("recovery") or {}
        if recovery:
            gauge = GaugeMetricFamily(
                "tether_recovery",
                "Connection state recovery: entries, bytes and sessions kept; sessions persisted, recovered, "
                "refused, expired, evicted; packets replayed",
                labels=["what"],
            )
            for what, n in sorted(recovery.items()):
                gauge.add_metric([what], n)
            yield gauge
        fam = CounterMetricFamily("tether_disconnects", "Closed connections, by reason", labels=["reason"])
        for reason, n in sorted(s["disconnects"].items()):
            fam.add_metric([reason], n)
        yield fam
        hist = HistogramMetricFamily("tether_handler_seconds", "Event handler duration", labels=["event"])
        fails = CounterMetricFamily(
            "tether_handler_failures", "Handlers that raised or timed out, by event", labels=["event"]
        )
        for name, row in sorted(s["latency"].items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, n in zip((*(str(b) for b in BUCKETS), "+Inf"), row[: len(BUCKETS) + 1], strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            hist.add_metric([name], buckets, row[-2])
            fails.add_metric([name], row[-1])
        yield hist
        yield fails
        yield GaugeMetricFamily(
            "tether_queued_messages", "Packets queued for polling clients", value=s.get("queued_messages", 0)
        )
        yield GaugeMetricFamily(
            "tether_send_buffer_bytes",
            "Bytes waiting in WebSocket send buffers",
            value=s.get("send_buffer_bytes", 0),
        )
        for key, value in sorted(self.instance.items()):
            # A name ending in _total only counts up (restarts, reloads, relayed frames): typed a counter, so
            # that rate() and promtool read it as one (a gauge named *_total is a lint error).
            family = CounterMetricFamily if key.endswith("_total") else GaugeMetricFamily
            yield family(f"tether_{key}", _INSTANCE_HELP.get(key, key.replace("_", " ")), value=value)


def render(snapshots: list[Snapshot], instance: dict[str, float] | None = None) -> bytes:
    """The Prometheus text exposition of the sum of ``snapshots`` plus instance-wide gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(aggregate(snapshots), instance or {}))
    return generate_latest(registry)


def install(server: Server) -> None:
    """Count events, emits and handler durations on ``server``; serve ``[metrics] path`` on the service port
    when ``[metrics] key`` is set."""
    cfg = server.config.metrics
    if not cfg.enabled or not (cfg.listen or cfg.key):
        # Served nowhere (the default): the per-event tables and handler timings would be kept for nobody.
        # They are about a tenth of an echo's Python (bench/PROFILE.md); a worker that serves them was
        # started with ``listen`` or ``key`` set (neither is applied to a running worker), so it counts
        # from its own start, as a counter after a restart does.
        return
    metrics = Metrics(server)
    server.extensions["metrics"] = metrics
    if not cfg.key:
        return
    key = cfg.key.encode()

    async def serve(request: Request, body: bytes) -> tuple[int, dict[str, str], bytes]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return (
                401,
                {"Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="metrics"'},
                b"missing bearer key\n",
            )
        if not hmac.compare_digest(token.strip().encode(), key):
            return 403, {"Content-Type": "text/plain"}, b"wrong metrics key\n"
        collect: Collect | None = server.extensions.get("metrics.collect")
        instance: dict[str, float] = {}
        if collect is not None:
            snapshots, instance = await collect()
        else:
            snapshots = [metrics.snapshot()]
            instance = {
                "uptime_seconds": time.time() - server.state.started_at if server.state.started_at else 0.0
            }
        return 200, {"Content-Type": CONTENT_TYPE_LATEST}, render(snapshots, instance)

    server.add_http_route("GET", cfg.path, serve)
