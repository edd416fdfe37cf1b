"""The route module the server tests run against: one handler per behaviour issue 2 asks for.

:func:`build_router` returns a fresh :class:`tether.Router` bound to a :class:`~tests.helpers.Recorder`,
so each test's server has its own routes and its own record of what happened.

Events (namespace ``/`` unless said otherwise):

=================  ============================================================================
connect            auth ``{"token": "secret"}`` (or ``?token=secret`` on /ws) is required, else
                   ``Reject({"code": 401, "message": "bad token"})``; ``auth["room"]`` is joined;
                   emits ``welcome`` {"sid", "user"} (must arrive right after the CONNECT reply)
echo *args         emits ``echo`` *args back, and answers the ack with the same args
join room          joins; ack: the rooms (sid room left out), sorted
leave room         leaves; ack: the rooms
room_emit d        ``socket.to(d["room"]).emit("room_msg", d["msg"])`` (sender left out)
broadcast d        ``socket.broadcast.emit("broadcast", d)`` (everyone but the sender)
shout d            ``socket.server.emit("shout", d)`` (everyone, sender included)
bin d              emits ``bin`` {"orig": d, "rev": d[::-1], "len": len(d)}; ack: same
ask d              ``await socket.emit("question", d, ack=True, timeout=...)``; emits ``answer``
                   with the client's reply; ack: the reply
add a b            sync handler; ack: (a + b, a * b), i.e. two ack arguments
boom               raises RuntimeError; the connection must go on
kick               ``socket.disconnect()``
loginCheck d       ``"tests.apps.controllers:UserController@check_login"`` (the article's controller)
logout             ``"tests.apps.controllers:UserController@send_logout"``; ack: "bye"
disconnect         records (namespace, sid, reason)
/chat connect      accepts anyone; emits ``welcome`` {"ns": "/chat"}
/chat echo *args   emits ``echo`` {"ns": "/chat", "args": args}; ack: same
=================  ============================================================================
"""

from __future__ import annotations

from typing import Any

from tests.helpers import Recorder, scaled
from tether import Reject, Router, Socket

TOKEN = "secret"


def build_router(rec: Recorder | None = None) -> Router:
    rec = rec if rec is not None else Recorder()
    r = Router()

    @r.on("connect")
    async def connect(socket: Socket, auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        if auth.get("token") != TOKEN:
            raise Reject({"code": 401, "message": "bad token"})
        rec.connects.append((socket.namespace, socket.sid, auth))
        if auth.get("room"):
            socket.join(auth["room"])
        await socket.emit("welcome", {"sid": socket.sid, "user": auth.get("user")})

    @r.on("disconnect")
    def disconnect(socket: Socket, reason: str) -> None:
        rec.disconnects.append((socket.namespace, socket.sid, reason))

    @r.on("echo")
    async def echo(socket: Socket, *args: Any) -> tuple[Any, ...]:
        await socket.emit("echo", *args)
        return args

    @r.on("join")
    def join(socket: Socket, room: str) -> list[str]:
        socket.join(room)
        return sorted(socket.rooms - {socket.sid})

    @r.on("leave")
    def leave(socket: Socket, room: str) -> list[str]:
        socket.leave(room)
        return sorted(socket.rooms - {socket.sid})

    @r.on("room_emit")
    def room_emit(socket: Socket, data: dict[str, Any]) -> bool:
        socket.to(data["room"]).emit("room_msg", data["msg"])
        return True

    @r.on("broadcast")
    def broadcast(socket: Socket, data: Any) -> bool:
        socket.broadcast.emit("broadcast", data)
        return True

    @r.on("shout")
    def shout(socket: Socket, data: Any) -> bool:
        socket.server.emit("shout", data)
        return True

    @r.on("bin")
    async def binary(socket: Socket, data: bytes) -> dict[str, Any]:
        out = {"orig": data, "rev": data[::-1], "len": len(data)}
        await socket.emit("bin", out)
        return out

    @r.on("ask")
    async def ask(socket: Socket, data: Any) -> Any:
        reply = await socket.emit("question", data, ack=True, timeout=scaled(5))
        await socket.emit("answer", reply)
        return reply

    @r.on("add")
    def add(socket: Socket, a: int, b: int) -> tuple[int, int]:
        return a + b, a * b

    @r.on("boom")
    async def boom(socket: Socket, *args: Any) -> None:
        raise RuntimeError("boom on purpose")

    @r.on("kick")
    def kick(socket: Socket, *args: Any) -> None:
        socket.disconnect()

    r.on("loginCheck", "tests.apps.controllers:UserController@check_login")
    r.on("logout", "tests.apps.controllers:UserController@send_logout")

    @r.on("connect", namespace="/chat")
    async def chat_connect(socket: Socket, auth: Any) -> None:
        rec.connects.append((socket.namespace, socket.sid, auth))
        await socket.emit("welcome", {"ns": socket.namespace})

    @r.on("disconnect", namespace="/chat")
    def chat_disconnect(socket: Socket, reason: str) -> None:
        rec.disconnects.append((socket.namespace, socket.sid, reason))

    @r.on("echo", namespace="/chat")
    async def chat_echo(socket: Socket, *args: Any) -> dict[str, Any]:
        out = {"ns": socket.namespace, "args": list(args)}
        await socket.emit("echo", out)
        return out

    return r
