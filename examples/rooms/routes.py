"""Rooms: a page with join, leave, close-room and disconnect buttons, and messages to a room.

Events (client -> server, each answered through the ack)::

    "join room"  room          -> {"ok", "rooms"} | {"ok": False, "error"}
    "leave room" room          -> {"ok", "rooms"}
    "close room" room          -> {"ok"}       every member, on every node, leaves it
    "say"        {room, text}  -> {"ok"}       to every member of the room, the sender included
    "bye"                      -> the server disconnects this socket (after the answer)

Events (server -> client)::

    "joined" {"room", "sid", "size"}   "left" {"room", "sid", "size"}   "closed" {"room", "by"}
    "said" {"room", "sid", "text"}

``close room`` tells the members, then ``server.close_room(room)`` (python-socketio's call) makes each of
them leave, on whichever worker or node it is connected.
"""

import asyncio
import re

from tether import TetherError, websocket

ROOM_NAME = re.compile(r"[\w-]{1,32}")
MAX_TEXT = 300


def _room(value):
    return value if isinstance(value, str) and ROOM_NAME.fullmatch(value) else None


def _named_rooms(socket):
    return sorted(socket.rooms - {socket.sid})


@websocket.on("join room")
async def join_room(socket, room=None):
    room = _room(room)
    if room is None:
        return {"ok": False, "error": "a room name is 1-32 letters, digits, _ or -"}
    try:
        socket.join(room)
    except TetherError as exc:  # over [limits] max_rooms_per_socket
        return {"ok": False, "error": str(exc)}
    size = await socket.server.to(room).count()
    socket.server.to(room).emit("joined", {"room": room, "sid": socket.sid, "size": size})
    return {"ok": True, "rooms": _named_rooms(socket)}


@websocket.on("leave room")
async def leave_room(socket, room=None):
    room = _room(room)
    if room is None or room not in socket.rooms:
        return {"ok": False, "error": "not in that room"}
    socket.leave(room)
    size = await socket.server.to(room).count()
    socket.server.to(room).emit("left", {"room": room, "sid": socket.sid, "size": size})
    return {"ok": True, "rooms": _named_rooms(socket)}


@websocket.on("close room")
async def close_room(socket, room=None):
    room = _room(room)
    if room is None:
        return {"ok": False, "error": "no such room"}
    socket.server.to(room).emit("closed", {"room": room, "by": socket.sid})
    socket.server.close_room(room)
    return {"ok": True}


@websocket.on("say")
async def say(socket, message=None):
    room = _room(message.get("room")) if isinstance(message, dict) else None
    text = message.get("text") if isinstance(message, dict) else None
    if room is None or room not in socket.rooms:
        return {"ok": False, "error": "join the room first"}
    if not isinstance(text, str) or not 0 < len(text.strip()) <= MAX_TEXT:
        return {"ok": False, "error": f"a message is 1-{MAX_TEXT} characters"}
    socket.server.to(room).emit("said", {"room": room, "sid": socket.sid, "text": text.strip()})
    return {"ok": True}


@websocket.on("bye")
async def bye(socket):
    # After this handler returns its ack: the page gets the answer, then the DISCONNECT.
    asyncio.get_running_loop().call_soon(socket.disconnect)
    return {"ok": True}
