"""A raw picows WebSocket server (no Engine.IO, no Socket.IO): the load generator's ceiling.

Every text frame is echoed to its sender, except one starting with ``42["bcast"``, which goes to every
connection: the same frames the Socket.IO servers get, without the protocol work, so the figures
measured here are what the generator itself can drive.

Usage: ``python bench/apps/raw_picows_echo.py --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

_TEXT = WSMsgType.TEXT
_CLOSE = WSMsgType.CLOSE
BCAST = b'42["bcast"'

clients: set[WSTransport] = set()


class Echo(WSListener):  # type: ignore[misc]
    def on_ws_connected(self, transport: WSTransport) -> None:
        clients.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        clients.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt is _TEXT:
            data = frame.get_payload_as_bytes()
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


async def main(port: int) -> None:
    def factory(_req: WSUpgradeRequest) -> Echo:
        return Echo()

    server = await ws_create_server(factory, "127.0.0.1", port, backlog=4096, read_buffer_init_size=2048)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {port}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24004)
    args = parser.parse_args()
    raise_nofile()
    uvloop.run(main(args.port))
