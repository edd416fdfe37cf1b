"""The pluggable lifecycle handler: laravel-swoole's ``handler`` setting (``onOpen`` / ``onClose``).

Name a subclass in config as ``[websocket] handler = "app.ws:MyHandler"``. ``on_open(request)`` runs when a
client's transport opens, before any namespace CONNECT, with the HTTP request that opened it; returning
False refuses the client (HTTP 403 on the handshake). ``on_close`` runs once when the transport is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Handler", "Headers", "Request", "parse_cookies", "wsgi_environ"]


def parse_cookies(header: str) -> dict[str, str]:
    """``a=1; b="2"`` -> ``{"a": "1", "b": "2"}``: the first value of a name wins (as Django's
    ``parse_cookie`` and Starlette's ``cookie_parser`` read a header with duplicates), surrounding quotes
    and spaces are stripped, pairs without ``=`` are skipped."""
    out: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name or name in out:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[name] = value
    return out


class Headers(dict[str, str]):
    """A request's headers: ``{lower-case name: value}``, looked up case-insensitively.

    ``headers.get("Cookie")`` and ``headers["cookie"]`` read the same entry (RFC 9110 §5.1: field names are
    case-insensitive). A name sent twice keeps its last value. Filled with lower-case names only (the
    HTTP parser lowers them), so iteration shows them lower-case.

    A plain ``dict`` underneath, not a ``multidict.CIMultiDict``: an idle WebSocket connection keeps its
    request for its lifetime, and the dict costs a few hundred bytes less per connection (issue 16, W3).
    """

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


@dataclass(frozen=True, slots=True)
class Request:
    """The HTTP request that opened a connection."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str] = field(repr=False)
    """Header names are case-insensitive for lookups (``request.headers.get("cookie")``; a :class:`Headers`
    when Tether parsed the request); iteration gives lower-case names."""
    remote: str = ""

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` header as ``{name: value}`` (see :func:`parse_cookies`): how the connect handler
        finds the web app's session cookie (``socket.request.cookies["sessionid"]``)."""
        return parse_cookies(self.headers.get("cookie", ""))


def wsgi_environ(request: Request) -> dict[str, Any]:
    """A WSGI-style ``environ`` of ``request``, as python-socketio hands one to ``on_connect`` and returns
    from ``get_environ(sid)``: ``REQUEST_METHOD``, ``PATH_INFO``, ``QUERY_STRING``, ``REMOTE_ADDR``,
    ``CONTENT_TYPE``/``CONTENT_LENGTH``, an ``HTTP_*`` key per other header, and the request itself under
    ``tether.request``. A new dict each call."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": request.path,
        "QUERY_STRING": "&".join(f"{k}={v}" for k, v in request.query.items()),
        "REMOTE_ADDR": request.remote,
        "tether.request": request,
    }
    for key, value in request.headers.items():
        name = str(key).upper().replace("-", "_")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = str(value)
        else:
            environ[f"HTTP_{name}"] = str(value)
    return environ


class Handler:
    """Default lifecycle handler: accepts everyone, does nothing on close."""

    def on_open(self, request: Request) -> bool:
        return True

    def on_close(self, client: Any, reason: str) -> None:
        return None
