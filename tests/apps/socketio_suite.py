"""The echo app the Socket.IO v5 protocol test suite (socket.io-protocol, ``test-suite/test-suite.js``)
expects, as the reference server it runs against defines it (tests/js/reference_server.mjs does the same in
node): in ``/`` and ``/custom``,

=====================  ===================================================================
connect                emits ``auth`` with the handshake auth (``{}`` when none was sent, as
                       node's ``socket.handshake.auth``)
message *args          emits ``message-back`` *args
message-with-ack *a    answers the ack with *a
disconnect             records (namespace, sid, reason)
=====================  ===================================================================
"""

from __future__ import annotations

from typing import Any

from tests.helpers import Recorder
from tether import Router, Socket

NAMESPACES = ("/", "/custom")


def build_router(rec: Recorder | None = None) -> Router:
    rec = rec if rec is not None else Recorder()
    r = Router()
    for ns in NAMESPACES:

        @r.on("connect", namespace=ns)
        async def connect(socket: Socket, auth: Any) -> None:
            rec.connects.append((socket.namespace, socket.sid, auth))
            await socket.emit("auth", auth if auth is not None else {})

        @r.on("message", namespace=ns)
        async def message(socket: Socket, *args: Any) -> None:
            await socket.emit("message-back", *args)

        @r.on("message-with-ack", namespace=ns)
        async def message_with_ack(socket: Socket, *args: Any) -> tuple[Any, ...]:
            return args

        @r.on("disconnect", namespace=ns)
        async def disconnect(socket: Socket, reason: str) -> None:
            rec.disconnects.append((socket.namespace, socket.sid, reason))

    return r
