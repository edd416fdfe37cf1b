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

This module is the facade: startup, signals, stop and ``infos``. The parts it wires together::

    workerproc.py  WorkerProc (one worker as the master sees it), Launch, worker_count, n_workers
    channels.py    each worker's channel: hub frames relayed, control messages, requests with an answer
    supervisor.py  workers in their slots: start, restart with a backoff, stop
    reload.py      the rolling reload
    sdnotify.py    systemd's readiness protocol (READY=1, RELOADING=1, STOPPING=1 on NOTIFY_SOCKET)
    sampling.py    stats and metrics asked of the workers, the rows of ``infos``
    answers.py     what the control socket's commands answer
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .. import __version__
from ..cluster.hub import Hub
from ..config import Config
from ..metrics import render
from ..recovery import RecoveryLog
from . import registry
from .answers import answer
from .channels import Channels
from .control import ControlServer
from .paths import RunPaths
from .pidfile import PidFile
from .reload import Reloader
from .sampling import collect, metrics_inputs, sample_forever, worker_rows
from .sdnotify import Notifier
from .supervisor import Supervisor
from .tcpstates import count_states
from .workerproc import Launch, WorkerFailed, WorkerProc, describe_status, n_workers, rss, worker_count

__all__ = ["Launch", "Master", "WorkerFailed", "describe_status", "n_workers", "worker_count"]

log = logging.getLogger("tether.manager")


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
        self.sock = sock
        self.paths = paths
        self.pidfile = pidfile
        self.launch = launch
        self.on_ready = on_ready
        self.started = time.monotonic()
        self.started_at = time.time()
        self.exit_code = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.channels = Channels(Hub(recovery_log(config)), self.spawn_task, self._answer_collect)
        self.supervisor = Supervisor(
            config, sock, paths, launch, self.channels, self.spawn_task, self._give_up
        )
        self.notifier = Notifier.from_environment()
        """systemd's ``NOTIFY_SOCKET`` (``Type=notify``): ready, reloading, stopping (:mod:`.sdnotify`)."""
        self.reloader = Reloader(self.supervisor, self.notifier, self._serving_status)
        self._done: asyncio.Event | None = None
        self._sigint = 0
        self.control = ControlServer(paths.control_socket, self._on_request)
        self._metrics_server: asyncio.Server | None = None
        self._registered: str | None = None

    @property
    def config(self) -> Config:
        """The config the workers run with (a reload replaces it)."""
        return self.supervisor.config

    @property
    def workers(self) -> dict[int, WorkerProc]:
        return self.supervisor.workers

    @property
    def stopping(self) -> bool:
        return self.supervisor.stopping

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
        # The path the listener serves: the config it started with, not a reload's.
        return f"http://{host}:{port}{self.reloader.started_with.metrics.path}"

    def _metrics_on_port(self) -> str | None:
        """``http://127.0.0.1:9501/metrics`` when ``[metrics] key`` serves them on the service port."""
        metrics = self.config.metrics
        return f"{self.url}{metrics.path}" if metrics.enabled and metrics.key else None

    def run(self) -> int:
        import uvloop

        return uvloop.run(self._main())

    def spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that stopping the master cancels."""
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
        sup = self.supervisor
        sup.generation = 1
        try:
            await sup.start_generation(worker_count(self.config), sup.generation, one_by_one=False)
        except WorkerFailed as exc:
            self._ready(False, f"a worker failed to start: {exc}")
            sup.stopping = True
            await sup.stop_workers(list(self.workers.values()), "start failed", 0)
            await self._cleanup()
            return 1
        log.info(
            "tether %s master pid %d: %s on %s (config %s)",
            __version__,
            os.getpid(),
            n_workers(len(sup.slots)),
            self.url,
            self.config.source,
        )
        self._ready(True, self.url)
        self.notifier.ready(self._serving_status())
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
        sampler = loop.create_task(sample_forever(self.channels))
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
            self.notifier.status(f"not started: {text}")

    def _serving_status(self) -> str:
        """The service manager's STATUS= line while serving."""
        sup = self.supervisor
        return f"serving on {self.url}: {n_workers(len(sup.slots))}, generation {sup.generation}"

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

    def _give_up(self) -> None:
        """A worker slot keeps dying (``restart_max_failures``): stop with exit status 1."""
        self.exit_code = 1
        self.spawn_task(self.stop())

    # -- metrics and infos ----------------------------------------------------------------------------

    async def _answer_collect(self, asker: WorkerProc, rid: int) -> None:
        snapshots, instance = await metrics_inputs(self.supervisor, self.reloader.reloads, self.started)
        asker.send({"t": "collected", "id": rid, "snapshots": snapshots, "instance": instance})

    async def _render_metrics(self) -> bytes:
        snapshots, instance = await metrics_inputs(self.supervisor, self.reloader.reloads, self.started)
        return render(snapshots, instance)

    async def infos(self) -> dict[str, Any]:
        """The answer to ``infos``: the instance, a row a worker and their totals (docs/cli.md)."""
        live = await collect(self.channels, 2.0)
        now = time.monotonic()
        workers, totals = worker_rows(live, now)
        sup = self.supervisor
        return {
            "ok": True,
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(now - self.started, 3),
            "started_at": self.started_at,
            "listen": self.url,
            "metrics": self.metrics_url,
            "metrics_on_port": self._metrics_on_port(),
            "host": self.sock.getsockname()[0],
            "port": self.port,
            "config": self._config_name(),
            "pid_file": self.paths.pid_file,
            "log_file": self.paths.log_file if self.launch.daemon else None,
            "control_socket": self.paths.control_socket,
            "daemon": self.launch.daemon,
            "generation": sup.generation,
            "reloads": self.reloader.reloads,
            "restarts": sup.restarts_total,
            "master_rss": rss(os.getpid()),
            "workers": workers,
            "totals": totals,
            "tcp": count_states(self.port),
            "stopping": sup.stopping,
            "reloading": self.reloader.reloading,
        }

    # -- control --------------------------------------------------------------------------------------

    async def _on_request(self, req: dict[str, Any]) -> dict[str, Any]:
        return await answer(self, req)

    def _on_stop_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self._sigint += 1
        force = self.stopping and (sig == signal.SIGINT or self._sigint > 1)
        log.info("%s: %s", signal.Signals(sig).name, "forcing stop" if force else "stopping")
        self.spawn_task(self.stop(force=force))

    def _on_reload_signal(self, sig: int) -> None:
        log.info("%s: reloading", signal.Signals(sig).name)

        async def reload() -> None:
            result = await self.reload()
            if not result.get("ok"):
                log.error("! reload failed: %s", result.get("error"))

        self.spawn_task(reload())

    async def reload(self) -> dict[str, Any]:
        """Rolling reload with the config file read again and the route file imported afresh."""
        return await self.reloader.reload()

    async def stop(self, force: bool = False) -> None:
        """Graceful stop: workers close their clients and wait for handlers; ``force`` kills them now."""
        assert self._done is not None
        sup = self.supervisor
        if force:
            log.warning("! forced stop: killing the workers")
            await sup.kill_all()
            self._done.set()
            return
        if sup.stopping:
            return
        sup.stopping = True
        self.notifier.stopping()
        log.info(
            "stopping %s (stop_timeout %gs)", n_workers(len(self.workers)), self.config.server.stop_timeout
        )
        await sup.stop_workers(
            list(self.workers.values()), "server shutting down", self.config.server.stop_timeout
        )
        self._done.set()
