"""Fuzz target for the HTTP/WebSocket entry: arbitrary bytes, split arbitrarily, never escape as an exception.

Two harnesses, as h11 keeps a fuzz target next to its parser:

* In memory: :class:`tether.server.http.HttpProtocol` gets a fake transport (with a real socketpair
  behind it, because picows writes to the socket's file descriptor directly) and the bytes are fed to
  ``data_received`` (then to picows' buffered protocol after a WebSocket hand-off) in the chunks
  hypothesis chose. An exception out of a protocol callback would be a crash of that connection in
  production and is reported to the loop's exception handler there; here it fails the example.
* Live: the same kind of input on a real TCP connection to a running server, with an exception handler
  installed on the loop that records everything; afterwards the server must still serve a normal client.

Example counts are kept modest so that the suite stays fast; run with ``--hypothesis-seed`` or raise
``max_examples`` locally for a longer fuzzing session.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import Server
from tether.server.http import HttpProtocol

from .support import EioClient, echo_router, make_config, raw_tcp, upgrade_request, ws_frame

# -- inputs ---------------------------------------------------------------------------------------------

REQUEST_TEMPLATES = [
    b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /socket.io/?EIO=4&transport=polling&sid=SID HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"
    b"40\x1e3",
    b"OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: http://evil\r\n\r\n",
    b"GET /tether/../../etc/passwd HTTP/1.1\r\n\r\n",
    b"POST /socket.io/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    upgrade_request(),
    upgrade_request("/ws"),
    upgrade_request("/socket.io/?EIO=4&transport=websocket&sid=SID"),
]

ENGINEIO_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "40",
            '42["echo",1]',
            '421["echo"]',
            '451-["x",{"_placeholder":true,"num":0}]',
            "43999[]",
            "2",
            "3",
            "5",
            "6",
            "1",
            "2probe",
            "40/nope,",
            "4",
            "0",
            "",
        ]
    ),
    st.builds(lambda n, body: f"4{n}{body}", st.integers(0, 6).map(str), st.text(max_size=30)),
)


@st.composite
def websocket_frames(draw: Any) -> bytes:
    """Valid-looking client frames with hostile payloads, or raw garbage, after a real upgrade."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "binary", "control", "fragment", "raw"]))
        if kind == "text":
            parts.append(ws_frame(draw(ENGINEIO_TEXT).encode()))
        elif kind == "binary":
            parts.append(ws_frame(draw(st.binary(max_size=200)), opcode=0x2))
        elif kind == "control":
            parts.append(
                ws_frame(draw(st.binary(max_size=125)), opcode=draw(st.sampled_from([0x8, 0x9, 0xA])))
            )
        elif kind == "fragment":
            parts.append(
                ws_frame(draw(ENGINEIO_TEXT).encode(), opcode=draw(st.sampled_from([0x0, 0x1])), fin=False)
            )
        else:
            parts.append(draw(st.binary(max_size=64)))
    return b"".join(parts)


@st.composite
def entry_bytes(draw: Any) -> bytes:
    choice = draw(st.sampled_from(["random", "mutated", "upgrade+frames"]))
    if choice == "random":
        return bytes(draw(st.binary(max_size=600)))
    template = draw(st.sampled_from(REQUEST_TEMPLATES))
    if choice == "upgrade+frames":
        frames: bytes = draw(websocket_frames())
        return upgrade_request() + frames
    data = bytearray(template)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 10))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        if cut > start:
            yield data[start:cut]
            start = cut
    if start < len(data):
        yield data[start:]


# -- in-memory harness ----------------------------------------------------------------------------------


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected loopback TCP sockets (picows sets TCP options, which a Unix socketpair refuses)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    return ours, theirs


class FakeTransport(asyncio.Transport):
    """What HttpProtocol and picows use of a transport, recording writes; a socketpair end as the socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.ours, self.theirs = tcp_pair()
        self.ours.setblocking(False)
        self.theirs.setblocking(False)
        self.protocol: Any = None
        self.written = bytearray()
        self.closing = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {
            "peername": ("127.0.0.1", 40000),
            "sockname": ("127.0.0.1", 9501),
            "socket": self.ours,
            "ssl_object": None,
        }.get(name, default)

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self._lost)

    abort = close

    def _lost(self) -> None:
        if self.protocol is not None:
            self.protocol.connection_lost(None)
        self.ours.close()
        self.theirs.close()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def feed(self, chunk: bytes) -> None:
        """Hand ``chunk`` to whichever protocol owns the transport now, as the event loop would."""
        proto = self.protocol
        if isinstance(proto, HttpProtocol):
            proto.data_received(chunk)
            return
        view = memoryview(chunk)
        while view and not self.closing:
            buf = proto.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]


class LoopErrors(logging.Handler):
    """A loop exception handler that records instead of logging; and a log handler that records Tether's
    warnings and errors: a callback exception caught on the way (httptools and picows catch what their
    callbacks raise) is logged as one, and is as much a bug as an exception in the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[Any] = []
        loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.logger = logging.getLogger("tether")
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "tether.origins":
            return  # a refused Origin is reported on purpose (once a minute per origin), not a bug
        self.errors.append(f"{record.name} {record.levelname}: {record.getMessage()} {record.exc_info!r}")

    def remove(self) -> None:
        self.logger.removeHandler(self)


def test_fuzz_http_protocol_in_memory() -> None:
    loop = asyncio.new_event_loop()
    errors = LoopErrors(loop)
    server = Server(
        make_config(limits={"handshake_timeout": 0.2}, websocket={"max_payload": 4096}), echo_router()
    )
    sids: list[str] = []

    async def one(data: bytes, cuts: list[int]) -> None:
        if sids:
            data = data.replace(b"SID", sids[-1].encode())
        transport = FakeTransport(loop)
        proto = HttpProtocol(server)
        transport.set_protocol(proto)
        proto.connection_made(transport)
        for chunk in split(data, cuts):
            if transport.closing:
                break
            transport.feed(chunk)  # an exception here fails the example: it would kill the connection
            await asyncio.sleep(0)
        body = bytes(transport.written)
        if b'"sid":"' in body:
            sids.append(orjson.loads(body[body.index(b"{") : body.index(b"}") + 1])["sid"])
        transport.close()
        await asyncio.sleep(0)
        for client in list(server.clients.values()):
            server.close_client(client, "fuzz example over", send_close=False)
        await asyncio.sleep(0)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(entry_bytes(), st.lists(st.integers(0, 10_000), max_size=8))
    def example(data: bytes, cuts: list[int]) -> None:
        loop.run_until_complete(one(data, cuts))
        assert errors.errors == []

    try:
        example()
        assert server.state.http_requests + server.state.protocol_errors > 0  # the input reached the server
    finally:
        loop.run_until_complete(asyncio.sleep(0.3))  # let handshake timers fire on closed transports
        errors.remove()
        loop.close()
    assert errors.errors == []


# -- live harness ---------------------------------------------------------------------------------------


def test_fuzz_live_server() -> None:
    loop = asyncio.new_event_loop()
    errors = LoopErrors(loop)
    config = make_config(limits={"handshake_timeout": 0.3}, websocket={"max_payload": 4096})
    from tether import run_server

    server: Server = loop.run_until_complete(run_server(config, echo_router()))

    async def one(data: bytes, cuts: list[int]) -> None:
        reader, writer = await raw_tcp(server)
        try:
            for chunk in split(data, cuts):
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.001)
        except ConnectionError:
            pass
        # Read what the server answers for a moment (tests/hardening/test_limits.py checks how quickly
        # incomplete requests are closed), then go away without a goodbye.
        try:
            async with asyncio.timeout(0.05):
                while await reader.read(65536):
                    pass
        except (ConnectionError, TimeoutError):
            pass
        writer.transport.abort()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(entry_bytes(), st.lists(st.integers(0, 10_000), max_size=6))
    def example(data: bytes, cuts: list[int]) -> None:
        loop.run_until_complete(one(data, cuts))
        assert errors.errors == []

    async def still_serving() -> None:
        client = await EioClient.connect(server)
        assert await client.call("echo", "after fuzzing") == ["after fuzzing"]
        await client.close()

    try:
        example()
        loop.run_until_complete(still_serving())
        assert errors.errors == [], errors.errors[:3]
    finally:
        loop.run_until_complete(server.shutdown(timeout=1))
        errors.remove()
        loop.close()
