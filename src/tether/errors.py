"""Tether's exception tree. Every exception Tether raises on purpose derives from :class:`TetherError`.

::

    TetherError
      ProtocolError                  bytes that break Engine.IO / Socket.IO rules (sans-I/O core)
        RemoteProtocolError          the peer sent them: the connection is closed with the reason
          PayloadTooBig(size, max_size)
          InvalidPacket                a sound Engine.IO packet carrying an invalid Socket.IO (parser) one
        LocalProtocolError           Tether itself tried to send something invalid: a bug
      ConnectionClosed(code, reason) operation on a connection that is gone
      HandlerError(event, namespace) a route handler raised; carries where
      AckTimeout(event)              an emit awaiting an ack got none in time (also a TimeoutError)
      Reject(data)                   raised by a ``connect`` handler to refuse a client
      ClusterError(adapter)          the cross-worker or cross-host bus failed
      ConfigError(file, key, reason) a bad config value (also a ValueError)
      AppStartupError(app)           the mounted ASGI application's lifespan startup failed
      InvalidToken(reason)           a session token that is forged, malformed or refused by the validator
        TokenExpired(reason)         a session token past its expiry

Remote protocol errors disconnect the client that caused them and nothing else; local ones are
Tether bugs and propagate.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckTimeout",
    "AppStartupError",
    "ClusterError",
    "ConfigError",
    "ConnectionClosed",
    "HandlerError",
    "InvalidPacket",
    "InvalidToken",
    "LocalProtocolError",
    "PayloadTooBig",
    "ProtocolError",
    "Reject",
    "RemoteProtocolError",
    "TetherError",
    "TokenExpired",
]


class TetherError(Exception):
    """Root of every exception Tether raises."""


class ProtocolError(TetherError):
    """Bytes that break the Engine.IO v4 or Socket.IO v5 rules."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the transport closes that connection with ``str(self)`` as reason."""


class LocalProtocolError(ProtocolError):
    """Tether tried to send something the protocol does not allow: a bug in Tether or in a caller."""


class InvalidPacket(RemoteProtocolError):
    """The Engine.IO packet is sound but the parser refused what it carries (bad JSON, a bad ack, a reserved
    event name...). node's socket.io closes such a client as ``forced close`` (its Client ``onerror`` closes
    the Engine.IO socket), where an invalid Engine.IO packet is a ``parse error``."""


class PayloadTooBig(RemoteProtocolError):
    """A frame, packet or polling body is larger than the configured limit."""

    def __init__(self, size: int, max_size: int) -> None:
        self.size = size
        self.max_size = max_size
        super().__init__(f"payload of {size} bytes exceeds max_payload={max_size}")


class ConnectionClosed(TetherError):
    """The connection is closed; nothing more can be sent on it."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed ({code}): {reason}")


class HandlerError(TetherError):
    """A route handler raised; the original exception is ``__cause__``."""

    def __init__(self, event: str, namespace: str) -> None:
        self.event = event
        self.namespace = namespace
        super().__init__(f"handler for {event!r} in namespace {namespace!r} failed")


class AckTimeout(TetherError, TimeoutError):
    """The client did not acknowledge an emit in time."""

    def __init__(self, event: str, timeout: float) -> None:
        self.event = event
        self.timeout = timeout
        super().__init__(f"no ack for {event!r} within {timeout:g}s")


class Reject(TetherError):
    """Raise from a ``connect`` handler to refuse the client with a CONNECT_ERROR carrying ``data``.

    ``data`` is sent as is when it is a dict (``{"code": 401, "message": "..."}``); any other
    value becomes ``{"message": str(data)}``.
    """

    def __init__(self, data: Any = None) -> None:
        if data is None:
            data = {"message": "Connection rejected by server"}
        elif not isinstance(data, dict):
            data = {"message": str(data)}
        self.data: dict[str, Any] = data
        super().__init__(data.get("message", "rejected"))


def reject_of(exc: BaseException) -> Reject | None:
    """``exc`` as a :class:`Reject`, for a refused connect: itself, or python-socketio's
    ``socketio.exceptions.ConnectionRefusedError`` (recognised by name and ``error_args``, without importing
    python-socketio), whose ``error_args`` (``{"message": ..., "data": ...}``) are the CONNECT_ERROR data,
    as python-socketio sends them; None for any other exception."""
    if isinstance(exc, Reject):
        return exc
    error_args = getattr(exc, "error_args", None)
    if type(exc).__name__ == "ConnectionRefusedError" and isinstance(error_args, dict):
        return Reject(error_args)
    return None


class ClusterError(TetherError):
    """The message bus between workers or hosts failed."""

    def __init__(self, adapter: str, reason: str) -> None:
        self.adapter = adapter
        self.reason = reason
        super().__init__(f"{adapter}: {reason}")


class ConfigError(TetherError, ValueError):
    """A configuration file, key or value is invalid."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}")


class AppStartupError(TetherError):
    """The mounted ASGI application's lifespan startup failed (``lifespan.startup.failed`` or an exception;
    uvicorn's log says which): the process does not serve."""

    def __init__(self, app: str) -> None:
        self.app = app
        super().__init__(f"the ASGI application {app} failed its lifespan startup")


class InvalidToken(TetherError):
    """A session token is forged, malformed, or refused by the app's validator (CONNECT_ERROR code 401)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TokenExpired(InvalidToken):
    """A session token is past its expiry (or its session has ended or expired)."""
