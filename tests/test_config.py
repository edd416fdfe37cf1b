"""Config: defaults, then tether.toml, then TETHER_* variables, then overrides; errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether import Config, ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tether.toml"
    path.write_text(text)
    return path


def test_defaults_serve_on_127_0_0_1_9501() -> None:
    config = Config.load(None, env={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 9501)
    ws = config.websocket
    assert (ws.path, ws.ws_path, ws.parser) == ("/socket.io/", "/ws", "socketio")
    assert (ws.ping_interval, ws.ping_timeout, ws.max_payload) == (25.0, 20.0, 1_000_000)
    assert ws.allowed_origins == ()
    assert config.source == "<defaults>"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
port = 9000
workers = 2

[websocket]
ping_interval = 5
allowed_origins = ["https://a.example", "https://b.example"]
route_file = "routes.py"
""",
    )
    env = {"TETHER_SERVER_WORKERS": "3", "TETHER_WEBSOCKET_PARSER": "json", "OTHER": "x"}
    config = Config.load(path, env=env, overrides={"websocket": {"ping_timeout": 1.5}})
    assert config.server.port == 9000  # file
    assert config.server.workers == 3  # env beats file
    assert config.websocket.parser == "json"  # env string
    assert config.websocket.ping_interval == 5.0 and isinstance(config.websocket.ping_interval, float)
    assert config.websocket.ping_timeout == 1.5  # override
    assert config.websocket.allowed_origins == ("https://a.example", "https://b.example")
    assert config.source == str(path)
    assert config.resolve_path(config.websocket.route_file) == str(tmp_path.resolve() / "routes.py")
    assert config.resolve_path("/abs/x") == "/abs/x"


def test_overrides_beat_env() -> None:
    config = Config.load(None, env={"TETHER_SERVER_PORT": "9100"}, overrides={"server": {"port": 0}})
    assert config.server.port == 0


def test_env_values_are_parsed_as_toml_values() -> None:
    env = {
        "TETHER_SERVER_DEBUG": "true",
        "TETHER_WEBSOCKET_MAX_PAYLOAD": "2048",
        "TETHER_WEBSOCKET_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "TETHER_SERVER_HOST": "0.0.0.0",
        "TETHER_TESTS_TIMEOUT_FACTOR": "3",  # the test suite's own variable is not config
        "TETHER_NOSECTION": "1",
    }
    config = Config.load(None, env=env)
    assert config.server.debug is True
    assert config.websocket.max_payload == 2048
    assert config.websocket.allowed_origins == ("https://a.example", "https://b.example")
    assert config.server.host == "0.0.0.0"


def test_from_env_reads_tether_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9002\n")
    assert Config.from_env({"TETHER_CONFIG": str(path)}).server.port == 9002


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ("[serveur]\nport = 1\n", "serveur", "unknown section"),
        ("server = 1\n", "server", "must be a table"),
        ('[server]\nport = "x"\n', "server.port", "expected int, got str 'x'"),
        ("[server]\nport = 70000\n", "server.port", "70000 is not a TCP port"),
        ("[server]\nworkers = -1\n", "server.workers", "must be >= 0"),
        ("[server]\ndebug = 1\n", "server.debug", "expected bool"),
        ("[websocket]\nping_interval = 0\n", "websocket.ping_interval", "must be > 0"),
        ("[websocket]\nping_timeout = true\n", "websocket.ping_timeout", "expected float"),
        ("[websocket]\nmax_payload = 10\n", "websocket.max_payload", "must be at least 64 bytes"),
        ('[websocket]\npath = "socket.io"\n', "websocket.path", "must start with '/'"),
        ("[websocket]\nallowed_origins = [1]\n", "websocket.allowed_origins", "expected a list of strings"),
        (
            '[limits]\nslow_consumer_policy = "x"\n',
            "limits.slow_consumer_policy",
            "must be 'disconnect' or 'drop'",
        ),
        ('[server]\ntls_cert = "c.pem"\n', "server.tls_cert", "tls_cert and tls_key go together"),
        ("[server\n", "-", "not valid TOML"),
    ],
)
def test_bad_file_names_file_key_and_reason(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    err = info.value
    assert (err.source, err.key) == (str(path), key)
    assert reason in err.reason
    assert str(err).startswith(f"{path}: {key}: ")
    assert isinstance(err, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Config.load(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("off", False)],
)
def test_switch_variables_take_1_and_0(value: str, expected: bool) -> None:
    # TETHER_ADMIN_ENABLED=1 stopped the app with "expected bool, got int 1" (docs/cli.md teaches
    # TETHER_DAEMON=1 for the CLI's switches).
    assert Config.load(None, env={"TETHER_SERVER_DEBUG": value}).server.debug is expected
    with pytest.raises(ConfigError, match="expected bool"):
        Config.load(None, env={"TETHER_SERVER_DEBUG": "2"})


def test_a_password_hash_in_the_environment_turns_the_admin_ui_on() -> None:
    # As TETHER_SESSION_SECRET turns [session] on: under uvicorn (Config.from_env, no file) the admin UI was
    # refused with only TETHER_ADMIN_PASSWORD set, as docs/admin-ui.md offers it.
    password = "$2b$04$" + "a" * 53
    config = Config.load(None, env={"TETHER_ADMIN_PASSWORD": password})
    assert config.admin.enabled and config.admin.password == password
    assert not Config.load(None, env={"TETHER_ADMIN_PASSWORD": ""}).admin.enabled
    assert not Config.load(
        None, env={"TETHER_ADMIN_PASSWORD": password, "TETHER_ADMIN_ENABLED": "0"}
    ).admin.enabled


def test_bad_env_value_names_the_key_and_the_variable(tmp_path: Path) -> None:
    # `TETHER_SESSION_IDLE_TIMEOUT=5m tether start -c blue.toml` said "blue.toml: session.idle_timeout:
    # expected float, got str '5m'": the operator looked for 5m in blue.toml. The variable is the source.
    with pytest.raises(ConfigError) as info:
        Config.load(None, env={"TETHER_SERVER_PORT": "abc"})
    assert (info.value.source, info.value.key) == ("TETHER_SERVER_PORT", "server.port")
    with pytest.raises(ConfigError, match=r"^TETHER_SERVER_PROT: server\.prot: unknown key"):
        Config.load(None, env={"TETHER_SERVER_PROT": "1"})
    path = write(tmp_path, "[session]\nsecret = '" + "s" * 32 + "'\nidle_timeout = 60\n")
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={"TETHER_SESSION_IDLE_TIMEOUT": "5m"})
    expected = "TETHER_SESSION_IDLE_TIMEOUT: session.idle_timeout: expected float, got str '5m'"
    assert str(info.value) == expected
    with pytest.raises(ConfigError, match=r"^TETHER_SERVER_WORKERS: server\.workers: must be >= 0"):
        Config.load(path, env={"TETHER_SERVER_WORKERS": "-1"})
    # A check of two keys gives both values: warn_before from the file, idle_timeout from the variable.
    demo = write(tmp_path, "[session]\nsecret = '" + "s" * 32 + "'\nidle_timeout = 60\nwarn_before = 20\n")
    with pytest.raises(ConfigError, match=r"less than idle_timeout \(warn_before 20, idle_timeout 10\)$"):
        Config.load(demo, env={"TETHER_SESSION_IDLE_TIMEOUT": "10"})
    # The file's own mistakes still name the file, even with variables set for other keys.
    bad = write(tmp_path, "[server]\nworkers = -1\n")
    with pytest.raises(ConfigError) as info:
        Config.load(bad, env={"TETHER_SERVER_PORT": "9100"})
    assert info.value.source == str(bad)
    # A flag (an override) beats the variable: an error about it is not the variable's.
    with pytest.raises(ConfigError) as info:
        Config.load(None, env={"TETHER_SERVER_WORKERS": "2"}, overrides={"server": {"workers": -1}})
    assert info.value.source == "<defaults>"


def test_bad_override() -> None:
    with pytest.raises(ConfigError, match=r"websocket\.nope: unknown key"):
        Config.load(None, env={}, overrides={"websocket": {"nope": 1}})


def test_replace_and_frozen() -> None:
    config = Config.load(None, env={})
    other = config.replace(server={"port": 0}, websocket={"parser": "raw"})
    assert (other.server.port, other.websocket.parser) == (0, "raw")
    assert config.server.port == 9501
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]


def test_redacted_hides_secrets() -> None:
    secret, key = "s3cret" + "s" * 32, "k3y" + "k" * 32
    config = Config.load(None, env={"TETHER_SESSION_SECRET": secret, "TETHER_API_KEY": key})
    out = config.redacted()
    assert out["session"]["secret"] == "***" and out["api"]["key"] == "***"
    assert secret not in repr(out) and key not in repr(out)
    assert out["server"]["port"] == 9501


def test_session_section_needs_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, "[session]\nidle_timeout = 60\n")
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    assert info.value.key == "session.secret"
    assert Config.load(path, env={"TETHER_SESSION_SECRET": "x" * 32}).session.enabled


def test_example_config_loads() -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "login_timeout" / "tether.toml"
    config = Config.load(path, env={})
    assert config.websocket.route_file == "routes.py"


@pytest.mark.parametrize(
    ("section", "key", "env"),
    [
        ("session", "secret", "TETHER_SESSION_SECRET"),
        ("api", "key", "TETHER_API_KEY"),
        ("metrics", "key", ""),
    ],
)
def test_secrets_shorter_than_32_bytes_are_refused(section: str, key: str, env: str) -> None:
    """Issue 13, item 9: exactly 32 bytes loads, 31 does not; debug or demo accept a short one."""
    assert getattr(getattr(Config.load(None, env={}, overrides={section: {key: "x" * 32}}), section), key)
    assert Config.load(None, env={}, overrides={section: {key: "é" * 16}})  # 32 bytes in UTF-8
    with pytest.raises(ConfigError, match="shorter than 32 bytes") as info:
        Config.load(None, env={}, overrides={section: {key: "x" * 31}})
    assert info.value.key == f"{section}.{key}" and "x" * 31 not in str(info.value)
    if env:
        with pytest.raises(ConfigError, match="shorter than 32 bytes"):
            Config.load(None, env={env: "k"})
    for mode in ("debug", "demo"):
        Config.load(None, env={}, overrides={section: {key: "k"}, "server": {mode: True}})


def test_the_demo_secret_is_refused_outside_the_demo(tmp_path: Path) -> None:
    from tether.config import DEMO_SECRET

    with pytest.raises(ConfigError, match="demo's published secret"):
        Config.load(None, env={"TETHER_SESSION_SECRET": DEMO_SECRET})
    with pytest.raises(ConfigError, match="demo's published secret"):
        Config.load(None, env={}, overrides={"session": {"secret": DEMO_SECRET}, "server": {"debug": True}})
    demo = Path(__file__).resolve().parent.parent / "examples" / "login_timeout" / "tether.toml"
    assert Config.load(demo, env={}).session.secret == DEMO_SECRET  # the demo itself: make run works
    # The demo's file with a deployment's own secret from the environment is no demo any more.
    copy = tmp_path / "tether.toml"
    copy.write_text(demo.read_text().replace("demo = true", "demo = false"))
    with pytest.raises(ConfigError, match="demo's published secret"):
        Config.load(copy, env={})


def test_any_origin_is_listed_alone() -> None:
    with pytest.raises(ConfigError, match="list it alone"):
        Config.load(None, env={}, overrides={"websocket": {"allowed_origins": ["*", "https://a.example"]}})


def test_redis_streams_keys_are_refused_with_another_driver() -> None:
    # Only the redis-streams driver reads them: set for "redis" (whose node counterpart has a sharded
    # variant too) or "memory", they did nothing and said nothing.
    changed = {"sharded_pubsub": True, "stream_count": 2, "session_prefix": "app:", "stream_max_len": 5}
    for key, value in changed.items():
        streams = Config.load(env={}, overrides={"room": {"driver": "redis-streams"}, "redis": {key: value}})
        assert getattr(streams.redis, key) == value
        for driver in ("memory", "redis"):
            default = getattr(Config.load(env={}).redis, key)
            Config.load(env={}, overrides={"room": {"driver": driver}, "redis": {key: default}})  # the edge
            with pytest.raises(
                ConfigError, match=rf'redis.{key}: .*driver = "redis-streams" only.*"{driver}"'
            ):
                Config.load(env={}, overrides={"room": {"driver": driver}, "redis": {key: value}})


def test_recovery_keys_and_their_bounds() -> None:
    config = Config.load(env={}, overrides={"recovery": {"max_disconnection_duration": 120}})
    assert config.recovery.max_disconnection_duration == 120.0 and config.recovery.skip_connect_handler
    assert Config.load(env={}).recovery.max_disconnection_duration == 0  # off by default, as in socket.io
    for key in ("max_disconnection_duration", "max_session_bytes", "max_buffer_bytes", "max_sessions"):
        Config.load(env={}, overrides={"recovery": {key: 0}})  # the edge: 0 is off / no limit
        with pytest.raises(ConfigError, match=f"recovery.{key}"):
            Config.load(env={}, overrides={"recovery": {key: -1}})
    with pytest.raises(ConfigError, match="Redis pub/sub"):
        overrides = {"recovery": {"max_disconnection_duration": 1}, "room": {"driver": "redis"}}
        Config.load(env={}, overrides=overrides)
