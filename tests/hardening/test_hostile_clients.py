"""Malformed and abusive clients against one server, while a well-behaved client keeps its latency.

Each test starts a server, measures a well-behaved client's echo round trip, then runs one kind of abuse
while the same client keeps echoing; the abuse must be handled (refused, closed, ignored: each test says
which), the server's state must come back to what it was, and the good client's p99 round trip during
the abuse must stay under 200 ms x TETHER_TESTS_TIMEOUT_FACTOR. That bound is generous on purpose: this
checks that abuse is not allowed to stall everyone else, not how fast Tether is (bench/ does that).
The basics of malformed packets and bad sids are in tests/server/test_malformed.py.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from tether import Server

from .support import (
    EioClient,
    PollingClient,
    StalledClient,
    echo_latencies,
    echo_router,
    p99,
    poll_url,
    raw_tcp,
    read_until_closed,
    scaled,
    serve,
    upgrade_request,
    wait_until,
    ws_frame,
)

LATENCY_BOUND = 0.2
SHORT = {"handshake_timeout": 1.0}
HEARTBEAT = {"ping_interval": 0.5, "ping_timeout": 0.5}

Abuse = Callable[[Server], Awaitable[Any]]


async def latency_kept(server: Server, abuse: Abuse) -> Any:
    """Run ``abuse(server)`` while a good client echoes; assert its p99 round trip stays bounded.

    Returns what the abuse returned. The probe runs for as long as the abuse does, and at least 30 times.
    """
    good = await EioClient.connect(server)
    before = await echo_latencies(good, 30, pause=0.002)
    task = asyncio.ensure_future(abuse(server))
    during: list[float] = []
    deadline = time.monotonic() + scaled(30)
    while (not task.done() or len(during) < 30) and time.monotonic() < deadline:
        during += await echo_latencies(good, 5, pause=0.005)
    result = await task
    assert p99(during) < scaled(LATENCY_BOUND), (
        f"good client's p99 went from {p99(before) * 1000:.1f} ms to {p99(during) * 1000:.1f} ms"
    )
    assert good.sid in server.clients and not good.closed.is_set()
    await good.close()
    return result


async def settle(server: Server, clients: int = 0) -> None:
    """The server is back to ``clients`` sessions (the good client's close is counted too)."""
    await wait_until(lambda: len(server.clients) == clients, 5, f"{clients} sessions left")


# -- handshakes -------------------------------------------------------------------------------------------


async def test_half_open_handshakes() -> None:
    """Many connections stop halfway through the HTTP request or the upgrade; all are closed in time."""
    async with serve(limits=SHORT) as server:

        async def abuse(server: Server) -> list[bytes]:
            conns = []
            halves = [
                b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                upgrade_request()[:60],
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n",
                b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 50\r\n\r\n4",
                b"",
            ]
            for i in range(150):
                reader, writer = await raw_tcp(server)
                writer.write(halves[i % len(halves)])
                conns.append((reader, writer))
            results = await asyncio.gather(*(read_until_closed(r, 4) for r, _ in conns))
            for _, w in conns:
                w.close()
            return results

        t0 = time.monotonic()
        results = await latency_kept(server, abuse)
        assert time.monotonic() - t0 < scaled(4)
        assert all(r == b"" or r.startswith(b"HTTP/1.1 408") for r in results)
        await settle(server)


async def test_upgraded_but_silent_websockets_hit_connect_timeout() -> None:
    """WebSocket upgrades that never CONNECT to a namespace: closed after connect_timeout."""
    async with serve(websocket={"connect_timeout": 0.5}) as server:

        async def abuse(server: Server) -> None:
            conns = []
            for _ in range(50):
                reader, writer = await raw_tcp(server)
                writer.write(upgrade_request())
                conns.append((reader, writer))
            # Then a frame header announcing 20 bytes and nothing more.
            for _, w in conns[:25]:
                w.write(bytes([0x81, 0x80 | 20]) + b"\x00\x00\x00\x00" + b"42")
            await asyncio.gather(*(read_until_closed(r, 3) for r, _ in conns))
            for _, w in conns:
                w.close()

        await latency_kept(server, abuse)
        await settle(server)
        assert server.state.disconnects.get("connect timeout") == 50


async def test_slowloris_polling() -> None:
    """POST bodies trickled a byte at a time are cut off at handshake_timeout, the session with them."""
    async with serve(limits=SHORT) as server, aiohttp.ClientSession() as session:
        pollers = [await PollingClient.open(session, server) for _ in range(10)]

        async def trickle(sid: str) -> bytes:
            reader, writer = await raw_tcp(server)
            body = b'42["echo","' + b"s" * 500 + b'"]'
            writer.write(
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            got = b""
            for b in body:
                try:
                    writer.write(bytes([b]))
                    got = await asyncio.wait_for(reader.read(1024), 0.05)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
                break
            got += await read_until_closed(reader, 3)
            writer.close()
            return got

        async def abuse(server: Server) -> list[bytes]:
            return await asyncio.gather(*(trickle(p.sid) for p in pollers))

        results = await latency_kept(server, abuse)
        assert all(r.startswith(b"HTTP/1.1 408") for r in results), results[:2]


# -- floods ---------------------------------------------------------------------------------------------


async def test_engineio_pong_flood_is_cheap_and_harmless() -> None:
    async with serve() as server:

        async def abuse(server: Server) -> None:
            flooder = await EioClient.connect(server)
            for i in range(20_000):
                await flooder.ws.send("3")
                if i % 50 == 0:
                    await asyncio.sleep(0)
            assert await flooder.call("echo", "after") == ["after"]
            await flooder.close()

        await latency_kept(server, abuse)


async def test_engineio_ping_from_client_is_a_protocol_error() -> None:
    """Engine.IO v4 clients never ping: a client that floods "2" is closed on the first one."""
    async with serve() as server:

        async def abuse(server: Server) -> None:
            flooder = await EioClient.connect(server)
            with pytest.raises(ConnectionClosed):
                for _ in range(5000):
                    await flooder.ws.send("2")
                    await asyncio.sleep(0)
            assert flooder.ws.close_code == 1002

        await latency_kept(server, abuse)
        assert server.state.protocol_errors == 1


async def test_websocket_ping_frame_flood_from_a_client_that_does_not_read() -> None:
    """RFC 6455 PING frames are answered; a flooder that never reads the PONGs becomes a slow consumer."""
    async with serve(limits={"send_buffer_bytes": 64 * 1024}) as server:

        async def abuse(server: Server) -> None:
            stalled = await StalledClient.connect(server)  # never reads: the PONGs pile up on the server
            loop = asyncio.get_running_loop()
            ping = ws_frame(b"p" * 125, opcode=0x9)
            try:
                for _ in range(1000):
                    await loop.sock_sendall(stalled.sock, ping * 20)
                    if server.state.slow_consumers:
                        break
            except ConnectionError:
                pass
            await wait_until(lambda: len(server.clients) == 1, 2)
            stalled.close()

        await latency_kept(server, abuse)
        assert server.state.slow_consumers == 1
        assert server.state.disconnects.get("slow consumer") == 1


async def test_event_flood_with_rate_limit() -> None:
    seen: list[int] = []
    router = echo_router()
    router.on("count", lambda sock, n: seen.append(n))
    limits = {"event_rate": 100.0, "event_burst": 50, "rate_disconnect_after": 200}
    async with serve(router, limits=limits) as server:

        async def abuse(server: Server) -> None:
            flooder = await EioClient.connect(server)
            with pytest.raises(ConnectionClosed):
                for n in range(50_000):
                    await flooder.emit("count", n)
                    if n % 20 == 0:
                        await asyncio.sleep(0)
            assert flooder.ws.close_code == 1008

        await latency_kept(server, abuse)
        assert len(seen) < 400
        assert server.state.disconnects.get("rate limit") == 1


# -- big and broken messages -----------------------------------------------------------------------------


async def test_huge_frames() -> None:
    """Frames announcing gigabytes are refused from their header; frames at the limit are served."""
    async with serve(websocket={"max_payload": 100_000}) as server:

        async def abuse(server: Server) -> None:
            for size in (10**9, 2**62, 100_001):
                reader, writer = await raw_tcp(server)
                writer.write(upgrade_request())
                await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), scaled(5))
                writer.write(ws_frame(b"40"))
                writer.write(
                    bytes([0x81, 0xFF]) + size.to_bytes(8, "big") + b"\x00\x00\x00\x00" + b"4" * 1000
                )
                data = await read_until_closed(reader, 3)
                assert b"\x03\xf1" in data  # close code 1009 in the close frame
                writer.close()
            big = await EioClient.connect(server)
            text = "b" * (100_000 - len('4299["echo",""]'))  # at the limit with a two-digit ack id
            for _ in range(20):
                assert await big.call("echo", text) == [text]
            await big.close()

        await latency_kept(server, abuse)
        assert server.state.protocol_errors == 3


async def test_binary_attachments_count_together_against_max_payload() -> None:
    """64 announced attachments of max_payload each would be 64x the limit held per client: refused."""
    async with serve(websocket={"max_payload": 100_000}) as server:

        async def abuse(server: Server) -> None:
            client = await EioClient.connect(server)
            placeholders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(64))
            await client.ws.send(f'4564-["echo",{placeholders}]')
            with pytest.raises(ConnectionClosed):
                for _ in range(64):
                    await client.ws.send(b"\x00" * 90_000)
                    await asyncio.sleep(0.01)
            assert client.ws.close_code == 1009

        await latency_kept(server, abuse)
        assert server.state.disconnects.get("transport error") == 1  # as node's ws over maxPayload


async def test_invalid_utf8() -> None:
    async with serve() as server, aiohttp.ClientSession() as session:

        async def abuse(server: Server) -> None:
            client = await EioClient.connect(server)
            client.ws.transport.write(ws_frame(b'42["echo","\xff\xfe"]'))
            await asyncio.wait_for(client.closed.wait(), scaled(2))
            assert client.ws.close_code == 1007
            poller = await PollingClient.open(session, server)
            assert await poller.post(b'42["echo","\xc3\x28"]') == 400
            async with session.get(poll_url(server, "&sid=\xff")) as r:
                assert r.status == 400

        await latency_kept(server, abuse)
        assert server.state.protocol_errors == 2


async def test_unknown_namespaces_and_events() -> None:
    async with serve() as server:

        async def abuse(server: Server) -> int:
            client = await EioClient.connect(server)
            for i in range(2000):
                await client.ws.send(f"40/ns-{i},")
                await client.ws.send(f'42/ns-{i},["echo",{i}]')
                await client.emit(f"no-such-event-{i}", i)
                if i % 10 == 0:
                    await asyncio.sleep(0)
            assert await client.call("echo", "still") == ["still"]
            refused = sum(1 for m in client.received if isinstance(m, str) and m.startswith("44/ns-"))
            await client.close()
            return refused

        assert await latency_kept(server, abuse) == 2000
        # Nothing was created for them.
        assert list(server.namespaces) == ["/"]


async def test_acks_for_ids_never_sent() -> None:
    async with serve() as server:

        async def abuse(server: Server) -> None:
            client = await EioClient.connect(server)
            for i in range(5000):
                await client.ws.send(f"43{i}[{i}]")
                if i % 20 == 0:
                    await asyncio.sleep(0)
            await client.ws.send("431/nowhere,5[1]".replace("1/", "/"))
            assert await client.call("echo", "ok") == ["ok"]
            await client.close()

        await latency_kept(server, abuse)
        assert server.state.protocol_errors == 0


async def test_random_garbage_on_the_socket() -> None:
    rng = random.Random(6)
    async with serve(limits=SHORT) as server:

        async def one(data: bytes, upgrade: bool) -> bytes:
            reader, writer = await raw_tcp(server)
            if upgrade:
                writer.write(upgrade_request())
                await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), scaled(5))
            writer.write(data)
            got = await read_until_closed(reader, 3)
            writer.close()
            return got

        async def abuse(server: Server) -> list[bytes]:
            jobs = []
            for i in range(60):
                data = rng.randbytes(rng.randint(1, 4000))
                jobs.append(one(data, upgrade=i % 2 == 1))
            return await asyncio.gather(*jobs)

        results = await latency_kept(server, abuse)
        for got in results[::2]:  # plain HTTP: 400 (or 408 if it looked like an unfinished request)
            assert got == b"" or got.startswith(
                (b"HTTP/1.1 400", b"HTTP/1.1 408", b"HTTP/1.1 413", b"HTTP/1.1 431")
            )
        await settle(server)
        assert server.state.protocol_errors >= 1


async def test_idle_polling_sessions_are_reaped() -> None:
    """100 polling sessions that never poll again: they cost a queue each until the heartbeat ends them."""
    async with serve(websocket=HEARTBEAT) as server, aiohttp.ClientSession() as session:

        async def abuse(server: Server) -> None:
            for _ in range(100):
                await PollingClient.open(session, server)
            # The heartbeat is precise (1 s here): on a slow machine the first ones may be gone already.
            assert len(server.clients) + server.state.disconnects.get("ping timeout", 0) == 101
            server.emit("news", "x" * 100)
            await wait_until(lambda: len(server.clients) == 1, 4, "the idle sessions to time out")

        await latency_kept(server, abuse)
        assert server.state.disconnects.get("ping timeout") == 100


async def test_overlapping_and_pipelined_polling_requests() -> None:
    """Two GETs at once close the session (engine.io does the same); a pipelined request waits its turn."""
    async with serve() as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        reader, writer = await raw_tcp(server)
        get = f"GET /socket.io/?EIO=4&transport=polling&sid={poller.sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        body = b'42["echo"]'
        post = (
            f"POST /socket.io/?EIO=4&transport=polling&sid={poller.sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        writer.write(get.encode())
        await wait_until(lambda: server.clients[poller.sid].poll_waiter is not None)
        writer.write(post)  # pipelined behind the held GET
        await asyncio.sleep(0.1)
        server.emit("news", 1)
        data = b""
        async with asyncio.timeout(scaled(3)):
            while data.count(b"HTTP/1.1 200") < 2:
                data += await reader.read(4096)
        first, second = data.split(b"HTTP/1.1 200")[1:3]
        assert b'42["news",1]' in first and second.endswith(b"ok")
        # An overlapping GET on another connection is a broken client.
        held = asyncio.ensure_future(poller.get())
        await wait_until(lambda: server.clients[poller.sid].poll_waiter is not None)
        async with session.get(poll_url(server, f"&sid={poller.sid}")) as r:
            assert r.status == 400
        assert (await held).startswith("1")
        assert poller.sid not in server.clients
        writer.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_everything_at_once(seed: int) -> None:
    """A mix of the above from many connections at the same time."""
    rng = random.Random(seed)
    websocket = {"max_payload": 50_000, **HEARTBEAT}
    async with serve(limits=SHORT, websocket=websocket) as server, aiohttp.ClientSession() as session:

        async def garbage() -> None:
            _, w = await raw_tcp(server)
            w.write(os.urandom(rng.randint(1, 2000)))
            await asyncio.sleep(0.2)
            w.close()

        async def broken_ws() -> None:
            c = await EioClient.connect(server)
            try:
                for _ in range(50):
                    await c.ws.send(rng.choice(["4{", "42[1]", "45-[]", "3", "6", "43x", "40/x,"]))
            except ConnectionClosed:
                pass
            await c.close()

        async def idle_poller() -> None:
            await PollingClient.open(session, server)

        async def abuse(server: Server) -> None:
            jobs = [rng.choice([garbage, broken_ws, idle_poller])() for _ in range(60)]
            await asyncio.gather(*jobs)
            await wait_until(lambda: len(server.clients) <= 1, 5)

        await latency_kept(server, abuse)
        await settle(server)
