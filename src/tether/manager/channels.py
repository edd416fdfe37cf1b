"""The master's end of every worker's channel (a Unix socket pair): hub frames relayed between workers,
recovery frames kept for the host, control messages from workers, and requests that wait for an answer.

A channel carries frames of :mod:`tether.cluster.hub`: the relayed kinds go to the other workers as they
came, the recovery kinds (``EMIT``, ``KEEP``, ``RESTORE``) feed the master's recovery log, and ``CONTROL``
frames are JSON messages between the master and one worker (``{"t": "ready"}``, ``{"t": "stats", "id": 3}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..cluster.hub import CONTROL, EMIT, KEEP, PARK_SECONDS, RELAYED, RESTORE, FrameReader, Hub, body_of
from ..errors import ClusterError
from .workerproc import WorkerProc

__all__ = ["Channels", "SpawnTask"]

log = logging.getLogger("tether.manager")

SpawnTask = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
"""Runs a coroutine as a task the master cancels when it stops."""


class Channels:
    """Every live worker by id (:attr:`workers`) and the channel to each.

    Args:
        hub: relays frames between the workers and keeps the recovery log.
        spawn_task: runs the reading loop of each channel.
        on_collect: answers a worker that asks for every worker's metrics (``{"t": "collect", "id": n}``).
    """

    def __init__(
        self,
        hub: Hub,
        spawn_task: SpawnTask,
        on_collect: Callable[[WorkerProc, int], Coroutine[Any, Any, None]],
    ) -> None:
        self.hub = hub
        self.workers: dict[int, WorkerProc] = {}
        self.leader: int | None = None
        """The worker that runs once-per-cluster tasks (see :meth:`peers_changed`)."""
        self._spawn_task = spawn_task
        self._on_collect = on_collect
        self._next_request = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def open(self, w: WorkerProc, reader: asyncio.StreamReader) -> None:
        """Count ``w`` among the workers and start relaying what it sends."""
        self.workers[w.wid] = w
        writer = w.writer
        self.hub.add(w.wid, lambda data: None if writer.is_closing() else writer.write(data))
        self._spawn_task(self._read(w, reader))

    def close(self, w: WorkerProc) -> None:
        """``w`` exited: forget it and tell the others."""
        self.workers.pop(w.wid, None)
        self.hub.remove(w.wid)
        self.peers_changed()
        with contextlib.suppress(OSError):
            w.writer.close()

    async def request(self, w: WorkerProc, t: str, timeout: float) -> dict[str, Any] | None:
        """Send ``{"t": t, "id": n}`` to ``w``; the answer with that id, or None after ``timeout`` seconds."""
        self._next_request += 1
        rid = self._next_request
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        w.send({"t": t, "id": rid})
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None
        finally:
            self._pending.pop(rid, None)

    def _answered(self, rid: int, answer: dict[str, Any]) -> None:
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(answer)

    async def _read(self, w: WorkerProc, reader: asyncio.StreamReader) -> None:
        frames = FrameReader()
        hub = self.hub
        try:
            while True:
                data = await reader.read(262144)
                if not data:
                    break
                for kind, raw in frames.feed(data):
                    if kind in RELAYED:
                        hub.relay(w.wid, kind, raw)
                    elif kind in (EMIT, KEEP, RESTORE):
                        try:
                            if hub.receive_recovery(w.wid, kind, raw, time.monotonic()):
                                asyncio.get_running_loop().call_later(
                                    PARK_SECONDS, self._release_parked, body_of(raw)[1]
                                )
                        except ClusterError as exc:
                            log.error("! worker %d: %s", w.wid, exc)
                    elif kind == CONTROL:
                        self._on_message(w, body_of(raw))
        except (OSError, ClusterError) as exc:
            log.error("! channel of worker %d broke: %s", w.wid, exc)

    def _release_parked(self, pid: str) -> None:
        self.hub.release_parked(pid, time.monotonic())

    def _on_message(self, w: WorkerProc, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "stats":
            w.stats = msg["data"]
            w.samples.append((time.monotonic(), w.stats["events_in"], w.stats["events_out"]))
            self._answered(msg["id"], msg["data"])
        elif t == "ready":
            w.state = "ready"
            w.parser = msg.get("parser", "")
            if not w.ready.done():
                w.ready.set_result(None)
            self.peers_changed()
        elif t == "paused":
            self._answered(msg["id"], msg)
        elif t == "fatal":
            w.error = str(msg.get("error", ""))
        elif t == "collect":
            self._spawn_task(self._on_collect(w, msg["id"]))
        elif t == "exiting":
            w.state = "stopping"

    def peers_changed(self) -> None:
        live = [x for x in self.workers.values() if x.state in ("ready", "paused", "stopping")]
        wids = [x.wid for x in live]
        # The worker that runs once-per-cluster tasks (tether.server.leader): the same one while it lives,
        # so that a worker starting or a reload never moves the tasks; else the oldest alive.
        if self.leader not in wids:
            self.leader = min(wids) if wids else None
        self.hub.broadcast_control({"t": "peers", "wids": wids, "leader": self.leader})
        parsers = {x.parser for x in live if x.parser}
        self.hub.broadcast_control({"t": "mixed", "value": len(parsers) > 1})
