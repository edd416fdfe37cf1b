"""Routes of the Tether nodes the cluster tests start as subprocesses (``python -m tether start``)."""

from __future__ import annotations

from typing import Any

from tests.apps.pyapi_routes import install
from tether import Socket, websocket


@websocket.on("join")
def join(socket: Socket, room: str) -> str:
    socket.join(room)
    return "ok"


@websocket.on("leave")
def leave(socket: Socket, room: str) -> str:
    socket.leave(room)
    return "ok"


@websocket.on("login")
def login(socket: Socket, user_id: Any) -> str:
    socket.login_using(user_id)
    return "ok"


@websocket.on("emit_to")
def emit_to(socket: Socket, spec: dict[str, Any]) -> str:
    """Server-side emit: ``{"event", "args", "room"?, "rooms"?, "sid"?, "user"?, "except"?}``."""
    server = socket.server
    op = server.of(socket.namespace)
    if "room" in spec:
        op = op.to(spec["room"])
    if "rooms" in spec:
        op = op.to(spec["rooms"])
    if "sid" in spec:
        op = op.to(spec["sid"])
    if "user" in spec:
        op = server.to_user(spec["user"], socket.namespace)
    if "except" in spec:
        op = op.except_(spec["except"])
    op.emit(spec["event"], *spec.get("args", []))
    return "ok"


@websocket.on("emit_binary")
def emit_binary(socket: Socket, room: str) -> str:
    socket.server.to(room).emit("blob", {"name": "x", "bytes": b"\x00\x01\xff"})
    return "ok"


@websocket.on("broadcast")
def broadcast(socket: Socket, event: str, data: Any) -> str:
    socket.broadcast.emit(event, data)
    return "ok"


@websocket.on("user_online")
async def user_online(socket: Socket, user_id: Any) -> bool:
    return await socket.server.user_online(user_id)


@websocket.on("count")
async def count(socket: Socket, room: str) -> int:
    return await socket.server.to(room).count()


@websocket.on("fetch")
async def fetch(socket: Socket, room: str) -> list[dict[str, Any]]:
    infos = await socket.server.to(room).fetch_sockets()
    return [{"id": i.id, "rooms": list(i.rooms), "user_id": i.user_id, "local": i.node == ""} for i in infos]


@websocket.on("all_rooms")
async def all_rooms(socket: Socket) -> list[str]:
    return sorted(await socket.server.adapter.all_rooms(socket.namespace))


@websocket.on("sockets_join")
def sockets_join(socket: Socket, room: str, new_room: str) -> str:
    socket.server.to(room).sockets_join(new_room)
    return "ok"


@websocket.on("sockets_leave")
def sockets_leave(socket: Socket, room: str, old_room: str) -> str:
    socket.server.to(room).sockets_leave(old_room)
    return "ok"


@websocket.on("disconnect_room")
def disconnect_room(socket: Socket, room: str) -> str:
    socket.server.to(room).disconnect_sockets()
    return "ok"


@websocket.on("rooms")
def rooms(socket: Socket) -> list[str]:
    return sorted(socket.rooms)


@websocket.on("stats")
def stats(socket: Socket) -> dict[str, Any]:
    return socket.server.adapter.stats()


@websocket.on("server_count")
async def server_count(socket: Socket) -> int:
    return await socket.server.adapter.server_count()


@websocket.on("join", namespace="/admin")
def admin_join(socket: Socket, room: str) -> str:
    socket.join(room)
    return "ok"


# python-socketio's server API (api, ask_room, whoami...): tests/cluster/test_sid_api_nodes.py
install(websocket)
