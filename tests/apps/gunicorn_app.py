"""``gunicorn -k uvicorn_worker.UvicornWorker tests.apps.gunicorn_app:app`` for the gunicorn tests in
tests/test_asgi_process.py: Tether alone (``tether.asgi.ASGIApp``), with the config the environment gives.

Events: ``connect`` emits ``welcome`` {"pid"} (which worker took the socket); ``echo *args`` emits
``echo`` *args back and answers the ack with the same args; ``disconnect`` prints ``disconnected <sid>
<reason> pid <pid>`` to stderr, so that the test reads the server's side of the disconnect from the
process's output.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tether import Router, Socket
from tether.asgi import ASGIApp

router = Router()


@router.on("connect")
async def connect(socket: Socket, auth: Any) -> None:
    await socket.emit("welcome", {"pid": os.getpid()})


@router.on("echo")
async def echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
    await socket.emit("echo", *args)
    return args


@router.on("disconnect")
def disconnect(socket: Socket, reason: str) -> None:
    print(f"disconnected {socket.sid} {reason} pid {os.getpid()}", file=sys.stderr, flush=True)


app = ASGIApp(router)
