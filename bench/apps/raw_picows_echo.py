"""A raw picows WebSocket server (no Engine.IO, no Socket.IO): the load generator's ceiling.

Every text frame is echoed to its sender, except one starting with ``42["bcast"``, which goes to every
connection, and ``3`` (a pong), which is read and dropped: the same frames the Socket.IO servers get,
without the protocol work, so the figures measured here are what the generator itself can drive.

Heartbeats, for W6's floor: every connection gets a text ``2`` (an Engine.IO ping) every
``--ping-interval`` seconds (25, as the Socket.IO servers' default), from one timer per process that wakes
every 0.5 s and sends the pings that are due. Connections are kept in a FIFO in the order of their next
ping: with one interval for all, the due ones are always at its head (no heap, no per-connection timer).
Nothing is parsed and no pong timeout is enforced: the least a server can do to keep its idle clients
pinged, which is what W6 of the Socket.IO servers is compared with.

Transports: picows uses aiofastnet's when it is installed (``--transport aiofastnet``, picows' default and
``make bench``'s floor); ``--transport uvloop`` uses uvloop's own, as Tether does by default
(``[server] net``): ``bench/transports.py`` compares the two.

Usage: ``python bench/apps/raw_picows_echo.py --port N [--ping-interval S] [--transport T]``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import time
from collections import deque

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

_TEXT = WSMsgType.TEXT
_CLOSE = WSMsgType.CLOSE
BCAST = b'42["bcast"'
PING = b"2"
PONG = b"3"
TICK = 0.5

clients: set[WSTransport] = set()
due: deque[tuple[float, WSTransport]] = deque()
"""(next ping time, connection), in the order of that time (every connection has the same interval)."""


class Echo(WSListener):  # type: ignore[misc]
    interval = 25.0

    def on_ws_connected(self, transport: WSTransport) -> None:
        clients.add(transport)
        if self.interval > 0:
            due.append((time.monotonic() + self.interval, transport))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        clients.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt is _TEXT:
            data = frame.get_payload_as_bytes()
            if data == PONG:
                return
            if data.startswith(BCAST):
                for t in clients:
                    t.send(_TEXT, data)
            else:
                transport.send(_TEXT, data)
        elif mt is _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def raise_nofile(limit: int = 20_000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def ping_due(interval: float) -> None:
    """Every TICK seconds, ping the connections whose next ping is due (gone ones are dropped)."""
    while True:
        await asyncio.sleep(TICK)
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, transport = due.popleft()
            if transport in clients:
                transport.send(_TEXT, PING)
                due.append((at + interval, transport))


async def main(port: int, ping_interval: float, transport: str = "aiofastnet") -> None:
    Echo.interval = ping_interval

    def factory(_req: WSUpgradeRequest) -> Echo:
        return Echo()

    server = await ws_create_server(
        factory,
        "127.0.0.1",
        port,
        backlog=4096,
        read_buffer_init_size=2048,
        use_aiofastnet=transport == "aiofastnet",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pinger = loop.create_task(ping_due(ping_interval)) if ping_interval > 0 else None
    print(f"READY {port}", flush=True)
    await stop.wait()
    if pinger is not None:
        pinger.cancel()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24004)
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds; 0: no pings")
    parser.add_argument("--transport", choices=["aiofastnet", "uvloop"], default="aiofastnet")
    args = parser.parse_args()
    raise_nofile()
    uvloop.run(main(args.port, args.ping_interval, args.transport))
