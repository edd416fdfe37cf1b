"""python-socketio's server API across two real workers of one host (``tether start --workers 2``, the
master's hub, no Redis), and a once-per-cluster task that moves to the other worker when its worker is
killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.cluster.pyapi_checks import check_calls_about_a_remote_socket
from tests.helpers import scaled
from tests.redis_fixtures import Client

from .conftest import Instance

REPO = Path(__file__).resolve().parents[2]

ROUTES = f"""
import sys
sys.path.insert(0, {str(REPO)!r})

from tests.apps.pyapi_routes import install
from tether import websocket

install(websocket)
"""


@pytest.fixture
def pyapi_instance(instance: Instance, monkeypatch: pytest.MonkeyPatch) -> Instance:
    instance.routes.write_text(ROUTES)
    monkeypatch.setenv("TETHER_TESTS_ONCE", "1")  # the routes' once-per-cluster "tick" task
    return instance


async def clients_on_two_workers(url: str) -> dict[int, list[Client]]:
    """Connect until two clients sit on each worker (known by the worker's pid)."""
    by_pid: dict[int, list[Client]] = {}
    made: list[Client] = []
    for _ in range(60):
        client = await Client(url).connect()
        made.append(client)
        pid = (await client.call("whoami"))["pid"]
        by_pid.setdefault(pid, []).append(client)
        if len(by_pid) == 2 and min(len(v) for v in by_pid.values()) >= 2:
            break
    assert len(by_pid) == 2 and min(len(v) for v in by_pid.values()) >= 2, (
        "connections all went to one worker"
    )
    return by_pid


async def test_server_calls_reach_sockets_on_the_other_worker(pyapi_instance: Instance) -> None:
    pyapi_instance.start("--workers", "2")
    by_pid = await clients_on_two_workers(pyapi_instance.url)
    try:
        (pid_one, first), (pid_two, second) = by_pid.items()
        a, c = first[0], first[1]
        b = second[0]
        await check_calls_about_a_remote_socket(a, b, c)  # b is disconnected at the end

        # One tick source for the whole host; killing it moves the task to the other worker.
        ticks: list[int] = []
        a.sio.on("tick", lambda pid: ticks.append(pid))
        deadline = time.monotonic() + scaled(5)
        while len(ticks) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(set(ticks)) == 1, ticks
        leader = ticks[-1]
        assert leader in (pid_one, pid_two)
        watcher = second[1] if leader == pid_one else a  # a client of the worker that survives
        moved: list[int] = []
        watcher.sio.on("tick", lambda pid: moved.append(pid))
        os.kill(leader, signal.SIGKILL)
        deadline = time.monotonic() + scaled(5)
        while not any(p != leader for p in moved) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        new = {p for p in moved if p != leader}
        assert len(new) == 1, moved
        # The replacement worker the master starts does not take the task back: still one source.
        await asyncio.sleep(scaled(1.5))
        recent = moved[-5:]
        assert set(recent) == new, moved
    finally:
        for clients in by_pid.values():
            for client in clients:
                await client.close()
