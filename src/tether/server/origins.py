"""Origin checks shared by the WebSocket upgrade and polling CORS."""

from __future__ import annotations

__all__ = ["origin_allowed"]


def origin_allowed(
    origin: str | None, host: str | None, allowed: tuple[str, ...], secure: bool = False
) -> bool:
    """Whether a request with this ``Origin`` may connect.

    No Origin header (non-browser clients): allowed. ``"*"`` in ``allowed``: any origin. An empty
    ``allowed`` means same-origin only: the Origin's host:port must equal the Host header.
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    if origin in allowed:
        return True
    if allowed:
        return False
    if not host:
        return False
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and rest.rstrip("/") == host and scheme in ("http", "https")
