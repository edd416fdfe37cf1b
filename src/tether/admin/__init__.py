"""The official Socket.IO admin UI (``@socket.io/admin-ui``), served by Tether: its server side.

What the reference server's ``instrument(io, {...})`` and python-socketio's ``sio.instrument()`` do, from
the config instead of code::

    [admin]                          # the section turns it on; off by default
    username = "admin"
    password = "$2b$10$..."          # a bcrypt hash, as the reference's auth.password (or auth = false)
    read_only = false                # true: the UI watches, its commands are refused
    mode = "development"             # "production": server stats only

Open https://admin.socket.io (or the UI's ``ui/dist`` folder served anywhere), give it the server's URL,
and log in. :mod:`.instrument` says what is reported and how it reaches the UI from every worker and
node; :mod:`.auth` how the log-in works. docs/admin-ui.md is the user's guide.

The server imports this package (``tether.server.server.EXTENSIONS``) and calls :func:`install`; nothing
in the core imports it: it hooks into the server's accept, disconnect, event, room and outgoing hooks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..cluster.hub import HubAdapter
from ..errors import ConfigError, TetherError
from .auth import AdminAuth
from .instrument import COMMAND_FEATURES, Instrument

if TYPE_CHECKING:
    from ..context import Socket, SocketHost
    from ..server.server import Server

__all__ = ["COMMAND_FEATURES", "AdminAuth", "Instrument", "get_instrument", "install"]

EXTENSION_KEY = "admin"


def install(server: Server) -> Instrument | None:
    """Serve the admin namespace on ``server`` when ``[admin]`` is enabled; otherwise do nothing.

    Registers the namespace's routes (``connect`` with the log-in; the UI's commands unless
    ``read_only``), the hooks that report sockets, rooms and events (``mode = "development"``), and the
    ``server_stats`` timer, started with the server's loop and stopped when it drains.
    """
    cfg = server.config.admin
    if not cfg.enabled:
        return None
    instrument = Instrument(server)
    server.extensions[EXTENSION_KEY] = instrument
    router = server.router
    ns = cfg.namespace
    if router.has_namespace(ns):
        # The admin routes would replace the app's own handlers of that namespace without a word.
        raise ConfigError(
            server.config.source,
            "admin.namespace",
            f"{ns} is already a namespace of the application's routes; set [admin] namespace to another"
            ' one (TETHER_ADMIN_NAMESPACE), e.g. "/socket-admin", and give it in the UI\'s advanced options',
        )
    router.on("connect", _admin_connect, namespace=ns)
    if not cfg.read_only:
        router.on("join", _join, namespace=ns)
        router.on("leave", _leave, namespace=ns)
        router.on("_disconnect", _disconnect, namespace=ns)
        router.on("emit", _emit, namespace=ns)
    server.accept_hooks.append(instrument.on_accept)
    if cfg.mode == "development":
        server.disconnect_hooks.append(instrument.on_disconnect)
        server.event_args_hooks.append(instrument.on_event)
        server.room_hooks.append(instrument.on_room)
        server.outgoing_hooks.append(instrument.on_outgoing)
        if isinstance(server.adapter, HubAdapter):
            # event_sent on the other workers of this host shows the arguments too.
            server.adapter.carry_args = True
    try:
        instrument.start(asyncio.get_running_loop())
    except RuntimeError:
        # Built outside a loop: start with the first socket (the accept hook runs on the loop).
        server.accept_hooks.insert(0, lambda _sock: instrument.start(asyncio.get_running_loop()))
    return instrument


def get_instrument(server: SocketHost) -> Instrument:
    """The admin UI instrument of ``server``.

    Raises:
        TetherError: the admin UI is not enabled (no ``[admin]`` in the config).
    """
    instrument = server.extensions.get(EXTENSION_KEY)
    if not isinstance(instrument, Instrument):
        raise TetherError("the admin UI is not enabled: add an [admin] section")
    return instrument


# The routes are functions of the socket, so a router shared by two servers serves each its own instrument.
# They are ``async def`` although they never wait: a plain ``def`` handler runs in the thread pool, and these
# act on the server's own state, on its loop.


async def _admin_connect(sock: Socket, auth: Any) -> None:
    await get_instrument(sock.server).on_admin_connect(sock, auth)


async def _join(sock: Socket, nsp: Any = None, room: Any = None, room_filter: Any = None, *_: Any) -> None:
    get_instrument(sock.server).command("join", nsp, room, room_filter)


async def _leave(sock: Socket, nsp: Any = None, room: Any = None, room_filter: Any = None, *_: Any) -> None:
    get_instrument(sock.server).command("leave", nsp, room, room_filter)


async def _disconnect(
    sock: Socket, nsp: Any = None, close: Any = False, room_filter: Any = None, *_: Any
) -> None:
    get_instrument(sock.server).command("_disconnect", nsp, close, room_filter)


async def _emit(
    sock: Socket, nsp: Any = None, room_filter: Any = None, event: Any = None, *args: Any
) -> None:
    get_instrument(sock.server).emit_command(nsp, room_filter, event, *args)
