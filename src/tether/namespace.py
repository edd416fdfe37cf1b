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
the Tether server, whose calls have the same names (:mod:`tether.server.sid_api`), as do
``self.server.start_background_task`` and ``self.server.sleep``. Tether calls its ``trigger_event`` for
every event, so an override of that (a catch-all) works too; :class:`Namespace` has the same
``trigger_event`` and the same calls, with the socket where python-socketio passes the sid. A
``ConnectionRefusedError`` raised from ``on_connect``, or False returned, refuses the connection with the
same CONNECT_ERROR data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import Reject, TetherError, reject_of
from .handler import wsgi_environ
from .router import RESERVED, fit_reserved
from .server.sid_api import MISSING
from .threads import wrap_sync

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
    reason)``. As in python-socketio's ``AsyncNamespace``, every event of the namespace goes through
    :meth:`trigger_event`, which calls the ``on_<event>`` method: override it for a catch-all or your own
    dispatch rules. The python-socketio calls are here too with this namespace as the default
    (``await self.emit(...)``, ``await self.enter_room(sid, room)``, ``await self.get_session(sid)``...),
    through the server that runs the routes (:attr:`server`, set when a server starts with them; its
    ``self.server.start_background_task(...)`` and ``await self.server.sleep(...)`` are python-socketio's).
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        if not self.namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/', not {self.namespace!r}")
        self.server: Server | None = None
        # event -> its on_<event> method fitted as the router fits a route (a connect or disconnect that
        # takes the socket alone, a plain def run in the handler threads). Only events that have a method
        # get an entry: event names come from clients.
        self._methods: dict[str, Callable[..., Any]] = {}

    def _set_server(self, server: Server) -> None:
        self.server = server

    def is_asyncio_based(self) -> bool:
        """True, as for python-socketio's ``AsyncNamespace`` (its server checks it at registration)."""
        return True

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """``{event: bound method}`` for every ``on_<event>`` method (``on_my_event`` -> ``my_event``)."""
        out: dict[str, Callable[..., Any]] = {}
        for name in dir(type(self)):
            if name.startswith("on_") and len(name) > 3:
                method = getattr(self, name)
                if callable(method):
                    out[name[3:]] = method
        return out

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Dispatch ``event`` to its ``on_<event>`` method (python-socketio's
        ``AsyncNamespace.trigger_event``; a coroutine).

        Tether calls it for every event of this namespace: ``("connect", socket, auth)``,
        ``("disconnect", socket, reason)`` and ``(event, socket, *args)``. Override it for your own
        dispatch rules or a catch-all, and call ``await super().trigger_event(event, *args)`` for the
        usual one; once overridden it also gets the events that have no ``on_<event>`` method.

        Returns:
            What the method returned (the ack's arguments, a tuple for several; ``False`` from
            ``on_connect`` refuses the connection), or None when there is no ``on_<event>`` method.

        Raises:
            Exception: whatever the method raised (logged by the server; :class:`tether.Reject` from
                ``on_connect`` refuses the connection with its data).
        """
        handler = self._methods.get(event)
        if handler is None:
            method = getattr(self, "on_" + event, None)
            if method is None or not callable(method):
                return None
            handler = self._methods[event] = _fit(event, method)
        result = handler(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _srv(self) -> Server:
        if self.server is None:
            raise TetherError(f"namespace {self.namespace} is not used by a running server yet")
        return self.server

    # python-socketio's AsyncNamespace calls, this namespace by default. Each returns what the server's
    # call of the same name returns: an awaitable (or an object that may be awaited or not).

    def emit(
        self,
        event: str,
        *args: Any,
        data: Any = MISSING,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
    ) -> Any:
        """:meth:`tether.Server.emit` in this namespace by default."""
        return self._srv().emit(
            event,
            *args,
            data=data,
            to=to,
            room=room,
            skip_sid=skip_sid,
            namespace=namespace or self.namespace,
            callback=callback,
            ignore_queue=ignore_queue,
        )

    def send(
        self,
        data: Any,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        ignore_queue: bool = False,
    ) -> Any:
        """:meth:`tether.Server.send` (event ``message``) in this namespace by default."""
        return self._srv().send(
            data,
            to=to,
            room=room,
            skip_sid=skip_sid,
            namespace=namespace or self.namespace,
            callback=callback,
            ignore_queue=ignore_queue,
        )

    def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        ignore_queue: bool = False,
    ) -> Any:
        """:meth:`tether.Server.call` in this namespace by default (an awaitable of the client's answer)."""
        return self._srv().call(
            event,
            data,
            to=to,
            sid=sid,
            namespace=namespace or self.namespace,
            timeout=timeout,
            ignore_queue=ignore_queue,
        )

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


def _fit(event: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` called as the router calls a route: see :func:`tether.router.fit_reserved` and
    :func:`tether.threads.wrap_sync`.

    Raises:
        ConfigError: an ``on_connect`` written with python-socketio's ``(sid, environ, auth)``.
    """
    return wrap_sync(fit_reserved(event, method) if event in RESERVED else method)


def _overrides_trigger_event(handler: Namespace) -> bool:
    return getattr(
        type(handler), "trigger_event", None
    ) is not Namespace.trigger_event or "trigger_event" in vars(handler)


def _route(handler: Namespace, event: str, name: str) -> Callable[..., Any]:
    """The route of ``event``: the namespace's :meth:`Namespace.trigger_event`, looked up at each call
    (an override set on the instance counts too)."""

    async def route(socket: Socket, *args: Any) -> Any:
        result = handler.trigger_event(event, socket, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    # Logs (the block watch, handler errors) name the method, not this shim.
    route.__name__ = route.__qualname__ = name
    return route


def _catch_all(handler: Namespace) -> Callable[..., Any]:
    """The ``"*"`` route of a namespace whose ``trigger_event`` is overridden: every other event."""

    async def route(socket: Socket, event: str, *args: Any) -> Any:
        result = handler.trigger_event(event, socket, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    route.__name__ = route.__qualname__ = f"{type(handler).__qualname__}.trigger_event"
    return route


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
        ns = handler.namespace
        for event, method in handler.handlers().items():
            handler._methods[event] = _fit(event, method)  # a ported on_connect fails here, at start
            router.on(event, _route(handler, event, getattr(method, "__qualname__", event)), ns)
        overridden = _overrides_trigger_event(handler)
        name = f"{type(handler).__qualname__}.trigger_event"
        # python-socketio hands every event to an overridden trigger_event, with or without an on_<event>
        # method; and it serves a registered namespace even without on_connect: a connect route makes the
        # namespace exist here (a namespace without routes is refused as "Invalid namespace").
        for event in RESERVED if overridden else ("connect",):
            if event not in handler._methods:
                router.on(event, _route(handler, event, name), ns)
        if overridden:
            router.on("*", _catch_all(handler), ns)
        return ns
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
