"""The write batch (tether.server.writes): frames leave at the end of the loop iteration, in order, bounded,
and never after the close frame of their connection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from picows import WSMsgType

from tests.conftest import ServerFactory, make_config
from tests.hardening.support import raw_tcp, upgrade_request, ws_frame
from tests.helpers import scaled
from tether import ConfigError, Router, Socket
from tether.server.writes import WriteBatch

TEXT = WSMsgType.TEXT


class FakeWs:
    """What the batch calls: ``send(msg_type, payload)``, recorded in one list shared by every client."""

    def __init__(self, name: str, log: list[tuple[str, bytes]], fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.on_send: Any = None

    def send(self, msg_type: WSMsgType, payload: bytes) -> None:
        if self.fail:
            raise OSError("broken transport")
        self.log.append((self.name, payload))
        if self.on_send is not None:
            self.on_send()


class FakeClient:
    """A :class:`tether.server.writes.Recipient`."""

    def __init__(self, name: str, log: list[tuple[str, bytes]], fail: bool = False) -> None:
        self.sid = name
        self.ws = FakeWs(name, log, fail)
        self.paused = False
        self.dropped = 0

    def count_dropped(self, n: int) -> None:
        self.dropped += n


async def test_frames_leave_at_the_end_of_the_iteration_in_order() -> None:
    log: list[tuple[str, bytes]] = []
    a, b = FakeClient("a", log), FakeClient("b", log)
    batch = WriteBatch(512)
    for client, payload in [(a, b"1"), (b, b"2"), (a, b"3")]:
        batch.send(client, TEXT, payload)
    assert log == [] and len(batch) == 3  # nothing written while this callback runs
    await asyncio.sleep(0)
    assert log == [("a", b"1"), ("b", b"2"), ("a", b"3")] and len(batch) == 0
    batch.send(a, TEXT, b"4")  # a new iteration: scheduled again
    await asyncio.sleep(0)
    assert log[-1] == ("a", b"4")


async def test_one_callback_per_iteration() -> None:
    loop = asyncio.get_running_loop()
    scheduled: list[Any] = []
    real = loop.call_soon
    loop.call_soon = lambda cb, *args, **kw: scheduled.append(cb) or real(cb, *args, **kw)  # type: ignore[method-assign]
    try:
        batch = WriteBatch(512)
        client = FakeClient("a", [])
        for _ in range(100):
            batch.send(client, TEXT, b"x")
        batch.flush()  # a close flushes early: the scheduled callback then finds nothing
        batch.send(client, TEXT, b"y")
    finally:
        del loop.call_soon  # type: ignore[method-assign]
    assert len(scheduled) == 1
    await asyncio.sleep(0)
    assert client.ws.log == [("a", b"x")] * 100 + [("a", b"y")]


@pytest.mark.parametrize("limit", [1, 3, 4])
async def test_a_full_batch_is_written_at_once(limit: int) -> None:
    """At exactly ``limit`` frames the batch is written; with one frame fewer it waits."""
    log: list[tuple[str, bytes]] = []
    client = FakeClient("a", log)
    batch = WriteBatch(limit)
    for i in range(limit - 1):
        batch.send(client, TEXT, b"%d" % i)
    assert log == []
    batch.send(client, TEXT, b"last")
    assert len(log) == limit and log[-1] == ("a", b"last") and len(batch) == 0
    batch.send(client, TEXT, b"one past")  # the next batch starts empty
    assert len(log) == (limit + 1 if limit == 1 else limit)


async def test_limit_zero_writes_every_frame_as_it_is_made() -> None:
    log: list[tuple[str, bytes]] = []
    client = FakeClient("a", log)
    batch = WriteBatch(0)
    batch.send(client, TEXT, b"1")
    assert log == [("a", b"1")]
    batch.send(client, TEXT, b"2")
    assert log == [("a", b"1"), ("a", b"2")]


async def test_a_client_paused_while_written_gets_the_rest_dropped_and_counted() -> None:
    """As Client.send once the transport said pause_writing: the buffer grows by at most one frame."""
    log: list[tuple[str, bytes]] = []
    slow, other = FakeClient("slow", log), FakeClient("other", log)

    def crossed_the_mark() -> None:
        slow.paused = True

    slow.ws.on_send = crossed_the_mark
    batch = WriteBatch(512)
    for i in range(4):
        batch.send(slow, TEXT, b"%d" % i)
        batch.send(other, TEXT, b"%d" % i)
    batch.flush()
    assert [p for name, p in log if name == "slow"] == [b"0"]
    assert [p for name, p in log if name == "other"] == [b"0", b"1", b"2", b"3"]
    assert slow.dropped == 3


async def test_a_broken_transport_costs_the_others_nothing(caplog: pytest.LogCaptureFixture) -> None:
    log: list[tuple[str, bytes]] = []
    broken, fine = FakeClient("broken", log, fail=True), FakeClient("fine", log)
    batch = WriteBatch(512)
    batch.send(broken, TEXT, b"1")
    batch.send(fine, TEXT, b"2")
    with caplog.at_level(logging.ERROR, "tether"):
        batch.flush()
    assert log == [("fine", b"2")]
    assert "writing a frame to broken failed" in caplog.text


def test_write_batch_is_configured() -> None:
    assert make_config().server.write_batch == 512
    assert make_config(server={"write_batch": 0}).server.write_batch == 0
    with pytest.raises(ConfigError, match="write_batch"):
        make_config(server={"write_batch": -1})


# -- on a real server: what was written before a close arrives before the close frame -----------------


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """``(opcode, payload)`` of the whole unmasked frames in ``data`` (RFC 6455 §5.2), after the 101
    response."""
    data = data[data.index(b"\r\n\r\n") + 4 :]
    frames = []
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, start = int.from_bytes(data[2:10], "big"), 10
        if len(data) < start + n:
            break
        frames.append((opcode, data[start : start + n]))
        data = data[start + n :]
    return frames


async def opened(server: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw Engine.IO WebSocket after its open packet (RFC 6455 §4.1: a client waits for the 101)."""
    reader, writer = await raw_tcp(server)
    writer.write(upgrade_request())
    data = b""
    async with asyncio.timeout(scaled(5)):
        while b'"maxPayload"' not in data:
            chunk = await reader.read(65536)
            assert chunk, data
            data += chunk
    return reader, writer, data


async def frames_until_close(reader: asyncio.StreamReader, data: bytes) -> list[tuple[int, bytes]]:
    """The server's frames up to and including its close frame (or its end of stream)."""
    async with asyncio.timeout(scaled(5)):
        while chunk := await reader.read(65536):
            data += chunk
            if b"\r\n\r\n" in data and any(op == 0x8 for op, _ in server_frames(data)):
                break
    return server_frames(data)


def leaving_router() -> Router:
    router = Router()

    @router.on("echo")
    async def echo(socket: Socket, *args: Any) -> None:
        await socket.emit("echo", *args)

    @router.on("mixed")
    async def mixed(socket: Socket) -> None:
        await socket.emit("own", 1)
        await socket.server.emit("everyone", 2)  # a broadcast: written directly, after the batch
        await socket.emit("own", 3)

    @router.on("leave")
    async def leave(socket: Socket) -> None:
        for i in range(3):
            await socket.emit("bye", i)
        await socket.disconnect(close=True)

    return router


@pytest.mark.parametrize("write_batch", [512, 0])
async def test_emits_before_a_server_close_arrive_before_its_close_frame(
    server_factory: ServerFactory, write_batch: int
) -> None:
    server = await server_factory(leaving_router(), server={"write_batch": write_batch})
    reader, writer, data = await opened(server)
    writer.write(ws_frame(b"40") + ws_frame(b'42["leave"]'))
    frames = await frames_until_close(reader, data)
    writer.close()
    texts = [payload for opcode, payload in frames if opcode == 0x1]
    assert texts[2:] == [b'42["bye",0]', b'42["bye",1]', b'42["bye",2]', b"41", b"1"], texts
    assert frames[-1][0] == 0x8  # the close frame comes last


@pytest.mark.parametrize("write_batch", [512, 0])
async def test_a_reply_before_a_protocol_error_arrives_before_the_close_frame(
    server_factory: ServerFactory, write_batch: int
) -> None:
    """The event and the invalid packet come in one read: the echo's reply is in the batch when the
    second one closes the connection with 1002."""
    server = await server_factory(leaving_router(), server={"write_batch": write_batch})
    reader, writer, data = await opened(server)
    writer.write(ws_frame(b"40"))
    writer.write(ws_frame(b'42["echo","x"]') + ws_frame(b"9"))
    frames = await frames_until_close(reader, data)
    writer.close()
    assert frames[-2:] == [
        (0x1, b'42["echo","x"]'),
        (0x8, (1002).to_bytes(2, "big") + b"unexpected Engine.IO packet type '9' from client"),
    ], frames


@pytest.mark.parametrize("write_batch", [512, 0])
async def test_a_broadcast_keeps_its_place_among_batched_emits(
    server_factory: ServerFactory, write_batch: int
) -> None:
    server = await server_factory(leaving_router(), server={"write_batch": write_batch})
    reader, writer, data = await opened(server)
    writer.write(ws_frame(b"40") + ws_frame(b'42["mixed"]') + ws_frame(b"9"))  # 9: a close to end the read
    frames = await frames_until_close(reader, data)
    writer.close()
    texts = [payload for opcode, payload in frames if opcode == 0x1]
    assert texts[2:] == [b'42["own",1]', b'42["everyone",2]', b'42["own",3]'], texts
