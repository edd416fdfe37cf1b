"""Tether: a fast, Socket.IO-compatible realtime WebSocket server for Python applications.

Route files register handlers on :data:`websocket`; :class:`Server` runs them. See the README.
"""

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
