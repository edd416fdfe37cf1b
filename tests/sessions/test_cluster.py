"""Sessions over two nodes sharing a real Redis: activity, expiry and log-out agree across processes.

Two servers in this process, each with its own Redis adapter (their own connections and node ids), so
everything between them goes through redis-server exactly as between two machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import scaled
from tests.redis_fixtures import RedisServer
from tests.sessions.helpers import SECRET, Recorder
from tether import Config, Router, Server, run_server
from tether.sessions import get_manager

IDLE = scaled(2.0)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Server, Server]]:
    config = Config.load(
        env={},
        overrides={
            "server": {"port": 0},
            "room": {"driver": "redis"},
            "redis": {"url": redis_server.url, "prefix": "sessions-test"},
            "session": {"enabled": True, "secret": SECRET, "idle_timeout": IDLE},
        },
    )
    a = await run_server(config, Router())
    b = await run_server(config, Router())
    try:
        yield a, b
    finally:
        await a.shutdown(timeout=2)
        await b.shutdown(timeout=2)


async def events_of(r: Recorder, seconds: float) -> list[tuple[str, Any]]:
    """Everything ``r`` receives within ``seconds``."""
    got: list[tuple[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + scaled(seconds)
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return got
        try:
            event, data, _ = await asyncio.wait_for(r.events.get(), left)
        except TimeoutError:
            return got
        got.append((event, data))


async def events_of_each(tabs: tuple[Recorder, ...], seconds: float) -> list[list[tuple[str, Any]]]:
    """:func:`events_of` for every tab over the same ``seconds``, side by side, not one after another."""
    return list(await asyncio.gather(*(events_of(tab, seconds) for tab in tabs)))


async def test_activity_on_one_node_keeps_the_tabs_on_the_other(
    nodes: tuple[Server, Server], clients: Any
) -> None:
    a, b = nodes
    token = get_manager(a).issue_token("alice", "shared")
    tab_a, tab_b = clients(), clients()
    await tab_a.connect(a.url, token)
    await tab_b.connect(b.url, token)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # The user works in the tab on node a only, for well over one idle timeout.
    while loop.time() - start < 1.8 * IDLE:
        await tab_a.sio.emit("activity")
        await asyncio.sleep(IDLE / 5)
    assert tab_a.events.empty() and tab_b.events.empty(), "a tab expired while the user was active"
    assert get_manager(b).get("shared") is not None
    # Then nobody moves: both tabs hear session:expired exactly once, from their own node.
    expired = [("session:expired", {"reason": "idle"})]
    assert await events_of_each((tab_a, tab_b), IDLE + 1.5) == [expired, expired]
    assert get_manager(a).counters.expired == 1 and get_manager(b).counters.expired == 1


async def test_log_out_on_one_node_ends_the_tabs_on_the_other(
    nodes: tuple[Server, Server], clients: Any
) -> None:
    a, b = nodes
    token = get_manager(a).issue_token("alice", "out")
    tab_a, tab_b1, tab_b2 = clients(), clients(), clients()
    await tab_a.connect(a.url, token)
    await tab_b1.connect(b.url, token)
    await tab_b2.connect(b.url, token)
    await tab_a.sio.emit("session:logout")
    ended = [("session:ended", {"reason": "logout"})]
    assert await events_of_each((tab_b1, tab_b2), 1.0) == [ended, ended]  # exactly once
    for tab in (tab_b1, tab_b2):
        await asyncio.wait_for(tab.disconnected.wait(), scaled(2))
    assert tab_a.events.empty()
    # Node b knows: the old token is refused there too.
    assert get_manager(b).is_ended("out") and get_manager(b).get("out") is None
    late = clients()
    with pytest.raises(Exception, match="failed to connect"):
        await late.connect(b.url, token)
    assert late.connect_error["message"] == "Session ended"


async def test_end_from_python_on_one_node_reaches_the_other(
    nodes: tuple[Server, Server], clients: Any
) -> None:
    a, b = nodes
    token = get_manager(a).issue_token("alice", "admin-end")
    tab_a, tab_b = clients(), clients()
    await tab_a.connect(a.url, token)
    await tab_b.connect(b.url, token)
    get_manager(b).end("admin-end", "admin")
    ended = [("session:ended", {"reason": "admin"})]
    assert await events_of_each((tab_a, tab_b), 1.0) == [ended, ended]
    assert get_manager(a).is_ended("admin-end")


async def test_touch_everywhere_from_python(nodes: tuple[Server, Server], clients: Any) -> None:
    a, b = nodes
    token = get_manager(a).issue_token("alice", "backend")
    tab_b = clients()
    await tab_b.connect(b.url, token)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # The backend behind node a sees the user's HTTP requests; node a has no socket of the session.
    while loop.time() - start < 1.6 * IDLE:
        assert get_manager(a).touch("backend", everywhere=True) is False  # not tracked on a itself
        await asyncio.sleep(IDLE / 5)
    assert tab_b.events.empty()
    assert await events_of(tab_b, IDLE + 1.5) == [("session:expired", {"reason": "idle"})]


async def test_end_from_a_backend_emitter(
    nodes: tuple[Server, Server], clients: Any, redis_server: RedisServer
) -> None:
    from tether.emitter import AsyncEmitter

    a, b = nodes
    token = get_manager(a).issue_token("alice", "emitted")
    tab_a, tab_b = clients(), clients()
    await tab_a.connect(a.url, token)
    await tab_b.connect(b.url, token)
    emitter = AsyncEmitter.from_url(redis_server.url, prefix="sessions-test")
    try:
        assert await emitter.end_session("emitted", "password changed") >= 2
    finally:
        await emitter.aclose()
    # No node pushed it before: each tells its own sockets, once.
    ended = [("session:ended", {"reason": "password changed"})]
    assert await events_of_each((tab_a, tab_b), 1.0) == [ended, ended]
    assert get_manager(a).is_ended("emitted") and get_manager(b).is_ended("emitted")
