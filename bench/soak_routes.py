"""Routes of the soak server (bench/soak.py): echo, rooms, users, and a ``stats`` probe of the server."""

import os
from typing import Any

from tether import websocket


@websocket.on("echo")
def echo(socket: Any, *args: Any) -> Any:
    return args


@websocket.on("join")
def join(socket: Any, room: str) -> bool:
    socket.join(room)
    return True


@websocket.on("say")
def say(socket: Any, room: str, text: str) -> None:
    socket.to(room).emit("said", text)


@websocket.on("login")
def login(socket: Any, user: str) -> bool:
    socket.login_using(user)
    socket.to_user(user).emit("hello", user)
    return True


@websocket.on("stats")
def stats(socket: Any) -> dict[str, Any]:
    """What the server holds right now: every figure must come back to (nearly) zero when clients leave."""
    server = socket.server
    ns = server.namespaces["/"]
    return {
        "pid": os.getpid(),
        "clients": len(server.clients),
        "sockets": server.state.sockets,
        "rooms": len(ns.rooms.all_rooms()),
        "members": len(ns.rooms),
        "per_ip": len(server._per_ip),
        "connections_total": server.state.connections_total,
        "disconnects": server.state.disconnects,
        "slow_consumers": server.state.slow_consumers,
        "protocol_errors": server.state.protocol_errors,
    }
