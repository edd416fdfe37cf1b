"""The hostile corpus: inputs that once produced a traceback or a 500 (issue 13, item 2), against one server.

Each input is sent as a client would (raw TCP, a raw WebSocket, a polling POST); the server must answer
with a 4xx or a clean close, never a 500, and nothing may reach the ERROR log: a client that can write
tracebacks can fill a disk. After the corpus a well-behaved client still gets its echo.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from tether import Server

from .support import (
    EioClient,
    PollingClient,
    poll_url,
    raw_tcp,
    read_until_closed,
    scaled,
    serve,
    upgrade_request,
    ws_frame,
)

DEEP = 900  # deeper than Python's recursion limit leaves room for, shallower than orjson's 1024


def nested_placeholder(depth: int) -> str:
    return '["x",' + "[" * depth + '{"_placeholder":true,"num":0}' + "]" * depth + "]"


def nested_list(depth: int) -> str:
    return '["x",' + "[" * depth + "]" * depth + "]"


HTTP_CORPUS: list[tuple[bytes, tuple[int, ...]]] = [
    (b"GET /tether/%00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /tether/a%00b.js HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /tether/" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /" + b"a" * 300 + b".html HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /" + b"a/" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /.env HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /%2eenv HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /sub/.secret HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /.git/config HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET /%zz%ff HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"GET http://evil.example/tether/%00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    (b"HEAD /tether/%00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /socket.io/?EIO=4&transport=polling&sid=%00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /socket.io/?EIO=4&transport=polling&sid=" + b"s" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /socket.io/?%00=%00&EIO=%00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /api/emit HTTP/1.1\r\nHost: x\r\n\r\n", (404, 405)),
]


async def http_status(server: Server, request: bytes) -> int:
    reader, writer = await raw_tcp(server)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), scaled(5))
    writer.close()
    return int(head.split()[1])


async def ws_corpus_entry(server: Server, frames: list[bytes]) -> bytes:
    """Open a raw WebSocket, send ``frames`` (already framed), return all the server sent until it closed."""
    reader, writer = await raw_tcp(server)
    writer.write(upgrade_request())
    await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), scaled(5))
    for frame in frames:
        writer.write(frame)
    got = await read_until_closed(reader, 5)
    writer.close()
    return got


def close_code(received: bytes) -> int:
    """The code of the close frame at the end of what the server sent (unmasked server frames)."""
    i = received.rfind(b"\x88")
    assert i >= 0, received[-200:]
    length = received[i + 1] & 0x7F
    assert length >= 2, received[i:]
    return int.from_bytes(received[i + 2 : i + 4], "big")


WS_CORPUS: list[tuple[str, list[bytes]]] = [
    # The example: a placeholder 900 deep before any CONNECT, then its binary frame.
    (
        "deep placeholder",
        [ws_frame(("451-" + nested_placeholder(DEEP)).encode()), ws_frame(b"\x01", opcode=2)],
    ),
    (
        "deep placeholder after connect",
        [ws_frame(b"40"), ws_frame(("451-" + nested_placeholder(DEEP)).encode())],
    ),
    ("deep event", [ws_frame(b"40"), ws_frame(("42" + nested_list(DEEP)).encode())]),
    ("deep event with ack", [ws_frame(b"40"), ws_frame(("4217" + nested_list(DEEP)).encode())]),
    ("deep connect auth", [ws_frame(("40" + '{"a":' * DEEP + "1" + "}" * DEEP).encode())]),
    ("deep ack", [ws_frame(b"40"), ws_frame(("431" + "[" * DEEP + "]" * DEEP).encode())]),
    (
        "deep fragmented event",
        [
            ws_frame(b"40"),
            ws_frame(b"42" + b'["x",' + b"[" * DEEP, fin=False),
            ws_frame(b"]" * (DEEP + 1), opcode=0),
        ],
    ),
    ("orjson's own limit", [ws_frame(b"40"), ws_frame(("42" + nested_list(1100)).encode())]),
]


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".secret").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    return tmp_path


async def test_hostile_corpus_leaves_the_error_log_empty(
    static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serve(server={"static_dir": str(static_dir)}, api={"key": "k" * 32}) as server:
        for request, expected in HTTP_CORPUS:
            status = await http_status(server, request)
            assert status in expected, (request[:80], status)
        assert await http_status(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 200  # the page still is

        for name, frames in WS_CORPUS:
            got = await ws_corpus_entry(server, frames)
            assert close_code(got) == 1002, name
        assert server.state.protocol_errors >= len(WS_CORPUS)

        async with aiohttp.ClientSession() as session:
            for body in (
                ("42" + nested_list(DEEP)).encode(),
                ("451-" + nested_placeholder(DEEP)).encode() + b"\x1ebAQ==",
                b"4" + ("42" + nested_list(1100)).encode(),
            ):
                poller = await PollingClient.open(session, server)
                assert await poller.post(body if body.startswith(b"4") else b"4" + body) == 400
            # The API key holder's decoder is bounded too: 400, not a 500 from deep in the encoder.
            deep = b'{"event":"x","data":' + nested_list(DEEP).encode() + b"}"
            async with session.post(
                f"http://127.0.0.1:{server.port}/api/emit",
                data=deep,
                headers={"Authorization": "Bearer " + "k" * 32},
            ) as r:
                assert r.status == 400, await r.text()
                assert "max_depth" in (await r.json())["error"]
            async with session.get(poll_url(server, "&sid=%00")) as r:
                assert r.status == 400

        good = await EioClient.connect(server)
        assert await good.call("echo", [[["deep enough"]]]) == [[[["deep enough"]]]]
        await good.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:200] for r in errors]
