"""The rolling reload: new workers with the config file read again and the route file imported afresh.

The sequence: read the config (an error leaves the running workers serving); start the new generation one
worker at a time, each ready before the next (a failure stops the reload: the new ones are stopped, the old
ones never stopped serving); then every old worker stops accepting, and only then do they tell their clients
to reconnect (they land on the new workers) and exit after their handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import ConfigError
from .sdnotify import Notifier
from .supervisor import Supervisor
from .workerproc import WorkerFailed, WorkerProc, n_workers, worker_count

__all__ = ["RESTART_ONLY", "Reloader", "restart_only_changes"]

log = logging.getLogger("tether.manager")

RESTART_ONLY = (
    *(
        ("server", key)
        for key in ("host", "port", "pid_file", "control_socket", "log_file", "tls_cert", "tls_key")
    ),
    ("metrics", "listen"),
    *(
        ("recovery", key)
        for key in ("max_disconnection_duration", "max_buffer_bytes", "max_session_bytes", "max_sessions")
    ),
)
"""``(section, key)`` pairs a reload cannot apply, because the master holds what they name (the listening
socket, the run files, the metrics listener, the host's recovery log with ``[room] driver = "memory"``): a
change is a warning, given to ``tether reload`` and logged."""


def restart_only_changes(held: Config, config: Config) -> list[str]:
    """The warnings for the :data:`RESTART_ONLY` keys ``config`` changes from ``held`` (what the master
    started with): ``["server.port changed: restart to apply it", ...]``."""
    # The host's recovery log is the master's only with the memory driver (with Redis Streams each worker
    # is a node of its own, the stream is the log, and new workers apply the [recovery] keys).
    master_log = "memory" in (config.room.driver, held.room.driver)
    warnings = [
        f"{section}.{key} changed: restart to apply it"
        for section, key in RESTART_ONLY
        if (section != "recovery" or master_log)
        and getattr(getattr(config, section), key) != getattr(getattr(held, section), key)
    ]
    if held.metrics.listen and config.metrics.path != held.metrics.path:
        # The service port (with a key) takes the new path at once; the master's listener keeps its own.
        warnings.append(f"metrics.path changed: restart to apply it on {held.metrics.listen}")
    return warnings


class Reloader:
    """Runs one reload at a time (:attr:`reloading`) and counts them (:attr:`reloads`).

    A reload that starts is told to the service manager (``notifier``: RELOADING=1, then READY=1 with
    ``status()``, or with why it failed: the old workers serve either way); one refused is not.
    """

    def __init__(self, supervisor: Supervisor, notifier: Notifier, status: Callable[[], str]) -> None:
        self.supervisor = supervisor
        self.notifier = notifier
        self.status = status
        # What the master holds was set up from the config it started with, not from the last reload's:
        # a RESTART_ONLY change is warned about at every reload until a restart applies it.
        self.started_with = supervisor.config
        self.reloading = False
        self.reloads = 0

    async def reload(self) -> dict[str, Any]:
        """Rolling reload with the config file read again and the route file imported afresh.

        Returns:
            The control socket's answer: ``{"ok": True, "generation", "workers", "replaced", "seconds",
            "warnings"}``, or ``{"ok": False, "error"}`` (the running workers keep serving).
        """
        sup = self.supervisor
        if sup.stopping:
            return {"ok": False, "error": "the instance is stopping"}
        if self.reloading:
            return {"ok": False, "error": "a reload is already in progress"}
        self.reloading = True
        self.notifier.reloading()
        try:
            result = await self._reload()
        finally:
            self.reloading = False
        if not sup.stopping:
            status = self.status()
            if not result["ok"]:
                status = f"reload failed ({result['error']}); {status}"
            self.notifier.ready(status)
        return result

    async def _reload(self) -> dict[str, Any]:
        sup = self.supervisor
        started = time.monotonic()
        try:
            config = Config.load(sup.launch.config_path, overrides=sup.launch.overrides)
        except ConfigError as exc:
            return {"ok": False, "error": f"config error: {exc}; the running workers keep serving"}
        warnings = restart_only_changes(self.started_with, config)
        for warning in warnings:
            log.warning("! reload: %s", warning)
        generation = sup.generation + 1
        try:
            new = await sup.start_generation(worker_count(config), generation, one_by_one=True)
        except WorkerFailed as exc:
            log.error("! reload failed, the old workers keep serving: %s", exc)
            return {
                "ok": False,
                "error": f"new worker failed to start: {exc}; the old workers keep serving",
            }
        sup.generation = generation
        sup.config = config
        self.reloads += 1
        old = [w for w in sup.workers.values() if w not in new]
        # Every old worker stops accepting before any of them closes its clients: a client told to
        # reconnect must not land on an old worker that has not stopped accepting yet.
        await asyncio.gather(*(self._pause(w) for w in old))
        log.info(
            "reload: %s ready (%s); draining %d old",
            n_workers(len(new)).replace("worker", "new worker"),
            ", ".join(str(w.pid) for w in new),
            len(old),
        )
        await sup.stop_workers(old, "server reloading", config.server.stop_timeout)
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

    async def _pause(self, w: WorkerProc) -> None:
        w.retiring = True
        w.state = "paused"
        if await self.supervisor.channels.request(w, "pause", 2.0) is None:
            log.warning("! worker %d did not confirm it stopped accepting", w.wid)
