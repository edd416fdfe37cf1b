"""Tether: a fast, Socket.IO-compatible realtime WebSocket server for Python applications.

Route files register handlers on :data:`websocket`; :class:`Server` runs them. See the README.

The names below are imported on first use (PEP 562 module ``__getattr__``), so that ``import tether``
and the ``tether`` commands that only talk to a running instance (``stop``, ``infos``, ``reload``) do
not pay for the server stack (asyncio, picows, httptools, the cluster): ``from tether import Server``
works as before and imports the server then. Type checkers read the imports under ``TYPE_CHECKING``.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from .acks import Answers
    from .broadcast import BroadcastOperator
    from .config import Config
    from .context import Socket
    from .errors import (
        AckTimeout,
        ClusterError,
        ConfigError,
        ConnectionClosed,
        HandlerError,
        LocalProtocolError,
        PayloadTooBig,
        ProtocolError,
        Reject,
        RemoteProtocolError,
        TetherError,
    )
    from .handler import Handler, Request
    from .namespace import Namespace
    from .protocol.parsers import JsonParser, Parser, RawParser, SocketIOParser
    from .router import Router, websocket
    from .server import Server, run_server
    from .server.sid_api import current_server

__version__ = "0.1.0"

__all__ = [
    "AckTimeout",
    "Answers",
    "BroadcastOperator",
    "ClusterError",
    "Config",
    "ConfigError",
    "ConnectionClosed",
    "Handler",
    "HandlerError",
    "JsonParser",
    "LocalProtocolError",
    "Namespace",
    "Parser",
    "PayloadTooBig",
    "ProtocolError",
    "RawParser",
    "Reject",
    "RemoteProtocolError",
    "Request",
    "Router",
    "Server",
    "Socket",
    "SocketIOParser",
    "TetherError",
    "__version__",
    "current_server",
    "run_server",
    "websocket",
]

_ERRORS = (
    "AckTimeout",
    "ClusterError",
    "ConfigError",
    "ConnectionClosed",
    "HandlerError",
    "LocalProtocolError",
    "PayloadTooBig",
    "ProtocolError",
    "Reject",
    "RemoteProtocolError",
    "TetherError",
)

_HOMES: dict[str, str] = {
    "Answers": "tether.acks",
    "BroadcastOperator": "tether.broadcast",
    "Config": "tether.config",
    "Socket": "tether.context",
    **dict.fromkeys(_ERRORS, "tether.errors"),
    "Handler": "tether.handler",
    "Request": "tether.handler",
    "Namespace": "tether.namespace",
    "JsonParser": "tether.protocol.parsers",
    "Parser": "tether.protocol.parsers",
    "RawParser": "tether.protocol.parsers",
    "SocketIOParser": "tether.protocol.parsers",
    "Router": "tether.router",
    "websocket": "tether.router",
    "Server": "tether.server",
    "run_server": "tether.server",
    "current_server": "tether.server.sid_api",
}
"""The module each public name is imported from on first use (the imports under ``TYPE_CHECKING`` above
say the same; tests/test_init.py checks that they agree)."""

if not _typing.TYPE_CHECKING:  # a module __getattr__ seen by mypy would type any misspelled name as Any

    def __getattr__(name: str) -> _typing.Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(home), name)
        globals()[name] = value  # the next lookup is a plain module attribute
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
