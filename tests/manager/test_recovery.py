"""Connection state recovery with several workers: the master keeps the host's log and sessions, so a client
may come back on another worker, or on a new worker after a rolling ``tether reload``.

The official socket.io-client; 1,000 numbered messages sent to its room through the HTTP API (each request
on a new connection, so on any worker) while its connection is cut or its worker reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import aiohttp

from tests.helpers import CutProxy, scaled
from tests.manager.conftest import Instance
from tests.recovery_support import NodeClient, gaps_and_duplicates

COUNT = 1000

RECOVERY = """
[recovery]
max_disconnection_duration = 120

[api]
key = "recovery-test-key-0123456789abcdef-0123"

[metrics]
key = "recovery-test-key-0123456789abcdef-0123"
"""


def with_recovery(instance: Instance) -> None:
    instance.config.write_text(instance.config.read_text() + RECOVERY)


async def emit_range(
    url: str, first: int, last: int, pause: float = 0.0, retried: set[int] | None = None
) -> None:
    """POST /api/emit ``n`` = first..last to room ``r``, one new connection each (any worker may take it).

    A request cut by a worker that is going away (a reload) is sent again and its number put in ``retried``:
    it may have been emitted twice, with two offsets (which is not a packet delivered twice).
    """
    headers = {"Authorization": "Bearer recovery-test-key-0123456789abcdef-0123"}
    connector = aiohttp.TCPConnector(force_close=True)
    limit = aiohttp.ClientTimeout(total=scaled(10))
    async with aiohttp.ClientSession(connector=connector, timeout=limit) as http:
        for i in range(first, last + 1):
            body = {"event": "n", "data": i, "room": "r"}
            for attempt in range(3):
                try:
                    async with http.post(f"{url}/api/emit", json=body, headers=headers) as r:
                        assert r.status == 200, await r.text()
                    break
                except aiohttp.ServerDisconnectedError:
                    if retried is None or attempt == 2:
                        raise
                    retried.add(i)
            if pause:
                await asyncio.sleep(pause)


def check(done: dict[str, object], retried: frozenset[int] = frozenset()) -> None:
    received = done["received"]
    assert isinstance(received, list)
    missing, duplicates = gaps_and_duplicates(received, COUNT)
    assert missing == [], f"missing {missing[:20]}"
    assert set(duplicates) <= retried, f"delivered twice: {duplicates[:20]}"
    # In the master's order: emits from two workers are ordered by when the master got them, which is
    # not always the order of the HTTP requests that made them (one worker answers before the other).
    offsets = [int(o) for o in done["offsetList"]]  # type: ignore[attr-defined]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets) == len(received)
    assert done["recovered"] is True


async def test_client_back_on_the_other_worker_gets_state_and_missed_packets(instance: Instance) -> None:
    with_recovery(instance)
    instance.start()
    port = int(instance.url.rsplit(":", 1)[1])
    proxy = await CutProxy("127.0.0.1", port).start()
    client = await NodeClient(f"http://127.0.0.1:{proxy.port}", count=COUNT, room="r", whoami=True).start()
    stopped = 0
    try:
        await client.wait_step("joined", timeout=15)
        first = await client.wait_step("whoami")
        await emit_range(instance.url, 1, 300)
        proxy.held = True
        proxy.cut()
        await asyncio.sleep(scaled(0.5))  # the worker sees the abort and hands the session to the master
        stopped = first["pid"]
        os.kill(stopped, signal.SIGSTOP)  # that worker cannot accept: the client must come back on the other
        await emit_range(instance.url, 301, 600)
        proxy.held = False
        second = await client.wait_step("whoami", 2, timeout=15)
        assert second["pid"] != first["pid"]
        await emit_range(instance.url, 601, 900)
        os.kill(stopped, signal.SIGCONT)
        stopped = 0
        await emit_range(instance.url, 901, COUNT)
        done = await client.wait_step("done", timeout=30)
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        await client.close()
        await proxy.close()
    check(done)
    assert done["id"] == client.steps("connect")[0]["id"]
    assert client.steps("connect")[1]["recovered"] is True
    # The master's log, as /metrics reports it (from any worker: the master gathers the instance's figures).
    headers = {"Authorization": "Bearer recovery-test-key-0123456789abcdef-0123"}
    async with aiohttp.ClientSession() as http, http.get(f"{instance.url}/metrics", headers=headers) as r:
        assert r.status == 200
        metrics = await r.text()
    assert "tether_recovery_recovered 1.0" in metrics and "tether_recovery_persisted" in metrics


async def test_rolling_reload_is_recovered(instance: Instance) -> None:
    with_recovery(instance)
    instance.start()
    client = await NodeClient(instance.url, count=COUNT, room="r", whoami=True).start()
    try:
        await client.wait_step("joined", timeout=15)
        first = await client.wait_step("whoami")
        retried: set[int] = set()
        sender = asyncio.get_running_loop().create_task(
            emit_range(instance.url, 1, COUNT, pause=0.003, retried=retried)
        )
        await asyncio.sleep(0.3)
        proc = await asyncio.to_thread(instance.cli, "reload", check=True)
        assert "tether reloaded" in proc.stdout
        await sender
        done = await client.wait_step("done", timeout=30)
        second = await client.wait_step("whoami", 2)
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    check(done, frozenset(retried))
    assert second["pid"] != first["pid"]  # a worker of the new generation
    assert client.steps("disconnect")[0]["reason"] == "transport close"
