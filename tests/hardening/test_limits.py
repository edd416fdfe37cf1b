"""Every ``[limits]`` key (and ``[websocket] max_payload``) against a live server, one behaviour per test.

docs/hardening.md lists the same keys with their defaults; ``test_every_limit_is_documented`` keeps the
two in step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tether import Config, Router, TetherError

from .support import (
    EioClient,
    PollingClient,
    echo_router,
    poll_url,
    raw_tcp,
    read_until_closed,
    scaled,
    serve,
    wait_until,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hardening.md"


# -- connections ----------------------------------------------------------------------------------------


async def refused_status(server: Any, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        await EioClient.connect(server, **kwargs)
    return int(info.value.response.status_code)


async def test_max_connections_counts_websocket_and_polling_sessions() -> None:
    async with serve(limits={"max_connections": 3}) as server, aiohttp.ClientSession() as session:
        clients = [await EioClient.connect(server) for _ in range(2)]
        poller = await PollingClient.open(session, server)
        assert len(server.clients) == 3
        assert await refused_status(server) == 503
        async with session.get(poll_url(server)) as r:
            assert r.status == 503
            assert (await r.json())["message"] == "Connection refused"
        assert server.state.rejected == 2
        # A session that ends gives its place back.
        await clients[0].close()
        await wait_until(lambda: len(server.clients) == 2, what="the closed client to be released")
        again = await EioClient.connect(server)
        assert await again.call("echo", 1) == [1]
        assert server.clients[poller.sid] is not None
        for c in (again, clients[1]):
            await c.close()


async def test_max_connections_per_ip() -> None:
    async with serve(limits={"max_connections_per_ip": 2}) as server:
        local = [await EioClient.connect(server) for _ in range(2)]
        assert await refused_status(server) == 503
        # Another address is not affected (any 127.0.0.x is loopback on Linux).
        other = [await EioClient.connect(server, local_addr=("127.0.0.2", 0)) for _ in range(2)]
        assert await refused_status(server, local_addr=("127.0.0.2", 0)) == 503
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            await PollingClient.open(session, server)
            await PollingClient.open(session, server)
            async with session.get(poll_url(server)) as r:
                assert r.status == 503
        await local[0].close()
        await wait_until(lambda: server._per_ip.get("127.0.0.1") == 1, what="the per-IP count to drop")
        local.append(await EioClient.connect(server))
        for c in local[1:] + other:
            await c.close()
        await wait_until(lambda: "127.0.0.1" not in server._per_ip and "127.0.0.2" not in server._per_ip)


# -- handshake timeout, header size -----------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never end
        b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: 100\r\n\r\n40",  # body
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n",  # half an upgrade
    ],
    ids=["nothing", "half-headers", "half-body", "half-upgrade"],
)
async def test_handshake_timeout_closes_incomplete_requests(sent: bytes) -> None:
    async with serve(limits={"handshake_timeout": 0.5}) as server:
        reader, writer = await raw_tcp(server)
        writer.write(sent)
        t0 = time.monotonic()
        data = await read_until_closed(reader, 3)
        elapsed = time.monotonic() - t0
        assert 0.4 <= elapsed < scaled(2), elapsed
        assert data.startswith(b"HTTP/1.1 408") or data == b"", data
        writer.close()


async def test_handshake_timeout_is_not_reset_by_trickled_bytes() -> None:
    """Slowloris: one byte every 100 ms keeps nothing alive past handshake_timeout."""
    async with serve(limits={"handshake_timeout": 0.6}) as server:
        reader, writer = await raw_tcp(server)
        request = (
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        )
        t0 = time.monotonic()
        closed_after = None
        for byte in request:
            if reader.at_eof():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.1)
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.1 408") or not data:
                closed_after = time.monotonic() - t0
                break
        assert closed_after is not None and closed_after < scaled(1.5), closed_after
        writer.close()


async def test_idle_keep_alive_connection_is_closed_after_handshake_timeout() -> None:
    async with serve(limits={"handshake_timeout": 0.5}) as server:
        reader, writer = await raw_tcp(server)
        writer.write(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nNot Found"), scaled(2))
        assert first.startswith(b"HTTP/1.1 404")
        t0 = time.monotonic()
        rest = await read_until_closed(reader, 3)
        # Closed without a word: a 408 written to an idle connection would be read by a client that
        # reuses it as the answer to its next request. (A half-sent request does get a 408: above.)
        assert rest == b"", rest
        assert time.monotonic() - t0 < scaled(2)
        writer.close()


async def test_oversized_headers_get_431() -> None:
    async with serve(limits={"http_max_header_size": 1024}) as server:
        reader, writer = await raw_tcp(server)
        writer.write(
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
        )
        data = await read_until_closed(reader, 3)
        assert data.startswith(b"HTTP/1.1 431"), data
        writer.close()


# -- event rate -------------------------------------------------------------------------------------------


def counting_router(seen: list[Any]) -> Router:
    router = echo_router()
    router.on("count", lambda sock, n: seen.append(n))
    return router


async def test_event_rate_sends_one_429_error_then_disconnects() -> None:
    seen: list[int] = []
    limits = {"event_rate": 5.0, "event_burst": 5, "rate_disconnect_after": 20}
    async with serve(counting_router(seen), limits=limits) as server:
        client = await EioClient.connect(server)  # the CONNECT packet took one token of the burst
        for n in range(4):
            await client.emit("count", n)
        await wait_until(lambda: len(seen) == 4, what="the burst to be served")
        for n in range(4, 15):  # over the rate, under the disconnect threshold
            await client.emit("count", n)
        await wait_until(lambda: bool(client.events_named("tether:error")))
        await asyncio.sleep(0.1)
        assert client.events_named("tether:error") == [
            [{"code": 429, "message": "event rate limit exceeded"}]
        ]
        assert not client.closed.is_set()
        assert server.state.rate_limited >= 9
        # Keep flooding: past rate_disconnect_after refusals the client is closed with 1008.
        with pytest.raises(ConnectionClosed):
            for n in range(15, 200):
                await client.emit("count", n)
                await asyncio.sleep(0)
        await asyncio.wait_for(client.closed.wait(), scaled(2))
        assert client.ws.close_code == 1008
        assert server.state.disconnects.get("rate limit") == 1
        # Refused events never reached the handler; the first token after the burst at most a few more.
        assert len(seen) <= 5 + 2
        assert len(client.events_named("tether:error")) == 1


async def test_sustained_moderate_flood_is_disconnected_too() -> None:
    """Three times the rate, paced: a token arrives now and then, which must not forgive the client."""
    seen: list[int] = []
    limits = {"event_rate": 20.0, "event_burst": 5, "rate_disconnect_after": 10}
    async with serve(counting_router(seen), limits=limits) as server:
        client = await EioClient.connect(server)
        deadline = time.monotonic() + scaled(5)
        n = 0
        with pytest.raises(ConnectionClosed):
            while time.monotonic() < deadline:
                await client.emit("count", n)
                n += 1
                await asyncio.sleep(1 / 60)
        assert server.state.disconnects.get("rate limit") == 1
        # One error event for the whole episode, not one per refused event.
        assert len(client.events_named("tether:error")) == 1


async def test_client_within_rate_is_never_limited() -> None:
    seen: list[int] = []
    limits = {"event_rate": 50.0, "event_burst": 10, "rate_disconnect_after": 5}
    async with serve(counting_router(seen), limits=limits) as server:
        client = await EioClient.connect(server)
        for n in range(25):  # 25 events at ~25/s: half the rate
            await client.emit("count", n)
            await asyncio.sleep(0.04)
        await wait_until(lambda: len(seen) == 25)
        assert server.state.rate_limited == 0 and not client.events_named("tether:error")
        await client.close()


async def test_connect_packets_count_against_the_rate() -> None:
    """A flood of namespace CONNECTs (each answered with an error) is limited like events."""
    limits = {"event_rate": 5.0, "event_burst": 5, "rate_disconnect_after": 20}
    async with serve(limits=limits) as server:
        client = await EioClient.connect(server)
        with pytest.raises(ConnectionClosed):
            for _ in range(300):
                await client.ws.send("40/nowhere,")
                await asyncio.sleep(0)
        await asyncio.wait_for(client.closed.wait(), scaled(2))
        assert server.state.disconnects.get("rate limit") == 1
        connect_errors = [m for m in client.received if isinstance(m, str) and m.startswith("44/nowhere")]
        assert len(connect_errors) <= 5 + 2


# -- rooms ------------------------------------------------------------------------------------------------


async def test_max_rooms_per_socket() -> None:
    router = echo_router()

    @router.on("join")
    def join(sock: Any, rooms: list[str]) -> dict[str, Any]:
        joined = []
        try:
            for room in rooms:
                sock.join(room)
                joined.append(room)
        except TetherError as exc:
            return {"joined": joined, "error": str(exc)}
        return {"joined": joined}

    @router.on("leave")
    def leave(sock: Any, room: str) -> None:
        sock.leave(room)

    async with serve(router, limits={"max_rooms_per_socket": 3}) as server:
        client = await EioClient.connect(server)
        result = await client.call("join", ["a", "b", "c", "d"])
        assert result[0]["joined"] == ["a", "b", "c"]
        assert "max_rooms_per_socket" in result[0]["error"]
        # Joining a room it is already in is not a new room.
        assert await client.call("join", ["b"]) == [{"joined": ["b"]}]
        await client.call("leave", "a")
        assert await client.call("join", ["d"]) == [{"joined": ["d"]}]
        sock = next(iter(server.namespaces["/"].rooms.members(result[0]["joined"][1]).values()))
        assert sock.rooms - {sock.sid} == {"b", "c", "d"}
        await client.close()


# -- payload size -----------------------------------------------------------------------------------------


async def test_websocket_frame_over_max_payload_closes_1009() -> None:
    async with serve(websocket={"max_payload": 1000}) as server:
        client = await EioClient.connect(server)
        await client.emit("echo", "x" * 2000)
        await asyncio.wait_for(client.closed.wait(), scaled(2))
        assert client.ws.close_code == 1009
        assert server.state.protocol_errors == 1
        assert "transport error" in server.state.disconnects  # as node's ws over maxPayload


async def test_fragmented_message_over_max_payload_closes_1009() -> None:
    async with serve(websocket={"max_payload": 1000}) as server:
        client = await EioClient.connect(server)
        await client.ws.send(['42["echo","', "x" * 600, "y" * 600 + '"]'])
        await asyncio.wait_for(client.closed.wait(), scaled(2))
        assert client.ws.close_code == 1009
        assert client.ws.close_reason == "message too big"
        assert server.state.protocol_errors == 1


async def test_message_at_max_payload_is_accepted() -> None:
    async with serve(websocket={"max_payload": 1000}) as server:
        client = await EioClient.connect(server)
        text = "x" * (1000 - len('421["echo",""]'))
        assert await client.call("echo", text) == [text]
        await client.close()


async def test_polling_body_over_max_payload_gets_413() -> None:
    async with serve(websocket={"max_payload": 1000}) as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        assert await poller.post(b'42["echo","' + b"x" * 2000 + b'"]') == 413
        assert server.state.protocol_errors == 1
        # A session that sent an oversized body is closed, as engine.io does.
        await wait_until(lambda: poller.sid not in server.clients)


async def test_chunked_polling_body_over_max_payload_gets_413() -> None:
    """No Content-Length to refuse on: the body is counted as it streams in."""
    async with serve(websocket={"max_payload": 1000}) as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        reader, writer = await raw_tcp(server)
        writer.write(
            f"POST /socket.io/?EIO=4&transport=polling&sid={poller.sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(3):
            writer.write(b"200\r\n" + b"4" * 0x200 + b"\r\n")
        data = await read_until_closed(reader, 3)
        assert data.startswith(b"HTTP/1.1 413"), data
        await wait_until(lambda: poller.sid not in server.clients)
        writer.close()


async def test_raw_websocket_frame_over_max_payload_in_one_write() -> None:
    """The frame header alone announces the size: the server must not wait for (or buffer) the body."""
    async with serve(websocket={"max_payload": 1000}) as server:
        client = await EioClient.connect(server)
        transport = client.ws.transport
        head = bytes([0x81, 0x80 | 127]) + (50_000_000).to_bytes(8, "big") + b"\x00\x00\x00\x00"
        transport.write(head + b"4" * 100)
        await asyncio.wait_for(client.closed.wait(), scaled(2))
        assert client.ws.close_code == 1009


# -- docs -------------------------------------------------------------------------------------------------


def test_every_limit_is_documented() -> None:
    from tether.config import LimitsConfig

    text = DOCS.read_text()
    defaults = Config().limits
    for f in dataclasses.fields(LimitsConfig):
        assert f"`{f.name}`" in text, f"[limits] {f.name} missing from docs/hardening.md"
        row = next(line for line in text.splitlines() if line.startswith(f"| `{f.name}`"))
        assert f"`{getattr(defaults, f.name)!r}`".replace("'", '"') in row, row
    for key in ("max_payload", "allowed_origins", "ping_interval", "connect_timeout", "tls_cert"):
        assert f"] {key}`" in text, key
