"""Know the Django user of a socket: the ``sessionid`` cookie, through Django's session engine and auth,
to ``socket.login_using(user.pk)``.

One line in a route file (Django configured: ``DJANGO_SETTINGS_MODULE`` and ``django.setup()``, as
``myproject/asgi.py`` does when it is mounted with ``tether start --app myproject.asgi:application``)::

    websocket.on("connect", tether.contrib.django.login_from_session)

or, inside your own connect handler, ``user = await django_user(socket)``. The page must come from the
origin the cookie belongs to: serve Django on Tether's port (``tether start --app``) or on the same host.
"""

from __future__ import annotations

import asyncio
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
    ``SessionStore`` and resolved by ``django.contrib.auth.get_user``, so backends, session expiry and
    the password-change hash check are Django's own. The lookup runs in one ``sync_to_async`` call
    (thread-sensitive, as Django's ORM wants): Django's async variants nest their own thread hops, which
    deadlock while Django serves a request of the mounted app at the same moment.
    """
    from asgiref.sync import sync_to_async
    from django.conf import settings

    key = socket.request.cookies.get(settings.SESSION_COOKIE_NAME)
    # A task of its own: sync_to_async marks the context it runs in (asgiref's deadlock guard), and Tether
    # runs handlers eagerly in a context shared by the connection's callbacks; a task has a copy.
    return await asyncio.ensure_future(sync_to_async(_user_of_session, thread_sensitive=True)(key))


def _user_of_session(key: str | None) -> Any:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user

    engine = import_module(settings.SESSION_ENGINE)
    user = get_user(_SessionRequest(engine.SessionStore(session_key=key)))
    user.is_authenticated  # noqa: B018 - resolved here, in the thread, not lazily in the event loop
    return user


async def login_from_session(socket: Socket, auth: Any = None) -> None:
    """A ``connect`` handler: bind the socket to the logged-in Django user, or refuse it.

    Raises:
        Reject: no logged-in user (the client gets ``connect_error`` with code 401).
    """
    user = await django_user(socket)
    if not user.is_authenticated:
        raise Reject({"code": 401, "message": "not logged in"})
    socket.login_using(user.pk)
