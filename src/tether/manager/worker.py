"""A worker process: ``python -m tether.manager.worker SPEC`` (started by the master, never by hand).

SPEC is a JSON object: ``wid`` (this worker's id), ``listen_fd`` (the listening socket the master bound),
``channel_fd`` (this worker's end of its socket pair with the master), ``config`` and ``overrides`` (how to
load the config, exactly as the master did), ``handoff_prefix`` (where workers listen for hand-offs).

Life of a worker: load the config and import the route file (a failure is reported to the master as
``fatal`` and the process exits with status 3), serve on the shared socket, say ``ready``; then answer the
master (``stats``, ``pause``, ``stop``, ``peers``, ``mixed``) until told to stop, or until the channel
closes (the master is gone), or SIGTERM. SIGINT is ignored: Ctrl-C in a terminal is the master's to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from .. import logs
from ..cluster import make_adapter
from ..cluster.hub import CONTROL, FrameReader, HubAdapter, body_of, frame
from ..config import Config
from ..errors import ClusterError, ConfigError
from ..server.server import Server
from .handoff import Handoff

__all__ = ["Worker", "main"]

log = logging.getLogger("tether.manager.worker")

EXIT_FATAL = 3
"""Exit status of a worker that could not start (bad config, route file that fails to import)."""


class Worker:
    """One worker: a Server on the shared socket, linked to the master by its channel."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.wid: int = spec["wid"]
        self.server: Server | None = None
        self.adapter: HubAdapter | None = None
        self.handoff: Handoff | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._stop: asyncio.Future[tuple[str, float | None]] | None = None
        self._requests: dict[int, asyncio.Future[Any]] = {}
        self._next_request = 0
        self.paused = False

    def send(self, data: bytes) -> None:
        writer = self.writer
        if writer is not None and not writer.is_closing():
            writer.write(data)

    def send_control(self, body: dict[str, Any]) -> None:
        self.send(frame(CONTROL, body))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        channel = socket.socket(fileno=self.spec["channel_fd"])
        reader, self.writer = await asyncio.open_unix_connection(sock=channel)
        try:
            server = self._build()
            await server.startup(sock=socket.socket(fileno=self.spec["listen_fd"]))
            assert self.handoff is not None
            await self.handoff.serve(self.spec["handoff_prefix"] + str(self.wid))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ConfigError | OSError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "! worker %d cannot start: %s", self.wid, reason, exc_info=not isinstance(exc, ConfigError)
            )
            self.send_control({"t": "fatal", "error": reason})
            with contextlib.suppress(OSError):
                await self.writer.drain()
            return EXIT_FATAL
        loop.add_signal_handler(signal.SIGTERM, self._request_stop, "server shutting down", None)
        read_task = loop.create_task(self._read_forever(reader))
        self.send_control(
            {"t": "ready", "pid": os.getpid(), "parser": server.parser_cls.name, "url": server.url}
        )
        reason, timeout = await self._stop
        read_task.cancel()
        log.info("worker %d stopping: %s", self.wid, reason)
        await server.shutdown(reason, timeout)
        await self.handoff.close()
        self.send_control({"t": "exiting"})
        with contextlib.suppress(OSError):  # TimeoutError included
            async with asyncio.timeout(1):
                await self.writer.drain()
        return 0

    def _build(self) -> Server:
        spec = self.spec
        config = Config.load(spec["config"], overrides=spec["overrides"])
        self.adapter = HubAdapter(self.send, self.wid, config.redis.request_timeout)
        # Connection state recovery through the hub: the master keeps the host's log and sessions.
        self.adapter.sequences_emits = config.recovery.max_disconnection_duration > 0
        # With [room] driver = "redis" every worker is a node of the Redis cluster: Redis carries emits
        # between workers as between hosts, and the hub link to the master is only the control channel.
        server_adapter = make_adapter(config) if config.room.driver != "memory" else self.adapter
        server = Server(config, adapter=server_adapter)  # imports the route file
        server.sid_prefix = f"{self.wid}."
        server.leadership.follow_master()  # with Redis the lease decides (follow_master leaves it so)
        prefix = spec["handoff_prefix"]
        self.handoff = Handoff(server, self.wid, lambda wid: prefix + str(wid))
        server.foreign_sid_handler = self.handoff
        server.extensions["manager.worker"] = self
        server.extensions["metrics.collect"] = self.collect_metrics
        self.server = server
        return server

    def _request_stop(self, reason: str, timeout: float | None) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result((reason, timeout))

    # -- the channel ----------------------------------------------------------------------------------

    async def _read_forever(self, reader: asyncio.StreamReader) -> None:
        frames = FrameReader()
        adapter = self.adapter
        assert adapter is not None
        try:
            while True:
                data = await reader.read(262144)
                if not data:
                    break
                for kind, raw in frames.feed(data):
                    try:
                        if not adapter.receive_frame(kind, raw) and kind == CONTROL:
                            self._on_control(body_of(raw))
                    except ClusterError as exc:
                        log.error("! %s", exc)
        except (OSError, ClusterError) as exc:
            log.error("! channel to the master broke: %s", exc)
        log.warning("! the master is gone: worker %d stops", self.wid)
        self._request_stop("server shutting down", None)

    def _on_control(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        server = self.server
        assert server is not None and self.handoff is not None and self.adapter is not None
        if t == "stats":
            self.send_control({"t": "stats", "id": msg["id"], "data": self.stats()})
        elif t == "peers":
            self.handoff.live = set(msg["wids"])
            self.adapter.peers = set(msg["wids"])
            server.leadership.master_says(msg.get("leader") == self.wid)
        elif t == "mixed":
            self.adapter.mixed_parsers = bool(msg["value"])
        elif t == "pause":
            # A reload: the new workers accept now; stop taking connections, keep serving the open ones.
            self.paused = True
            server.stop_accepting()
            self.send_control({"t": "paused", "id": msg.get("id")})
        elif t == "stop":
            self._request_stop(str(msg.get("reason") or "server shutting down"), msg.get("timeout"))
        elif t == "collected":
            future = self._requests.pop(msg["id"], None)
            if future is not None and not future.done():
                future.set_result(msg)

    def stats(self) -> dict[str, Any]:
        """What ``tether infos`` shows for this worker, and the metrics snapshot for ``/metrics``."""
        server = self.server
        assert server is not None and self.handoff is not None and self.adapter is not None
        state = server.state
        metrics = server.extensions.get("metrics")
        return {
            "wid": self.wid,
            "pid": os.getpid(),
            "started_at": state.started_at,
            "connections": len(server.clients),
            "sockets": state.sockets,
            "rooms": sum(len(ns.rooms.all_rooms()) for ns in server.namespaces.values()),
            "events_in": state.events_in,
            "events_out": state.events_out,
            "handshakes": state.connections_total,
            "paused": self.paused,
            "draining": state.draining,
            "handoffs_sent": self.handoff.sent,
            "handoffs_received": self.handoff.received,
            "handoffs_failed": self.handoff.failed,
            "hub_published": self.adapter.published,
            "hub_received": self.adapter.received,
            "hub_backlog_bytes": self._backlog(),
            "metrics": metrics.snapshot() if metrics is not None else None,
        }

    def _backlog(self) -> int:
        writer = self.writer
        return writer.transport.get_write_buffer_size() if writer is not None else 0

    async def collect_metrics(self) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Every worker's metrics snapshot, through the master (``/metrics`` on any worker sees them all)."""
        self._next_request += 1
        rid = self._next_request
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests[rid] = future
        self.send_control({"t": "collect", "id": rid})
        try:
            async with asyncio.timeout(5):
                reply = await future
        except TimeoutError:
            self._requests.pop(rid, None)
            metrics = self.server.extensions.get("metrics") if self.server is not None else None
            return ([metrics.snapshot()] if metrics is not None else []), {"workers": 1.0}
        return list(reply["snapshots"]), dict(reply["instance"])


def _setup_logging(wid: int, level: str) -> None:
    logs.configure(
        level, f"%(asctime)s %(levelname)s [worker {wid} pid %(process)d] %(name)s: %(message)s", sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tether.manager.worker SPEC  (started by the tether master)", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _setup_logging(spec["wid"], spec.get("log_level", "info"))
    import uvloop

    started = time.monotonic()
    code = uvloop.run(Worker(spec).run())
    log.info("worker %d exits (%d) after %.1fs", spec["wid"], code, time.monotonic() - started)
    # What is left is the interpreter's own teardown, whose garbage collections walk the whole heap of a
    # worker that served clients: 0.3-0.5 s before the master sees the exit, on every stop and reload. Frozen
    # objects are skipped by those passes; they are freed by reference count as the modules are cleared.
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
