"""One frozen :class:`Config`, read from embedded defaults, then ``tether.toml``, then ``TETHER_*`` variables.

Every key of every section is a field of a dataclass of :mod:`tether.config.sections`; the environment
variable for ``[section] key`` is ``TETHER_SECTION_KEY`` (``TETHER_SERVER_PORT=9000``,
``TETHER_SESSION_SECRET=...``). Values from the environment are parsed as TOML values when they parse
(numbers, booleans, lists), else taken as strings (:mod:`tether.config.loading`). A key that does not
exist, or a value of the wrong type or range, raises :class:`~tether.errors.ConfigError` naming the file,
the key and the reason, before anything starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .loading import DEFAULTS_SOURCE, build_sections, env_origin, read_layers
from .sections import (
    SECRET_KEYS,
    SECTIONS,
    AdminConfig,
    ApiConfig,
    AppConfig,
    HandlersConfig,
    LimitsConfig,
    MetricsConfig,
    RecoveryConfig,
    RedisConfig,
    RoomConfig,
    ServerConfig,
    SessionConfig,
    WebSocketConfig,
    parse_listen,
)

__all__ = [
    "DEFAULTS_SOURCE",
    "AdminConfig",
    "ApiConfig",
    "AppConfig",
    "Config",
    "HandlersConfig",
    "LimitsConfig",
    "MetricsConfig",
    "RecoveryConfig",
    "RedisConfig",
    "RoomConfig",
    "ServerConfig",
    "SessionConfig",
    "WebSocketConfig",
    "parse_listen",
]

MIN_SECRET_BYTES = 32
"""Shortest ``[session] secret``, ``[api] key`` or ``[metrics] key`` accepted outside debug/demo."""

DEMO_SECRET = "demo-secret-not-for-production"
"""The session secret of examples/login_timeout (``make run``): public, so refused unless
``[server] demo``."""

_KEY_SECRETS = (("session", "secret"), ("api", "key"), ("metrics", "key"))
_STREAMS_ONLY_KEYS = ("stream_max_len", "session_prefix", "stream_count", "sharded_pubsub")
"""``[redis]`` keys that only ``[room] driver = "redis-streams"`` reads (node's streams adapter options)."""


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one Tether instance.

    Build it with :meth:`load`, :meth:`from_file` or :meth:`from_env`.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    handlers: HandlersConfig = field(default_factory=HandlersConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    room: RoomConfig = field(default_factory=RoomConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    app: AppConfig = field(default_factory=AppConfig)
    source: str = DEFAULTS_SOURCE
    """The config file in use, or ``<defaults>``."""
    base_dir: str = "."
    """Relative paths in the config (route_file, static_dir, pid_file...) are relative to this folder."""

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Config:
        """Defaults, then the file (if any), then ``TETHER_*`` from ``env`` (default ``os.environ``), then
        ``overrides``.

        Raises:
            ConfigError: an unknown section or key, or a value of the wrong type or range. When a
                ``TETHER_*`` variable set the key, ``source`` is that variable's name, not the file's.
        """
        env = os.environ if env is None else env
        overrides = overrides or {}
        raw, source, base_dir = read_layers(path, env, overrides)
        try:
            config = cls(**build_sections(source, raw), source=source, base_dir=base_dir)
            config._validate()
        except ConfigError as exc:
            var = env_origin(env, overrides, exc.key)
            if var is None:
                raise
            raise ConfigError(var, exc.key, exc.reason) from None
        return config

    from_file = load

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Defaults plus ``TETHER_*`` variables; ``TETHER_CONFIG`` names a file to read first."""
        env = os.environ if env is None else env
        return cls.load(env.get("TETHER_CONFIG") or None, env=env)

    def resolve_path(self, value: str) -> str:
        """``value`` made absolute against the folder of the config file."""
        if not value:
            return value
        return str(Path(self.base_dir, value)) if not os.path.isabs(value) else value

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections or fields replaced: ``config.replace(server={"port": 0})``."""
        changes: dict[str, Any] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, Mapping):
                value = dataclasses.replace(current, **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """The config as plain data with secrets replaced by ``"***"``: safe to log or print."""
        out: dict[str, Any] = {"source": self.source}
        for section in SECTIONS:
            values = dataclasses.asdict(getattr(self, section))
            for s, k in SECRET_KEYS:
                if s == section and values.get(k):
                    values[k] = "***"
            out[section] = values
        return out

    def _validate(self) -> None:
        src = self.source
        for section in SECTIONS:
            getattr(self, section).check(src)
        if self.recovery.max_disconnection_duration > 0 and self.room.driver == "redis":
            # Pub/sub keeps nothing: a node cannot find what another node sent while the client was away
            # (the reference's Redis pub/sub adapter cannot recover either).
            raise ConfigError(
                src,
                "recovery.max_disconnection_duration",
                'connection state recovery needs [room] driver = "memory" (one host) or "redis-streams": '
                "the Redis pub/sub adapter keeps no log to recover from",
            )
        if self.room.driver != "redis-streams":
            # Read by the streams driver alone: set for another one they would do nothing, silently.
            defaults = RedisConfig()
            for key in _STREAMS_ONLY_KEYS:
                if getattr(self.redis, key) != getattr(defaults, key):
                    raise ConfigError(
                        src,
                        f"redis.{key}",
                        'is read by [room] driver = "redis-streams" only; '
                        f'the driver is "{self.room.driver}"',
                    )
        self._validate_secrets()

    def _validate_secrets(self) -> None:
        """Secrets are keys, not passwords: 32 bytes or more (an HMAC key shorter than its hash's 32 bytes
        is the weak point; guessable ones more so), unless ``debug`` or ``demo`` says this is a test.
        The demo's secret is public (it is in this repository): refused outside ``demo``."""
        lenient = self.server.debug or self.server.demo
        for section, key in _KEY_SECRETS:
            value: str = getattr(getattr(self, section), key)
            if not value:
                continue
            if value == DEMO_SECRET and not self.server.demo:
                reason = "is the demo's published secret: set your own (32+ bytes)"
                raise ConfigError(self.source, f"{section}.{key}", reason)
            if len(value.encode()) < MIN_SECRET_BYTES and not lenient:
                raise ConfigError(
                    self.source,
                    f"{section}.{key}",
                    f"is shorter than {MIN_SECRET_BYTES} bytes (e.g. python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'); [server] debug or demo accepts a short one",
                )
