"""What the master knows of its workers' load: stats asked of every worker each second (``infos``'s events per
second), the metrics of the whole instance (every worker's snapshot plus the instance gauges), and the rows
and totals of ``tether infos``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .channels import Channels
from .supervisor import Supervisor
from .workerproc import WorkerProc, rss

__all__ = [
    "SAMPLE_INTERVAL",
    "backlog",
    "collect",
    "metrics_inputs",
    "rates",
    "sample_forever",
    "worker_rows",
]

SAMPLE_INTERVAL = 1.0
"""Seconds between two stats samples of every worker (events per second in ``infos``)."""

_TOTALS = (
    "connections",
    "sockets",
    "rooms",
    "rss",
    "events_in",
    "events_out",
    "events_in_per_s",
    "events_out_per_s",
    "handshakes",
    "handoffs_sent",
    "restarts",
)
"""The per-worker columns of ``infos`` summed in its ``totals``."""


async def collect(channels: Channels, timeout: float) -> list[WorkerProc]:
    """Every worker, with fresh stats from those that serve (``w.stats``; the last known one for a
    worker that is late; none yet for one that is starting)."""
    workers = list(channels.workers.values())
    serving = [w for w in workers if w.state in ("ready", "paused", "stopping")]
    await asyncio.gather(*(channels.request(w, "stats", timeout) for w in serving))
    return sorted(workers, key=lambda w: (w.retiring, w.slot, w.wid))


async def sample_forever(channels: Channels) -> None:
    while True:
        await asyncio.sleep(SAMPLE_INTERVAL)
        await collect(channels, SAMPLE_INTERVAL)


def backlog(w: WorkerProc) -> int:
    """Bytes the master has not yet written to a worker's channel (a slow worker's queue)."""
    return 0 if w.writer.is_closing() else int(w.writer.transport.get_write_buffer_size())


def rates(w: WorkerProc) -> tuple[float, float]:
    """Events in/out per second over the last few samples."""
    if len(w.samples) < 2:
        return 0.0, 0.0
    t1, in1, out1 = w.samples[-1]
    # The oldest sample of the last ~5 s: a rate over a few samples, not the noise of one interval.
    t0, in0, out0 = next(s for s in w.samples if t1 - s[0] <= 5.5)
    dt = t1 - t0
    return ((in1 - in0) / dt, (out1 - out0) / dt) if dt > 0 else (0.0, 0.0)


async def metrics_inputs(
    supervisor: Supervisor, reloads: int, started: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every worker's fresh metrics snapshot (plus exited ones' counters) and the instance gauges."""
    live = await collect(supervisor.channels, 2.0)
    hub = supervisor.channels.hub
    snapshots = [w.stats["metrics"] for w in live if w.stats.get("metrics")] + supervisor.retired
    instance = {
        "workers": float(sum(1 for w in live if not w.retiring and w.state == "ready")),
        "worker_restarts_total": float(supervisor.restarts_total),
        "reloads_total": float(reloads),
        "uptime_seconds": time.monotonic() - started,
        "hub_frames_relayed_total": float(hub.relayed),
        **{
            f"recovery_{key}": float(value)
            for key, value in (hub.recovery.stats() if hub.recovery is not None else {}).items()
        },
        "hub_backlog_bytes": float(sum(backlog(w) + w.stats.get("hub_backlog_bytes", 0) for w in live)),
    }
    return snapshots, instance


def worker_rows(live: list[WorkerProc], now: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``workers`` rows of ``infos`` (one a worker of ``live``) and their ``totals``."""
    workers = []
    for w in live:
        s = w.stats
        rate_in, rate_out = rates(w)
        workers.append(
            {
                "slot": w.slot,
                "id": w.wid,
                "pid": w.pid,
                "state": "draining" if w.retiring else w.state,
                "generation": w.generation,
                "uptime": round(now - w.started, 3),
                "connections": s.get("connections", 0),
                "sockets": s.get("sockets", 0),
                "rooms": s.get("rooms", 0),
                "rss": rss(w.pid),
                "events_in": s.get("events_in", 0),
                "events_out": s.get("events_out", 0),
                "events_in_per_s": round(rate_in, 2),
                "events_out_per_s": round(rate_out, 2),
                "handshakes": s.get("handshakes", 0),
                "handoffs_sent": s.get("handoffs_sent", 0),
                "handoffs_received": s.get("handoffs_received", 0),
                "hub_backlog_bytes": s.get("hub_backlog_bytes", 0) + backlog(w),
                "restarts": w.restarts,
            }
        )
    totals: dict[str, Any] = {"workers": sum(1 for w in live if not w.retiring and w.state == "ready")}
    for key in _TOTALS:
        totals[key] = round(sum(x[key] for x in workers), 2)
    return workers, totals
