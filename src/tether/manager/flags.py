"""The flags of the service commands, and the :class:`~tether.config.Config` they describe.

Every command takes ``--config FILE`` (env ``TETHER_CONFIG``); every other flag has a ``TETHER_*`` variable
too (listed in each flag's help and in docs/cli.md). The flags that name a config key override the config
file, as its ``TETHER_SECTION_KEY`` variable does.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..config import Config

__all__ = ["CONFIG_HERE", "add_subcommands", "config_path", "err", "flag_overrides", "load_config"]

# flag -> (section, key): these flags override the config file, like TETHER_SECTION_KEY does.
_FLAG_KEYS = (
    ("host", "server", "host"),
    ("port", "server", "port"),
    ("workers", "server", "workers"),
    ("log_level", "server", "log_level"),
    ("pid_file", "server", "pid_file"),
    ("log_file", "server", "log_file"),
    ("control_socket", "server", "control_socket"),
    ("stop_timeout", "server", "stop_timeout"),
    ("routes", "websocket", "route_file"),
    ("app", "app", "asgi"),
)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="tether.toml of the instance (env TETHER_CONFIG)")


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pid-file", help="pid file (env TETHER_SERVER_PID_FILE)")
    p.add_argument("--control-socket", help="control socket (env TETHER_SERVER_CONTROL_SOCKET)")


def _add_port(p: argparse.ArgumentParser) -> None:
    # What `start --routes r.py --port 9623` was started with names its run files (run/tether-9623.*):
    # the same flag finds it again, from the folder it was started in.
    p.add_argument(
        "--port",
        type=int,
        help="the port of an instance started without a config file, in this folder (env TETHER_SERVER_PORT)",
    )


def add_subcommands(sub: Any) -> None:
    """Register start/stop/restart/reload/infos on the CLI's subparsers."""
    start = sub.add_parser("start", help="start the server: a master and its workers (foreground unless -d)")
    _add_config(start)
    start.add_argument(
        "-d",
        "--daemon",
        action="store_true",
        default=_env_flag("TETHER_DAEMON"),
        help="run in the background; log to the log file (env TETHER_DAEMON=1)",
    )
    start.add_argument(
        "--check",
        action="store_true",
        help="check the config and import the app as a worker would, then exit (0 good, 2 bad)",
    )
    start.add_argument("--host", help="listen address (env TETHER_SERVER_HOST)")
    start.add_argument("--port", type=int, help="listen port; 0 picks a free one (env TETHER_SERVER_PORT)")
    start.add_argument(
        "--workers", "-w", type=int, help="worker processes; 0: one per core (env TETHER_SERVER_WORKERS)"
    )
    start.add_argument("--routes", help="route file (env TETHER_WEBSOCKET_ROUTE_FILE)")
    start.add_argument(
        "--app", help="module:attr of an ASGI app served on the same port (env TETHER_APP_ASGI)"
    )
    start.add_argument("--log-level", help="debug, info, warning (env TETHER_SERVER_LOG_LEVEL)")
    start.add_argument("--log-file", help="log file of a daemon (env TETHER_SERVER_LOG_FILE)")
    start.add_argument(
        "--stop-timeout",
        type=float,
        help="seconds stop/reload wait for handlers (env TETHER_SERVER_STOP_TIMEOUT)",
    )
    _add_paths(start)

    stop = sub.add_parser("stop", help="stop gracefully: clients are told to reconnect, handlers finish")
    _add_config(stop)
    _add_paths(stop)
    _add_port(stop)
    stop.add_argument(
        "--force",
        action="store_true",
        default=_env_flag("TETHER_STOP_FORCE"),
        help="kill the workers now (env TETHER_STOP_FORCE=1); a second stop also forces",
    )
    stop.add_argument(
        "--wait", type=float, help="seconds to wait for the exit (default: stop_timeout + stop_grace + 5)"
    )

    restart = sub.add_parser(
        "restart",
        help="stop, then start again with the arguments the instance was started with; start it if stopped",
    )
    _add_config(restart)
    _add_paths(restart)
    _add_port(restart)
    restart.add_argument(
        "--wait", type=float, help="seconds to wait for the stop (default: stop_timeout + stop_grace + 5)"
    )

    reload = sub.add_parser(
        "reload", help="rolling reload: new workers with fresh routes and config, no dropped service"
    )
    _add_config(reload)
    _add_paths(reload)
    _add_port(reload)

    infos = sub.add_parser(
        "infos", help="what the running instance is doing: workers, connections, TCP states"
    )
    _add_config(infos)
    _add_paths(infos)
    _add_port(infos)
    infos.add_argument(
        "--all",
        action="store_true",
        help="every instance of this user on this host (from the per-user runtime folder)",
    )
    infos.add_argument(
        "--json",
        action="store_true",
        default=_env_flag("TETHER_INFOS_JSON"),
        help="JSON for scripts (env TETHER_INFOS_JSON=1)",
    )


def flag_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for flag, section, key in _FLAG_KEYS:
        value = getattr(args, flag, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def config_path(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None) or os.environ.get("TETHER_CONFIG") or None


def load_config(args: argparse.Namespace) -> Config:
    """The config the flags, ``TETHER_*`` variables and the config file describe.

    Raises:
        ConfigError: a bad file, key or value.
    """
    return Config.load(config_path(args), overrides=flag_overrides(args))


CONFIG_HERE = "tether.toml"
"""The config file name the docs use: named in the hints when it lies in the current folder unread."""


def err(message: str) -> None:
    print(f"tether: {message}", file=sys.stderr, flush=True)
