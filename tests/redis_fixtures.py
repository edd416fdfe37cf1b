"""Real redis-server and real Tether node processes for the cluster, emitter and API tests.

A session-scoped fixture starts ``/usr/bin/redis-server`` (:mod:`tests.redis_process`) on a port of the
23900+ range (no persistence, in a temporary folder) and stops it by PID. Two Tether nodes run as
``python -m tether start`` subprocesses on free ports, both on that Redis, with the routes of
``tests/cluster/cluster_routes.py``. A missing redis-server fails the tests: it is never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio  # type: ignore[import-untyped]

from tests.helpers import scaled
from tests.redis_process import RedisServer, port_free

REDIS_PORTS = range(23900, 23950)
TESTS_DIR = Path(__file__).resolve().parent
ROUTES = TESTS_DIR / "cluster" / "cluster_routes.py"
API_KEY = "test-api-key-0123456789abcdef0123456789"


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A redis-server on a free port of the range, stopped on exit.

    The search starts at an offset of our PID, and a port another session takes between our check and our
    start is skipped: engineers and CI jobs run test sessions side by side on one machine.
    """
    offset = os.getpid() % len(REDIS_PORTS)
    ports = list(REDIS_PORTS[offset:]) + list(REDIS_PORTS[:offset])
    with tempfile.TemporaryDirectory(prefix="tether-redis-") as folder:
        errors = []
        for port in ports:
            if not port_free(port):
                continue
            server = RedisServer(port, Path(folder))
            error = server.launch()
            if error is None:
                break
            errors.append(error)
            if "already in use" not in error:
                pytest.fail(error)
        else:
            pytest.fail(f"no free port in {REDIS_PORTS} for redis-server: {errors[-3:]}")
        try:
            yield server
        finally:
            server.stop()


class TetherNode:
    """``python -m tether start`` as a subprocess; its stderr (the log) is kept for assertions."""

    def __init__(self, name: str, config_text: str, folder: Path) -> None:
        self.name = name
        self.config = folder / f"{name}.toml"
        # Nodes share a folder: each needs its own pid file and control socket (they default to run/tether.*).
        own = (
            f'[server]\npid_file = "run/{name}.pid"\ncontrol_socket = "run/{name}.sock"\n'
            f'log_file = "run/{name}.log"\n'
        )
        self.config.write_text(config_text.replace("[server]\n", own, 1))
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log_lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("TETHER_") or k.startswith("TETHER_TESTS")
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "start", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.log_lines.append(line)
            m = re.search(r"tether serving on (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            pytest.fail(f"node {self.name} did not start:\n{''.join(self.log_lines)}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log_lines.append(line)

    def log(self) -> str:
        return "".join(self.log_lines)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=scaled(5))
        self.proc = None


def node_config(redis_url: str, extra: str = "", prefix: str = "socket.io") -> str:
    return f"""
[server]
host = "127.0.0.1"
port = 0
log_level = "warning"
workers = 1  # one process per node: these tests model nodes, the manager's tests cover workers

[websocket]
route_file = "{ROUTES}"

[room]
driver = "redis"

[redis]
url = "{redis_url}"
prefix = "{prefix}"
request_timeout = {scaled(3)}
reconnect_max = 0.5

[api]
key = "{API_KEY}"
{extra}
"""


class Cluster:
    """Two nodes on one Redis."""

    def __init__(self, redis: RedisServer, nodes: list[TetherNode]) -> None:
        self.redis = redis
        self.nodes = nodes

    @property
    def a(self) -> TetherNode:
        return self.nodes[0]

    @property
    def b(self) -> TetherNode:
        return self.nodes[1]


@contextlib.contextmanager
def running_cluster(redis: RedisServer, count: int = 2) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="tether-nodes-") as folder:
        nodes = [TetherNode(f"node{i}", node_config(redis.url), Path(folder)) for i in range(count)]
        try:
            for node in nodes:
                node.start()
            yield Cluster(redis, nodes)
        finally:
            for node in nodes:
                node.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    with running_cluster(redis_server) as c:
        yield c


# -- clients -------------------------------------------------------------------------------------------


class Client:
    """A python-socketio AsyncClient recording every event it receives."""

    def __init__(self, url: str, namespace: str = "/") -> None:
        self.url = url
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.sid = ""

        async def record(event: str, *args: Any) -> str:
            self.events[event].append(args[0] if len(args) == 1 else list(args))
            return f"ack-{event}"  # the answer when the server asked for an ack

        self.sio.on("*", record, namespace=namespace)

    async def connect(self) -> Client:
        await self.sio.connect(
            self.url, namespaces=[self.namespace], transports=["websocket"], wait_timeout=scaled(5)
        )
        self.sid = self.sio.get_sid(self.namespace) or ""
        return self

    async def call(self, event: str, *args: Any) -> Any:
        return await self.sio.call(
            event, args if len(args) != 1 else args[0], namespace=self.namespace, timeout=scaled(10)
        )

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown() if hasattr(self.sio, "shutdown") else None


@contextlib.asynccontextmanager
async def clients(*urls: str | tuple[str, str]) -> Any:
    """Connected clients for ``urls`` (or ``(url, namespace)``), all disconnected on exit."""
    made: list[Client] = []
    try:
        for u in urls:
            url, ns = (u, "/") if isinstance(u, str) else u
            made.append(await Client(url, ns).connect())
        yield made
    finally:
        for c in made:
            with contextlib.suppress(Exception):
                await c.close()


async def settle() -> None:
    """Time for a duplicate to show up if there were one: exactly-once checks wait this long."""
    await asyncio.sleep(scaled(0.3))


def node_bin() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is missing: Node 20 is needed for the npm emitter tests")
    return path


JS_DIR = TESTS_DIR / "js"


def js_modules_ready(*packages: str) -> None:
    for package in packages:
        if not (JS_DIR / "node_modules" / package).is_dir():
            pytest.fail(f"tests/js/node_modules/{package} is missing: run `cd tests/js && npm install`")
