"""Who may open the admin namespace: the UI's log-in, then a session id it reconnects with.

The admin UI connects with ``auth = {"username", "password"}`` the first time and, after the server emits
``session`` with an id, with ``auth = {"sessionId"}`` (the reference server's ``instrument()`` does the
same; its default store keeps ids in memory). Tether signs the id instead of storing it, so that a
reconnect that lands on another worker or node is accepted too, with nothing shared but the config:

    session id = <expiry, hex seconds> "." <16 random bytes, hex> "." <HMAC-SHA256, base64url>

keyed by a hash of ``[admin] password``: changing the password ends every session. The password check is
bcrypt (``[admin] password`` is a bcrypt hash, as the reference's), which costs tens of milliseconds of CPU
by design: it runs in a thread, at most :data:`MAX_CONCURRENT_CHECKS` at a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
from typing import Any

import bcrypt

from ..config import AdminConfig

__all__ = ["MAX_CONCURRENT_CHECKS", "AdminAuth"]

MAX_CONCURRENT_CHECKS = 2
"""bcrypt checks running at once per process; more log-in attempts wait their turn (a flood of wrong
passwords slows itself down instead of taking every thread)."""


class AdminAuth:
    """Checks the admin UI's ``auth`` payload against ``[admin]``."""

    def __init__(self, config: AdminConfig) -> None:
        self.config = config
        self._key = hashlib.sha256(b"tether-admin-session\0" + config.password.encode()).digest()
        self._checks: asyncio.Semaphore | None = None

    async def check(self, auth: Any) -> str | None:
        """Whether ``auth`` may connect: the new session id to give the UI (after a password), ``""`` (a
        valid session id, or ``auth = false``), or None (refused)."""
        if not self.config.auth:
            return ""
        if not isinstance(auth, dict):
            return None
        session_id = auth.get("sessionId")
        if isinstance(session_id, str) and self.session_valid(session_id):
            return ""
        username, password = auth.get("username"), auth.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        if not hmac.compare_digest(username.encode(), self.config.username.encode()):
            return None
        if self._checks is None:
            self._checks = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        async with self._checks:
            ok = await asyncio.to_thread(_password_matches, password, self.config.password)
        return self.new_session() if ok else None

    def new_session(self, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.config.session_ttl)
        body = f"{expires:x}.{os.urandom(16).hex()}"
        return f"{body}.{self._mac(body)}"

    def session_valid(self, session_id: str, now: float | None = None) -> bool:
        """A session id this config signed, not expired."""
        body, _, mac = session_id.rpartition(".")
        if not body or len(session_id) > 200 or not hmac.compare_digest(mac, self._mac(body)):
            return False
        try:
            expires = int(body.partition(".")[0], 16)
        except ValueError:
            return False
        return (time.time() if now is None else now) < expires

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _password_matches(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        # bcrypt 5 refuses passwords over 72 bytes, and a malformed hash: both are "no".
        return False
