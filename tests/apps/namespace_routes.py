"""A route file with two class-based namespaces: Tether's own (``/room``) and a python-socketio
``AsyncNamespace`` subclass written for python-socketio (``/chat``), kept as such: the one line that changes
is the registration (``websocket.register_namespace`` instead of ``sio.register_namespace``)."""

from __future__ import annotations

from typing import Any

import socketio

import tether
from tether import websocket

SEEN: dict[str, list[Any]] = {"room": [], "chat": [], "audit": [], "ticks": []}


class Room(tether.Namespace):
    async def on_connect(self, socket: tether.Socket, auth: Any) -> None:
        if (auth or {}).get("token") != "ok":
            raise tether.Reject({"message": "bad token"})
        SEEN["room"].append(("connect", socket.sid))

    async def on_join(self, socket: tether.Socket, room: str) -> list[str]:
        await socket.join(room)
        return sorted(socket.rooms)

    def on_shout(self, socket: tether.Socket, text: str) -> str:  # a plain def: in a thread
        self.emit("shouted", text.upper(), room="loud", skip_sid=socket.sid)
        return "shouted"

    def on_disconnect(self, socket: tether.Socket, reason: str) -> None:
        SEEN["room"].append(("disconnect", reason))


class ChatNamespace(socketio.AsyncNamespace):
    """Written for python-socketio: sids, environ, sessions, rooms through ``self``."""

    async def on_connect(self, sid, environ, auth):  # type: ignore[no-untyped-def]
        if auth and auth.get("refuse"):
            raise socketio.exceptions.ConnectionRefusedError("go away")
        await self.save_session(sid, {"agent": environ.get("HTTP_USER_AGENT", ""), "name": auth.get("name")})
        await self.enter_room(sid, "general")
        SEEN["chat"].append(("connect", sid, environ["REQUEST_METHOD"]))

    async def on_message(self, sid, data):  # type: ignore[no-untyped-def]
        async with self.session(sid) as session:
            session["said"] = session.get("said", 0) + 1
            name, said = session["name"], session["said"]
        await self.emit("message", {"from": name, "text": data}, room="general", skip_sid=sid)
        return "delivered", said

    async def on_rooms(self, sid):  # type: ignore[no-untyped-def]
        return sorted(self.rooms(sid))

    def on_sync_event(self, sid, data):  # type: ignore[no-untyped-def]
        return {"echo": data}

    async def on_disconnect(self, sid, reason):  # type: ignore[no-untyped-def]
        SEEN["chat"].append(("disconnect", sid, reason))


class Audit(tether.Namespace):
    """Overrides trigger_event, as python-socketio users do for a catch-all: it must see every event."""

    async def trigger_event(self, event: str, *args: Any) -> Any:
        SEEN["audit"].append((event, *args[1:]))
        if event == "unrouted":  # no on_unrouted method: answered here
            return "seen by trigger_event"
        return await super().trigger_event(event, *args)

    async def on_echo(self, socket: tether.Socket, data: Any) -> Any:
        return data

    async def on_ticks(self, socket: tether.Socket, n: int) -> str:
        # python-socketio's way from a namespace: the server's background task and sleep, awaited calls.
        await self.enter_room(socket.sid, "tickers")
        self.server.start_background_task(self.ticker, socket.sid, n)  # type: ignore[union-attr]
        return "started"

    async def ticker(self, sid: str, n: int) -> None:
        for i in range(n):
            await self.server.sleep(0.01)  # type: ignore[union-attr]
            await self.emit("tick", i, room="tickers")
        SEEN["ticks"].append(sorted(self.rooms(sid)))
        await self.leave_room(sid, "tickers")
        await self.close_room("tickers")
        await self.disconnect(sid)


websocket.register_namespace(Room("/room"))
websocket.register_namespace(Audit("/audit"))
websocket.register_namespace(ChatNamespace("/chat"))
