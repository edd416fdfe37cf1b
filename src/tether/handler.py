"""The pluggable lifecycle handler: laravel-swoole's ``handler`` setting (``onOpen`` / ``onClose``).

Name a subclass in config as ``[websocket] handler = "app.ws:MyHandler"``. ``on_open(request)`` runs when a
client's transport opens, before any namespace CONNECT, with the HTTP request that opened it; returning
False refuses the client (HTTP 403 on the handshake). ``on_close`` runs once when the transport is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Handler", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """The HTTP request that opened a connection."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str] = field(repr=False)
    """Header names are case-insensitive for lookups: use lower case (``request.headers.get("cookie")``)."""
    remote: str = ""


class Handler:
    """Default lifecycle handler: accepts everyone, does nothing on close."""

    def on_open(self, request: Request) -> bool:
        return True

    def on_close(self, client: Any, reason: str) -> None:
        return None
