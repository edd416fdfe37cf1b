"""The sections of :class:`~tether.config.Config`: one frozen dataclass per ``[section]`` of ``tether.toml``.

Each field is a key, its default and its documentation (docs/configuration.md is generated from this file
by scripts/config_reference.py); each section's ``check`` holds the rules of its own values. Rules that
span sections, and reading the file and the environment, are in :mod:`tether.config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = [
    "SECRET_KEYS",
    "SECTIONS",
    "AdminConfig",
    "ApiConfig",
    "AppConfig",
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
    write_batch: int = 512
    """WebSocket frames are written together at the end of each event-loop iteration (W1 echo: 28 µs of
    CPU per round trip instead of 40); a batch that reaches this many frames is written at once. 0: every
    frame is written as it is made."""
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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(source, "server.port", f"{self.port} is not a TCP port")
        if self.workers < 0:
            raise ConfigError(source, "server.workers", "must be >= 0")
        if self.write_batch < 0:
            raise ConfigError(source, "server.write_batch", "must be >= 0")
        if self.worker_start_timeout <= 0:
            raise ConfigError(source, "server.worker_start_timeout", "must be > 0")
        if self.stop_grace < 0 or self.restart_stable_after < 0:
            raise ConfigError(source, "server.stop_grace", "stop_grace and restart_stable_after must be >= 0")
        if not 0 < self.restart_backoff_min <= self.restart_backoff_max:
            raise ConfigError(
                source, "server.restart_backoff_min", "must be > 0 and <= server.restart_backoff_max"
            )
        if self.restart_max_failures < 0:
            raise ConfigError(source, "server.restart_max_failures", "must be >= 0")
        if self.net not in ("uvloop", "aiofastnet"):
            raise ConfigError(source, "server.net", "must be 'uvloop' or 'aiofastnet'")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(source, "server.tls_cert", "tls_cert and tls_key go together")


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        for key in ("ping_interval", "ping_timeout", "connect_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(source, f"websocket.{key}", "must be > 0")
        if self.max_payload < 64:
            raise ConfigError(source, "websocket.max_payload", "must be at least 64 bytes")
        for key in ("path", "ws_path"):
            if not getattr(self, key).startswith("/"):
                raise ConfigError(source, f"websocket.{key}", "must start with '/'")
        if "*" in self.allowed_origins and len(self.allowed_origins) > 1:
            raise ConfigError(source, "websocket.allowed_origins", '"*" allows any origin: list it alone')


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.max_fragments < 1:
            raise ConfigError(source, "limits.max_fragments", "must be >= 1")
        if self.max_name_length < 1:
            raise ConfigError(source, "limits.max_name_length", "must be >= 1")
        if not 1 <= self.max_depth <= 254:
            raise ConfigError(source, "limits.max_depth", "must be between 1 and 254")
        if self.slow_consumer_policy not in ("disconnect", "drop"):
            raise ConfigError(source, "limits.slow_consumer_policy", "must be 'disconnect' or 'drop'")


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.threads < 0 or self.threads > 1024:
            raise ConfigError(source, "handlers.threads", "must be between 0 and 1024")
        if self.block_warning < 0:
            raise ConfigError(source, "handlers.block_warning", "must be >= 0")
        if self.ack_timeout <= 0 or self.leader_ttl <= 0:
            raise ConfigError(source, "handlers", "ack_timeout and leader_ttl must be > 0")


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.enabled and not self.secret and not self.validator:
            raise ConfigError(
                source, "session.secret", "[session] needs a secret (or TETHER_SESSION_SECRET) or a validator"
            )
        warn = self.warn_before
        if warn != 0 and (warn < 0 or warn >= self.idle_timeout):
            # Both values: one may come from the file and the other from TETHER_SESSION_IDLE_TIMEOUT.
            raise ConfigError(
                source,
                "session.warn_before",
                f"must be 0 or less than idle_timeout (warn_before {warn:g},"
                f" idle_timeout {self.idle_timeout:g})",
            )
        if self.idle_timeout <= 0:
            raise ConfigError(source, "session.idle_timeout", "must be > 0")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    driver: str = "memory"
    """``memory`` (one host, workers linked by the master), ``redis`` (many hosts, pub/sub) or
    ``redis-streams`` (many hosts through a Redis stream: connection state recovery across hosts; node's
    ``@socket.io/redis-streams-adapter`` format)."""

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for an unknown driver (``source`` names the file)."""
        if self.driver not in ("memory", "redis", "redis-streams"):
            raise ConfigError(source, "room.driver", "must be 'memory', 'redis' or 'redis-streams'")


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    """Redis server for ``[room] driver = "redis"`` and ``"redis-streams"``."""
    prefix: str = "socket.io"
    """Channel prefix; the same as node's ``@socket.io/redis-adapter`` ``key`` to share a Redis with it.
    ``redis-streams``: the stream name and the channel prefix (node's ``streamName``, ``channelPrefix``)."""
    request_timeout: float = 5.0
    """Seconds to wait for other nodes' answers (fetch_sockets, counts, user_online; both Redis drivers);
    then partial answers. The workers of one host (no Redis) wait as long for each other's answers through
    the master."""
    max_queue: int = 10_000
    """Messages waiting to be published beyond which new ones are dropped (and counted)."""
    reconnect_max: float = 5.0
    """Longest wait in seconds between two attempts to reach Redis again."""
    stream_max_len: int = 10_000
    """``redis-streams``: the stream's approximate length cap (``MAXLEN ~``, node's ``maxLen``); the stream
    name is ``prefix``."""
    session_prefix: str = "sio:session:"
    """``redis-streams``: key prefix of the sessions kept for recovery (node's ``sessionKeyPrefix``): keys
    ``<session_prefix><private id>``. Every node must say the same."""
    stream_count: int = 1
    """``redis-streams``: node's ``streamCount``: each namespace's entries go to one of this many streams,
    ``<prefix>-<i>`` by a hash of its name (1: the one stream ``prefix``). Every node must say the same."""
    sharded_pubsub: bool = False
    """``redis-streams``: questions and answers through sharded pub/sub (``SPUBLISH``, ``SSUBSCRIBE``,
    ``PUBSUB SHARDNUMSUB``; Redis 7), as node's ``useShardedPubSub: true``: every node of the cluster must
    say the same."""

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if not self.session_prefix:
            raise ConfigError(source, "redis.session_prefix", "must not be empty")
        if self.stream_count < 1:
            raise ConfigError(source, "redis.stream_count", f"must be >= 1, not {self.stream_count}")
        if self.request_timeout <= 0 or self.reconnect_max <= 0 or self.max_queue < 1:
            raise ConfigError(
                source, "redis", "request_timeout and reconnect_max must be > 0, max_queue >= 1"
            )


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.max_disconnection_duration < 0:
            raise ConfigError(source, "recovery.max_disconnection_duration", "must be >= 0 (0: off)")
        for key in ("max_session_bytes", "max_buffer_bytes", "max_sessions"):
            if getattr(self, key) < 0:
                raise ConfigError(source, f"recovery.{key}", "must be >= 0 (0: no limit)")


@dataclass(frozen=True, slots=True)
class ApiConfig:
    key: str = ""
    """Bearer key for the HTTP API; empty: the API is off."""
    max_body: int = 1_000_000
    """Largest API request body in bytes (HTTP 413 past it)."""

    def check(self, source: str) -> None:
        """Nothing to check: an empty key is the API turned off, and any body size is a choice."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    """Keep Prometheus metrics where they are served: a worker started with ``listen`` or ``key`` set keeps
    the per-event tables and handler timings from its start; with neither (the default) nothing reads them,
    so they are not kept (about a tenth of an echo's CPU). ``tether infos`` shows the main counters either
    way. ``false``: never, even when ``listen`` or ``key`` is set."""
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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.listen:
            try:
                parse_listen(self.listen)
            except ValueError as exc:
                raise ConfigError(source, "metrics.listen", str(exc)) from None
        if not self.path.startswith("/"):
            raise ConfigError(source, "metrics.path", "must start with '/'")


@dataclass(frozen=True, slots=True)
class AdminConfig:
    enabled: bool = False
    """True as soon as the ``[admin]`` section is present (or ``TETHER_ADMIN_PASSWORD`` is set): serve the
    Socket.IO admin UI's namespace."""
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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if not self.namespace.startswith("/") or self.namespace == "/":
            raise ConfigError(
                source, "admin.namespace", "must start with '/' and not be the main namespace '/'"
            )
        if self.mode not in ("development", "production"):
            raise ConfigError(source, "admin.mode", "must be 'development' or 'production'")
        if self.stats_interval <= 0 or self.session_ttl <= 0:
            raise ConfigError(source, "admin", "stats_interval and session_ttl must be > 0")
        if self.enabled and self.auth:
            if not self.password:
                raise ConfigError(
                    source,
                    "admin.password",
                    "[admin] needs a bcrypt password hash (or auth = false, trusted networks)",
                )
            if not _BCRYPT_HASH.fullmatch(self.password):
                # Not quoted: the value is a secret (and maybe a plain password typed by mistake).
                raise ConfigError(
                    source, "admin.password", "must be a bcrypt hash ($2b$<cost>$..., 60 characters)"
                )


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

    def check(self, source: str) -> None:
        """Raises :class:`~tether.errors.ConfigError` for a value out of range (``source`` names the file)."""
        if self.lifespan not in ("auto", "on", "off"):
            raise ConfigError(source, "app.lifespan", "must be 'auto', 'on' or 'off'")
        if self.asgi and ":" not in self.asgi:
            raise ConfigError(source, "app.asgi", "must be 'module:attr'")


SECTIONS: dict[str, type[Any]] = {
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
"""Section name -> its dataclass, in the order of docs/configuration.md."""

SECRET_KEYS = frozenset({("session", "secret"), ("api", "key"), ("admin", "password"), ("metrics", "key")})
"""``(section, key)`` of the settings never logged nor quoted in an error."""

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
