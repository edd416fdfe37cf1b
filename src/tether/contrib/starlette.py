"""Know the FastAPI/Starlette user of a socket through the app's own code: the handshake becomes a
Starlette ``Request`` (its cookies, its signed session decoded by Starlette's own ``SessionMiddleware``,
and ``Authorization: Bearer <token>`` from the client's ``auth`` token), handed to the function the app
already uses to find the user.

One line in a route file::

    websocket.on("connect", login_with(user_id_from_request, session_secret=SECRET_KEY))

where ``user_id_from_request(request)`` (sync or async) is the app's own: it returns the user id (or
``None``) from ``request.session`` or ``request.headers["authorization"]``, exactly as the app's FastAPI
dependency reads them. socket.io-client sends a bearer token as ``io({auth: {token}})``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ..context import Socket
from ..errors import Reject

__all__ = ["login_with", "starlette_request"]

FOURTEEN_DAYS = 14 * 24 * 60 * 60
"""Starlette ``SessionMiddleware``'s default ``max_age``."""


async def starlette_request(
    socket: Socket,
    auth: Any = None,
    *,
    session_secret: str | None = None,
    session_cookie: str = "session",
    max_age: int | None = FOURTEEN_DAYS,
) -> Any:
    """A ``starlette.requests.Request`` for the handshake of ``socket``.

    Args:
        socket: the connecting socket (``socket.request`` gives path, query, headers, cookies).
        auth: the client's CONNECT payload; a ``{"token": ...}`` becomes ``Authorization: Bearer ...``
            when the handshake had no Authorization header.
        session_secret: the app's ``SessionMiddleware`` ``secret_key``; set: ``request.session`` is the
            session decoded and checked by Starlette's middleware (same ``session_cookie``, ``max_age``).

    Returns:
        The request (``request.session`` is ``{}`` for a missing, forged or expired cookie).
    """
    from starlette.requests import Request

    handshake = socket.request
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in handshake.headers.items()]
    token = auth.get("token") if isinstance(auth, dict) else None
    if isinstance(token, str) and not any(k == b"authorization" for k, _ in headers):
        headers.append((b"authorization", b"Bearer " + token.encode("latin-1", "replace")))
    scope: dict[str, Any] = {
        "type": "http",
        "method": handshake.method,
        "path": handshake.path,
        "raw_path": handshake.path.encode("latin-1", "replace"),
        "root_path": "",
        "query_string": "&".join(f"{k}={v}" for k, v in handshake.query.items()).encode("latin-1", "replace"),
        "headers": headers,
        "client": (handshake.remote, 0),
        "scheme": "http",
        "server": None,
    }
    if session_secret is not None:
        from starlette.middleware.sessions import SessionMiddleware

        async def capture(scope_: Any, receive: Any, send: Any) -> None:
            scope["session"] = scope_.get("session", {})

        async def no_receive() -> Any:
            return {"type": "http.disconnect"}

        async def no_send(message: Any) -> None:
            return None

        middleware = SessionMiddleware(
            capture, secret_key=session_secret, session_cookie=session_cookie, max_age=max_age
        )
        await middleware(dict(scope), no_receive, no_send)
    return Request(scope)


def login_with(
    user_of: Callable[[Any], Any | Awaitable[Any]],
    *,
    session_secret: str | None = None,
    session_cookie: str = "session",
    max_age: int | None = FOURTEEN_DAYS,
) -> Callable[[Socket, Any], Awaitable[None]]:
    """A ``connect`` handler: ``user_of(request)`` (the app's own lookup, sync or async) names the user,
    and the socket is bound to it with ``socket.login_using``.

    Raises (from the handler):
        Reject: ``user_of`` returned ``None`` or raised an HTTP 401/403 (``HTTPException``): the client
            gets ``connect_error`` with code 401.
    """

    async def on_connect(socket: Socket, auth: Any = None) -> None:
        request = await starlette_request(
            socket, auth, session_secret=session_secret, session_cookie=session_cookie, max_age=max_age
        )
        try:
            user_id = user_of(request)
            if inspect.isawaitable(user_id):
                user_id = await user_id
        except Exception as exc:
            if getattr(exc, "status_code", None) in (401, 403):
                raise Reject({"code": 401, "message": str(getattr(exc, "detail", exc))}) from exc
            raise
        if user_id is None:
            raise Reject({"code": 401, "message": "not logged in"})
        socket.login_using(user_id)

    return on_connect
