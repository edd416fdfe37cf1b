"""Routes of the log-in timeout demo."""

from tether import websocket


@websocket.on("loginCheck")
async def login_check(socket, data):
    # The article's page polls this every 50 ms; Tether answers once and pushes the rest.
    if not isinstance(data, dict) or not data.get("holding"):
        await socket.emit("message", {"code": 422, "message": "Parameter error"})
        return False
    await socket.emit("message", {"code": 200, "message": "success"})
    return True


@websocket.on("echo")
async def echo(socket, data):
    await socket.emit("echo", data)
    return {"ok": True}
