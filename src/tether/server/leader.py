"""Once-per-cluster background tasks: ``server.start_background_task(fn, once=True)``.

Theory of operation. A :class:`Leadership` per server says whether this process is *the* one that runs
the once-tasks, and starts or cancels them when that changes. Who decides:

* one process alone (``run_server``, ``workers = 1`` without Redis): it is the leader;
* the workers of one host (``[room] driver = "memory"``): the master. Its ``peers`` message names the
  leader: the one it named before while that worker lives, else the lowest worker id alive; a worker
  that dies is replaced as soon as the master sees it exit (no overlap: the old one is gone);
* nodes on Redis (``[room] driver = "redis"``, every worker of every host is a node): a lease, the key
  ``<prefix>#leader#`` holding the node's uid for ``[handlers] leader_ttl`` seconds. Every node tries to
  take or renew it every third of the TTL (one Lua script: take it if free, extend it if ours). A
  leader that cannot renew (Redis unreachable) stops its tasks once the TTL has passed since its last
  renewal, before anyone else can take the lease; a node that stops releases it, so the next one takes
  over within a third of the TTL; one that dies is replaced within about 1.3 TTL.

The lease loop runs only while a once-task is registered: a cluster that uses none sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..cluster.base import Adapter
    from ..config import Config

__all__ = ["LeaderHost", "Leadership", "OnceTask"]

log = logging.getLogger("tether.leader")


class LeaderHost(Protocol):
    """The server as once-per-cluster tasks use it (implemented by :class:`~tether.server.Server`)."""

    config: Config
    adapter: Adapter

    def spawn(self, coro: Any) -> asyncio.Task[Any]: ...

    def _start_task(
        self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Task[Any]: ...


class OnceTask:
    """A once-per-cluster task as its process sees it (what ``start_background_task(once=True)`` returns)."""

    def __init__(
        self, owner: Leadership, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ):
        self._owner = owner
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.task: asyncio.Task[Any] | None = None
        self.starts = 0
        """How many times this process started it (it starts again when leadership comes back)."""

    @property
    def running(self) -> bool:
        """True while it runs in this process."""
        return self.task is not None and not self.task.done()

    def cancel(self) -> None:
        """Stop it here and never start it again in this process."""
        self._owner.remove(self)

    def __repr__(self) -> str:
        name = getattr(self.target, "__qualname__", repr(self.target))
        return f"<OnceTask {name} running={self.running}>"


class Leadership:
    """Whether this process runs the once-tasks (see the module docstring)."""

    def __init__(self, server: LeaderHost) -> None:
        self.server = server
        self.source = "redis" if hasattr(server.adapter, "hold_lease") else "self"
        """``self`` (a lone process), ``master`` (a worker told by the master) or ``redis`` (a lease)."""
        self.leader = self.source == "self"
        self.tasks: list[OnceTask] = []
        self._lease: asyncio.Task[None] | None = None
        self._stopped = False
        self._started = False
        self.changes = 0

    # -- who leads ------------------------------------------------------------------------------------

    def follow_master(self) -> None:
        """This is a worker whose master names the leader (the hub, no Redis)."""
        if self.source != "redis":
            self.source = "master"
            self._set(False)

    def master_says(self, leader: bool) -> None:
        """The master's ``peers`` message: is this worker the leader?"""
        if self.source == "master":
            self._set(leader)

    def _set(self, leader: bool) -> None:
        if leader == self.leader:
            return
        self.leader = leader
        self.changes += 1
        if leader:
            if self.tasks:
                log.info("= this process now runs the once-per-cluster tasks (%s)", self.source)
            for once in self.tasks:
                self._start(once)
        else:
            for once in self.tasks:
                self._cancel(once)

    # -- tasks ----------------------------------------------------------------------------------------

    def add(self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> OnceTask:
        once = OnceTask(self, target, args, kwargs)
        self.tasks.append(once)
        if self._started:
            if self.leader:
                self._start(once)
            self._ensure_lease()
        return once

    def start(self) -> None:
        """The server is up (``startup``): start what leads here, and the lease loop if one is needed."""
        self._started = True
        if self.leader:
            for once in self.tasks:
                self._start(once)
        self._ensure_lease()

    def _ensure_lease(self) -> None:
        idle = self._lease is None or self._lease.done()
        if self.source == "redis" and self.tasks and not self._stopped and idle:
            self._lease = asyncio.get_running_loop().create_task(self._hold_lease())

    def remove(self, once: OnceTask) -> None:
        if once in self.tasks:
            self.tasks.remove(once)
        self._cancel(once)

    def _start(self, once: OnceTask) -> None:
        if once.running or self._stopped or not self._started:
            return
        once.starts += 1
        once.task = self.server._start_task(once.target, once.args, once.kwargs)

    @staticmethod
    def _cancel(once: OnceTask) -> None:
        if once.task is not None and not once.task.done():
            once.task.cancel()
        once.task = None

    def stop(self) -> None:
        """Shutdown: cancel the tasks here and give the lease up (another node takes over at once)."""
        self._stopped = True
        for once in self.tasks:
            self._cancel(once)
        if self._lease is not None:
            self._lease.cancel()
        if self.source == "redis" and self.leader:
            self.leader = False
            release = getattr(self.server.adapter, "release_lease", None)
            if release is not None:
                self.server.spawn(release())

    # -- the Redis lease ------------------------------------------------------------------------------

    async def _hold_lease(self) -> None:
        ttl = self.server.config.handlers.leader_ttl
        hold = self.server.adapter.hold_lease  # type: ignore[attr-defined]
        last_held = 0.0
        while self.tasks:
            try:
                held = bool(await hold(ttl))
                if held:
                    last_held = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis unreachable: keep leading until the lease we hold runs out, not a moment longer.
                held = self.leader and time.monotonic() - last_held < ttl * 2 / 3
                log.warning("! leader lease not renewed: %s", exc)
            self._set(held)
            await asyncio.sleep(ttl / 3)
        self._set(False)
        with contextlib.suppress(Exception):
            await self.server.adapter.release_lease()  # type: ignore[attr-defined]
