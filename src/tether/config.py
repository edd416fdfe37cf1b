"""One frozen :class:`Config`, read from embedded defaults, then ``tether.toml``, then ``TETHER_*`` variables.

Every key of every section is a field below; the environment variable for ``[section] key`` is
``TETHER_SECTION_KEY`` (``TETHER_SERVER_PORT=9000``, ``TETHER_SESSION_SECRET=...``). Values from the
environment are parsed as TOML values when they parse (numbers, booleans, lists), else taken as strings.
A key that does not exist, or a value of the wrong type or range, raises :class:`~tether.errors.ConfigError`
naming the file, the key and the reason, before anything starts.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "ApiConfig",
    "Config",
    "LimitsConfig",
    "MetricsConfig",
    "RedisConfig",
    "RoomConfig",
    "ServerConfig",
    "SessionConfig",
    "WebSocketConfig",
]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9501
    workers: int = 1
    """Worker processes; 0 means one per CPU core."""
    pid_file: str = "run/tether.pid"
    log_file: str = "run/tether.log"
    control_socket: str = "run/tether.sock"
    log_level: str = "info"
    stop_timeout: float = 10.0
    """Seconds ``stop`` and ``reload`` wait for handlers to finish before closing connections."""
    static_dir: str = ""
    """A folder served under ``/`` for pages (the demo uses it); empty: no static files."""
    tls_cert: str = ""
    tls_key: str = ""
    debug: bool = False


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    route_file: str = ""
    """Python file or module that registers routes with ``tether.websocket.on``; empty: no routes."""
    handler: str = ""
    """``module:Class`` of a :class:`tether.handler.Handler`; empty: the default handler."""
    parser: str = "socketio"
    """``socketio``, ``json``, ``raw`` or ``module:Class`` of a :class:`tether.parsers.Parser`."""
    path: str = "/socket.io/"
    ws_path: str = "/ws"
    """Bare WebSocket endpoint: no Engine.IO handshake, one parser message per frame."""
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    connect_timeout: float = 45.0
    """Seconds a client has to connect to a namespace after the Engine.IO handshake."""
    max_payload: int = 1_000_000
    """Largest WebSocket frame, polling body or Engine.IO packet accepted, in bytes."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to connect; empty: same origin only; ``"*"``: any. No Origin header: allowed."""
    cors_credentials: bool = True


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_connections: int = 0
    """Total open connections per worker; 0: unlimited."""
    max_connections_per_ip: int = 0
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to send a complete HTTP request."""
    http_max_header_size: int = 16_384
    event_rate: float = 0.0
    """Events per second a connection may send (token bucket refill); 0: unlimited."""
    event_burst: int = 100
    rate_disconnect_after: int = 50
    """Events refused (over the rate) before the bucket is full again, past which the client is closed."""
    max_rooms_per_socket: int = 0
    send_buffer_bytes: int = 4 * 1024 * 1024
    """High-water mark of one connection's outgoing buffer in bytes."""
    send_buffer_messages: int = 10_000
    """High-water mark of one polling connection's queued packets."""
    slow_consumer_policy: str = "disconnect"
    """``disconnect`` or ``drop`` when a client does not read fast enough."""
    handler_timeout: float = 0.0
    """Seconds a handler may run before it is cancelled; 0: no limit."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    enabled: bool = False
    """True as soon as the ``[session]`` section is present in the config file."""
    idle_timeout: float = 900.0
    warn_before: float = 0.0
    secret: str = ""
    token_ttl: float = 86_400.0
    close_on_expire: bool = True
    activity_interval: float = 30.0
    """Seconds between two ``activity`` reports from the JS helper."""
    validator: str = ""
    """``module:function`` of the app's own token check; empty: signed tokens only."""


@dataclass(frozen=True, slots=True)
class RoomConfig:
    driver: str = "memory"
    """``memory`` (one host, workers linked by the master) or ``redis`` (many hosts)."""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "socket.io"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    key: str = ""
    """Bearer key for the HTTP API; empty: the API is off."""
    max_body: int = 1_000_000


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    path: str = "/metrics"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "websocket": WebSocketConfig,
    "limits": LimitsConfig,
    "session": SessionConfig,
    "room": RoomConfig,
    "redis": RedisConfig,
    "api": ApiConfig,
    "metrics": MetricsConfig,
}

_SECRET_KEYS = {("session", "secret"), ("api", "key")}


@dataclass(frozen=True, slots=True)
class Config:
    """All settings of one Tether instance. Build it with :meth:`load`, :meth:`from_file` or :meth:`from_env`."""

    server: ServerConfig = field(default_factory=ServerConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    room: RoomConfig = field(default_factory=RoomConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = "<defaults>"
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
        """Defaults, then the file (if any), then ``TETHER_*`` from ``env`` (default ``os.environ``), then overrides.

        Raises:
            ConfigError: an unknown section or key, or a value of the wrong type or range.
        """
        raw: dict[str, dict[str, Any]] = {}
        source = "<defaults>"
        base_dir = "."
        if path is not None:
            p = Path(path)
            source = str(p)
            base_dir = str(p.resolve().parent)
            try:
                with p.open("rb") as f:
                    data = tomllib.load(f)
            except FileNotFoundError:
                raise ConfigError(source, "-", "file not found") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc
            for section, values in data.items():
                if section not in _SECTIONS:
                    raise ConfigError(source, section, f"unknown section (known: {', '.join(_SECTIONS)})")
                if not isinstance(values, dict):
                    raise ConfigError(source, section, "must be a table")
                raw.setdefault(section, {}).update(values)
            if "session" in data:
                raw["session"].setdefault("enabled", True)
        env = os.environ if env is None else env
        for name, value in env.items():
            if not name.startswith("TETHER_") or name.startswith("TETHER_TESTS_"):
                continue
            parts = name[len("TETHER_") :].lower().split("_", 1)
            if len(parts) != 2 or parts[0] not in _SECTIONS:
                continue
            section, key = parts
            raw.setdefault(section, {})[key] = _parse_env_value(value, _SECTIONS[section], key)
            if section == "session" and key == "secret" and value:
                raw["session"].setdefault("enabled", True)
        for section, values in (overrides or {}).items():
            raw.setdefault(section, {}).update(values)
        built: dict[str, Any] = {}
        for section, section_cls in _SECTIONS.items():
            built[section] = _build_section(source, section, section_cls, raw.get(section, {}))
        config = cls(**built, source=source, base_dir=base_dir)
        config._validate()
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
        for section in _SECTIONS:
            values = dataclasses.asdict(getattr(self, section))
            for s, k in _SECRET_KEYS:
                if s == section and values.get(k):
                    values[k] = "***"
            out[section] = values
        return out

    def _validate(self) -> None:
        src = self.source
        ws = self.websocket
        if not 0 <= self.server.port <= 65535:
            raise ConfigError(src, "server.port", f"{self.server.port} is not a TCP port")
        if self.server.workers < 0:
            raise ConfigError(src, "server.workers", "must be >= 0")
        for key in ("ping_interval", "ping_timeout", "connect_timeout"):
            if getattr(ws, key) <= 0:
                raise ConfigError(src, f"websocket.{key}", "must be > 0")
        if ws.max_payload < 64:
            raise ConfigError(src, "websocket.max_payload", "must be at least 64 bytes")
        for key in ("path", "ws_path"):
            value = getattr(ws, key)
            if not value.startswith("/"):
                raise ConfigError(src, f"websocket.{key}", "must start with '/'")
        if self.limits.slow_consumer_policy not in ("disconnect", "drop"):
            raise ConfigError(src, "limits.slow_consumer_policy", "must be 'disconnect' or 'drop'")
        if self.room.driver not in ("memory", "redis"):
            raise ConfigError(src, "room.driver", "must be 'memory' or 'redis'")
        if self.session.enabled and not self.session.secret and not self.session.validator:
            raise ConfigError(
                src, "session.secret", "[session] needs a secret (or TETHER_SESSION_SECRET) or a validator"
            )
        if self.session.warn_before < 0 or self.session.warn_before >= self.session.idle_timeout:
            if self.session.warn_before != 0:
                raise ConfigError(src, "session.warn_before", "must be 0 or less than idle_timeout")
        if self.session.idle_timeout <= 0:
            raise ConfigError(src, "session.idle_timeout", "must be > 0")
        if bool(self.server.tls_cert) != bool(self.server.tls_key):
            raise ConfigError(src, "server.tls_cert", "tls_cert and tls_key go together")


def _parse_env_value(value: str, section_cls: type[Any], key: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
    # A string setting is taken as written unless quoted: TETHER_API_KEY=1e5 is the key "1e5", not 100000.0
    # (nor "100000.0"), and a secret like 2024-01-01 or true must not fail to load, quoted in the error.
    if typing.get_type_hints(section_cls).get(key) is str and not isinstance(parsed, str):
        return value
    return parsed


def _build_section(source: str, section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(source, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        try:
            kwargs[key] = _coerce(source, f"{section}.{key}", hints[key], value)
        except ConfigError:
            if (section, key) not in _SECRET_KEYS:
                raise
            # The message would quote the value: for a secret, say what is wrong without it.
            reason = f"expected str, got {type(value).__name__}"
            raise ConfigError(source, f"{section}.{key}", reason) from None
    return cls(**kwargs)


def _coerce(source: str, key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(source, key, f"expected a list of strings, got {value!r}")
    elif isinstance(hint, types.UnionType):  # pragma: no cover - no union fields today
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(source, key, f"expected {name}, got {type(value).__name__} {value!r}")
