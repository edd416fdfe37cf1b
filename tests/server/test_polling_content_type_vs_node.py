"""Polling POSTs of each ``Content-Type`` (and bodies that are not text), compared with node socket.io 4.8.

engine.io 6 (node socket.io 4.8's Engine.IO server) refuses a POST whose ``Content-Type`` is exactly
``application/octet-stream`` in protocol 4 (``polling.js`` ``onDataRequest``: "invalid content", 400, the
session ends with "transport error"): Engine.IO v4 polling bodies are text, binary messages go in them
base64-encoded (``b...``). Any other type, or none, is read as text. Each case below POSTs the same bytes
to node (tests/js/reference_server.mjs, started as tests/server/test_disconnect_reasons_vs_node.py starts
it) and to Tether configured alike, with a GET held meanwhile, and asserts for both: the POST's status,
what the held GET got, what a GET after that gets, and the reason the ``disconnect`` handler got. Where
Tether differs on purpose the case says so (docs/guide.md, "Polling request bodies") and both sides are
asserted: a change on either side fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from tests.helpers import scaled
from tests.server.test_disconnect_reasons_vs_node import (
    MAX_PAYLOAD,
    Poller,
    Target,
    poll_url,
    tether_reference,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO = b'421["echo","x"]'
"""An echo with ack id 1: a session that read it answers ``431["x"]``."""

ANSWERED = (200, '431["x"]')
CLOSE_PACKET = (200, "1")
UNKNOWN = (400, '{"code":1,"message":"Session ID unknown"}')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tether() -> AsyncIterator[Target]:
    async with tether_reference() as target:
        yield target


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass(frozen=True)
class Outcome:
    """What one POST did to its session."""

    post: int
    """the POST's status"""
    held: tuple[int, str]
    """(status, body) of the GET held while the POST was made"""
    after: tuple[int, str]
    """(status, body) of the next GET"""
    reasons: tuple[str, ...]
    """what the ``disconnect`` handler got (none: the session lives on)"""


async def post_with(t: Target, http: aiohttp.ClientSession, content_type: str | None, body: bytes) -> Outcome:
    """Open a session, join ``/``, hold a GET, POST ``body`` with ``content_type`` (no header for None)."""
    poller = Poller(http, t)
    sid = await poller.open()
    held = asyncio.ensure_future(poller.get())
    # Long enough for the GET to reach the server, short of the next ping (300 ms after the handshake),
    # which would answer it: not scaled.
    await asyncio.sleep(0.05)
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with http.post(
        poll_url(t, sid),
        data=body,
        headers=headers,
        skip_auto_headers=["Content-Type"],  # aiohttp's own default for bytes is application/octet-stream
        timeout=aiohttp.ClientTimeout(total=scaled(5)),
    ) as r:
        await r.read()
        status = r.status
    got = await asyncio.wait_for(held, scaled(5))
    after = await poller.get()
    if after[0] == 200:
        assert after[1] == "2", after  # the next ping: answered, the session lives on
        assert await poller.post("3") == (200, "ok")
        reasons = tuple(t.reasons(sid))
        assert await poller.post("1") == (200, "ok")  # end it: the module's servers stay up
    else:
        await t.reason(sid)  # node reports it on its stdout, read by a thread
        reasons = tuple(t.reasons(sid))
    return Outcome(status, got, after, reasons)


READ = Outcome(200, ANSWERED, (200, "2"), ())
"""The body was read as text: the echo answered on the held GET, the session alive (the next GET gets the
next ping)."""

REFUSED = Outcome(400, CLOSE_PACKET, UNKNOWN, ("transport error",))
"""engine.io's "invalid content": 400 at once, the held GET gets a close packet, the session is gone."""


@dataclass(frozen=True)
class Case:
    content_type: str | None
    body: bytes
    node: Outcome
    tether: Outcome | None = None
    """Tether's outcome where it differs from node's on purpose (the docs say why); None: node's."""


PARSE_ERROR_NODE = Outcome(200, CLOSE_PACKET, UNKNOWN, ("parse error",))
PARSE_ERROR_TETHER = Outcome(400, CLOSE_PACKET, UNKNOWN, ("parse error",))
"""A body that is no Engine.IO payload: node ends the session and still answers the POST 200 "ok"
(engine.io writes 200 after decoding whatever happened); Tether's own: 400 with the cause, as for any body
it refuses (docs/guide.md)."""

CASES = {
    "text/plain;charset=UTF-8 (engine.io-client's)": Case("text/plain;charset=UTF-8", ECHO, READ),
    "text/plain (python-engineio's)": Case("text/plain", ECHO, READ),
    "no Content-Type": Case(None, ECHO, READ),
    "application/octet-stream, a text payload": Case("application/octet-stream", ECHO, REFUSED),
    "application/octet-stream, a binary payload": Case(
        "application/octet-stream", b"\x04\x01\x02\x03", REFUSED
    ),
    "application/octet-stream, a base64 binary packet": Case("application/octet-stream", b"bAQID", REFUSED),
    # engine.io compares the header with the exact string: a parameter or other letter case is text.
    "application/octet-stream; charset=UTF-8": Case("application/octet-stream; charset=UTF-8", ECHO, READ),
    "Application/Octet-Stream": Case("Application/Octet-Stream", ECHO, READ),
    "a binary payload as text": Case(
        "text/plain;charset=UTF-8", b"\x04\x01\x02\x03", PARSE_ERROR_NODE, PARSE_ERROR_TETHER
    ),
    # node decodes the body with Buffer.toString(): a byte that is no UTF-8 becomes U+FFFD and the event
    # arrives altered. Tether's own: a body that is not UTF-8 is refused ("parse error"), never altered.
    "a text payload that is not UTF-8": Case(
        "text/plain;charset=UTF-8",
        b'421["echo","\xff"]',
        Outcome(200, (200, '431["\ufffd"]'), (200, "2"), ()),
        PARSE_ERROR_TETHER,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_polling_post_is_nodes(
    case: Case, node: Target, tether: Target, http: aiohttp.ClientSession
) -> None:
    got = await asyncio.gather(
        post_with(node, http, case.content_type, case.body),
        post_with(tether, http, case.content_type, case.body),
    )
    assert got == [case.node, case.tether or case.node]


# -- bodies over max_payload ---------------------------------------------------------------------------


async def raw_post(t: Target, sid: str, content_type: str, body: bytes) -> int:
    """POST ``body`` on a connection of its own and return the status (0: no answer, the connection cut).

    The head goes first: a server that answers from the head alone (Tether on Content-Length, node on the
    type) answers before any body byte is sent, so its close cannot reset the answer away. Otherwise the
    whole body follows and is read by the server (node reads it to count it) before it answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
    try:
        path = poll_url(t, sid).split(str(t.port), 1)[1]
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{t.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            # Not scaled: a server that answers from the head does it in a few milliseconds, and one that
            # does not gets the body a little later; both are read below in either case.
            line = await asyncio.wait_for(reader.readline(), 0.3)
        except TimeoutError:
            line = b""
            try:
                writer.write(body)
                await writer.drain()
            except ConnectionError:
                return 0
        if not line:
            try:
                line = await asyncio.wait_for(reader.readline(), scaled(5))
            except ConnectionError:
                return 0
        return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0
    finally:
        writer.transport.abort()


@dataclass(frozen=True)
class Oversized:
    """What a POST of a body at or past ``max_payload`` did to its session. Which GET gets what is left
    out: reading a megabyte takes long enough for a ping (every 300 ms here) to answer the held GET first,
    at its own moment on each server."""

    post: int
    """the POST's status"""
    answered: bool
    """the echo's ack reached a GET"""
    last: int
    """the status of the last GET (400: the session is gone)"""
    reasons: tuple[str, ...]
    """what the ``disconnect`` handler got before the client closed (none: the session lived on)"""


async def oversized_post(t: Target, http: aiohttp.ClientSession, content_type: str, size: int) -> Oversized:
    """Open a session, join ``/``, hold a GET, POST a ``size``-byte echo with :func:`raw_post`, then poll
    (pings answered) until the ack or the end of the session."""
    poller = Poller(http, t)
    sid = await poller.open()
    held = asyncio.ensure_future(poller.get())
    await asyncio.sleep(0.05)  # as in post_with
    body = b'421["echo","' + b"x" * (size - 14) + b'"]'
    assert len(body) == size
    status = await raw_post(t, sid, content_type, body)
    got = [await asyncio.wait_for(held, scaled(5))]
    while got[-1][0] == 200 and '431["' not in got[-1][1] and len(got) < 5:
        if "2" in got[-1][1].split("\x1e"):
            await poller.post("3")
        got.append(await poller.get())
    answered = any('431["' in text for _, text in got)
    if got[-1][0] == 200:
        reasons = tuple(t.reasons(sid))
        assert await poller.post("1") == (200, "ok")  # end it: the module's servers stay up
    else:
        assert got[-1] == UNKNOWN, got[-1]
        await t.reason(sid)
        reasons = tuple(t.reasons(sid))
    return Oversized(status, answered, got[-1][0], reasons)


TOO_LARGE = Oversized(413, False, 400, ("transport error",))
"""engine.io's "payload too large": 413 (node once it has read past the limit, Tether on the announced
Content-Length), the session ends with ``transport error``."""

OVERSIZED = {
    "text/plain;charset=UTF-8, max_payload": (
        "text/plain;charset=UTF-8",
        MAX_PAYLOAD,
        Oversized(200, True, 200, ()),
    ),
    "text/plain;charset=UTF-8, one past max_payload": (
        "text/plain;charset=UTF-8",
        MAX_PAYLOAD + 1,
        TOO_LARGE,
    ),
    # engine.io refuses the type before it reads the body: 400 whatever the size, never 413.
    "application/octet-stream, max_payload": (
        "application/octet-stream",
        MAX_PAYLOAD,
        Oversized(400, False, 400, ("transport error",)),
    ),
    "application/octet-stream, one past max_payload": (
        "application/octet-stream",
        MAX_PAYLOAD + 1,
        Oversized(400, False, 400, ("transport error",)),
    ),
}


@pytest.mark.parametrize("case", list(OVERSIZED.values()), ids=list(OVERSIZED))
async def test_oversized_polling_post_is_nodes(
    case: tuple[str, int, Oversized], node: Target, tether: Target, http: aiohttp.ClientSession
) -> None:
    content_type, size, expected = case
    got = await asyncio.gather(
        oversized_post(node, http, content_type, size), oversized_post(tether, http, content_type, size)
    )
    assert got == [expected, expected]


async def test_oversized_post_to_an_unknown_session_is_nodes(node: Target, tether: Target) -> None:
    """engine.io checks the session before it reads a body: an unknown sid is 400, not 413."""
    body = b"x" * (MAX_PAYLOAD + 1)
    for t in (node, tether):
        assert await raw_post(t, "nosuchsession", "text/plain;charset=UTF-8", body) == 400, t.name
