"""Routes of the log-in timeout demo: the article's ``loginCheck``, an echo, and a DEMO-ONLY log-in route."""

import re

import orjson

from tether import websocket
from tether.sessions import get_manager, new_session_id

_USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@websocket.on("loginCheck")
async def login_check(socket, data):
    # The article's page polls this every 50 ms; here the page asks once and the server pushes the rest.
    if not isinstance(data, dict) or not data.get("holding"):
        await socket.emit("message", {"code": 422, "message": "Parameter error"})
        return False
    await socket.emit("message", {"code": 200, "message": "success", "user": socket.user_id})
    return True


@websocket.on("echo")
async def echo(socket, data):
    await socket.emit("echo", data)
    return {"ok": True}


@websocket.setup
def demo_login(server):
    """POST /demo/login {"username": ...} -> {"token", "user_id", "session_id"}.

    DEMO ONLY: anyone who types a name gets a token, no password. A real application issues the token
    from its own log-in view, after checking the password, with ``tether.sessions.issue_token(user_id)``.
    """
    sessions = get_manager(server)

    async def login(request, body):
        try:
            username = orjson.loads(body).get("username", "").strip()
        except (orjson.JSONDecodeError, AttributeError):
            username = ""
        if not _USERNAME.fullmatch(username):
            return (
                422,
                {"Content-Type": "application/json"},
                orjson.dumps({"code": 422, "message": "username: 1-32 letters, digits, '.', '_' or '-'"}),
            )
        session_id = new_session_id()
        token = sessions.issue_token(username, session_id)
        reply = {"token": token, "user_id": username, "session_id": session_id}
        return 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, orjson.dumps(reply)

    server.add_http_route("POST", "/demo/login", login)
