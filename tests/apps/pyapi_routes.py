"""Routes that drive the python-socketio server API from a client, for one worker, two workers and two nodes.

``api(op, kwargs)`` calls ``socket.server.<op>(**kwargs)`` and answers with its (awaited) result;
``ask_room(room, seconds)`` is an emit with acks to a room; ``block``/``quick`` are a blocking ``def``
handler and a quick ``async def`` one. :func:`install` registers them on a router (a route file calls it
on ``tether.websocket``); ``TETHER_TESTS_ONCE=1`` in the environment also starts a once-per-cluster task
that emits ``tick`` with its pid every 0.1 s.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

from tether import Answers, Router, Socket


def answers_json(answers: Answers) -> dict[str, Any]:
    return {
        "answers": sorted(answers, key=repr),
        "expected": answers.expected,
        "missing": answers.missing,
        "timed_out": answers.timed_out,
    }


def install(router: Router) -> None:
    @router.on("whoami")
    async def whoami(socket: Socket) -> dict[str, Any]:
        return {"pid": os.getpid(), "sid": socket.sid}

    @router.on("api")
    async def api(socket: Socket, op: str, kwargs: dict[str, Any]) -> Any:
        result = getattr(socket.server, op)(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Answers):
            return answers_json(result)
        if isinstance(result, list | tuple | set):
            return sorted(result) if op == "rooms" else list(result)
        return result if isinstance(result, str | int | float | bool | dict | type(None)) else repr(result)

    @router.on("ask_room")
    async def ask_room(socket: Socket, room: str, seconds: float) -> dict[str, Any]:
        answers = await socket.server.to(room).timeout(seconds).emit("question", "q?")
        return answers_json(answers)

    @router.on("block")
    def block(socket: Socket, seconds: float) -> str:
        time.sleep(seconds)  # a blocking call in a plain def: it runs in a thread
        socket.emit("blocked", seconds)  # emitting from the thread is safe
        return "slept"

    @router.on("quick")
    async def quick(socket: Socket) -> str:
        return "quick"

    @router.on("callback_to")
    async def callback_to(socket: Socket, sid: str) -> str:
        def got(*args: Any) -> None:
            socket.emit("callback_answer", list(args))

        socket.server.emit("question", "cb?", to=sid, callback=got)
        return "ok"

    if os.environ.get("TETHER_TESTS_ONCE") == "1":

        @router.setup
        def start_once(server: Any) -> None:
            async def tick() -> None:
                while True:
                    server.emit("tick", os.getpid())
                    await server.sleep(0.1)

            server.start_background_task(tick, once=True)
