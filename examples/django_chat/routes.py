"""The chat of examples/django_chat: each socket is the Django user of its session cookie
(tether.contrib.django), messages go to everyone and into the Django side's history."""

import djchat.asgi  # noqa: F401 - Django set up before the first connect (the app import does it too)
from djchat.views import HISTORY

from tether import Reject, websocket
from tether.contrib.django import django_user


@websocket.on("connect")
async def connect(socket, auth):
    user = await django_user(socket)  # sessionid -> SESSION_ENGINE -> request.user
    if not user.is_authenticated:
        raise Reject({"code": 401, "message": "not logged in"})
    socket.login_using(user.pk)
    socket.data["name"] = user.get_username()


@websocket.on("chat message")
async def chat_message(socket, text):
    if not isinstance(text, str) or not text.strip():
        return False
    message = {"user": socket.data["name"], "text": text.strip()[:500]}
    HISTORY.append(message)
    await socket.server.emit("chat message", message)
    return True
