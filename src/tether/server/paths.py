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

    __slots__ = ("engineio_path", "exact", "metrics_path", "prefixes", "ws_path")

    def __init__(self, server: ServerCore) -> None:
        ws = server.config.websocket
        routes = server.http_routes
        self.engineio_path, self.ws_path = ws.path, ws.ws_path
        self.metrics_path = server.config.metrics.path
        self.exact = {ws.path, ws.path.rstrip("/") or "/", ws.ws_path}
        self.exact.update(path for (_method, path) in routes if not path.endswith("*"))
        self.prefixes = ("/tether/", *(path[:-1] for (_method, path) in routes if path.endswith("*")))

    def owns(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)

    def moved_by(self, path: str) -> str:
        """The config key that moves Tether's ``path`` out of an app's way (for the warning below)."""
        if path == self.ws_path:
            return "[websocket] ws_path"
        if path == self.metrics_path:
            return "[metrics] path"
        if path.startswith("/api/"):
            return "none, the HTTP API's paths are fixed ([api] key unset turns it off)"
        if path.startswith("/tether/"):
            return "none, /tether/ is Tether's own"
        if path.startswith(self.engineio_path.rstrip("/") or "/"):
            return "[websocket] path (the client bundle also: serve_client = false)"
        return "the add_http_route call that added it"


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
        # Each path with the key that moves it: /metrics is [metrics] path, not one of [websocket]'s.
        log.warning(
            "! the application's routes %s are Tether's paths and never reach it; what moves Tether's: %s",
            ", ".join(shadowed),
            "; ".join(f"{path}: {paths.moved_by(path)}" for path in shadowed),
        )
