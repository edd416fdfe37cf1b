"""python-socketio's server API across two Tether nodes on one Redis, and a once-per-cluster task held by a
Redis lease that moves to the other node when its node is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from tests.cluster.pyapi_checks import check_calls_about_a_remote_socket
from tests.redis_fixtures import Client, Cluster, RedisServer, TetherNode, clients, node_config, scaled


async def test_server_calls_reach_sockets_on_the_other_node(cluster: Cluster) -> None:
    async with clients(cluster.a.url, cluster.b.url, cluster.a.url) as (a, b, c):
        await check_calls_about_a_remote_socket(a, b, c)


async def test_once_task_runs_on_one_node_and_fails_over(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_TESTS_ONCE", "1")  # the routes' once-per-cluster "tick" task
    extra = "\n[handlers]\nleader_ttl = 1.0\n"
    with tempfile.TemporaryDirectory(prefix="tether-once-") as folder:
        nodes = [
            TetherNode(f"once{i}", node_config(redis_server.url, extra, prefix="once"), Path(folder))
            for i in range(2)
        ]
        try:
            for node in nodes:
                node.start()
            async with clients(nodes[0].url, nodes[1].url) as (x, y):
                pids = {(await x.call("whoami"))["pid"]: nodes[0], (await y.call("whoami"))["pid"]: nodes[1]}
                await collect(x, 5)
                ticks = x.events["tick"]
                assert len(set(ticks)) == 1, ticks  # one node of two runs it
                leader_pid = ticks[-1]
                survivor = y if pids[leader_pid] is nodes[0] else x
                survivor.events["tick"].clear()
                assert pids[leader_pid].proc is not None
                os.kill(pids[leader_pid].proc.pid, signal.SIGKILL)  # no clean release: the lease must expire
                killed_at = time.monotonic()
                await collect(survivor, 3, timeout=6)
                moved = set(survivor.events["tick"]) - {leader_pid}
                assert len(moved) == 1, survivor.events["tick"]
                # Within about 1.3 TTL (the lease expires, then the next try takes it), plus delivery.
                assert time.monotonic() - killed_at < scaled(3)
        finally:
            for node in nodes:
                node.stop()


async def collect(c: Client, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + scaled(timeout)
    start = len(c.events["tick"])
    while len(c.events["tick"]) - start < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(c.events["tick"]) - start >= n, "no ticks"
