"""Worker supervision: start workers in their slots, restart one that dies (with a backoff), stop them.

Each worker is ``python -m tether.manager.worker`` in its own session (Ctrl-C reaches the master only), given
the listening socket and one end of its channel (``pass_fds``). A slot is a place for one worker: a reload
puts a new worker in each slot, a restart puts a new worker in the slot of the one that died.

Restart backoff: ``restart_backoff_min`` doubling to ``restart_backoff_max`` while the worker keeps dying
within ``restart_stable_after`` of its start; after ``restart_max_failures`` such deaths in a row the slot is
given up on (``on_give_up``: the master stops the instance with exit status 1, so that a supervisor such as
systemd sees it rather than a worker restarted forever in a tight loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..metrics import aggregate
from .channels import Channels, SpawnTask
from .paths import RunPaths
from .workerproc import Launch, WorkerFailed, WorkerProc, describe_status

__all__ = ["Supervisor"]

log = logging.getLogger("tether.manager")


class Supervisor:
    """The workers of every slot.

    Args:
        config: the config the workers run with (replaced by a reload).
        sock: the listening socket every worker accepts on.
        paths: where the instance's run files are (the hand-off sockets of the workers).
        launch: what a worker loads (config file and overrides).
        channels: the channel to each worker.
        spawn_task: runs the task that waits for each worker's exit.
        on_give_up: called when a slot keeps dying (``restart_max_failures``).
    """

    def __init__(
        self,
        config: Config,
        sock: socket.socket,
        paths: RunPaths,
        launch: Launch,
        channels: Channels,
        spawn_task: SpawnTask,
        on_give_up: Callable[[], None],
    ) -> None:
        self.config = config
        self.sock = sock
        self.paths = paths
        self.launch = launch
        self.channels = channels
        self.slots: dict[int, WorkerProc] = {}
        self.generation = 0
        self.restarts_total = 0
        self.stopping = False
        self.retired: list[dict[str, Any]] = []
        """Metrics counters of exited workers, so that instance totals never go down."""
        self._spawn_task = spawn_task
        self._on_give_up = on_give_up
        self._next_wid = 0
        self._backoff: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        """Quick deaths in a row, per slot (see ``restart_max_failures``)."""

    @property
    def workers(self) -> dict[int, WorkerProc]:
        """Every live worker by id (starting, serving, draining)."""
        return self.channels.workers

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
        self.channels.open(w, reader)
        self._spawn_task(self._watch(w))
        log.info("worker %d (slot %d) started: pid %d", wid, slot, w.pid)
        return w

    async def _start_worker(self, slot: int, generation: int) -> WorkerProc:
        w = await self._spawn(slot, generation)
        try:
            async with asyncio.timeout(self.config.server.worker_start_timeout):
                await asyncio.shield(w.ready)
        except TimeoutError:
            w.retiring = True
            with contextlib.suppress(ProcessLookupError):
                w.process.kill()
            limit = self.config.server.worker_start_timeout
            raise WorkerFailed(
                f"worker {w.wid} not ready after {limit:g}s (server.worker_start_timeout)"
            ) from None
        return w

    async def start_generation(self, n: int, generation: int, one_by_one: bool) -> list[WorkerProc]:
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
            await self.stop_workers(new, "start failed", 0)
            raise
        for w in new:
            old = self.slots.get(w.slot)
            self.slots[w.slot] = w
            if old is not None and old is not w:
                old.retiring = True
        return new

    async def _watch(self, w: WorkerProc) -> None:
        status = await w.process.wait()
        w.exit_status = status
        w.state = "exited"
        self.channels.close(w)
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
            self._on_give_up()
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

    async def stop_workers(self, workers: list[WorkerProc], reason: str, timeout: float) -> None:
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

    async def kill_all(self) -> None:
        """Kill every worker now (a forced stop) and wait for them to exit."""
        for w in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                w.process.kill()
        self.stopping = True
        await asyncio.gather(*(w.process.wait() for w in list(self.workers.values())))
