"""Know the Django user of a socket: the ``sessionid`` cookie, through Django's session engine and auth,
to ``socket.login_using(user.pk)``.

One line in a route file (Django configured: ``DJANGO_SETTINGS_MODULE`` and ``django.setup()``, as
``myproject/asgi.py`` does when it is mounted with ``tether start --app myproject.asgi:application``)::

    websocket.on("connect", tether.contrib.django.login_from_session)

or, inside your own connect handler, ``user = await django_user(socket)``. The page must come from the
origin the cookie belongs to: serve Django on Tether's port (``tether start --app``) or on the same host.
"""

from __future__ import annotations

from typing import Any

from ..context import Socket
from ..errors import Reject

__all__ = ["django_user", "login_from_session"]


class _SessionRequest:
    """The part of an ``HttpRequest`` that ``django.contrib.auth.aget_user`` reads: ``session``."""

    def __init__(self, session: Any) -> None:
        self.session = session


async def django_user(socket: Socket) -> Any:
    """The Django user whose session cookie came with the handshake; ``AnonymousUser`` without one.

    The cookie is ``settings.SESSION_COOKIE_NAME``, loaded by ``settings.SESSION_ENGINE``'s
    ``SessionStore`` and resolved by ``django.contrib.auth.aget_user`` (Django 5+), so backends, session
    expiry and the password-change hash check are Django's own.
    """
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import aget_user

    key = socket.request.cookies.get(settings.SESSION_COOKIE_NAME)
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key=key)
    return await aget_user(_SessionRequest(session))


async def login_from_session(socket: Socket, auth: Any = None) -> None:
    """A ``connect`` handler: bind the socket to the logged-in Django user, or refuse it.

    Raises:
        Reject: no logged-in user (the client gets ``connect_error`` with code 401).
    """
    user = await django_user(socket)
    if not user.is_authenticated:
        raise Reject({"code": 401, "message": "not logged in"})
    socket.login_using(user.pk)
