"""One behaviour, every adapter: the in-process adapter and the Redis one answer the same on one node.

With one server, the cluster-wide operations (fetch_sockets, count, sockets_join/leave,
disconnect_sockets, user_online) must give exactly what the in-process adapter gives; the Redis adapter
must also not deliver a node's own broadcasts twice. Plus the Redis adapter's behaviour when Redis is not
there at all when the node starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.redis_fixtures import RedisServer, clients, running_redis, scaled, settle
from tether import Config, ConfigError, Router, Server, Socket, run_server
from tether.cluster import make_adapter
from tether.cluster.memory import LocalAdapter
from tether.cluster.redis import RedisAdapter


def routes() -> Router:
    router = Router()

    @router.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    @router.on("login")
    def login(socket: Socket, user: str) -> str:
        socket.login_using(user)
        return "ok"

    return router


@pytest.fixture(params=["memory", "redis"])
async def server(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Server]:
    # A prefix of its own: the session's Redis may also carry other tests' nodes (the ``cluster`` fixture's
    # two stay up for the session), and "one node" must mean this one.
    redis = {"url": redis_server.url, "prefix": f"adapters-{uuid.uuid4().hex}"}
    overrides = {"server": {"port": 0}, "room": {"driver": request.param}, "redis": redis}
    srv = await run_server(Config.load(env={}, overrides=overrides), routes())
    yield srv
    await srv.shutdown()


def test_the_factory_follows_room_driver(redis_server: RedisServer) -> None:
    assert isinstance(make_adapter(Config.load(env={})), LocalAdapter)
    cfg = Config.load(env={}, overrides={"room": {"driver": "redis"}, "redis": {"url": redis_server.url}})
    adapter = make_adapter(cfg)
    assert isinstance(adapter, RedisAdapter)
    assert adapter.url == redis_server.url and adapter.channels.prefix == "socket.io"


@pytest.mark.parametrize(
    ("redis", "key"),
    [
        ({"url": "http://localhost:6379"}, "redis.url"),
        ({"prefix": "a#b"}, "redis.prefix"),
        ({"prefix": ""}, "redis.prefix"),
    ],
)
def test_bad_redis_settings_fail_before_anything_starts(redis: dict[str, str], key: str) -> None:
    cfg = Config.load(env={}, overrides={"room": {"driver": "redis"}, "redis": redis})
    with pytest.raises(ConfigError) as info:
        Server(cfg, routes())
    assert info.value.key == key


async def test_cluster_operations_on_one_node(server: Server) -> None:
    async with clients(server.url, server.url, server.url) as (c1, c2, c3):
        await c1.call("join", "r")
        await c2.call("join", "r")
        await c3.call("login", "ann")
        assert await server.to("r").count() == 2
        assert await server.user_online("ann") is True
        assert await server.user_online("bob") is False
        infos = await server.to("r").fetch_sockets()
        assert sorted(i.id for i in infos) == sorted([c1.sid, c2.sid])
        assert all(i.node == "" and "r" in i.rooms for i in infos)
        assert "r" in await server.adapter.all_rooms("/")
        assert await server.adapter.server_count() == 1
        server.to("r").sockets_join("r2")
        assert await server.to("r2").count() == 2
        server.to("r2").except_(c1.sid).sockets_leave("r")
        assert sorted(i.id for i in await server.to("r").fetch_sockets()) == [c1.sid]
        server.to("r").disconnect_sockets()
        await wait_until(lambda: not c1.sio.connected, what="the disconnect")
        assert c2.sio.connected and c3.sio.connected


async def test_own_broadcasts_are_delivered_once(server: Server) -> None:
    async with clients(server.url, server.url) as (c1, c2):
        await c1.call("join", "r")
        server.to("r").emit("once", 1)
        server.emit("all", 2)
        await wait_until(lambda: c1.events.get("once") and c2.events.get("all"), what="the emits")
        await settle()
        assert c1.events["once"] == [1] and c1.events["all"] == [2] and c2.events["all"] == [2]
        assert "once" not in c2.events


async def test_two_apps_on_one_redis_are_kept_apart_by_the_prefix_not_the_database(
    redis_server: RedisServer,
) -> None:
    # docs/scaling.md, "Two applications on one Redis": pub/sub channels are server-wide, so a database
    # number of its own in [redis] url does not keep a second application's emits out; a prefix does.
    base = redis_server.url.rsplit("/", 1)[0]
    prefix = f"apps-{uuid.uuid4().hex}"
    servers = []
    for db, app_prefix in ((0, prefix), (1, prefix), (0, prefix + "-other")):
        redis = {"url": f"{base}/{db}", "prefix": app_prefix}
        overrides = {"server": {"port": 0}, "room": {"driver": "redis"}, "redis": redis}
        servers.append(await run_server(Config.load(env={}, overrides=overrides), routes()))
    try:
        async with clients(*(s.url for s in servers)) as (on_db0, on_db1, other_prefix):
            servers[0].emit("news", "from app A")
            await wait_until(lambda: on_db0.events.get("news") and on_db1.events.get("news"), what="delivery")
            await settle()  # what reached database 1 had as long to reach the other prefix
            assert not other_prefix.events.get("news")
    finally:
        for s in servers:
            await s.shutdown()


async def test_a_node_starts_without_redis_and_joins_when_it_appears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_redis() as redis:
        redis.stop()  # the port is known and nothing listens on it
        cfg = Config.load(
            env={},
            overrides={
                "server": {"port": 0},
                "room": {"driver": "redis"},
                "redis": {"url": redis.url, "reconnect_max": 0.2},
            },
        )
        with caplog.at_level(logging.WARNING, logger="tether.cluster.redis"):
            srv = await run_server(cfg, routes())
            try:
                adapter = srv.adapter
                assert isinstance(adapter, RedisAdapter) and not adapter.connected
                async with clients(srv.url) as (c1,):
                    await c1.call("join", "r")
                    srv.to("r").emit("local", 1)  # local delivery works without Redis
                    await wait_until(lambda: c1.events.get("local"), what="local delivery")
                    assert await srv.to("r").count() == 1  # cluster questions degrade to this node
                    assert adapter.stats()["dropped"] >= 1
                    await asyncio.sleep(scaled(0.5))  # several failed attempts...
                    redis.start()
                    await wait_until(lambda: adapter.connected, what="the adapter to connect")
            finally:
                await srv.shutdown()
        warnings = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in m for m in warnings) == 1, warnings  # ...logged once
        assert any("is back" in m for m in warnings)


async def test_a_failed_publish_restarts_the_reader_and_the_node_recovers(redis_server: RedisServer) -> None:
    """A publisher failure while the subscriber looks healthy must not leave the node marked down."""
    overrides: dict[str, dict[str, Any]] = {
        "server": {"port": 0},
        "room": {"driver": "redis"},
        "redis": {"url": redis_server.url},
    }
    srv = await run_server(Config.load(env={}, overrides=overrides), routes())
    try:
        adapter = srv.adapter
        assert isinstance(adapter, RedisAdapter) and adapter.connected
        adapter._failed(ConnectionError("simulated publisher failure"))
        assert not adapter.connected
        await wait_until(lambda: adapter.connected, what="the reader to reconnect and mark the node up")
        assert adapter.counters["reconnects"] == 1
    finally:
        await srv.shutdown()


async def test_shutdown_ends_when_a_publish_swallows_the_cancel(redis_server: RedisServer) -> None:
    """On Python 3.11 redis-py's ``asyncio.wait_for`` loses a cancel that lands as its write completes.

    Seen in CI as a hang of the ``server`` fixture's shutdown (1 run in ~20 under load): the writer task
    returned to its loop and ``stop()`` awaited it for ever. Here the publish does deterministically what
    that race does: it finishes the real publish and returns normally although it was cancelled.
    """
    overrides = {"server": {"port": 0}, "room": {"driver": "redis"}, "redis": {"url": redis_server.url}}
    srv = await run_server(Config.load(env={}, overrides=overrides), routes())
    adapter = srv.adapter
    assert isinstance(adapter, RedisAdapter) and adapter._pub is not None
    real_publish = adapter._pub.publish
    entered = asyncio.Event()
    swallowed: list[bool] = []

    async def publish(channel: str, payload: bytes) -> Any:
        entered.set()
        try:
            await asyncio.sleep(scaled(10))
        except asyncio.CancelledError:
            swallowed.append(True)
        return await real_publish(channel, payload)

    adapter._pub.publish = publish  # type: ignore[method-assign]
    srv.emit("news", 1)  # the writer is now inside publish()
    await asyncio.wait_for(entered.wait(), scaled(5))
    started = time.monotonic()
    # Timed, not only bounded: a timeout's own cancel of shutdown() would be lost the same way.
    await asyncio.wait_for(srv.shutdown(), scaled(10))
    assert time.monotonic() - started < scaled(5)
    assert swallowed == [True]
