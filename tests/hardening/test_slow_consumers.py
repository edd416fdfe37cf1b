"""Slow consumers: a client that stops reading costs the server a bounded buffer and nobody else anything.

The stalled WebSocket client is a real TCP socket with a tiny receive buffer that never calls recv()
after the handshake, so the kernel's buffers fill and the server's transport buffer grows to its high-water
mark (``[limits] send_buffer_bytes``). The stalled polling client simply never sends another GET.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tether import Server

from .support import EioClient, PollingClient, StalledClient, echo_router, p99, scaled, serve, wait_until

PAYLOAD = "x" * 1024


def rss() -> int:
    """Resident set size of this process (the server runs in it) in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def record_disconnects(reasons: list[str]) -> Any:
    router = echo_router()
    router.on("disconnect", lambda sock, reason: reasons.append(reason))
    return router


async def broadcast_bulk(server: Server, total: int, probe: Any = None) -> None:
    """``total`` 1 KiB broadcasts in chunks of 100, with a loop turn between chunks as a busy app would."""
    for i in range(0, total, 100):
        for j in range(i, i + 100):
            server.emit("bulk", j, time.perf_counter(), PAYLOAD)
        if probe is not None:
            probe()
        await asyncio.sleep(0)


async def good_client(server: Server) -> tuple[EioClient, list[float]]:
    """A well-behaved client that counts ``bulk`` events and records how late each one arrived."""
    good = await EioClient.connect(server, keep=False)
    lateness: list[float] = []
    good.on_event = lambda name, args: (
        lateness.append(time.perf_counter() - args[1]) if name == "bulk" else None
    )
    return good, lateness


@pytest.mark.parametrize("policy", ["disconnect", "drop"])
async def test_stalled_websocket_reader_is_bounded(policy: str) -> None:
    high = 256 * 1024
    total = 30_000  # ~30 MiB to every client: far above the high-water mark
    reasons: list[str] = []
    limits = {"send_buffer_bytes": high, "slow_consumer_policy": policy}
    async with serve(record_disconnects(reasons), limits=limits) as server:
        good, lateness = await good_client(server)
        stalled = await StalledClient.connect(server)
        try:
            await wait_until(lambda: server.state.sockets == 2, what="both clients connected")
            slow = next(c for c in server.clients.values() if c.sid != good.sid)
            ws = slow.ws
            buffered: list[int] = []
            rss_before = rss()
            await broadcast_bulk(
                server, total, lambda: buffered.append(ws.underlying_transport.get_write_buffer_size())
            )
            await wait_until(
                lambda: good.counts["bulk"] == total, 30, "the good client to get every broadcast"
            )
            growth = rss() - rss_before

            # What the server holds for the stalled client never exceeds the mark by more than one frame.
            assert max(buffered) <= high + 2 * len(PAYLOAD)
            assert growth < 12 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB"
            # The well-behaved client got everything, in time (generous: this is not a speed target).
            assert p99(lateness) < scaled(1.0), f"p99 lateness {p99(lateness):.3f}s"
            assert server.state.slow_consumers == 1
            if policy == "disconnect":
                await wait_until(
                    lambda: bool(ws.is_disconnected), 1, "the slow consumer's socket to be closed"
                )
                assert slow.sid not in server.clients
                assert server.state.disconnects.get("slow consumer") == 1
                assert reasons == ["slow consumer"]
                assert ws.underlying_transport.get_write_buffer_size() == 0
            else:
                assert slow.sid in server.clients and reasons == []
                # Everything past the mark was dropped and counted: most of the 30 MiB (the kernel's socket
                # buffers took a megabyte or two before the transport's buffer started to fill).
                assert slow.dropped > total * 0.8
                assert server.state.dropped_messages == slow.dropped
            assert good.sid in server.clients
            assert await good.call("echo", "still here") == ["still here"]
        finally:
            stalled.close()
            await good.close()


async def test_dropping_stalled_reader_resumes_when_it_reads_again() -> None:
    """Under ``drop`` the client gets messages again once its buffer drained below the low-water mark."""
    high = 64 * 1024
    async with serve(limits={"send_buffer_bytes": high, "slow_consumer_policy": "drop"}) as server:
        stalled = await StalledClient.connect(server)
        try:
            await wait_until(lambda: server.state.sockets == 1)
            slow = next(iter(server.clients.values()))
            await broadcast_bulk(server, 2000)
            assert slow.paused and slow.dropped > 0
            dropped = slow.dropped
            # Start reading: the server's buffer drains, picows reports resume_writing.
            loop = asyncio.get_running_loop()
            received = 0
            async with asyncio.timeout(scaled(10)):
                while slow.paused:
                    received += len(await loop.sock_recv(stalled.sock, 65536))
            assert received > high // 2
            server.emit("after", "resumed")
            assert slow.dropped == dropped
            data = b""
            async with asyncio.timeout(scaled(10)):
                while b"resumed" not in data:
                    data = data[-100:] + await loop.sock_recv(stalled.sock, 65536)
        finally:
            stalled.close()


@pytest.mark.parametrize("policy", ["disconnect", "drop"])
async def test_polling_queue_is_bounded(policy: str) -> None:
    reasons: list[str] = []
    limits = {"send_buffer_messages": 100, "send_buffer_bytes": 1024 * 1024, "slow_consumer_policy": policy}
    async with (
        serve(record_disconnects(reasons), limits=limits) as server,
        aiohttp.ClientSession() as session,
    ):
        good, lateness = await good_client(server)
        poller = await PollingClient.open(session, server)
        try:
            slow = server.clients[poller.sid]
            peak = 0

            def probe() -> None:
                nonlocal peak
                peak = max(peak, slow.conn.queued_messages)

            await broadcast_bulk(server, 3000, probe)
            await wait_until(lambda: good.counts["bulk"] == 3000, 20, "every broadcast at the good client")
            assert peak <= 100 + 1
            assert server.state.slow_consumers == 1
            assert p99(lateness) < scaled(1.0)
            if policy == "disconnect":
                await wait_until(lambda: poller.sid not in server.clients, 5)
                assert reasons == ["slow consumer"]
                assert slow.conn.queued_messages == 0 or slow.sid not in server.clients
            else:
                assert reasons == [] and poller.sid in server.clients
                assert slow.dropped >= 3000 - 101
                # The oldest messages are kept, in order; new ones were dropped, not interleaved.
                body = await poller.get()
                packets = body.split("\x1e")
                ids = [int(p.split(",", 2)[1]) for p in packets if p.startswith('42["bulk"')]
                assert ids == list(range(len(ids))) and 90 <= len(ids) <= 101
                # Drained: new messages are queued again.
                server.emit("after", 1)
                assert '42["after",1]' in await poller.get()
        finally:
            await good.close()


async def test_polling_bytes_bound() -> None:
    limits = {"send_buffer_messages": 10_000, "send_buffer_bytes": 64 * 1024, "slow_consumer_policy": "drop"}
    async with serve(limits=limits) as server, aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        slow = server.clients[poller.sid]
        peak = 0

        def probe() -> None:
            nonlocal peak
            peak = max(peak, slow.conn.queued_bytes)

        await broadcast_bulk(server, 1000, probe)
        assert peak <= 64 * 1024 + 2 * len(PAYLOAD)
        assert slow.dropped > 0 and server.state.slow_consumers == 1
