"""Group chat: pick a nickname, talk, see who is typing, who joined or left and how many are online.

Events (client -> server, each answered through the ack)::

    "join"    nickname        -> {"ok": True, "nickname", "online"} | {"ok": False, "error"}
    "message" text            -> {"ok": True, "at"} | {"ok": False, "error"}
    "typing"  true | false    (no answer)

Events (server -> client)::

    "user joined" {"nickname", "online"}    "user left" {"nickname", "online"}
    "message" {"nickname", "text", "at"}    "typing" {"nickname", "typing"}

State lives in the sockets, not in module globals: a socket's nickname is ``socket.data["nickname"]``,
everyone with a nickname is in the room ``chat``, and the count and the taken names are asked of the
adapter (``count()``, ``fetch_sockets()``), so the answers hold for every process the adapter reaches.
"""

import re
import time

from tether import websocket

ROOM = "chat"
NICKNAME = re.compile(r"[^\W_][\w .'-]{0,23}")
"""1 to 24 letters, digits, spaces, dots, apostrophes or dashes, starting with a letter or digit."""
MAX_TEXT = 500


@websocket.on("join")
async def join(socket, nickname=None):
    if "nickname" in socket.data:
        return {"ok": False, "error": "you already have a nickname"}
    nickname = nickname.strip() if isinstance(nickname, str) else ""
    if not NICKNAME.fullmatch(nickname):
        return {"ok": False, "error": "a nickname is 1-24 letters, digits, spaces or . ' -"}
    members = await socket.server.to(ROOM).fetch_sockets()
    if any(str(m.data.get("nickname", "")).casefold() == nickname.casefold() for m in members):
        return {"ok": False, "error": f"{nickname} is taken"}
    socket.data["nickname"] = nickname
    socket.join(ROOM)
    online = await socket.server.to(ROOM).count()
    socket.to(ROOM).emit("user joined", {"nickname": nickname, "online": online})
    return {"ok": True, "nickname": nickname, "online": online}


@websocket.on("message")
async def message(socket, text=None):
    nickname = socket.data.get("nickname")
    if nickname is None:
        return {"ok": False, "error": "pick a nickname first"}
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > MAX_TEXT:
        return {"ok": False, "error": f"a message is 1-{MAX_TEXT} characters"}
    at = int(time.time() * 1000)
    socket.to(ROOM).emit("message", {"nickname": nickname, "text": text, "at": at})
    return {"ok": True, "at": at}


@websocket.on("typing")
async def typing(socket, active=False):
    nickname = socket.data.get("nickname")
    if nickname is not None:
        socket.to(ROOM).emit("typing", {"nickname": nickname, "typing": active is True})


@websocket.on("disconnect")
async def disconnect(socket, reason):
    nickname = socket.data.get("nickname")
    if nickname is not None:
        # The socket has left its rooms already: the count is of those still here.
        online = await socket.server.to(ROOM).count()
        socket.server.to(ROOM).emit("user left", {"nickname": nickname, "online": online})
