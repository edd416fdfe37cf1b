"""Class-based namespaces: the handlers of one namespace as the methods of a class.

Tether's own form gets the socket, as every Tether handler does::

    class Chat(tether.Namespace):
        async def on_connect(self, socket, auth): ...
        async def on_message(self, socket, text):       # event "message"
            await socket.to("lobby").emit("message", text)
            return "ok"                                  # the ack
        def on_disconnect(self, socket, reason): ...     # a plain def runs in a thread

    websocket.register_namespace(Chat("/chat"))         # in the route file

A python-socketio ``AsyncNamespace`` subclass runs unchanged: register an instance the same way
(``websocket.register_namespace(MyNamespace("/chat"))`` instead of ``sio.register_namespace(...)``, the one
line that changes). Its handlers get the sid, ``environ`` and ``auth`` as in python-socketio, disconnect
reasons are python-socketio's (``client disconnect``, ``server disconnect``, ``ping timeout``,
``transport close``, ``transport error``), and its ``self.emit``/``enter_room``/``get_session``/... reach
the Tether server, whose calls have the same names (:mod:`tether.server.sid_api`). Tether calls its
``trigger_event``, so an override of that (a catch-all) works too. A ``ConnectionRefusedError`` raised
from ``on_connect``, or False returned, refuses the connection with the same CONNECT_ERROR data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import Reject, TetherError, reject_of
from .handler import wsgi_environ
from .router import set_namespace_registrar

if TYPE_CHECKING:
    from .context import Socket
    from .router import Router
    from .server.server import Server

__all__ = ["PYTHON_SOCKETIO_REASONS", "Namespace", "is_python_socketio_namespace", "register"]

PYTHON_SOCKETIO_REASONS = {
    "client namespace disconnect": "client disconnect",
    "server namespace disconnect": "server disconnect",
    "server shutting down": "server disconnect",
    "server reloading": "server disconnect",
    "ping timeout": "ping timeout",
    "transport close": "transport close",
    "transport error": "transport error",
    "parse error": "transport error",
    "forced close": "transport error",
}
"""Tether's (socket.io's) disconnect reasons as python-socketio names them; others become ``server
disconnect`` (the server ended it: slow consumer, rate limit, connect timeout...)."""


class Namespace:
    """Base class of class-based handlers: ``on_<event>(self, socket, *args)`` methods.

    ``on_connect(self, socket, auth)`` may raise :class:`tether.Reject`; ``on_disconnect(self, socket,
    reason)``. The python-socketio calls are here too with this namespace as the default
    (``self.emit(...)``, ``self.enter_room(sid, room)``, ``self.get_session(sid)``...), through the
    server that runs the routes (:attr:`server`, set when a server starts with them).
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        if not self.namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/', not {self.namespace!r}")
        self.server: Server | None = None

    def _set_server(self, server: Server) -> None:
        self.server = server

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """``{event: bound method}`` for every ``on_<event>`` method (``on_my_event`` -> ``my_event``)."""
        out: dict[str, Callable[..., Any]] = {}
        for name in dir(type(self)):
            if name.startswith("on_") and len(name) > 3:
                method = getattr(self, name)
                if callable(method):
                    out[name[3:]] = method
        return out

    def _srv(self) -> Server:
        if self.server is None:
            raise TetherError(f"namespace {self.namespace} is not used by a running server yet")
        return self.server

    # python-socketio's AsyncNamespace calls, this namespace by default.

    def emit(self, event: str, *args: Any, namespace: str | None = None, **kwargs: Any) -> Any:
        return self._srv().emit(event, *args, namespace=namespace or self.namespace, **kwargs)

    def send(self, data: Any, *, namespace: str | None = None, **kwargs: Any) -> Any:
        return self._srv().send(data, namespace=namespace or self.namespace, **kwargs)

    def call(self, event: str, data: Any = None, *, namespace: str | None = None, **kwargs: Any) -> Any:
        return self._srv().call(event, data, namespace=namespace or self.namespace, **kwargs)

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> Any:
        return self._srv().enter_room(sid, room, namespace=namespace or self.namespace)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> Any:
        return self._srv().leave_room(sid, room, namespace=namespace or self.namespace)

    def close_room(self, room: str, namespace: str | None = None) -> Any:
        return self._srv().close_room(room, namespace=namespace or self.namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> Any:
        return self._srv().rooms(sid, namespace=namespace or self.namespace)

    def disconnect(self, sid: str, namespace: str | None = None) -> Any:
        return self._srv().disconnect(sid, namespace=namespace or self.namespace)

    def get_session(self, sid: str, namespace: str | None = None) -> Any:
        return self._srv().get_session(sid, namespace=namespace or self.namespace)

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> Any:
        return self._srv().save_session(sid, session, namespace=namespace or self.namespace)

    def session(self, sid: str, namespace: str | None = None) -> Any:
        return self._srv().session(sid, namespace=namespace or self.namespace)


def is_python_socketio_namespace(obj: Any) -> bool:
    """An instance of python-socketio's ``AsyncNamespace`` (or of its sync ``Namespace``)."""
    return (
        not isinstance(obj, Namespace)
        and callable(getattr(obj, "trigger_event", None))
        and hasattr(obj, "namespace")
    )


def register(router: Router, handler: Any) -> str:
    """Register the handlers of a :class:`Namespace` or python-socketio namespace on ``router``.

    Returns:
        The namespace.

    Raises:
        TypeError: ``handler`` is neither.
    """
    if isinstance(handler, Namespace):
        for event, method in handler.handlers().items():
            router.on(event, method, handler.namespace)
        return handler.namespace
    if is_python_socketio_namespace(handler):
        namespace = handler.namespace or "/"
        bridge = _SocketIOBridge(handler)
        router.on("connect", bridge.connect, namespace)
        router.on("disconnect", bridge.disconnect, namespace)
        router.on("*", bridge.event, namespace)
        return str(namespace)
    raise TypeError(
        f"register_namespace takes a tether.Namespace or a python-socketio namespace, not {handler!r}"
    )


class _SocketIOBridge:
    """Calls a python-socketio namespace's ``trigger_event`` with python-socketio's arguments."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def _trigger(self, event: str, *args: Any) -> Any:
        result = self.handler.trigger_event(event, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def connect(self, socket: Socket, auth: Any) -> Any:
        environ = environ_of(socket)
        try:
            if auth:
                result = await self._trigger("connect", socket.sid, environ, auth)
            else:
                try:
                    result = await self._trigger("connect", socket.sid, environ)
                except TypeError:
                    result = await self._trigger("connect", socket.sid, environ, None)
        except Exception as exc:
            reject = reject_of(exc)
            if reject is not None and reject is not exc:
                raise reject from exc
            raise
        if result is False:
            raise Reject({"message": "Connection rejected by server"})
        return None

    async def disconnect(self, socket: Socket, reason: str) -> Any:
        return await self._trigger(
            "disconnect", socket.sid, PYTHON_SOCKETIO_REASONS.get(reason, "server disconnect")
        )

    async def event(self, socket: Socket, event: str, *args: Any) -> Any:
        return await self._trigger(event, socket.sid, *args)


def environ_of(socket: Socket) -> dict[str, Any]:
    """A WSGI-style ``environ`` of the request that opened ``socket``'s connection (python-socketio
    hands one to ``on_connect``): see :func:`tether.handler.wsgi_environ`."""
    return wsgi_environ(socket.client.request)


set_namespace_registrar(register)
