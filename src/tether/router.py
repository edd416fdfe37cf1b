"""Event name -> handler registry: the route file's ``websocket.on(...)``.

Resolution order for an event ``name`` in ``namespace``: the handler registered for exactly
(namespace, name); then the catch-all ``"*"`` of that namespace (called as ``(socket, name, *args)``);
else the event is ignored with a debug log. ``connect`` and ``disconnect`` are reserved: ``connect``
gets ``(socket, auth)`` and may raise :class:`tether.Reject`; ``disconnect`` gets ``(socket, reason)``.

A plain ``def`` handler runs in the server's thread pool (:mod:`tether.threads`; ``[handlers] threads``),
an ``async def`` one on the event loop. A handler is a callable or a string
``"package.module:Class@method"``; the class is imported on first use and built once per process with no
arguments, as laravel-swoole builds ``UserController`` once. A route file is a Python file or module that
calls :func:`on` on the module-level :data:`websocket` router (or on a router it is given). A route file
that needs the server itself (to add an HTTP route, a hook) registers a function with
:meth:`Router.setup`; the server calls it with itself once its extensions are installed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from .errors import ConfigError
from .threads import wrap_sync

__all__ = [
    "RESERVED",
    "SERVER_SIDE_RESERVED",
    "Router",
    "describe_import_error",
    "fit_reserved",
    "load_route_file",
    "websocket",
]

RESERVED = frozenset({"connect", "disconnect"})
SERVER_SIDE_RESERVED = frozenset({"connect", "connection", "new_namespace"})
"""Names node's ``serverSideEmit`` refuses (socket.io ``namespace.ts`` ``RESERVED_EVENTS``)."""


def describe_import_error(exc: BaseException) -> str:
    """``Type: message`` of an error raised while importing the application, and for a module that is not
    installed, where to install it: a package installed in another virtualenv than the one running Tether
    (``make run`` installs Tether alone in ``.venv``) is the usual cause."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        text += (
            f"; if {top!r} is a package, install it into the Python that runs tether:"
            f" `{sys.executable} -m pip install {top}`"
        )
    return text


Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


class Router:
    """Handlers by namespace and event name."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler | str]] = {}
        self.resolved: dict[tuple[str, str], Handler] = {}
        """Handlers already resolved by :meth:`get`, by ``(namespace, event)``: the event hot path reads
        it first and calls :meth:`get` only on a miss (a Python call less per event). Only :meth:`get`
        fills it; :meth:`on` drops an entry it replaces."""
        self._instances: dict[type[Any], Any] = {}
        self._setups: list[Callable[[Any], Any]] = []
        self._namespace_handlers: list[Any] = []
        self._server_side: dict[str, dict[str, Handler]] = {}

    def setup(self, fn: H) -> H:
        """Register ``fn(server)``, called once by the server that uses these routes (a decorator)."""
        if not callable(fn):
            raise ConfigError("routes", repr(fn), "setup function must be callable")
        self._setups.append(fn)
        return fn

    @property
    def setups(self) -> list[Callable[[Any], Any]]:
        return list(self._setups)

    def register_namespace(self, namespace_handler: Any) -> None:
        """Register every ``on_<event>`` method of a :class:`tether.Namespace` instance, or run a
        python-socketio ``AsyncNamespace`` instance unchanged (see :mod:`tether.namespace`).

        Raises:
            TypeError: neither kind of namespace.
        """
        # Imported here, not at the top: namespace classes drive the server, which is above the router, and
        # tether.namespace imports this module. A router with no namespace object never loads them.
        from .namespace import register

        register(self, namespace_handler)
        if namespace_handler not in self._namespace_handlers:
            self._namespace_handlers.append(namespace_handler)

    @property
    def namespace_handlers(self) -> list[Any]:
        """The namespace instances registered; each server that uses these routes is given to them."""
        return list(self._namespace_handlers)

    @overload
    def on(self, event: str, handler: None = None, namespace: str = "/") -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: Handler | str, namespace: str = "/") -> Handler | str: ...

    def on(self, event: str, handler: Handler | str | None = None, namespace: str = "/") -> Any:
        """Register ``handler`` for ``event`` in ``namespace``; without a handler, a decorator."""
        if not isinstance(event, str) or not event:
            raise ConfigError("routes", repr(event), "event name must be a non-empty string")
        if not namespace.startswith("/"):
            raise ConfigError("routes", namespace, "namespace must start with '/'")

        def register(h: Any) -> Any:
            if isinstance(h, str):
                _split_target(h)  # fail at registration, not at the first event
            elif not callable(h):
                raise ConfigError(
                    "routes", event, f"handler must be callable or 'module:Class@method', not {h!r}"
                )
            self._routes.setdefault(namespace, {})[event] = h
            self.resolved.pop((namespace, event), None)
            return h

        if handler is None:
            return register
        return register(handler)

    def on_server_side(self, event: str, handler: Handler | None = None, namespace: str = "/") -> Any:
        """Register ``handler`` for the server-side event ``event`` that other nodes send with
        ``server_side_emit`` (node's ``io.on(event)`` for ``serverSideEmit``); without a handler, a decorator.

        The handler gets the event's arguments (no socket): ``handler(*args)``; what it returns is its
        answer when the sender asked for acks (node's callback gets one value). See docs/scaling.md.

        Raises:
            ConfigError: an empty event name, a name node reserves (``connect``, ``connection``,
                ``new_namespace``), a namespace without ``/``, or a handler that is not callable.
        """
        if not isinstance(event, str) or not event or event in SERVER_SIDE_RESERVED:
            raise ConfigError("routes", repr(event), "not a server-side event name (empty or reserved)")
        if not namespace.startswith("/"):
            raise ConfigError("routes", namespace, "namespace must start with '/'")

        def register(h: Any) -> Any:
            if not callable(h):
                raise ConfigError("routes", event, f"server-side handler must be callable, not {h!r}")
            self._server_side.setdefault(namespace, {})[event] = h
            return h

        return register if handler is None else register(handler)

    def server_side(self, namespace: str, event: str) -> Handler | None:
        """The handler :meth:`on_server_side` registered for ``event`` in ``namespace``, or None."""
        return self._server_side.get(namespace, {}).get(event)

    def server_side_namespaces(self) -> list[str]:
        """The namespaces with a server-side handler (an adapter listens on their channels)."""
        return list(self._server_side)

    def event(self, handler: Any = None, *, namespace: str = "/") -> Any:
        """python-socketio's ``@sio.event``: register a function for the event named as the function.

        ``@websocket.event`` or ``@websocket.event(namespace="/chat")``; ``async def chat(socket, data)``
        handles event ``chat``, as ``@websocket.on("chat")`` would.
        """
        if handler is None:
            return lambda h: self.on(h.__name__, h, namespace)
        return self.on(handler.__name__, handler, namespace)

    def namespaces(self) -> list[str]:
        return list(self._routes)

    def has_namespace(self, namespace: str) -> bool:
        return namespace in self._routes

    def events(self, namespace: str = "/") -> list[str]:
        return list(self._routes.get(namespace, {}))

    def get(self, namespace: str, event: str) -> Handler | None:
        """The callable for ``event`` in ``namespace``, resolving a string target on first use.

        Raises:
            ConfigError: a ``module:Class@method`` target that cannot be imported or found.
        """
        key = (namespace, event)
        handler = self.resolved.get(key)
        if handler is not None:
            return handler
        target = self._routes.get(namespace, {}).get(event)
        if target is None:
            return None
        resolved = self._resolve(target) if isinstance(target, str) else target
        handler = wrap_sync(fit_reserved(event, resolved) if event in RESERVED else resolved)
        self.resolved[key] = handler
        return handler

    def resolve_all(self) -> None:
        """Import every string target now, so a broken controller fails at start, not at the first event."""
        for namespace, events in self._routes.items():
            for event in events:
                self.get(namespace, event)

    def _resolve(self, target: str) -> Handler:
        module_name, cls_name, method = _split_target(target)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError("routes", target, f"cannot import {module_name}: {exc}") from exc
        obj: Any = module
        for part in cls_name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ConfigError("routes", target, f"{module_name} has no {cls_name}")
        if method is None:
            if not callable(obj):
                raise ConfigError("routes", target, "is not callable")
            return obj  # type: ignore[no-any-return]
        if inspect.isclass(obj):
            instance = self._instances.get(obj)
            if instance is None:
                instance = self._instances[obj] = obj()
            obj = instance
        bound = getattr(obj, method, None)
        if bound is None or not callable(bound):
            raise ConfigError("routes", target, f"{cls_name} has no method {method}")
        return bound  # type: ignore[no-any-return]

    def clear(self) -> None:
        self._setups.clear()
        self._namespace_handlers.clear()
        self._routes.clear()
        self._server_side.clear()
        self.resolved.clear()
        self._instances.clear()


def fit_reserved(event: str, handler: Handler) -> Handler:
    """A ``connect`` or ``disconnect`` handler that takes the socket alone gets the socket alone.

    Tether calls ``connect(socket, auth)`` and ``disconnect(socket, reason)``; python-socketio calls
    ``connect(sid, environ)`` when the handler takes no ``auth``, and ``disconnect(sid)`` when it takes no
    ``reason``, so handlers ported from it often have no second parameter (Flask-SocketIO's too). Without
    this they would raise TypeError at every connect, refusing every client.

    Raises:
        ConfigError: a ``connect`` handler that needs three arguments (python-socketio's
            ``connect(sid, environ, auth)``), or whose second is named ``environ`` (it would get the auth),
            when the route is resolved (``tether start``).
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return handler  # a builtin or C callable: call it as it is
    if event == "connect" and _ported_connect(signature):
        # python-socketio's connect(sid, environ[, auth]) with the sid turned into the socket: called as
        # connect(socket, auth) it would refuse every client with a TypeError, or read the auth as environ.
        raise ConfigError(
            "routes",
            getattr(handler, "__qualname__", repr(handler)),
            "a connect handler takes (socket, auth), or (socket) alone, not python-socketio's (sid, environ,"
            " auth): the second argument is the client's auth; the request is socket.request (headers,"
            " cookies, query, remote)",
        )
    try:
        signature.bind(None, None)
        return handler
    except TypeError:
        pass
    try:
        signature.bind(None)
    except TypeError:
        return handler  # not a one-argument handler either: its TypeError names the real problem

    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):

        @functools.wraps(handler)
        async def socket_only(socket: Any, _second: Any) -> Any:
            return await handler(socket)

        return socket_only

    @functools.wraps(handler)
    def socket_only_sync(socket: Any, _second: Any) -> Any:
        return handler(socket)

    return socket_only_sync


def _ported_connect(signature: inspect.Signature) -> bool:
    """A connect handler written with python-socketio's arguments: its second is named ``environ``, or it
    needs three."""
    if list(signature.parameters)[1:2] == ["environ"]:
        return True
    try:
        signature.bind(None, None)
        return False
    except TypeError:
        pass
    try:
        signature.bind(None, None, None)
        return True
    except TypeError:
        return False


def _split_target(target: str) -> tuple[str, str, str | None]:
    if ":" not in target:
        raise ConfigError(
            "routes", target, "expected 'package.module:Class@method' or 'package.module:function'"
        )
    module_name, _, rest = target.partition(":")
    cls_name, _, method = rest.partition("@")
    if not module_name or not cls_name:
        raise ConfigError("routes", target, "expected 'package.module:Class@method'")
    return module_name, cls_name, method or None


websocket = Router()
"""The router route files register on: ``from tether import websocket``."""


def load_route_file(path_or_module: str, router: Router | None = None, base_dir: str = ".") -> Router:
    """Import a route file (a ``.py`` path or a dotted module) that registers on :data:`websocket`.

    The routes it registers are moved to ``router`` (a new one by default) so that a reload imports the
    file afresh. The file's folder is put on ``sys.path`` so it can import its controllers.

    Raises:
        ConfigError: the file does not exist or raises on import; the reason says why.
    """
    router = router if router is not None else Router()
    websocket.clear()
    try:
        if path_or_module.endswith(".py") or "/" in path_or_module:
            path = Path(path_or_module)
            if not path.is_absolute():
                path = Path(base_dir) / path
            if not path.exists():
                raise ConfigError("websocket.route_file", str(path), "file not found")
            folder = str(path.resolve().parent)
            for entry in (folder, str(Path(base_dir).resolve())):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            name = f"_tether_routes_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            base = str(Path(base_dir).resolve())
            if base not in sys.path:
                sys.path.insert(0, base)
            sys.modules.pop(path_or_module, None)
            importlib.import_module(path_or_module)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError("websocket.route_file", path_or_module, describe_import_error(exc)) from exc
    router._routes = {ns: dict(events) for ns, events in websocket._routes.items()}
    router._server_side = {ns: dict(events) for ns, events in websocket._server_side.items()}
    router._setups = list(websocket._setups)
    router._namespace_handlers = list(websocket._namespace_handlers)
    websocket.clear()
    router.resolve_all()
    return router
