"""Every limit at exactly its value and one past it, on each transport it applies to (issue 13, item 11).

A limit checked with ``>`` where ``>=`` was meant (or the reverse) refuses the largest valid input or lets
the smallest invalid one through; only a test at the edge sees that. tests/hardening/test_limits.py shows
what each limit does; this file pins where it starts. Which mutations were tried by hand is said in
docs/hardening.md ("Limits at their edges").

Limits whose edge is a duration (``handshake_timeout``, ``handler_timeout``, ``event_rate``'s refill) are
tested against the token bucket's own clock here (``take_rate_token`` takes ``now``) or by behaviour in
test_limits.py; a wall-clock edge would be a flaky test.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from tether import Router, TetherError

from .support import (
    EioClient,
    PollingClient,
    echo_router,
    raw_tcp,
    read_until_closed,
    scaled,
    serve,
    upgrade_request,
    wait_until,
    ws_frame,
)

MAX = 1000  # [websocket] max_payload in this file


def size_router(seen: list[Any]) -> Router:
    """``size`` records the length of its argument (text or bytes) and acks it."""
    router = echo_router()

    @router.on("size")
    def size(sock: Any, data: Any) -> int:
        seen.append(len(data))
        return len(data)

    return router


def padded_event(total: int, ack: str = "") -> bytes:
    """``42<ack>["size","xxx"]`` exactly ``total`` bytes long."""
    bare = len(f'42{ack}["size",""]')
    return f'42{ack}["size","{"x" * (total - bare)}"]'.encode()


# -- [websocket] max_payload -----------------------------------------------------------------------------


@pytest.mark.parametrize("fragmented", [False, True], ids=["frame", "fragments"])
async def test_websocket_message_at_max_payload_and_one_past(fragmented: bool) -> None:
    seen: list[int] = []
    async with serve(size_router(seen), websocket={"max_payload": MAX}) as server:
        for total, accepted in ((MAX, True), (MAX + 1, False)):
            client = await EioClient.connect(server)
            message = padded_event(total).decode()
            assert len(message.encode()) == total
            if fragmented:
                await client.ws.send([message[:400], message[400:800], message[800:]])
            else:
                await client.ws.send(message)
            if accepted:
                await wait_until(lambda n=total: seen == [n - len('42["size",""]')])
                assert not client.closed.is_set()
                await client.close()
            else:
                await asyncio.wait_for(client.closed.wait(), scaled(3))
                assert client.ws.close_code == 1009
        assert server.state.protocol_errors == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_polling_body_at_max_payload_and_one_past(chunked: bool) -> None:
    seen: list[int] = []
    async with (
        serve(size_router(seen), websocket={"max_payload": MAX}) as server,
        aiohttp.ClientSession() as session,
    ):
        for total, status in ((MAX, 200), (MAX + 1, 413)):
            poller = await PollingClient.open(session, server)
            body = padded_event(total)  # "4" Engine.IO message, "2" Socket.IO event
            assert len(body) == total
            reader, writer = await raw_tcp(server)
            url = f"/socket.io/?EIO=4&transport=polling&sid={poller.sid}"
            head = f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            if chunked:
                writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
                for i in range(0, total, 300):
                    part = body[i : i + 300]
                    writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(f"{head}Content-Length: {total}\r\n\r\n".encode() + body)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), scaled(5))
            writer.close()
            assert answer.startswith(f"HTTP/1.1 {status}".encode()), (total, answer)
            if status == 200:
                await wait_until(lambda n=total: seen == [n - len('42["size",""]')])
                assert poller.sid in server.clients
            else:
                await wait_until(lambda sid=poller.sid: sid not in server.clients)


async def test_binary_attachment_at_max_payload_and_one_past_on_websocket() -> None:
    seen: list[int] = []
    async with serve(size_router(seen), websocket={"max_payload": MAX}) as server:
        for size, accepted in ((MAX, True), (MAX + 1, False)):
            client = await EioClient.connect(server)
            await client.ws.send('451-["size",{"_placeholder":true,"num":0}]')
            await client.ws.send(b"\x07" * size)
            if accepted:
                await wait_until(lambda: seen == [MAX])
                await client.close()
            else:
                await asyncio.wait_for(client.closed.wait(), scaled(3))
                assert client.ws.close_code == 1009


async def test_binary_attachments_at_max_payload_and_one_past_on_polling() -> None:
    """Two attachments in two POSTs: together they count against max_payload (each body is under it)."""
    seen: list[int] = []
    router = size_router(seen)
    router.on("pair", lambda sock, a, b: seen.append(len(a) + len(b)))
    async with (
        serve(router, websocket={"max_payload": MAX}) as server,
        aiohttp.ClientSession() as session,
    ):
        for second, status in ((MAX // 2, 200), (MAX // 2 + 1, 413)):
            poller = await PollingClient.open(session, server)
            head = b'452-["pair",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
            first = b"b" + base64.b64encode(b"\x01" * (MAX // 2))
            assert await poller.post(head + b"\x1e" + first) == 200
            assert await poller.post(b"b" + base64.b64encode(b"\x02" * second)) == status
            if status == 200:
                await wait_until(lambda: seen == [MAX])
            else:
                await wait_until(lambda sid=poller.sid: sid not in server.clients)
                assert seen == [MAX]


# -- [limits] max_depth ----------------------------------------------------------------------------------


def deep_event(depth: int, ack: str = "", wide: bool = False) -> str:
    """An EVENT whose data nests exactly ``depth`` levels (the event array is the first).

    ``wide`` adds two empty objects beside the nested arrays: more brackets than levels, so the server
    cannot settle it by counting brackets and walks the value (see protocol.socketio.check_depth).
    """
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    siblings = ",{},{}" if wide else ""
    return f'42{ack}["size",{inner}{siblings}]'


async def judged(client: EioClient, seen: list[int], accepted: bool, max_depth: int) -> None:
    """What the server made of the one event ``client`` sent: served (its handler appended to ``seen``, then
    the client leaves) or refused with a 1002 close naming ``max_depth``."""
    if accepted:
        await wait_until(lambda: seen == [1])
        seen.clear()
        await client.close()
    else:
        await asyncio.wait_for(client.closed.wait(), scaled(3))
        assert client.ws.close_code == 1002
        assert f"deeper than {max_depth} levels" in client.ws.close_reason


@pytest.mark.parametrize("path", ["fast", "fast-wide", "ack", "ack-wide", "binary"])
async def test_max_depth_on_websocket(path: str) -> None:
    seen: list[int] = []
    router = Router()
    router.on("size", lambda sock, *args: seen.append(1))
    async with serve(router, limits={"max_depth": 4}) as server:
        for depth, accepted in ((4, True), (5, False)):
            client = await EioClient.connect(server)
            wide = path.endswith("-wide")
            if path.startswith("fast"):  # 42[...] without ack: the transport's own hot path
                await client.ws.send(deep_event(depth, wide=wide))
            elif path.startswith("ack"):  # with an ack id: the hot path, then the general one if refused
                await client.ws.send(deep_event(depth, ack="7", wide=wide))
            else:  # a binary placeholder at the deepest level
                inner = "[" * (depth - 2) + '{"_placeholder":true,"num":0}' + "]" * (depth - 2)
                await client.ws.send(f'451-["size",{inner}]')
                await client.ws.send(b"\x01")
            await judged(client, seen, accepted, 4)


@pytest.mark.parametrize("ack", ["", "7"], ids=["fast", "ack"])
async def test_max_depth_shortest_messages_at_the_default(ack: str) -> None:
    """The shortest event nesting 33 levels (``["x",[[...]]]``, 70 characters) is refused and one nesting 32
    is served, at the default ``max_depth`` (32): a text shorter than 2 * (max_depth + 1) is not counted
    (see protocol.socketio.check_depth), and a looser length bound would let the first one through."""
    seen: list[int] = []
    router = Router()
    router.on("x", lambda sock, *args: seen.append(1))
    async with serve(router) as server:
        assert server.config.limits.max_depth == 32
        for depth, accepted in ((32, True), (33, False)):
            inner = "[" * (depth - 1) + "]" * (depth - 1)
            message = f'42{ack}["x",{inner}]'
            assert len(message) - 2 - len(ack) == 2 * depth + 4  # the shortest text for that depth
            client = await EioClient.connect(server)
            await client.ws.send(message)
            await judged(client, seen, accepted, 32)


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
async def test_max_depth_on_polling(wide: bool) -> None:
    seen: list[int] = []
    router = Router()
    router.on("size", lambda sock, *args: seen.append(1))
    async with serve(router, limits={"max_depth": 4}) as server, aiohttp.ClientSession() as session:
        for depth, status in ((4, 200), (5, 400)):
            poller = await PollingClient.open(session, server)
            assert await poller.post(deep_event(depth, wide=wide).encode()) == status
            if status == 200:
                await wait_until(lambda: seen == [1])
            else:
                await wait_until(lambda sid=poller.sid: sid not in server.clients)
                assert seen == [1]


async def test_max_depth_on_the_connect_auth() -> None:
    async with serve(limits={"max_depth": 2}) as server:
        ok = await EioClient.connect(server, auth={"a": [1]})
        assert ok.connect_reply.startswith("40{")
        await ok.close()
        with pytest.raises(ConnectionClosed):  # the server closes instead of answering the CONNECT
            await EioClient.connect(server, auth={"a": [[1]]})


# -- [limits] event_burst, event_rate, rate_disconnect_after ---------------------------------------------

RATE = {"event_rate": 0.001, "event_burst": 4, "rate_disconnect_after": 3}
"""A refill of one token per 1000 s: nothing refills during a test, so the counts are exact."""


def counting(seen: list[Any]) -> Router:
    router = Router()
    router.on("n", lambda sock, n: seen.append(n))
    return router


async def test_event_burst_and_rate_disconnect_after_on_websocket() -> None:
    seen: list[int] = []
    async with serve(counting(seen), limits=RATE) as server:
        client = await EioClient.connect(server)  # the CONNECT took one token: 3 left of the burst of 4
        for n in range(3):
            await client.emit("n", n)
        await wait_until(lambda: seen == [0, 1, 2])
        assert server.state.rate_limited == 0  # exactly the burst: nothing refused
        for n in range(3, 6):  # refusals 1..3: exactly rate_disconnect_after, still connected
            await client.emit("n", n)
        await wait_until(lambda: server.state.rate_limited == 3)
        await asyncio.sleep(0.05)
        assert client.sid in server.clients and not client.closed.is_set()
        error = {"code": 429, "message": "event rate limit exceeded"}
        assert client.events_named("tether:error") == [[error]]
        await client.emit("n", 6)  # refusal 4: one past it
        await asyncio.wait_for(client.closed.wait(), scaled(3))
        assert client.ws.close_code == 1008
        assert seen == [0, 1, 2]


async def test_event_burst_and_rate_disconnect_after_on_polling() -> None:
    seen: list[int] = []
    async with serve(counting(seen), limits=RATE) as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        for n in range(3):
            assert await poller.post(b'42["n",' + str(n).encode() + b"]") == 200
        await wait_until(lambda: seen == [0, 1, 2])
        assert server.state.rate_limited == 0
        body = b"\x1e".join(b'42["n",' + str(n).encode() + b"]" for n in range(3, 6))
        assert await poller.post(body) == 200  # refusals 1..3 in one payload
        assert poller.sid in server.clients
        assert '42["tether:error",{"code":429' in await poller.get()
        assert await poller.post(b'42["n",6]') == 200  # refusal 4
        await wait_until(lambda: poller.sid not in server.clients)
        assert seen == [0, 1, 2]
        assert server.state.disconnects.get("rate limit") == 1


async def test_event_rate_refills_one_token_per_period() -> None:
    """The bucket's arithmetic at its edges, on a live client with the clock passed in (whole seconds at
    one token per second: every value below is exact in floating point)."""
    async with serve(limits={"event_rate": 1.0, "event_burst": 2}) as server:
        client = await EioClient.connect(server)
        live = server.clients[client.sid]
        rate, burst = 1.0, 2
        t = 1_000_000.0
        assert live.take_rate_token(t, rate, burst)  # long idle: the bucket is full, exactly the burst
        assert live.take_rate_token(t, rate, burst)
        assert not live.take_rate_token(t, rate, burst)  # burst + 1
        assert not live.take_rate_token(t + 0.75, rate, burst)  # 0.75 of a token
        assert live.take_rate_token(t + 1.0, rate, burst)  # one period: exactly one token
        assert not live.take_rate_token(t + 1.0, rate, burst)
        assert live.rate_violations == 3
        assert live.take_rate_token(t + 2.0, rate, burst)  # 1 token: not full, the episode goes on
        assert live.rate_violations == 3
        assert live.take_rate_token(t + 4.0, rate, burst)  # exactly full again: the episode is forgiven
        assert live.rate_violations == 0
        await client.close()


# -- [limits] send_buffer_messages, send_buffer_bytes (polling queue) ------------------------------------


@pytest.mark.parametrize("mark", ["send_buffer_messages", "send_buffer_bytes"])
async def test_polling_queue_at_its_mark_and_one_past(mark: str) -> None:
    one = len(b'42["q",""]')  # each emit below queues exactly this many bytes
    limits: dict[str, Any] = {"send_buffer_messages": 5, "send_buffer_bytes": 5 * one}
    if mark == "send_buffer_messages":
        limits["send_buffer_bytes"] = 10_000
    else:
        limits["send_buffer_messages"] = 1000
    async with serve(limits=limits) as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        for _ in range(5):
            server.emit("q", "")
        client = server.clients[poller.sid]
        assert client.conn.queued_messages == 5 and client.conn.queued_bytes == 5 * one
        assert server.state.slow_consumers == 0 and not client.paused
        server.emit("q", "")
        assert server.state.slow_consumers == 1


# -- [limits] http_max_header_size, http_max_headers ------------------------------------------------------


def request_of_size(total: int, headers: int = 1) -> bytes:
    """A GET whose request line and headers, final blank line included, are exactly ``total`` bytes."""
    start = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    extra = [b"X-%d: a\r\n" % i for i in range(headers - 2)]
    fixed = len(start) + sum(map(len, extra)) + len(b"X-Pad: \r\n") + 2
    return start + b"".join(extra) + b"X-Pad: " + b"p" * (total - fixed) + b"\r\n\r\n"


async def test_header_size_at_the_limit_and_one_past() -> None:
    async with serve(limits={"http_max_header_size": 2048}) as server:
        for total, status in ((2048, b"200"), (2049, b"431")):
            request = request_of_size(total)
            assert len(request) == total
            reader, writer = await raw_tcp(server)
            writer.write(request)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), scaled(5))
            writer.close()
            assert answer.split()[1] == status, (total, answer)


async def test_header_size_counts_raw_bytes_not_names_and_values() -> None:
    """Whitespace around values and many tiny headers are bytes the client sent: they count."""
    async with serve(limits={"http_max_header_size": 2048, "http_max_headers": 1000}) as server:
        padded = b"GET / HTTP/1.1\r\nHost: x\r\nX-A:" + b" " * 4000 + b"a\r\n\r\n"
        tiny = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"A%d:\r\n" % i for i in range(600)) + b"\r\n"
        for request in (padded, tiny):
            reader, writer = await raw_tcp(server)
            writer.write(request)
            data = await read_until_closed(reader, 3)
            writer.close()
            assert data.startswith(b"HTTP/1.1 431"), data[:100]


@pytest.mark.parametrize("upgrade", [False, True], ids=["polling", "websocket"])
async def test_header_count_at_the_limit_and_one_past(upgrade: bool) -> None:
    async with serve(limits={"http_max_headers": 20}) as server:
        for count, ok in ((20, True), (21, False)):
            if upgrade:
                base = upgrade_request()  # 5 headers
                extra = "".join(f"X-{i}: a\r\n" for i in range(count - 5))
                request = base[:-2] + extra.encode() + b"\r\n"
            else:
                request = request_of_size(1000, headers=count)
            assert request.count(b"\r\n") == count + 2
            reader, writer = await raw_tcp(server)
            writer.write(request)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), scaled(5))
            writer.close()
            expected = (b"101" if upgrade else b"200") if ok else b"431"
            assert answer.split()[1] == expected, (count, answer)


# -- [limits] max_name_length ----------------------------------------------------------------------------


async def test_event_name_at_max_name_length_and_one_past() -> None:
    seen: list[str] = []
    router = Router()
    router.on("*", lambda sock, name, *args: seen.append(name))
    async with serve(router, limits={"max_name_length": 50}) as server, aiohttp.ClientSession() as session:
        client = await EioClient.connect(server)
        await client.emit("e" * 50)
        await wait_until(lambda: seen == ["e" * 50])
        await client.emit("e" * 51)
        await asyncio.wait_for(client.closed.wait(), scaled(3))
        assert client.ws.close_code == 1008 and "event name over 50" in client.ws.close_reason
        poller = await PollingClient.open(session, server)
        assert await poller.post(b'42["' + b"p" * 50 + b'"]') == 200
        await wait_until(lambda: seen[-1:] == ["p" * 50])
        assert await poller.post(b'42["' + b"p" * 51 + b'"]') == 200
        await wait_until(lambda: poller.sid not in server.clients)
        assert len(seen) == 2 and server.state.protocol_errors == 2


async def test_namespace_at_max_name_length_and_one_past() -> None:
    router = Router()
    at, past = "/" + "n" * 49, "/" + "n" * 50
    for ns in (at, past):
        router.on("connect", lambda sock, auth: None, namespace=ns)
    async with serve(router, limits={"max_name_length": 50}) as server:
        ok = await EioClient.connect(server, namespace=at)
        assert ok.connect_reply.startswith(f"40{at},")
        await ok.close()
        # The server answers the CONNECT with an Engine.IO close ("1"), then closes 1008.
        with pytest.raises((AssertionError, ConnectionClosed)):
            await EioClient.connect(server, namespace=past)
        assert server.state.protocol_errors == 1


async def test_room_name_at_max_name_length_and_one_past() -> None:
    router = Router()

    @router.on("join")
    def join(sock: Any, room: str) -> str:
        try:
            sock.join(room)
        except TetherError as exc:
            return str(exc)
        return "joined"

    async with serve(router, limits={"max_name_length": 50}) as server:
        client = await EioClient.connect(server)
        assert await client.call("join", "r" * 50) == ["joined"]
        [error] = await client.call("join", "r" * 51)
        assert "limits.max_name_length" in error
        await client.close()


# -- [limits] max_fragments --------------------------------------------------------------------------------


async def test_fragment_count_at_max_fragments_and_one_past() -> None:
    """Empty continuation frames add no bytes: only the count stops them (issue 13, item 4)."""
    seen: list[int] = []
    async with serve(size_router(seen), limits={"max_fragments": 10}) as server:
        for frames, accepted in ((10, True), (11, False)):
            reader, writer = await raw_tcp(server)
            writer.write(upgrade_request())
            await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), scaled(5))
            writer.write(ws_frame(b"40"))
            message = ws_frame(b'42["size","', fin=False)
            message += b"".join(ws_frame(b"", opcode=0, fin=False) for _ in range(frames - 2))
            writer.write(message + ws_frame(b'abc"]', opcode=0))
            if accepted:
                await wait_until(lambda: seen == [3])
                writer.close()
            else:
                got = await read_until_closed(reader, 3)
                writer.close()
                assert b"\x03\xf1message in too many fragments" in got  # close frame: 1009 and the reason
        assert server.state.protocol_errors == 1
