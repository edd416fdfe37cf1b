"""The chat of examples/fastapi_chat: every socket is the FastAPI user of its session cookie (one line:
tether.contrib.starlette.login_with), messages go to everyone and into the app's history."""

from chat_app import SESSION_SECRET, current_user_id, record

from tether import websocket
from tether.contrib.starlette import login_with

websocket.on("connect", login_with(current_user_id, session_secret=SESSION_SECRET))


@websocket.on("chat message")
async def chat_message(socket, text):
    if not isinstance(text, str) or not text.strip():
        return False
    message = record(socket.user_id, text.strip()[:500])
    await socket.server.emit("chat message", message)
    return True
