"""One worker process as the master sees it (:class:`WorkerProc`), how the instance was started
(:class:`Launch`), and the small words and numbers the master's log lines and ``infos`` use about workers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..cluster.hub import CONTROL, frame
from ..config import Config

__all__ = ["Launch", "WorkerFailed", "WorkerProc", "describe_status", "n_workers", "rss", "worker_count"]


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


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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
