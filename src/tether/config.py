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
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Listen address; ``0.0.0.0`` for every interface."""
    port: int = 9501
    """Listen port; 0 picks a free one (tests)."""
    workers: int = 0
    """Worker processes behind one port, started by ``tether start``; 0 (the default): one per CPU core.
    A server built in code (``run_server``) is one process whatever this says."""
    pid_file: str = ""
    """Master pid file; how ``stop``/``reload``/``infos`` find the running instance. Empty: ``run/NAME.pid``
    next to the config file, NAME being the config file's name without ``.toml`` (``tether-PORT`` without a
    config file), so that two instances in one folder never share it. Its folder must be writable by this
    user only."""
    log_file: str = ""
    """Where a daemon (``start -d``) logs. Empty: ``run/NAME.log`` (see ``pid_file``)."""
    control_socket: str = ""
    """Unix socket (mode 0600) the CLI uses to talk to the live master. Empty: ``run/NAME.sock`` (see
    ``pid_file``)."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""
    stop_timeout: float = 10.0
    """Seconds ``stop`` and ``reload`` wait for handlers to finish before closing connections."""
    worker_start_timeout: float = 30.0
    """Seconds a worker started by ``tether start``/``reload`` has to import the app and accept."""
    stop_grace: float = 5.0
    """Seconds after ``stop_timeout`` before the master kills workers that are still running."""
    restart_backoff_min: float = 0.1
    """Seconds before restarting a worker that died; doubles while it keeps dying within
    ``restart_stable_after`` seconds of its start."""
    restart_backoff_max: float = 10.0
    """Longest wait in seconds before restarting a worker that keeps dying."""
    restart_stable_after: float = 10.0
    """A worker that ran this many seconds before dying is restarted after ``restart_backoff_min`` and its
    failure count starts again."""
    restart_max_failures: int = 10
    """Deaths in a row, each within ``restart_stable_after`` of the worker's start, after which the master
    stops restarting it, logs why and stops the instance with exit status 1 (a supervisor such as systemd
    sees the failure); 0: restart forever. With the default backoff, 10 failures take about 33 s."""
    static_dir: str = ""
    """A folder served under ``/`` for pages (the demo uses it); empty: no static files."""
    net: str = "uvloop"
    """Socket transports: ``uvloop`` (default) or ``aiofastnet`` (picows' own; more memory per connection)."""
    tls_cert: str = ""
    """PEM certificate chain: serves https/wss when set (with ``tls_key``)."""
    tls_key: str = ""
    """PEM private key of ``tls_cert``."""
    debug: bool = False
    """Debug logs of every packet (``>`` sent, ``<`` received, ``=`` state, ``!`` error). Also lets secrets
    shorter than 32 bytes load (a local experiment)."""
    demo: bool = False
    """The shipped demo's own config: lets secrets shorter than 32 bytes and the demo's published secret
    load. Anywhere else both are refused (:data:`DEMO_SECRET`)."""


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    route_file: str = ""
    """Python file or module that registers routes with ``tether.websocket.on``; empty: no routes."""
    handler: str = ""
    """``module:Class`` of a :class:`tether.handler.Handler`; empty: the default handler."""
    parser: str = "socketio"
    """``socketio``, ``json``, ``raw``, or ``module:Class`` of a ``tether.Parser`` subclass (e.g.
    ``tether:RawParser``, ``myapp.wire:PipeParser``)."""
    path: str = "/socket.io/"
    """Engine.IO endpoint (polling and WebSocket), as socket.io-client's ``path`` option."""
    ws_path: str = "/ws"
    """Bare WebSocket endpoint: no Engine.IO handshake, one parser message per frame."""
    ping_interval: float = 25.0
    """Seconds between the server's heartbeat pings (Engine.IO ``pingInterval``)."""
    ping_timeout: float = 20.0
    """Seconds a client has to answer a ping before it is considered gone (``pingTimeout``)."""
    connect_timeout: float = 45.0
    """Seconds a client has to connect to a namespace after the Engine.IO handshake."""
    max_payload: int = 1_000_000
    """Largest WebSocket frame, polling body or Engine.IO packet accepted, in bytes."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to connect; empty: same origin only; ``"*"``: any. No Origin header: allowed."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names this server answers to (``chat.example.com``, or ``name:port`` for one port only). When
    set, the same-origin check (``allowed_origins`` empty) compares a browser's Origin with these, not
    with the Host header, which a DNS-rebinding page controls."""
    cors_credentials: bool = True
    """Send ``Access-Control-Allow-Credentials: true`` to allowed origins (cookies on polling). Never with
    ``allowed_origins = ["*"]``: any site could then make requests carrying its visitors' cookies, which
    browsers' rules forbid for ``*``; there credentials are dropped."""
    serve_client: bool = True
    """Serve the official client at ``<path>socket.io.js`` (``.min.js``, ``.esm.min.js``, maps), as node's
    ``serveClient``; installed by ``python -m tether.client_bundle install``."""
    client_dir: str = ""
    """Folder of the client files (an npm ``socket.io-client/dist``); empty: the copy installed in Tether."""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_connections: int = 0
    """Total open connections per worker; 0: unlimited."""
    max_connections_per_ip: int = 4096
    """Open connections per client IP per worker; 0: unlimited. The default leaves room for a crowd behind
    one address (a carrier-grade NAT, a conference network: thousands of people, a tab each) while one
    address alone holds at most about 40 MiB of a worker (some 10 KiB per idle connection)."""
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection has to send a complete HTTP request."""
    http_max_header_size: int = 16_384
    """Largest request head in bytes as received: request line, header lines, blank line (HTTP 431
    past it)."""
    http_max_headers: int = 100
    """Most header lines in one request (HTTP 431 past it); Apache's ``LimitRequestFields`` default."""
    event_rate: float = 1000.0
    """Events per second a connection may send (token bucket refill); 0: unlimited. The default is far above
    what a person's client sends (a game at 60 Hz sends 60) and far below what one socket can push (tens of
    thousands a second on loopback)."""
    event_burst: int = 10_000
    """Token bucket size: events a connection may send at once before the rate applies. Large by default:
    socket.io-client sends everything emitted while offline at once when it reconnects."""
    rate_disconnect_after: int = 50
    """Events refused (over the rate) before the bucket is full again, past which the client is
    disconnected."""
    max_depth: int = 32
    """Deepest nesting of arrays and objects in one client message (the event array is level 1); deeper is
    a protocol error. At most 254, the deepest orjson writes back."""
    max_fragments: int = 1024
    """Most frames one fragmented WebSocket message may come in (close 1009 past it)."""
    max_name_length: int = 256
    """Longest event, namespace or room name, in characters: a longer event or namespace from a client is a
    protocol error (close 1008), ``join`` of a longer room raises :class:`~tether.errors.TetherError`."""
    max_rooms_per_socket: int = 0
    """Named rooms one socket may be in (its own sid room does not count); 0: unlimited."""
    send_buffer_bytes: int = 4 * 1024 * 1024
    """High-water mark of one connection's outgoing buffer in bytes."""
    send_buffer_messages: int = 10_000
    """High-water mark of one polling connection's queued packets."""
    slow_consumer_policy: str = "disconnect"
    """``disconnect`` or ``drop`` when a client does not read fast enough."""
    handler_timeout: float = 0.0
    """Seconds a handler may run before it is cancelled; 0: no limit."""


@dataclass(frozen=True, slots=True)
class HandlersConfig:
    threads: int = 40
    """Threads that run plain ``def`` handlers (as Starlette runs sync endpoints), so that a blocking call
    in one never stalls the event loop; 0: ``def`` handlers run on the loop itself (fastest for handlers
    that never block)."""
    block_warning: float = 0.5
    """Seconds an ``async def`` handler may hold the event loop in one step (between two awaits) before a
    warning names it; 0: never warn."""
    ack_timeout: float = 60.0
    """Seconds ``server.call()`` and an emit with ``ack=True`` but no ``timeout`` wait for answers
    (python-socketio's ``call`` default)."""
    leader_ttl: float = 10.0
    """Seconds a node holds the Redis lease of once-per-cluster tasks without renewing it; a node that dies
    is replaced by another within this time. With one host and no Redis the master picks the worker and
    a dead one is replaced at once."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    enabled: bool = False
    """True as soon as the ``[session]`` section is present in the config file."""
    idle_timeout: float = 900.0
    """Seconds without activity after which a session expires (``session:expired`` is pushed)."""
    warn_before: float = 0.0
    """Seconds before expiry to push ``session:warning``; 0: no warning."""
    secret: str = ""
    """HMAC secret of session tokens (or ``TETHER_SESSION_SECRET``). Never logged."""
    token_ttl: float = 86_400.0
    """Seconds a signed token stays valid for connecting."""
    close_on_expire: bool = True
    """Close the sockets of an expired session after pushing ``session:expired``."""
    activity_interval: float = 30.0
    """Seconds between two ``activity`` reports from the JS helper."""
    validator: str = ""
    """``module:function`` of the app's own token check; empty: signed tokens only."""
    ended_file: str = ""
    """Where ended and expired sessions are remembered across reloads and restarts (until their tokens
    expire). Empty: ``run/NAME.ended`` beside the pid file when started from a config file; a server built
    in code from defaults remembers them in memory only."""


@dataclass(frozen=True, slots=True)
class RoomConfig:
    driver: str = "memory"
    """``memory`` (one host, workers linked by the master), ``redis`` (many hosts, pub/sub) or
    ``redis-streams`` (many hosts through a Redis stream: connection state recovery across hosts; node's
    ``@socket.io/redis-streams-adapter`` format)."""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    """Redis server for ``[room] driver = "redis"``."""
    prefix: str = "socket.io"
    """Channel prefix; the same as node's ``@socket.io/redis-adapter`` ``key`` to share a Redis with it."""
    request_timeout: float = 5.0
    """Seconds to wait for other nodes' answers (fetch_sockets, counts, user_online); then partial answers.
    The workers of one host (no Redis) wait as long for each other's answers through the master."""
    max_queue: int = 10_000
    """Messages waiting to be published beyond which new ones are dropped (and counted)."""
    reconnect_max: float = 5.0
    """Longest wait in seconds between two attempts to reach Redis again."""
    stream_max_len: int = 10_000
    """``redis-streams``: the stream's approximate length cap (``MAXLEN ~``, node's ``maxLen``); the stream
    name is ``prefix``."""


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    max_disconnection_duration: float = 0.0
    """Seconds a disconnected socket's sid, rooms, data and missed packets are kept for the client to
    recover them (Socket.IO connection state recovery; the reference's default is 120); 0: off. When on,
    every event sent to a room or a socket carries an offset as its last argument, as in socket.io."""
    skip_connect_handler: bool = True
    """A recovered socket skips the app's ``connect`` route (the reference's ``skipMiddlewares``); False: it
    runs and sees ``socket.recovered``. The features' connect hooks (the sessions' token check) always run."""
    max_session_bytes: int = 1_000_000
    """Most bytes of missed packets replayed to one session; a client that missed more connects as new."""
    max_buffer_bytes: int = 64 * 1024 * 1024
    """Most bytes of recent packets kept per process, each emit counting its packets plus 200 bytes of
    bookkeeping (oldest dropped first); 0: bounded by time only. With workers, the master keeps the log."""
    max_sessions: int = 100_000
    """Most disconnected sessions kept per process (oldest dropped first); 0: unlimited."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    key: str = ""
    """Bearer key for the HTTP API; empty: the API is off."""
    max_body: int = 1_000_000
    """Largest API request body in bytes (HTTP 413 past it)."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    """Count Prometheus metrics (served only where ``listen`` or ``key`` says; ``tether infos`` shows
    the main counters either way)."""
    path: str = "/metrics"
    """Where the metrics are served (on ``listen``, and on the service port when ``key`` is set)."""
    listen: str = ""
    """``host:port`` of a separate metrics listener run by ``tether start``'s master, off the public port
    (e.g. ``127.0.0.1:9502``). Empty (the default): no listener; a fixed default port would make the
    second instance on a host fail to start."""
    key: str = ""
    """Bearer key: when set, metrics are also served on the service port at ``path`` to requests with
    ``Authorization: Bearer KEY`` (401 without it, 403 with another). Empty (the default): the service port
    does not serve metrics at all. Never logged."""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    enabled: bool = False
    """True as soon as the ``[admin]`` section is present: serve the Socket.IO admin UI's namespace."""
    namespace: str = "/admin"
    """The namespace the admin UI connects to (its "Advanced options"; the reference's ``namespaceName``)."""
    auth: bool = True
    """Ask the UI for ``username`` and ``password``; false lets anyone who can connect in (as the
    reference's ``auth: false``: a trusted network only)."""
    username: str = "admin"
    """The user name the UI must send."""
    password: str = ""
    """bcrypt hash of the password (``$2b$...``), as the reference server's ``auth.password`` (how to make
    one: docs/admin-ui.md). Never logged."""
    read_only: bool = False
    """Refuse the UI's commands (join, leave, disconnect, emit): it only watches."""
    mode: str = "development"
    """``development``: every socket, room and event is reported; ``production``: server stats only."""
    server_id: str = ""
    """How this process is named in the UI; empty: ``hostname#pid``."""
    stats_interval: float = 2.0
    """Seconds between two ``server_stats`` reports of each process."""
    session_ttl: float = 86_400.0
    """Seconds the UI may reconnect with the session id it got at log-in, without the password."""


@dataclass(frozen=True, slots=True)
class AppConfig:
    asgi: str = ""
    """``module:attr`` of an ASGI 3 application served on the same port for every path that is not
    Tether's (``tether start --app``); empty: none. Imported in every worker, next to the config file."""
    lifespan: str = "auto"
    """The app's ASGI lifespan: ``auto`` (run it if the app supports it), ``on`` (a failure stops the
    worker), ``off``; uvicorn's ``--lifespan``."""
    root_path: str = ""
    """ASGI ``root_path`` when the app is mounted below a proxy prefix; uvicorn's ``--root-path``."""
    access_log: bool = False
    """Log every app request at INFO (``uvicorn.access``)."""
    proxy_headers: bool = False
    """Trust ``X-Forwarded-For``/``-Proto`` from ``FORWARDED_ALLOW_IPS`` (default 127.0.0.1), as uvicorn's
    ``--proxy-headers``."""


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "websocket": WebSocketConfig,
    "limits": LimitsConfig,
    "handlers": HandlersConfig,
    "session": SessionConfig,
    "room": RoomConfig,
    "redis": RedisConfig,
    "recovery": RecoveryConfig,
    "api": ApiConfig,
    "metrics": MetricsConfig,
    "admin": AdminConfig,
    "app": AppConfig,
}

MIN_SECRET_BYTES = 32
"""Shortest ``[session] secret``, ``[api] key`` or ``[metrics] key`` accepted outside debug/demo."""

DEMO_SECRET = "demo-secret-not-for-production"
"""The session secret of examples/login_timeout (``make run``): public, so refused unless
``[server] demo``."""

_KEY_SECRETS = (("session", "secret"), ("api", "key"), ("metrics", "key"))

_SECRET_KEYS = {("session", "secret"), ("api", "key"), ("admin", "password"), ("metrics", "key")}


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
        """Defaults, then the file (if any), then ``TETHER_*`` from ``env`` (default ``os.environ``), then
        ``overrides``.

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
            for present in ("session", "admin"):
                if present in data:
                    raw[present].setdefault("enabled", True)
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
        if self.server.worker_start_timeout <= 0:
            raise ConfigError(src, "server.worker_start_timeout", "must be > 0")
        if self.server.stop_grace < 0 or self.server.restart_stable_after < 0:
            raise ConfigError(src, "server.stop_grace", "stop_grace and restart_stable_after must be >= 0")
        if not 0 < self.server.restart_backoff_min <= self.server.restart_backoff_max:
            raise ConfigError(
                src, "server.restart_backoff_min", "must be > 0 and <= server.restart_backoff_max"
            )
        if self.server.restart_max_failures < 0:
            raise ConfigError(src, "server.restart_max_failures", "must be >= 0")
        for key in ("ping_interval", "ping_timeout", "connect_timeout"):
            if getattr(ws, key) <= 0:
                raise ConfigError(src, f"websocket.{key}", "must be > 0")
        if ws.max_payload < 64:
            raise ConfigError(src, "websocket.max_payload", "must be at least 64 bytes")
        for key in ("path", "ws_path"):
            value = getattr(ws, key)
            if not value.startswith("/"):
                raise ConfigError(src, f"websocket.{key}", "must start with '/'")
        if self.limits.max_fragments < 1:
            raise ConfigError(src, "limits.max_fragments", "must be >= 1")
        if self.limits.max_name_length < 1:
            raise ConfigError(src, "limits.max_name_length", "must be >= 1")
        if not 1 <= self.limits.max_depth <= 254:
            raise ConfigError(src, "limits.max_depth", "must be between 1 and 254")
        if self.limits.slow_consumer_policy not in ("disconnect", "drop"):
            raise ConfigError(src, "limits.slow_consumer_policy", "must be 'disconnect' or 'drop'")
        if self.server.net not in ("uvloop", "aiofastnet"):
            raise ConfigError(src, "server.net", "must be 'uvloop' or 'aiofastnet'")
        if self.redis.request_timeout <= 0 or self.redis.reconnect_max <= 0 or self.redis.max_queue < 1:
            raise ConfigError(src, "redis", "request_timeout and reconnect_max must be > 0, max_queue >= 1")
        if self.room.driver not in ("memory", "redis", "redis-streams"):
            raise ConfigError(src, "room.driver", "must be 'memory', 'redis' or 'redis-streams'")
        if self.session.enabled and not self.session.secret and not self.session.validator:
            raise ConfigError(
                src, "session.secret", "[session] needs a secret (or TETHER_SESSION_SECRET) or a validator"
            )
        warn = self.session.warn_before
        if warn != 0 and (warn < 0 or warn >= self.session.idle_timeout):
            raise ConfigError(src, "session.warn_before", "must be 0 or less than idle_timeout")
        h = self.handlers
        if h.threads < 0 or h.threads > 1024:
            raise ConfigError(src, "handlers.threads", "must be between 0 and 1024")
        if h.block_warning < 0:
            raise ConfigError(src, "handlers.block_warning", "must be >= 0")
        if h.ack_timeout <= 0 or h.leader_ttl <= 0:
            raise ConfigError(src, "handlers", "ack_timeout and leader_ttl must be > 0")
        if self.session.idle_timeout <= 0:
            raise ConfigError(src, "session.idle_timeout", "must be > 0")
        if self.metrics.listen:
            try:
                parse_listen(self.metrics.listen)
            except ValueError as exc:
                raise ConfigError(src, "metrics.listen", str(exc)) from None
        if not self.metrics.path.startswith("/"):
            raise ConfigError(src, "metrics.path", "must start with '/'")
        rec = self.recovery
        if rec.max_disconnection_duration < 0:
            raise ConfigError(src, "recovery.max_disconnection_duration", "must be >= 0 (0: off)")
        for key in ("max_session_bytes", "max_buffer_bytes", "max_sessions"):
            if getattr(rec, key) < 0:
                raise ConfigError(src, f"recovery.{key}", "must be >= 0 (0: no limit)")
        if rec.max_disconnection_duration > 0 and self.room.driver == "redis":
            # Pub/sub keeps nothing: a node cannot find what another node sent while the client was away
            # (the reference's Redis pub/sub adapter cannot recover either).
            raise ConfigError(
                src,
                "recovery.max_disconnection_duration",
                'connection state recovery needs [room] driver = "memory" (one host) or "redis-streams": '
                "the Redis pub/sub adapter keeps no log to recover from",
            )
        self._validate_admin()
        self._validate_secrets()
        if "*" in ws.allowed_origins and len(ws.allowed_origins) > 1:
            raise ConfigError(src, "websocket.allowed_origins", '"*" allows any origin: list it alone')
        if self.app.lifespan not in ("auto", "on", "off"):
            raise ConfigError(src, "app.lifespan", "must be 'auto', 'on' or 'off'")
        if self.app.asgi and ":" not in self.app.asgi:
            raise ConfigError(src, "app.asgi", "must be 'module:attr'")
        if bool(self.server.tls_cert) != bool(self.server.tls_key):
            raise ConfigError(src, "server.tls_cert", "tls_cert and tls_key go together")

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

    def _validate_admin(self) -> None:
        src = self.source
        admin = self.admin
        if not admin.namespace.startswith("/") or admin.namespace == "/":
            raise ConfigError(src, "admin.namespace", "must start with '/' and not be the main namespace '/'")
        if admin.mode not in ("development", "production"):
            raise ConfigError(src, "admin.mode", "must be 'development' or 'production'")
        if admin.stats_interval <= 0 or admin.session_ttl <= 0:
            raise ConfigError(src, "admin", "stats_interval and session_ttl must be > 0")
        if admin.enabled and admin.auth:
            if not admin.password:
                raise ConfigError(
                    src,
                    "admin.password",
                    "[admin] needs a bcrypt password hash (or auth = false, trusted networks)",
                )
            if not _BCRYPT_HASH.fullmatch(admin.password):
                # Not quoted: the value is a secret (and maybe a plain password typed by mistake).
                raise ConfigError(
                    src, "admin.password", "must be a bcrypt hash ($2b$<cost>$..., 60 characters)"
                )


_BCRYPT_HASH = re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}")


def parse_listen(value: str) -> tuple[str, int]:
    """``("127.0.0.1", 9502)`` for ``127.0.0.1:9502``; ``[::1]:9502`` for IPv6 (``[metrics] listen``).

    Raises:
        ValueError: not ``host:port`` with a port from 0 to 65535.
    """
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9502)")
    return host, int(port)


def _parse_env_value(value: str, section_cls: type[Any], key: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
    # A string setting is taken as written unless quoted: TETHER_API_KEY=1e5 is the key "1e5", not 100000.0
    # (nor "100000.0"), and a secret like 2024-01-01 or true must not fail to load with its value in the
    # error.
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
            raise ConfigError(
                source, f"{section}.{key}", f"expected str, got {type(value).__name__}"
            ) from None
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
