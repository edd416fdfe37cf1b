"""Session tokens: who a connection belongs to, signed by the app and checked by Tether on connect.

A built-in token is an ``itsdangerous`` URL-safe signed string (HMAC-SHA256 over a key derived from the
secret with the salt ``tether.session``; see itsdangerous' ``URLSafeTimedSerializer``) of::

    {"u": "<user id>", "s": "<session id>", "t": <issued at, unix seconds>, "e": <expires at>}

It is not encrypted: anyone holding a token can read the user and session ids, nobody without the secret
can make one. The expiry is checked against ``e`` (set at issue time from ``ttl``) and, as a cap, against
``[session] token_ttl`` at check time, so lowering ``token_ttl`` also shortens tokens already out there.

Apps with their own sessions (a Django session cookie, an OAuth token) name a validator instead, with
``[session] validator = "module:function"``: ``function(token)`` returns :class:`Claims` or a mapping
``{"user_id": ..., "session_id": ...}`` (``session_id`` optional), or None / raises
:class:`~tether.errors.InvalidToken` to refuse. It runs on the event loop for each connect, so it must be
quick (a cache lookup, not a network round trip). When both a secret and a validator are configured, a
token that is not a Tether-signed token is handed to the validator.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itsdangerous import BadData, URLSafeTimedSerializer

from ..errors import ConfigError, InvalidToken, TokenExpired

if TYPE_CHECKING:
    from ..config import Config, SessionConfig

__all__ = ["Claims", "TokenChecker", "Validator", "issue_token", "new_session_id", "verify_token"]

SALT = "tether.session"
MAX_ID_LENGTH = 128
"""User and session ids are room names and log fields: keep them short and printable."""

_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token says."""

    user_id: str
    session_id: str
    issued_at: float = 0.0
    """Unix time the token was made (0: unknown, e.g. from a validator)."""
    expires_at: float = 0.0
    """Unix time after which the token is refused (0: no expiry of its own)."""


Validator = Callable[[str], "Claims | Mapping[str, Any] | None"]
"""The app's own check: token -> claims, or None / :class:`InvalidToken` to refuse."""


def new_session_id() -> str:
    """A random session id (96 bits, URL-safe)."""
    return secrets.token_urlsafe(12)


def _check_id(kind: str, value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{kind} must be 1-{MAX_ID_LENGTH} printable ASCII characters without spaces: {value!r}"
        )
    return value


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def issue_token(
    user_id: Any,
    session_id: str | None = None,
    *,
    secret: str | None = None,
    ttl: float | None = None,
    config: Config | None = None,
    now: float | None = None,
) -> str:
    """A signed token for ``user_id`` in ``session_id`` (a new random session when None).

    The secret and ttl come from the arguments, else from ``config`` (default: ``Config.from_env()``,
    i.e. ``TETHER_CONFIG`` and ``TETHER_SESSION_SECRET``).

    Raises:
        ConfigError: no secret anywhere.
        ValueError: a user or session id that is empty, too long, or not printable ASCII.
    """
    if secret is None or ttl is None:
        if config is None:
            from ..config import Config

            config = Config.from_env()
        secret = config.session.secret if secret is None else secret
        ttl = config.session.token_ttl if ttl is None else ttl
    if not secret:
        raise ConfigError(
            "session", "session.secret", "a secret is needed to sign tokens (or TETHER_SESSION_SECRET)"
        )
    if ttl <= 0:
        raise ValueError(f"ttl must be > 0, got {ttl}")
    uid = _check_id("user id", str(user_id))
    sid = _check_id("session id", session_id if session_id is not None else new_session_id())
    issued = time.time() if now is None else now
    payload = {"u": uid, "s": sid, "t": issued, "e": issued + ttl}
    return str(_serializer(secret).dumps(payload))


def verify_token(
    token: str, *, secret: str, max_age: float | None = None, now: float | None = None
) -> Claims:
    """The claims of a Tether-signed token.

    Args:
        max_age: also refuse tokens issued more than this many seconds ago (``[session] token_ttl``).

    Raises:
        TokenExpired: the signature is good but the token is past its expiry or ``max_age``.
        InvalidToken: anything else: bad signature, not a Tether token, malformed claims.
    """
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise InvalidToken("Malformed token")
    try:
        payload = _serializer(secret).loads(token)
    except BadData:
        raise InvalidToken("Invalid token") from None
    if not isinstance(payload, dict):
        raise InvalidToken("Malformed token")
    uid, sid, issued, expires = payload.get("u"), payload.get("s"), payload.get("t"), payload.get("e")
    if not (
        isinstance(uid, str)
        and isinstance(sid, str)
        and isinstance(issued, int | float)
        and isinstance(expires, int | float)
        and _ID_RE.fullmatch(uid)
        and _ID_RE.fullmatch(sid)
    ):
        raise InvalidToken("Malformed token")
    now = time.time() if now is None else now
    if now >= expires or (max_age is not None and now - issued >= max_age):
        raise TokenExpired("Token expired")
    return Claims(uid, sid, float(issued), float(expires))


class TokenChecker:
    """The token check a server runs on connect: signed tokens, the app's validator, or both."""

    def __init__(self, config: SessionConfig, validator: Validator | None = None) -> None:
        self.secret = config.secret
        self.max_age = config.token_ttl
        self.validator = validator

    @classmethod
    def from_config(cls, config: Config) -> TokenChecker:
        """Raises ConfigError when ``[session] validator`` cannot be imported or is not callable."""
        return cls(config.session, load_validator(config.session.validator, config))

    def check(self, token: str) -> Claims:
        """Raises InvalidToken / TokenExpired (both: refuse with code 401)."""
        if self.secret:
            try:
                return verify_token(token, secret=self.secret, max_age=self.max_age)
            except TokenExpired:
                raise
            except InvalidToken:
                if self.validator is None:
                    raise
        assert self.validator is not None  # Config._validate requires a secret or a validator
        result = self.validator(token)
        if result is None:
            raise InvalidToken("Invalid token")
        if isinstance(result, Claims):
            return result
        if isinstance(result, Mapping) and result.get("user_id") is not None:
            uid = _check_claim("user_id", str(result["user_id"]))
            sid = result.get("session_id")
            if sid is None:
                # No session id from the app: one session per token, so tabs sharing a token share it.
                sid = hashlib.sha256(token.encode()).hexdigest()[:32]
            return Claims(uid, _check_claim("session_id", str(sid)))
        raise InvalidToken("Validator returned no user")


def _check_claim(kind: str, value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise InvalidToken(f"Validator returned an unusable {kind}")
    return value


def load_validator(spec: str, config: Config) -> Validator | None:
    """Import ``module:function``; None for an empty spec.

    Raises:
        ConfigError: it cannot be imported or is not callable.
    """
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(config.source, "session.validator", f"expected 'module:function', got {spec!r}")
    # Like the route file, the app's modules sit next to tether.toml.
    base = str(Path(config.base_dir).resolve())
    if base not in sys.path:
        sys.path.insert(0, base)
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:
        raise ConfigError(config.source, "session.validator", f"cannot load {spec!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(config.source, "session.validator", f"{spec!r} is not callable")
    return fn  # type: ignore[no-any-return]
