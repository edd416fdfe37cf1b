"""Faults: clients that vanish, handlers that raise or hang. None of it may leak state or block others."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import aiohttp
import orjson
import pytest

from tether import Reject, Router, Server

from .support import EioClient, PollingClient, echo_latencies, echo_router, scaled, serve, wait_until

HEARTBEAT = {"ping_interval": 0.5, "ping_timeout": 0.5}


def stateful_router(reasons: list[str]) -> Router:
    """``setup`` logs the socket in as user 42 and joins two rooms, in ``/`` or ``/chat``."""
    router = echo_router()

    def setup(sock: Any) -> list[str]:
        sock.login_using(42)
        sock.join(["room-a", "room-b"])
        sock.data["blob"] = b"x" * 100_000
        return sorted(sock.rooms - {sock.sid})

    async def record(sock: Any, reason: str) -> None:
        # async: it runs on the loop as the socket goes (a plain def now runs later, in the thread pool)
        reasons.append(reason)

    for ns in ("/", "/chat"):
        router.on("setup", setup, namespace=ns)
        router.on("echo", lambda sock, *args: args, namespace=ns)
        router.on("disconnect", record, namespace=ns)
    return router


def assert_all_state_freed(server: Server, sid: str, client_ref: weakref.ref[Any]) -> None:
    assert sid not in server.clients
    for name, ns in server.namespaces.items():
        assert ns.rooms.all_rooms() == [], (name, ns.rooms.all_rooms())
        assert len(ns.rooms) == 0, name
    assert not server.is_user_online(42) and not server.is_user_online(42, "/chat")
    assert server.state.sockets == 0
    assert server._per_ip == {}
    gc.collect()
    # Nothing in the server still points at the client: not a room, not a timer, not a transport.
    assert client_ref() is None, gc.get_referrers(client_ref())


async def setup_client(server: Server, **kwargs: Any) -> tuple[EioClient, weakref.ref[Any]]:
    client = await EioClient.connect(server, **kwargs)
    assert await client.call("setup") == [["room-a", "room-b", "user:42"]]
    await client.ws.send("40/chat,")
    await wait_until(lambda: any(isinstance(m, str) and m.startswith("40/chat,") for m in client.received))
    assert await client.call("setup", namespace="/chat") == [["room-a", "room-b", "user:42"]]
    assert server.state.sockets == 2
    assert server.is_user_online(42, "/chat")
    return client, weakref.ref(server.clients[client.sid])


async def test_client_that_stops_answering_pings_is_dropped_and_freed() -> None:
    reasons: list[str] = []
    async with serve(stateful_router(reasons), websocket=HEARTBEAT) as server:
        client, ref = await setup_client(server, answer_pings=False)
        transports = [server.clients[client.sid].ws]  # in a list, to let go of it before the gc check
        t0 = time.monotonic()
        await wait_until(lambda: client.sid not in server.clients, 3, "the heartbeat to drop the client")
        # ping_interval + ping_timeout, plus at most one sweep interval each way.
        assert time.monotonic() - t0 < scaled(2.5)
        assert reasons == ["ping timeout", "ping timeout"]
        assert server.state.disconnects == {"ping timeout": 1}
        await wait_until(lambda: bool(transports[0].is_disconnected), 1, "the socket to be aborted")
        transports.clear()
        await client.close()
        assert_all_state_freed(server, client.sid, ref)


async def test_client_whose_tcp_connection_dies_without_close_frame_is_freed() -> None:
    reasons: list[str] = []
    async with serve(stateful_router(reasons), websocket=HEARTBEAT) as server:
        client, ref = await setup_client(server)
        client.ws.transport.abort()  # RST, no close frame
        await wait_until(lambda: client.sid not in server.clients, 3)
        assert reasons == ["transport close", "transport close"]
        await client.close()
        assert_all_state_freed(server, client.sid, ref)


async def test_polling_client_that_stops_polling_is_dropped_and_freed() -> None:
    reasons: list[str] = []
    async with (
        serve(stateful_router(reasons), websocket=HEARTBEAT) as server,
        aiohttp.ClientSession() as session,
    ):
        poller = await PollingClient.open(session, server)
        assert await poller.post(b'421["setup"]') == 200
        assert "room-a" in await poller.get_until("room-a")
        ref = weakref.ref(server.clients[poller.sid])
        for i in range(50):  # something queued that will never be read
            server.emit("news", i, "y" * 1000)
        # 50, or 51 when the next ping fell due since the last GET (it is never read either)
        assert server.clients[poller.sid].conn.queued_messages in (50, 51)
        await wait_until(lambda: poller.sid not in server.clients, 3, "the heartbeat to drop the poller")
        assert reasons == ["ping timeout"]
        assert_all_state_freed(server, poller.sid, ref)


async def test_polling_client_whose_held_get_connection_drops_is_freed() -> None:
    reasons: list[str] = []
    async with serve(stateful_router(reasons), websocket=HEARTBEAT) as server:
        async with aiohttp.ClientSession() as session:
            poller = await PollingClient.open(session, server)
            assert await poller.post(b'421["setup"]') == 200
            assert "room-a" in await poller.get_until("room-a")
            ref = weakref.ref(server.clients[poller.sid])
            pending = asyncio.ensure_future(poller.get(timeout=10))
            await wait_until(lambda: server.clients[poller.sid].poll_waiter is not None)
            pending.cancel()  # aiohttp closes the connection of a cancelled request
            with pytest.raises(asyncio.CancelledError):
                await pending
        await wait_until(lambda: poller.sid not in server.clients, 3)
        assert reasons == ["transport error"]  # as node socket.io 4.8 reports it
        assert_all_state_freed(server, poller.sid, ref)


# -- handlers ---------------------------------------------------------------------------------------------


def faulty_router(events: list[str]) -> Router:
    router = echo_router()

    @router.on("boom")
    def boom(sock: Any) -> None:
        raise ValueError("boom")

    @router.on("boom_later")
    async def boom_later(sock: Any) -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom later")

    @router.on("hang")
    async def hang(sock: Any) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("hang cleaned up")

    return router


async def test_handler_that_raises_affects_nobody_else() -> None:
    events: list[str] = []
    async with serve(faulty_router(events)) as server:
        bad = await EioClient.connect(server)
        good = await EioClient.connect(server)
        for _ in range(20):
            await bad.emit("boom")
            await bad.emit("boom_later")
        assert await good.call("echo", "fine") == ["fine"]
        await wait_until(lambda: server.state.handler_errors == 40)
        # The client whose handler raised is still connected and served; it got no ack for the failure.
        assert await bad.call("echo", "me too") == ["me too"]
        with pytest.raises(TimeoutError):
            await bad.call("boom", timeout=0.3)
        assert server.state.handler_errors == 41
        assert len(server.clients) == 2


async def test_handler_that_hangs_is_cancelled_and_others_are_served() -> None:
    events: list[str] = []
    async with serve(faulty_router(events), limits={"handler_timeout": 0.3}) as server:
        bad = await EioClient.connect(server)
        good = await EioClient.connect(server)
        for _ in range(10):
            await bad.emit("hang")
        latencies = await echo_latencies(good, 20, pause=0.01)
        assert max(latencies) < scaled(0.2)
        await wait_until(lambda: events == ["hang cleaned up"] * 10, 3, "the hung handlers to be cancelled")
        await wait_until(lambda: server.state.handler_errors == 10, 1, "the cancellations to be counted")
        assert await bad.call("echo", 1) == [1]


def _sync_raise(sock: Any, auth: Any) -> None:
    raise ValueError("no")


async def _async_raise(sock: Any, auth: Any) -> None:
    raise ValueError("no")


async def _async_raise_later(sock: Any, auth: Any) -> None:
    await asyncio.sleep(0.01)
    raise ValueError("no")


def _sync_reject(sock: Any, auth: Any) -> None:
    raise Reject({"code": 401, "message": "who are you"})


async def _async_reject(sock: Any, auth: Any) -> None:
    raise Reject({"code": 401, "message": "who are you"})


@pytest.mark.parametrize(
    "handler",
    [_sync_raise, _async_raise, _async_raise_later, _sync_reject, _async_reject],
    ids=lambda f: f.__name__,
)
async def test_connect_handler_that_raises_rejects_once(handler: Any) -> None:
    router = echo_router()
    router.on("connect", handler)
    async with serve(router) as server:
        client = await EioClient.connect(server)
        assert client.connect_reply.startswith("44"), client.connect_reply
        if "reject" in handler.__name__:
            reply = orjson.loads(client.connect_reply[2:])
            assert reply["message"] == "who are you" and reply["data"]["code"] == 401
        await asyncio.sleep(0.1)
        # Rejected, and not accepted afterwards as well: no CONNECT, no socket, no event served.
        assert client.received == []
        assert server.state.sockets == 0 and len(server.namespaces["/"].rooms) == 0
        await client.emit("echo", 1)
        await asyncio.sleep(0.1)
        assert client.received == []
        assert server.state.handler_errors == (0 if "reject" in handler.__name__ else 1)


async def test_connect_handler_that_hangs_is_rejected_after_handler_timeout() -> None:
    router = echo_router()

    async def connect(sock: Any, auth: Any) -> None:
        await asyncio.sleep(3600)

    router.on("connect", connect)
    async with serve(router, limits={"handler_timeout": 0.3}) as server:
        client = await EioClient.connect(server)
        assert client.connect_reply.startswith("44")
        assert server.state.sockets == 0
