"""The bench harness shared by bench/run.py, bench/asgi.py and bench/profile.py: where things are, which CPU
runs what, fresh ports, servers started pinned with ``taskset``, load generator runs, a throwaway
redis-server.

Servers are pinned to CPU 0 (``SERVER_CPU``), the load generator (bench/loadgen.py) to CPU 1
(``LOADGEN_CPU``); multi-process servers (W7) may use both (``MULTI_CPUS``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from limits import raise_nofile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # bench/ is not a package; tests/ is, and holds the redis-server launcher

from tests.redis_process import RedisServer  # noqa: E402 - needs ROOT on sys.path

OUT = BENCH / "out"
PY = sys.executable
SERVER_CPU = "0"
LOADGEN_CPU = "1"
MULTI_CPUS = "0,1"
PORT_RANGE = (24100, 24999)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def loadavg1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- servers --------------------------------------------------------------------------------------------


class Ports:
    """Hands out a fresh port of the range for every server start (no TIME_WAIT surprises)."""

    def __init__(self) -> None:
        self.next = PORT_RANGE[0]

    def take(self) -> int:
        for _ in range(PORT_RANGE[1] - PORT_RANGE[0]):
            port = self.next
            self.next = self.next + 1 if self.next < PORT_RANGE[1] else PORT_RANGE[0]
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in {PORT_RANGE}")


def server_command(name: str, port: int) -> list[str]:
    apps = BENCH / "apps"
    if name == "tether":
        return [PY, str(apps / "tether_server.py"), "--port", str(port)]
    if name == "psio":
        return [PY, "-W", "ignore::DeprecationWarning", str(apps / "psio_server.py"), "--port", str(port)]
    if name == "node":
        return ["node", str(apps / "node_server.js"), str(port)]
    if name == "raw":
        return [PY, str(apps / "raw_picows_echo.py"), "--port", str(port)]
    raise ValueError(name)


def cpu_set(text: str) -> set[int]:
    """``0-1,3`` -> {0, 1, 3} (taskset and Cpus_allowed_list syntax)."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


class RunningServer:
    """One server process started pinned with ``taskset`` (it execs: same pid), logging to bench/out.

    ``command`` replaces the server's usual command line (W7's multi-process forms, W8's Redis nodes);
    ``ready_text`` is waited for in the log when listening is not enough (a master listens before its
    workers are up); ``cpus`` is the taskset list."""

    def __init__(
        self,
        name: str,
        port: int,
        tag: str,
        extra: list[str] | None = None,
        *,
        command: list[str] | None = None,
        cpus: str = SERVER_CPU,
        ready_text: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.cpus = cpus
        self.ready_text = ready_text
        self.log_path = OUT / f"{name}-{tag}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus, *(command or server_command(name, port)), *(extra or [])],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.pid = self.proc.pid  # taskset execs the server: same pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ready_text and self.ready_text not in self.log_tail(100_000):
                time.sleep(0.1)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            allowed = _status_field(self.pid, "Cpus_allowed_list")
            if cpu_set(allowed) != cpu_set(self.cpus):
                raise RuntimeError(
                    f"{self.name} is not pinned to CPU {self.cpus} (Cpus_allowed_list={allowed})"
                )
            return
        raise RuntimeError(
            f"{self.name} did not listen on port {self.port} within {timeout}s: {self.log_tail()}"
        )

    def log_tail(self, size: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def start_server(name: str, port: int, tag: str, **kwargs: Any) -> RunningServer:
    server = RunningServer(name, port, tag, **kwargs)
    try:
        server.wait_ready(60.0 if kwargs.get("ready_text") else 30.0)
    except Exception:
        server.stop()
        raise
    return server


def _status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def run_loadgen(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = loadgen_command(args)
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_nofile
        )
    except subprocess.TimeoutExpired:
        return {"error": f"loadgen timed out after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return {"error": f"loadgen exit {proc.returncode}: {last[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def loadgen_command(args: list[str]) -> list[str]:
    """The load generator's command line with ``args``, pinned to ``LOADGEN_CPU``."""
    return ["taskset", "-c", LOADGEN_CPU, PY, str(BENCH / "loadgen.py"), *args]


def idle_args(port: int, server_pid: int, clients: int, hold: float, rounds: int, *extra: str) -> list[str]:
    """loadgen ``idle``: ``clients`` idle clients of the server on ``port`` held ``hold`` s (W3, W6), then
    ``rounds`` broadcasts to all of them (W2); ``extra`` are more loadgen flags."""
    return [
        "idle",
        "--url",
        f"ws://127.0.0.1:{port}",
        "--server-pid",
        str(server_pid),
        *extra,
        "--clients",
        str(clients),
        "--hold",
        str(hold),
        "--rounds",
        str(rounds),
    ]


def start_redis(port: int, folder: str) -> RedisServer:
    """A redis-server on ``port`` with its files in ``folder``: the tests' launcher (tests/redis_process.py).

    Raises:
        RuntimeError: it did not start (why: the binary is missing, the port is taken, ...).
    """
    server = RedisServer(port, Path(folder))
    server.start()
    return server
