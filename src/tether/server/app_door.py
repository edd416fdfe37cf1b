"""The user's ASGI application on Tether's port: connections handed to uvicorn's protocol code.

Theory of operation. Every connection starts with Tether's front door (:class:`.http.HttpProtocol`). When
an application is mounted (``[app] asgi``), the door reads the request line of each request that starts
at a read boundary and asks :meth:`AppDoor.owns` whether the path is Tether's (the Engine.IO path, the bare
WebSocket path, ``/tether/*`` and the registered HTTP routes such as ``/metrics``, ``/api/*`` and the
client bundle). Tether's requests go on as before. Any other request hands the connection to
:class:`AppHttpProtocol`, a subclass of uvicorn's ``HttpToolsProtocol``: ``transport.set_protocol``,
``connection_made``, then the bytes read so far replayed, as uvicorn itself hands an upgrade to its
WebSocket protocol. From there uvicorn parses, builds the ASGI scope, runs the app, and upgrades the app's
own WebSocket routes: request semantics, keep-alive, chunked bodies, ``root_path`` and flow control are
uvicorn's, not ours.

A browser reuses keep-alive connections: a page's connection may carry a Socket.IO polling request next.
So :class:`AppHttpProtocol` peeks too, and when a Tether request starts on an idle connection (no request
in progress, none pipelined) it hands the connection back to a new Tether front door the same way.

The application's lifespan (startup, shutdown) runs with uvicorn's ``LifespanOn`` in every process that
serves, before it accepts connections; a failed startup raises :class:`~tether.errors.AppStartupError`
and the process does not serve.

Tested with uvicorn 0.54 (``pyproject.toml`` pins the range): the subclass relies on
``HttpToolsProtocol``'s constructor, ``cycle``, ``pipeline`` and ``connections``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from uvicorn import Config as UvicornConfig
from uvicorn.importer import ImportFromStringError, import_from_string
from uvicorn.lifespan.off import LifespanOff
from uvicorn.lifespan.on import LifespanOn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ..errors import AppStartupError, ConfigError
from .paths import TetherPaths, warn_shadowed

if TYPE_CHECKING:
    from .receive import Receiver

__all__ = ["AppDoor", "AppHttpProtocol", "request_path"]

log = logging.getLogger("tether.app")

MAX_REQUEST_LINE = 8192
"""Bytes read while waiting for a request line before the request goes to whoever parses it fully
(uvicorn's parser, or Tether's with its header limit): a peek never holds more than this."""


def request_path(data: bytes) -> str | None:
    """The path of the request line at the start of ``data``; ``None`` while the line is incomplete.

    Only the target up to ``?`` is looked at (RFC 9112 section 3: ``method SP request-target SP
    HTTP-version``); a malformed line gives ``""``, which no Tether path matches, so the full parser that
    gets it answers 400.
    """
    first = data.find(b" ")
    if first < 0:
        return None if len(data) < MAX_REQUEST_LINE else ""
    end = data.find(b" ", first + 1)
    if end < 0:
        return None if len(data) < MAX_REQUEST_LINE else ""
    target = data[first + 1 : end]
    target = target.split(b"?", 1)[0]
    if target.startswith((b"http://", b"https://")):  # absolute-form: the path starts after the authority
        slash = target.find(b"/", target.find(b"//") + 2)
        target = target[slash:] if slash >= 0 else b"/"
    return unquote(target.decode("latin-1"))


class AppDoor:
    """The mounted application of one process: its uvicorn config, lifespan and open connections.

    Args:
        server: the Tether server whose paths stay Tether's.
        app: an ASGI 3 application, or ``"module:attr"`` (imported here; ``[app] asgi``).

    Raises:
        ConfigError: ``app`` cannot be imported, or is a :class:`tether.asgi.ASGIApp` (Tether itself).
    """

    def __init__(self, server: Receiver, app: Any) -> None:
        cfg = server.config.app
        if isinstance(app, str):
            if server.config.base_dir not in sys.path:
                sys.path.insert(0, server.config.base_dir)  # module:attr next to tether.toml, as routes
            try:
                app = import_from_string(app)
            except ImportFromStringError as exc:
                raise ConfigError(server.config.source, "app.asgi", str(exc)) from exc
        if getattr(app, "serves_tether", False) is True:  # a tether.asgi.ASGIApp
            # A second Tether inside each worker: never reached by a client, but current_server() would
            # answer with it, and its tasks, metrics and admin would run twice.
            raise ConfigError(
                server.config.source,
                "app.asgi",
                f"{cfg.asgi or app!r} is a tether.asgi.ASGIApp, i.e. Tether itself, for uvicorn or hypercorn;"
                " give `tether start --app` the application it wraps (its other_asgi_app, e.g. main:api)",
            )
        self.server = server
        self.app = app
        self.uvicorn = UvicornConfig(
            app,
            http=AppHttpProtocol,
            lifespan=cfg.lifespan,  # type: ignore[arg-type]
            root_path=cfg.root_path,
            access_log=cfg.access_log,
            log_config=None,
            server_header=False,
            proxy_headers=cfg.proxy_headers,
        )
        self.uvicorn.load()
        self.state = ServerState()
        self.lifespan: LifespanOn | LifespanOff = (
            LifespanOff(self.uvicorn) if cfg.lifespan == "off" else LifespanOn(self.uvicorn)
        )
        self._clock: asyncio.TimerHandle | None = None
        self.paths: TetherPaths | None = None

    request_path = staticmethod(request_path)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is Tether's (served by its front door) rather than the application's."""
        paths = self.paths
        return paths is None or paths.owns(path)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run the application's lifespan startup (ASGI lifespan ``startup``).

        Raises:
            AppStartupError: the application reported ``lifespan.startup.failed`` or raised (with
                ``[app] lifespan = "on"``; ``"auto"`` treats an app without lifespan support as fine).
        """
        self.paths = TetherPaths(self.server)  # extensions and route files have registered theirs by now
        warn_shadowed(self.paths, self.app)
        self._tick()
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.stop_clock()
            raise AppStartupError(str(self.uvicorn.app))

    def _tick(self) -> None:
        # uvicorn's Server refreshes the Date header every second for all its connections; so do we.
        self.state.default_headers = [(b"date", formatdate(time.time(), usegmt=True).encode())]
        self._clock = asyncio.get_running_loop().call_later(1.0, self._tick)

    def stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    async def shutdown(self, timeout: float) -> None:
        """Finish open requests (up to ``timeout`` seconds, then cancel them), then lifespan shutdown."""
        for conn in list(self.state.connections):
            conn.shutdown()
        deadline = time.monotonic() + timeout
        while (self.state.connections or self.state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self.state.tasks):
            task.cancel()
        self.stop_clock()
        await self.lifespan.shutdown()

    # -- connections ----------------------------------------------------------------------------------

    def take(self, transport: asyncio.Transport, data: bytes) -> None:
        """Give ``transport`` (at a request boundary; ``data`` read so far) to the application."""
        proto = AppHttpProtocol(self.uvicorn, self.state, self.lifespan.state, door=self)
        transport.set_protocol(proto)
        proto.connection_made(transport)
        proto.data_received(data)

    def give_back(self, transport: asyncio.Transport, data: bytes) -> None:
        """Give ``transport`` (idle, at a request boundary) back to a new Tether front door."""
        from .http import HttpProtocol

        proto = HttpProtocol(self.server)
        transport.set_protocol(proto)
        proto.connection_made(transport)
        proto.data_received(data)


class AppHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol that gives the connection back to Tether for a Tether request."""

    def __init__(self, *args: Any, door: AppDoor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.door = door
        self._mid_request = False
        self._peek = b""
        self._held = b""

    def on_message_begin(self) -> None:
        self._mid_request = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._mid_request = False
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._held:
            self._held += data
            return
        door = self.door
        if door is None or self._mid_request or self.pipeline:
            super().data_received(data)
            return
        if self._peek:
            data = self._peek + data
            self._peek = b""
        path = request_path(data)
        if path is None:
            self._peek = data  # wait for the rest of the request line
            return
        if not door.owns(path):
            super().data_received(data)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A Tether request sent before the app's response (pipelining): it waits for that response.
            self._held = data
            self.flow.pause_reading()
            return
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        self.door = None
        door.give_back(self.transport, data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._held and not self.transport.is_closing():
            self.loop.call_soon(self._release)

    def _release(self) -> None:
        data, self._held = self._held, b""
        if data and not self.transport.is_closing():
            self.data_received(data)
