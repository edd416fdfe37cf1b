"""Which request paths are Tether's own, when something else (an ASGI app) serves the rest of the port."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import ServerCore

__all__ = ["TetherPaths"]


class TetherPaths:
    """Tether's paths: the Engine.IO path (with and without its trailing slash), the bare WebSocket path,
    ``/tether/*`` and every HTTP route registered on the server (``/metrics``, ``/api/*``, the client
    bundle...). Read when built: build it after the extensions and route files have registered theirs."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, server: ServerCore) -> None:
        ws = server.config.websocket
        routes = server.http_routes
        self.exact = {ws.path, ws.path.rstrip("/") or "/", ws.ws_path}
        self.exact.update(path for (_method, path) in routes if not path.endswith("*"))
        self.prefixes = ("/tether/", *(path[:-1] for (_method, path) in routes if path.endswith("*")))

    def owns(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)
