"""The master: supervises the workers, relays the hub, answers the control socket. It serves no traffic.

Theory of operation (see docs/process-model.md for the picture):

* The CLI binds the listening socket (SO_REUSEADDR) before the master starts, so a port in use fails the
  start with its reason. Workers get that one socket (``pass_fds``) and all accept on it; the kernel queue
  belongs to the socket, which the master keeps open, so connections waiting in it survive any worker.
* Each worker is ``python -m tether.manager.worker`` in its own session (Ctrl-C reaches the master only),
  linked by a Unix socket pair (its channel) that carries hub frames and control messages.
* A worker that dies is restarted in its slot after a backoff (``restart_backoff_min`` doubling to
  ``restart_backoff_max`` while it keeps dying within ``restart_stable_after`` of its start), with a log line
  giving its exit status. After ``restart_max_failures`` such deaths in a row the master gives up: a worker
  that cannot start (a database down at import, a broken deploy) is not restarted forever in a tight loop;
  the instance stops with exit status 1 so that a supervisor (systemd) sees it.
* Reload: start a new generation of workers one by one, each ready before the next (a failure stops the
  reload: the new ones are stopped, the old ones never stopped serving); then the old workers stop
  accepting, tell their clients to reconnect (they land on the new workers) and exit after their handlers.
* Stop: every worker closes its clients (they are told to reconnect) and waits for its handlers up to
  ``stop_timeout``; stragglers are killed ``stop_grace`` seconds later. A second stop or SIGINT kills them at
  once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..cluster.hub import (
    CONTROL,
    EMIT,
    KEEP,
    PARK_SECONDS,
    RELAYED,
    RESTORE,
    FrameReader,
    Hub,
    body_of,
    frame,
)
from ..config import Config
from ..errors import ClusterError, ConfigError
from ..metrics import aggregate, render
from ..recovery import RecoveryLog
from . import registry
from .control import ControlServer
from .paths import RunPaths
from .pidfile import PidFile
from .tcpstates import count_states

__all__ = ["Launch", "Master", "WorkerFailed", "describe_status", "n_workers", "worker_count"]

log = logging.getLogger("tether.manager")

SAMPLE_INTERVAL = 1.0
"""Seconds between two stats samples of every worker (events per second in ``infos``)."""


def recovery_log(config: Config) -> RecoveryLog | None:
    """The host's recovery log, kept by the master when ``[recovery]`` is on and workers share the hub
    (with ``[room] driver = "redis"`` the workers are nodes of their own)."""
    rec = config.recovery
    if rec.max_disconnection_duration <= 0 or config.room.driver != "memory":
        return None
    return RecoveryLog(
        rec.max_disconnection_duration,
        max_session_bytes=rec.max_session_bytes,
        max_buffer_bytes=rec.max_buffer_bytes,
        max_sessions=rec.max_sessions,
    )


def worker_count(config: Config) -> int:
    """``[server] workers``, with 0 meaning one per CPU core."""
    return config.server.workers or os.cpu_count() or 1


def n_workers(n: int) -> str:
    """``1 worker``, ``2 workers``: for log lines and the CLI."""
    return "1 worker" if n == 1 else f"{n} workers"


def describe_status(status: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` for a returncode."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class WorkerFailed(Exception):
    """A worker exited or reported a fatal error before it was ready."""


@dataclass(slots=True)
class Launch:
    """How this instance was started: what ``restart`` starts again and what a worker loads."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    config_path: str | None
    overrides: dict[str, dict[str, Any]]
    daemon: bool


@dataclass(eq=False)
class WorkerProc:
    slot: int
    wid: int
    generation: int
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    state: str = "starting"
    """starting, ready, paused (a reload's old worker), stopping, exited."""
    retiring: bool = False
    restarts: int = 0
    parser: str = ""
    error: str = ""
    exit_status: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=16))
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def send(self, body: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(CONTROL, body))


class Master:
    """The supervisor. :meth:`run` blocks until the instance stops and returns the exit status."""

    def __init__(
        self,
        config: Config,
        sock: socket.socket,
        paths: RunPaths,
        pidfile: PidFile | None,
        launch: Launch,
        on_ready: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.config = config
        self.sock = sock
        self.paths = paths
        self.pidfile = pidfile
        self.launch = launch
        self.on_ready = on_ready
        self.hub = Hub(recovery_log(config))
        self.workers: dict[int, WorkerProc] = {}
        self.slots: dict[int, WorkerProc] = {}
        self.generation = 0
        self.reloads = 0
        self.restarts_total = 0
        self.started = time.monotonic()
        self.started_at = time.time()
        self.stopping = False
        self.reloading = False
        self.exit_code = 0
        self.retired: list[dict[str, Any]] = []
        """Metrics counters of exited workers, so that instance totals never go down."""
        self._next_wid = 0
        self.leader: int | None = None
        """The worker that runs once-per-cluster tasks (see _peers_changed)."""
        self._next_request = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._backoff: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        """Quick deaths in a row, per slot (see ``restart_max_failures``)."""
        self._done: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sigint = 0
        self.control = ControlServer(paths.control_socket, self._on_request)
        self._metrics_server: asyncio.Server | None = None
        self._registered: str | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.sock.getsockname()[0]
        scheme = "https" if self.config.server.tls_cert else "http"
        return f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """``http://127.0.0.1:9502/metrics`` when ``[metrics] listen`` is served, else None."""
        if self._metrics_server is None:
            return None
        host, port = self._metrics_server.sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{self.config.metrics.path}"

    def run(self) -> int:
        import uvloop

        return uvloop.run(self._main())

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            loop.add_signal_handler(sig, self._on_reload_signal, sig)
        try:
            await self.control.start()
        except OSError as exc:
            self._ready(False, f"cannot open the control socket {self.paths.control_socket}: {exc}")
            return 1
        metrics = self.config.metrics
        if metrics.enabled and metrics.listen:
            from .. import metrics_listener

            try:
                self._metrics_server = await metrics_listener.start(
                    metrics.listen, metrics.path, self._render_metrics
                )
            except (OSError, ValueError) as exc:
                self._ready(False, f"cannot listen on metrics.listen {metrics.listen}: {exc}")
                await self.control.stop()
                return 1
            log.info("metrics on %s", self.metrics_url)
        self.generation = 1
        try:
            await self._start_generation(worker_count(self.config), self.generation, one_by_one=False)
        except WorkerFailed as exc:
            self._ready(False, f"a worker failed to start: {exc}")
            self.stopping = True
            await self._stop_workers(list(self.workers.values()), "start failed", 0)
            await self._cleanup()
            return 1
        log.info(
            "tether %s master pid %d: %s on %s (config %s)",
            __version__,
            os.getpid(),
            n_workers(len(self.slots)),
            self.url,
            self.config.source,
        )
        self._ready(True, self.url)
        self._registered = registry.register(
            {
                "pid": os.getpid(),
                "config": self._config_name(),
                "pid_file": self.paths.pid_file,
                "control_socket": self.paths.control_socket,
                "listen": self.url,
                "metrics": self.metrics_url,
                "started_at": self.started_at,
            }
        )
        sampler = loop.create_task(self._sample_forever())
        await self._done.wait()
        sampler.cancel()
        await self._cleanup()
        return self.exit_code

    def _ready(self, ok: bool, text: str) -> None:
        if self.on_ready is not None:
            on_ready, self.on_ready = self.on_ready, None
            on_ready(ok, text)
        if not ok:
            log.error("! %s", text)

    def _config_name(self) -> str:
        return os.path.abspath(self.config.source) if self.launch.config_path else self.config.source

    async def _cleanup(self) -> None:
        if self._registered:
            registry.unregister(os.getpid())
        await self.control.stop()
        if self._metrics_server is not None:
            self._metrics_server.close()
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.pidfile is not None:
            self.pidfile.release()
        for task in list(self._tasks):
            task.cancel()
        log.info("tether master pid %d stopped", os.getpid())

    # -- workers --------------------------------------------------------------------------------------

    async def _spawn(self, slot: int, generation: int) -> WorkerProc:
        self._next_wid += 1
        wid = self._next_wid
        parent, child = socket.socketpair()
        spec = {
            "wid": wid,
            "listen_fd": self.sock.fileno(),
            "channel_fd": child.fileno(),
            "config": self.launch.config_path,
            "overrides": self.launch.overrides,
            "handoff_prefix": self.paths.handoff_prefix,
            "log_level": self.config.server.log_level,
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tether.manager.worker",
                json.dumps(spec),
                pass_fds=(self.sock.fileno(), child.fileno()),
                start_new_session=True,
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        w = WorkerProc(slot, wid, generation, process, writer)
        self.workers[wid] = w
        self.hub.add(wid, lambda data: None if writer.is_closing() else writer.write(data))
        self._spawn_task(self._read_worker(w, reader))
        self._spawn_task(self._watch(w))
        log.info("worker %d (slot %d) started: pid %d", wid, slot, w.pid)
        return w

    async def _start_worker(self, slot: int, generation: int) -> WorkerProc:
        w = await self._spawn(slot, generation)
        try:
            await asyncio.wait_for(asyncio.shield(w.ready), self.config.server.worker_start_timeout)
        except TimeoutError:
            w.retiring = True
            with contextlib.suppress(ProcessLookupError):
                w.process.kill()
            limit = self.config.server.worker_start_timeout
            raise WorkerFailed(
                f"worker {w.wid} not ready after {limit:g}s (server.worker_start_timeout)"
            ) from None
        return w

    async def _start_generation(self, n: int, generation: int, one_by_one: bool) -> list[WorkerProc]:
        """Start ``n`` workers: all at once (first start), or one after the other, each ready before the next
        (reload: the machine keeps its old workers' capacity while the new ones import the app).

        Raises:
            WorkerFailed: one could not start; the ones this call started are stopped.
        """
        new: list[WorkerProc] = []
        try:
            if one_by_one:
                for slot in range(n):
                    new.append(await self._start_worker(slot, generation))
            else:
                results = await asyncio.gather(
                    *(self._start_worker(slot, generation) for slot in range(n)), return_exceptions=True
                )
                new = [r for r in results if isinstance(r, WorkerProc)]
                for r in results:
                    if isinstance(r, BaseException):
                        raise r
        except WorkerFailed:
            for w in new:
                w.retiring = True
            await self._stop_workers(new, "start failed", 0)
            raise
        for w in new:
            old = self.slots.get(w.slot)
            self.slots[w.slot] = w
            if old is not None and old is not w:
                old.retiring = True
        return new

    async def _read_worker(self, w: WorkerProc, reader: asyncio.StreamReader) -> None:
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
                        self._on_worker_message(w, body_of(raw))
        except (OSError, ClusterError) as exc:
            log.error("! channel of worker %d broke: %s", w.wid, exc)

    def _release_parked(self, pid: str) -> None:
        self.hub.release_parked(pid, time.monotonic())

    def _on_worker_message(self, w: WorkerProc, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "stats":
            w.stats = msg["data"]
            w.samples.append((time.monotonic(), w.stats["events_in"], w.stats["events_out"]))
            future = self._pending.pop(msg["id"], None)
            if future is not None and not future.done():
                future.set_result(msg["data"])
        elif t == "ready":
            w.state = "ready"
            w.parser = msg.get("parser", "")
            if not w.ready.done():
                w.ready.set_result(None)
            self._peers_changed()
        elif t == "paused":
            future = self._pending.pop(msg["id"], None)
            if future is not None and not future.done():
                future.set_result(msg)
        elif t == "fatal":
            w.error = str(msg.get("error", ""))
        elif t == "collect":
            self._spawn_task(self._answer_collect(w, msg["id"]))
        elif t == "exiting":
            w.state = "stopping"

    def _peers_changed(self) -> None:
        live = [x for x in self.workers.values() if x.state in ("ready", "paused", "stopping")]
        wids = [x.wid for x in live]
        # The worker that runs once-per-cluster tasks (tether.server.leader): the same one while it lives,
        # so that a worker starting or a reload never moves the tasks; else the oldest alive.
        if self.leader not in wids:
            self.leader = min(wids) if wids else None
        self.hub.broadcast_control({"t": "peers", "wids": wids, "leader": self.leader})
        parsers = {x.parser for x in live if x.parser}
        self.hub.broadcast_control({"t": "mixed", "value": len(parsers) > 1})

    async def _watch(self, w: WorkerProc) -> None:
        status = await w.process.wait()
        w.exit_status = status
        w.state = "exited"
        self.workers.pop(w.wid, None)
        self.hub.remove(w.wid)
        self._peers_changed()
        with contextlib.suppress(OSError):
            w.writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.handoff_prefix + str(w.wid))
        snapshot = (w.stats or {}).get("metrics")
        if snapshot:
            self.retired = [aggregate([*self.retired, snapshot], counters_only=True)]
        if not w.ready.done():
            w.ready.set_exception(
                WorkerFailed(w.error or f"worker {w.wid} exited ({describe_status(status)})")
            )
            w.ready.exception()  # retrieved: a failed start is reported by the caller
        lived = time.monotonic() - w.started
        if w.retiring or self.stopping or self.slots.get(w.slot) is not w:
            log.info("worker %d (pid %d) exited: %s", w.wid, w.pid, describe_status(status))
            return
        cfg = self.config.server
        stable = lived >= cfg.restart_stable_after
        failures = 0 if stable else self._failures.get(w.slot, 0) + 1
        self._failures[w.slot] = failures
        if cfg.restart_max_failures and failures >= cfg.restart_max_failures:
            log.critical(
                "! worker slot %d died %d times in a row within %gs of its start (last: worker %d, pid %d, "
                "%s%s); not restarting it (server.restart_max_failures = %d): stopping the instance, exit "
                "status 1",
                w.slot,
                failures,
                cfg.restart_stable_after,
                w.wid,
                w.pid,
                describe_status(status),
                f", {w.error}" if w.error else "",
                cfg.restart_max_failures,
            )
            self.exit_code = 1
            self._spawn_task(self.stop())
            return
        backoff = self._backoff.get(w.slot, 0.0)
        if stable or backoff == 0:
            backoff = cfg.restart_backoff_min
        else:
            backoff = min(backoff * 2, cfg.restart_backoff_max)
        self._backoff[w.slot] = backoff
        log.error(
            "! worker %d (pid %d, slot %d) exited unexpectedly: %s after %.1fs%s; restarting in %gs",
            w.wid,
            w.pid,
            w.slot,
            describe_status(status),
            lived,
            f" ({w.error})" if w.error else "",
            backoff,
        )
        await asyncio.sleep(backoff)
        if self.stopping or self.slots.get(w.slot) is not w:
            return
        try:
            new = await self._spawn(w.slot, w.generation)
        except OSError as exc:
            log.error("! cannot start a worker: %s", exc)
            return
        new.restarts = w.restarts + 1
        self.restarts_total += 1
        self.slots[w.slot] = new

    # -- stats ----------------------------------------------------------------------------------------

    async def _request_stats(self, w: WorkerProc, timeout: float) -> dict[str, Any] | None:
        self._next_request += 1
        rid = self._next_request
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        w.send({"t": "stats", "id": rid})
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(rid, None)

    async def _collect(self, timeout: float) -> list[WorkerProc]:
        """Every worker, with fresh stats from those that serve (``w.stats``; the last known one for a
        worker that is late; none yet for one that is starting)."""
        workers = list(self.workers.values())
        serving = [w for w in workers if w.state in ("ready", "paused", "stopping")]
        await asyncio.gather(*(self._request_stats(w, timeout) for w in serving))
        return sorted(workers, key=lambda w: (w.retiring, w.slot, w.wid))

    @staticmethod
    def _backlog(w: WorkerProc) -> int:
        """Bytes the master has not yet written to a worker's channel (a slow worker's queue)."""
        return 0 if w.writer.is_closing() else int(w.writer.transport.get_write_buffer_size())

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            await self._collect(SAMPLE_INTERVAL)

    async def _answer_collect(self, asker: WorkerProc, rid: int) -> None:
        snapshots, instance = await self._metrics_inputs()
        asker.send({"t": "collected", "id": rid, "snapshots": snapshots, "instance": instance})

    async def _metrics_inputs(self) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Every worker's fresh metrics snapshot (plus exited ones' counters) and the instance gauges."""
        live = await self._collect(2.0)
        snapshots = [w.stats["metrics"] for w in live if w.stats.get("metrics")] + self.retired
        instance = {
            "workers": float(sum(1 for w in live if not w.retiring and w.state == "ready")),
            "worker_restarts_total": float(self.restarts_total),
            "reloads_total": float(self.reloads),
            "uptime_seconds": time.monotonic() - self.started,
            "hub_frames_relayed_total": float(self.hub.relayed),
            **{
                f"recovery_{key}": float(value)
                for key, value in (self.hub.recovery.stats() if self.hub.recovery is not None else {}).items()
            },
            "hub_backlog_bytes": float(
                sum(self._backlog(w) + w.stats.get("hub_backlog_bytes", 0) for w in live)
            ),
        }
        return snapshots, instance

    async def _render_metrics(self) -> bytes:
        snapshots, instance = await self._metrics_inputs()
        return render(snapshots, instance)

    @staticmethod
    def _rates(w: WorkerProc) -> tuple[float, float]:
        """Events in/out per second over the last few samples."""
        if len(w.samples) < 2:
            return 0.0, 0.0
        t1, in1, out1 = w.samples[-1]
        # The oldest sample of the last ~5 s: a rate over a few samples, not the noise of one interval.
        t0, in0, out0 = next(s for s in w.samples if t1 - s[0] <= 5.5)
        dt = t1 - t0
        return ((in1 - in0) / dt, (out1 - out0) / dt) if dt > 0 else (0.0, 0.0)

    async def infos(self) -> dict[str, Any]:
        live = await self._collect(2.0)
        now = time.monotonic()
        workers = []
        for w in live:
            s = w.stats
            rate_in, rate_out = self._rates(w)
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
                    "rss": _rss(w.pid),
                    "events_in": s.get("events_in", 0),
                    "events_out": s.get("events_out", 0),
                    "events_in_per_s": round(rate_in, 2),
                    "events_out_per_s": round(rate_out, 2),
                    "handshakes": s.get("handshakes", 0),
                    "handoffs_sent": s.get("handoffs_sent", 0),
                    "handoffs_received": s.get("handoffs_received", 0),
                    "hub_backlog_bytes": s.get("hub_backlog_bytes", 0) + self._backlog(w),
                    "restarts": w.restarts,
                }
            )
        totals: dict[str, Any] = {"workers": sum(1 for w in live if not w.retiring and w.state == "ready")}
        for key in (
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
        ):
            totals[key] = round(sum(x[key] for x in workers), 2)
        return {
            "ok": True,
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(now - self.started, 3),
            "started_at": self.started_at,
            "listen": self.url,
            "metrics": self.metrics_url,
            "host": self.sock.getsockname()[0],
            "port": self.port,
            "config": self._config_name(),
            "pid_file": self.paths.pid_file,
            "log_file": self.paths.log_file if self.launch.daemon else None,
            "control_socket": self.paths.control_socket,
            "daemon": self.launch.daemon,
            "generation": self.generation,
            "reloads": self.reloads,
            "restarts": self.restarts_total,
            "master_rss": _rss(os.getpid()),
            "workers": workers,
            "totals": totals,
            "tcp": count_states(self.port),
            "stopping": self.stopping,
            "reloading": self.reloading,
        }

    # -- control --------------------------------------------------------------------------------------

    async def _on_request(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid(), "version": __version__}
        if cmd == "infos":
            return await self.infos()
        if cmd == "reload":
            return await self.reload()
        if cmd == "stop":
            forced = bool(req.get("force")) or self.stopping
            self._spawn_task(self.stop(force=forced))
            return {"ok": True, "pid": os.getpid(), "forced": forced}
        if cmd == "launch":
            launch = self.launch
            return {
                "ok": True,
                "pid": os.getpid(),
                "argv": launch.argv,
                "cwd": launch.cwd,
                "env": launch.env,
                "daemon": launch.daemon,
            }
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def _on_stop_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self._sigint += 1
        force = self.stopping and (sig == signal.SIGINT or self._sigint > 1)
        log.info("%s: %s", signal.Signals(sig).name, "forcing stop" if force else "stopping")
        self._spawn_task(self.stop(force=force))

    def _on_reload_signal(self, sig: int) -> None:
        log.info("%s: reloading", signal.Signals(sig).name)

        async def reload() -> None:
            result = await self.reload()
            if not result.get("ok"):
                log.error("! reload failed: %s", result.get("error"))

        self._spawn_task(reload())

    async def stop(self, force: bool = False) -> None:
        """Graceful stop: workers close their clients and wait for handlers; ``force`` kills them now."""
        assert self._done is not None
        if force:
            log.warning("! forced stop: killing the workers")
            for w in list(self.workers.values()):
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()
            self.stopping = True
            await asyncio.gather(*(w.process.wait() for w in list(self.workers.values())))
            self._done.set()
            return
        if self.stopping:
            return
        self.stopping = True
        log.info(
            "stopping %s (stop_timeout %gs)", n_workers(len(self.workers)), self.config.server.stop_timeout
        )
        await self._stop_workers(
            list(self.workers.values()), "server shutting down", self.config.server.stop_timeout
        )
        self._done.set()

    async def _stop_workers(self, workers: list[WorkerProc], reason: str, timeout: float) -> None:
        """Tell ``workers`` to stop; kill the ones still running ``timeout + stop_grace`` seconds later."""
        grace = self.config.server.stop_grace
        for w in workers:
            w.send({"t": "stop", "reason": reason, "timeout": timeout})
        waits = [asyncio.ensure_future(w.process.wait()) for w in workers]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=timeout + grace)
        if pending:
            for w in workers:
                if w.process.returncode is None:
                    log.warning(
                        "! worker %d (pid %d) still running after %gs: killed",
                        w.wid,
                        w.pid,
                        timeout + grace,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        w.process.kill()
            await asyncio.wait(waits)

    async def _pause(self, w: WorkerProc) -> None:
        w.retiring = True
        w.state = "paused"
        self._next_request += 1
        rid = self._next_request
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        w.send({"t": "pause", "id": rid})
        try:
            await asyncio.wait_for(future, 2.0)
        except TimeoutError:
            log.warning("! worker %d did not confirm it stopped accepting", w.wid)
        finally:
            self._pending.pop(rid, None)

    async def reload(self) -> dict[str, Any]:
        """Rolling reload with the config file read again and the route file imported afresh."""
        if self.stopping:
            return {"ok": False, "error": "the instance is stopping"}
        if self.reloading:
            return {"ok": False, "error": "a reload is already in progress"}
        self.reloading = True
        started = time.monotonic()
        try:
            try:
                config = Config.load(self.launch.config_path, overrides=self.launch.overrides)
            except ConfigError as exc:
                return {"ok": False, "error": f"config error: {exc}; the running workers keep serving"}
            warnings = [
                f"server.{key} changed: restart to apply it"
                for key in ("host", "port", "pid_file", "control_socket", "log_file", "tls_cert", "tls_key")
                if getattr(config.server, key) != getattr(self.config.server, key)
            ]
            generation = self.generation + 1
            try:
                new = await self._start_generation(worker_count(config), generation, one_by_one=True)
            except WorkerFailed as exc:
                log.error("! reload failed, the old workers keep serving: %s", exc)
                return {
                    "ok": False,
                    "error": f"new worker failed to start: {exc}; the old workers keep serving",
                }
            self.generation = generation
            self.config = config
            self.reloads += 1
            old = [w for w in self.workers.values() if w not in new]
            # Every old worker stops accepting before any of them closes its clients: a client told to
            # reconnect must not land on an old worker that has not stopped accepting yet.
            await asyncio.gather(*(self._pause(w) for w in old))
            log.info(
                "reload: %s ready (%s); draining %d old",
                n_workers(len(new)).replace("worker", "new worker"),
                ", ".join(str(w.pid) for w in new),
                len(old),
            )
            await self._stop_workers(old, "server reloading", config.server.stop_timeout)
            seconds = time.monotonic() - started
            log.info("reload done in %.2fs", seconds)
            return {
                "ok": True,
                "generation": generation,
                "workers": [w.pid for w in new],
                "replaced": [w.pid for w in old],
                "seconds": round(seconds, 3),
                "warnings": warnings,
            }
        finally:
            self.reloading = False


def _rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
