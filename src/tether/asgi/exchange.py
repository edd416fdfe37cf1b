"""An ASGI HTTP request through Tether's front door, with the answer captured instead of written.

Routing, Engine.IO polling, CORS and errors are :class:`~tether.server.http.HttpProtocol`'s code;
:class:`Exchange` only puts the response in a future (and a static file's path in :attr:`Exchange.file`,
for :mod:`.files` to stream), which :class:`~tether.asgi.ASGIApp` turns into ASGI messages.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..handler import Request
from ..server.http import HttpProtocol, find_static
from ..server.server import Server

__all__ = ["Exchange"]


class _NoTransport:
    """What the front door asks of its transport while it answers one request (nothing to do here)."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Exchange(HttpProtocol):
    """One ASGI request through Tether's front door: routing, Engine.IO polling, CORS and errors are the
    front door's code; only the response goes to a future instead of a socket."""

    def __init__(self, server: Server, remote: str) -> None:
        super().__init__(server)
        self.transport = _NoTransport()  # type: ignore[assignment]
        self.remote = remote
        self.response: asyncio.Future[tuple[int, dict[str, str], bytes]] = (
            asyncio.get_running_loop().create_future()
        )

    file: Path | None = None
    """The file to stream as the body, when the answer is a static file (``_static``)."""

    def route(self, request: Request, body: bytes | None) -> None:
        self._route(request, body)

    def _static(self, folder: Path, name: str) -> None:
        # The front door's lookup, not its read: the ASGI server can take the body in chunks.
        found = find_static(folder, name)
        if isinstance(found, int):
            super()._static(folder, name)  # 400 or 404, as the front door answers
            return
        self.file, ctype = found
        self._respond(200, {"Content-Type": ctype, "Cache-Control": "no-cache"}, b"")

    def _respond(self, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
        if not self.response.done():
            self.response.set_result((status, headers, body))
