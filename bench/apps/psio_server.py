"""python-socketio 5.x benchmark server: ASGI under uvicorn with uvloop, httptools and websockets.

The same app as Tether's (``echo``, ``echoack``, ``bcast``), default heartbeats (pingInterval 25 s).
Usage: ``python bench/apps/psio_server.py --port 24002``.
"""

from __future__ import annotations

import argparse
import resource

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*", logger=False, engineio_logger=False)
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def echo(sid, data=None):
    await sio.emit("echo", data, to=sid)


@sio.on("echoack")
async def echoack(sid, data=None):
    return data


@sio.on("bcast")
async def bcast(sid, data=None):
    await sio.emit("bcast", data)


def raise_nofile(limit: int = 20_000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24002)
    args = parser.parse_args()
    raise_nofile()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
