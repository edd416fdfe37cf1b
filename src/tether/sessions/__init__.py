"""Sessions that expire and say so: tokens on connect, idle timeouts pushed to the page, log-out in every tab.

The server imports this package and calls :func:`install` from ``Server.__init__``. With ``[session]``
in the config (or ``TETHER_SESSION_SECRET`` set), every connection must carry a session token (the
Socket.IO CONNECT ``auth`` payload ``{"token": ...}``, or ``?token=`` on the bare ``/ws`` endpoint);
without ``[session]`` nothing is installed and user binding (``socket.login_using``) works as usual.

Python API::

    from tether.sessions import issue_token, get_manager
    token = issue_token("alice")                    # secret from TETHER_SESSION_SECRET / TETHER_CONFIG
    get_manager(server).touch(session_id)           # backend activity
    get_manager(server).end(session_id)             # log out everywhere: session:ended in every tab

See docs/sessions.md for the config keys, the events and the JS helper (``/tether/session.js``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TetherError
from .timers import Deadlines
from .tokens import Claims, TokenChecker, Validator, issue_token, new_session_id, verify_token

if TYPE_CHECKING:
    from ..server.server import Server
    from .manager import (
        ACTIVITY,
        ENDED,
        EXPIRED,
        EXTENDED,
        LOGOUT,
        WARNING,
        Session,
        SessionCounters,
        SessionManager,
        session_room,
    )

__all__ = [
    "ACTIVITY",
    "ENDED",
    "EXPIRED",
    "EXTENDED",
    "LOGOUT",
    "WARNING",
    "Claims",
    "Deadlines",
    "Session",
    "SessionCounters",
    "SessionManager",
    "TokenChecker",
    "Validator",
    "get_manager",
    "install",
    "issue_token",
    "new_session_id",
    "session_room",
    "verify_token",
]

_MANAGER_NAMES = frozenset(
    {
        "ACTIVITY",
        "ENDED",
        "EXPIRED",
        "EXTENDED",
        "LOGOUT",
        "WARNING",
        "Session",
        "SessionCounters",
        "SessionManager",
        "session_room",
    }
)
"""Imported from :mod:`.manager` on first use: it brings asyncio, orjson and the cluster's wire format,
which ``tether token`` (tokens alone) must not pay for (as ``tether/__init__.py``)."""

if not TYPE_CHECKING:  # seen by mypy, a module __getattr__ would type any misspelled name as Any

    def __getattr__(name: str) -> Any:
        if name not in _MANAGER_NAMES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import manager

        value = getattr(manager, name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _MANAGER_NAMES)


EXTENSION_KEY = "sessions"
SETTINGS_PATH = "/tether/session-config.json"


def install(server: Server) -> SessionManager | None:
    """Wire sessions into ``server`` when ``[session]`` is enabled; otherwise do nothing.

    Registers a connect hook (token check, ``login_using``, the ``session:<id>`` room), an event hook
    (activity, ``session:logout``) and ``GET /tether/session-config.json`` (the helper's settings).

    Raises:
        ConfigError: ``[session] validator`` cannot be loaded.
    """
    if not server.config.session.enabled:
        return None
    from .manager import SessionManager
    from .tombstones import TombstoneFile, default_path

    manager = SessionManager(server)
    path = default_path(server.config)
    if path:
        try:
            file = TombstoneFile(path)
        except OSError as exc:
            raise ConfigError(server.config.source, "session.ended_file", str(exc)) from exc
        manager.keep_tombstones(file)
    server.extensions[EXTENSION_KEY] = manager
    server.connect_hooks.append(manager.on_connect)
    server.event_hooks.append(manager.on_event)
    server.add_http_route("GET", SETTINGS_PATH, manager.settings_route)
    return manager


def get_manager(server: Server) -> SessionManager:
    """The session manager of ``server``.

    Raises:
        TetherError: sessions are not enabled (no ``[session]`` in the config).
    """
    from .manager import SessionManager

    manager = server.extensions.get(EXTENSION_KEY)
    if not isinstance(manager, SessionManager):
        raise TetherError("sessions are not enabled: add a [session] section (or TETHER_SESSION_SECRET)")
    return manager
