"""Which request paths are Tether's own, when something else (an ASGI app) serves the rest of the port."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import ServerCore

__all__ = ["TetherPaths", "shadowed_routes", "warn_shadowed"]

log = logging.getLogger("tether.app")


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


def shadowed_routes(paths: TetherPaths, app: Any) -> list[str]:
    """The fixed paths of ``app``'s routes that are Tether's too, so that the app never sees them (a FastAPI
    ``@app.websocket("/ws")`` under the bare WebSocket path). Read from ``app.routes`` (Starlette, FastAPI);
    empty for an app without that list (Django, a middleware around the app)."""
    found = []
    for route in getattr(app, "routes", None) or ():
        path = getattr(route, "path", None)
        if isinstance(path, str) and "{" not in path and paths.owns(path):
            found.append(path)
    return sorted(set(found))


def warn_shadowed(paths: TetherPaths, app: Any) -> None:
    """Log the app's routes that Tether's paths hide from it (the app's own ``/ws`` WebSocket, typically):
    without this the app's handler silently never runs."""
    shadowed = shadowed_routes(paths, app)
    if shadowed:
        log.warning(
            "! the application's routes %s are Tether's paths and never reach it; move Tether's with"
            " [websocket] ws_path (the bare WebSocket, /ws) or path (Engine.IO)",
            ", ".join(shadowed),
        )
