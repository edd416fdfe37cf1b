"""Controllers named by ``"module:Class@method"`` route strings in tests, like the article's."""

from __future__ import annotations

from typing import Any

CONTROLLER_PROBLEM = "not a class"


class UserController:
    """Counts how many times it is built: the router must build it once per process."""

    instances = 0

    def __init__(self) -> None:
        type(self).instances += 1

    async def check_login(self, socket: Any, data: Any) -> None:
        if not isinstance(data, dict) or not data.get("holding"):
            await socket.emit("message", {"code": 422, "message": "Parameter error"})
            return
        await socket.emit("message", {"code": 200, "message": "success"})

    def send_logout(self, socket: Any, data: Any = None) -> str:
        return "bye"


class Nested:
    class Inner:
        def hello(self, socket: Any) -> str:
            return "inner"


def plain_function(socket: Any, data: Any) -> Any:
    return data
