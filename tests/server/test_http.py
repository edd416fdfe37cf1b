"""The HTTP front door says one thing per request (issue 13, item 7): answers in order, one response per
request, no body for HEAD, including requests that arrive together in one TCP read (pipelining).

Responses are read with h11, a client-side parser that knows nothing of Tether: a HEAD answer with a body,
or two answers in the wrong order, is a protocol error or a wrong body there, as for a real client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest

from tether import Router, Server

from ..hardening.support import raw_tcp, scaled, serve


def slow_router() -> Router:
    """``POST /slow`` answers after 100 ms; ``GET /n?i=..`` answers its ``i`` at once."""
    router = Router()

    @router.setup
    def routes(server: Server) -> None:
        async def slow(request: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
            await asyncio.sleep(0.1)
            return 200, {"Content-Type": "text/plain"}, b"slow:" + body

        async def n(request: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": "text/plain"}, request.query["i"].encode()

        server.add_http_route("POST", "/slow", slow)
        server.add_http_route("GET", "/n", n)

    return router


async def responses(server: Server, data: bytes, methods: list[str], expect: int) -> list[tuple[int, bytes]]:
    """Send ``data`` in one write; read ``expect`` responses with h11 (``methods``: the requests', in order,
    which h11 needs to know that a HEAD answer has no body)."""
    reader, writer = await raw_tcp(server)
    writer.write(data)
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, bytes]] = []
    async with asyncio.timeout(scaled(5)):
        for method in methods[:expect]:
            # h11 checks a response against the request it answers: tell it which one that was.
            conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
            status, body = 0, b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await reader.read(65536)
                    conn.receive_data(chunk)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise AssertionError(f"closed after {len(out)} responses")
            out.append((status, body))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
    rest = await asyncio.wait_for(reader.read(), scaled(5)) if len(out) == expect else b""
    writer.close()
    assert rest == b"", rest[:200]  # nothing after the last answer: no stray body, no extra response
    return out


def post(path: str, body: bytes, chunked: bool = False, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    if chunked:
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Transfer-Encoding: chunked\r\n\r\n".encode()
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def get(path: str, close: bool = False, method: str = "GET") -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_pipelined_requests_are_answered_in_order(chunked: bool) -> None:
    """The issue's case: a POST then two GETs in one read, ``Connection: close`` on the last."""
    async with serve(slow_router()) as server:
        data = post("/slow", b"p", chunked) + get("/n?i=1") + get("/n?i=2", close=True)
        got = await responses(server, data, ["POST", "GET", "GET"], 3)
        assert got == [(200, b"slow:p"), (200, b"1"), (200, b"2")]
        assert server.state.http_requests == 3


async def test_many_pipelined_requests_in_one_read() -> None:
    async with serve(slow_router()) as server:
        n = 300
        data = b"".join(get(f"/n?i={i}") for i in range(n - 1)) + get(f"/n?i={n - 1}", close=True)
        got = await responses(server, data, ["GET"] * n, n)
        assert got == [(200, str(i).encode()) for i in range(n)]


async def test_head_has_the_get_headers_and_no_body() -> None:
    async with serve(slow_router()) as server:
        data = get("/tether/session.js", method="HEAD") + get("/tether/session.js", close=True)
        head, full = await responses(server, data, ["HEAD", "GET"], 2)
        assert head == (200, b"") and full[0] == 200 and len(full[1]) > 1000
        # The same Content-Length as the GET: read from the raw answer to the HEAD alone.
        reader, writer = await raw_tcp(server)
        writer.write(get("/tether/session.js", method="HEAD", close=True))
        raw = await asyncio.wait_for(reader.read(), scaled(5))
        writer.close()
        assert raw.endswith(b"\r\n\r\n") and f"Content-Length: {len(full[1])}".encode() in raw


async def test_head_of_an_error_has_no_body_either() -> None:
    async with serve(slow_router()) as server:
        data = get("/nowhere", method="HEAD") + get("/tether/%00", method="HEAD") + get("/n?i=3", close=True)
        got = await responses(server, data, ["HEAD", "HEAD", "GET"], 3)
        assert got == [(404, b""), (400, b""), (200, b"3")]


async def test_pipelined_request_behind_a_held_poll_waits_its_turn() -> None:
    """A polling GET held open, then a request on the same connection: answered after the GET is."""
    async with serve(slow_router()) as server:
        reader, writer = await raw_tcp(server)
        writer.write(get("/socket.io/?EIO=4&transport=polling"))
        opened = await asyncio.wait_for(reader.readuntil(b'"maxPayload":1000000}'), scaled(5))
        sid = opened.split(b'"sid":"')[1].split(b'"')[0].decode()
        writer.close()
        got = await responses(
            server,
            post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", b"40")
            + get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
            + get("/n?i=9", close=True),
            ["POST", "GET", "GET"],
            3,
        )
        assert got[0] == (200, b"ok") and got[1][1].startswith(b"40{") and got[2] == (200, b"9")
