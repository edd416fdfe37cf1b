"""Origin checks shared by the WebSocket upgrade and polling CORS, and the warning a refusal logs."""

from __future__ import annotations

import logging
import time

__all__ = ["WARN_INTERVAL", "origin_allowed", "warn_refused"]

log = logging.getLogger("tether.origins")

WARN_INTERVAL = 60.0
"""Seconds between two warnings for the same refused Origin: a page that retries must not flood the log."""

_MAX_TRACKED = 1024
"""Origins remembered for the rate limit; past it the oldest are forgotten (an attacker's many origins
cost a few warnings, not memory)."""

_last_warned: dict[str, float] = {}


def origin_allowed(
    origin: str | None,
    host: str | None,
    allowed: tuple[str, ...],
    secure: bool = False,
    hosts: tuple[str, ...] = (),
) -> bool:
    """Whether a request with this ``Origin`` may connect.

    No Origin header (non-browser clients): allowed. ``"*"`` in ``allowed``: any origin. An origin listed
    in ``allowed``: allowed. An empty ``allowed`` means same-origin only: the Origin's host[:port] must be
    one of ``hosts`` (``[websocket] allowed_hosts``; an entry without a port matches any port) when that
    is set, else equal the ``Host`` header. The Host header alone is what a DNS-rebinding page controls
    (its own name, resolved to this server): with ``hosts`` set, such a page is refused.
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    if origin in allowed:
        return True
    if allowed:
        return False
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    authority = rest.rstrip("/").lower()
    if hosts:
        name = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
        return any(h.lower() == authority or (":" not in h and h.lower() == name) for h in hosts)
    if not host:
        return False
    return authority == host.lower()


def warn_refused(origin: str, path: str, now: float | None = None) -> bool:
    """Log at WARNING that ``origin`` was refused on ``path``, naming the key that allows it; at most once
    per :data:`WARN_INTERVAL` per origin. Returns whether it logged."""
    now = time.monotonic() if now is None else now
    last = _last_warned.get(origin)
    if last is not None and now - last < WARN_INTERVAL:
        return False
    if last is None and len(_last_warned) >= _MAX_TRACKED:
        for key in list(_last_warned)[: _MAX_TRACKED // 2]:  # dicts keep insertion order: oldest first
            del _last_warned[key]
    _last_warned.pop(origin, None)
    _last_warned[origin] = now
    # %r: the Origin is the client's text; repr escapes control characters (no forged log lines).
    log.warning(
        "! refused a connection from Origin %r to %r: add it to [websocket] allowed_origins "
        '(TETHER_WEBSOCKET_ALLOWED_ORIGINS; "*" allows any) to let pages from there connect',
        origin,
        path,
    )
    return True
