"""A throwaway redis-server, started and stopped by PID: the one launcher of the tests
(tests/redis_fixtures.py) and of the benchmarks (bench/harness.py).

No pytest here: bench/ imports this module (``tests`` is a package), and reports a failure its own way.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import scaled

__all__ = ["REDIS_BIN", "RedisServer", "answering_pid", "port_free"]

REDIS_BIN = "/usr/bin/redis-server"


def answering_pid(port: int) -> int | None:
    """The ``process_id`` of the redis-server answering on ``port``, None if none answers (yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.split(b"process_id:", 1)[1].count(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    match = re.search(rb"process_id:(\d+)", reply)
    return int(match.group(1)) if match else None


def port_free(port: int) -> bool:
    """Nothing listens on ``127.0.0.1:port`` now (another process may take it a moment later)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """One redis-server process on ``port`` (no persistence, its files in ``folder``), stopped by PID."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start redis-server on ``self.port``.

        Raises:
            RuntimeError: it did not start (why, with the end of its log).
        """
        error = self.launch()
        if error is not None:
            raise RuntimeError(error)

    def launch(self) -> str | None:
        """Start redis-server on ``self.port``; None once it answers, else why it did not.

        "Answers" means this very process answers (its ``process_id``): another test session on the
        machine may hold the port, and a PING alone would let two sessions share one Redis.
        """
        if not os.path.exists(REDIS_BIN):
            return f"{REDIS_BIN} is missing: install Debian's redis-server (make system-deps)"
        self.proc = subprocess.Popen(
            [
                REDIS_BIN,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                self.proc = None
                return f"redis-server on port {self.port} exited: {log}"
            if answering_pid(self.port) == self.proc.pid:
                return None
            time.sleep(0.02)
        self.stop()
        return f"redis-server on port {self.port} did not answer PING"

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=scaled(10))
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
