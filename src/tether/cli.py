"""``tether start|stop|restart|reload|infos|token``: flags -> Config -> Server.

The CLI only parses flags into a :class:`~tether.config.Config`; every flag also has a ``TETHER_*``
environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .config import Config
from .errors import ConfigError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description="Tether realtime WebSocket server")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the server (foreground)")
    start.add_argument("--config", "-c", help="tether.toml (env TETHER_CONFIG)")
    start.add_argument("--host", help="listen address (env TETHER_SERVER_HOST)")
    start.add_argument("--port", type=int, help="listen port (env TETHER_SERVER_PORT)")
    start.add_argument("--workers", "-w", type=int, help="worker processes (env TETHER_SERVER_WORKERS)")
    start.add_argument("--routes", help="route file (env TETHER_WEBSOCKET_ROUTE_FILE)")
    start.add_argument("--log-level", help="debug, info, warning (env TETHER_SERVER_LOG_LEVEL)")
    return parser


def load_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, dict[str, object]] = {"server": {}, "websocket": {}}
    for flag, section, key in (
        ("host", "server", "host"),
        ("port", "server", "port"),
        ("workers", "server", "workers"),
        ("log_level", "server", "log_level"),
        ("routes", "websocket", "route_file"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[section][key] = value
    import os

    path = getattr(args, "config", None) or os.environ.get("TETHER_CONFIG") or None
    return Config.load(path, overrides=overrides)


def _start_foreground(config: Config) -> int:
    import uvloop

    from .server import Server

    logging.basicConfig(
        level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = Server(config)  # imports the route file: fails here, before anything listens

    async def run() -> None:
        await server.startup()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        print(f"tether serving on {server.url} (config: {config.source})", flush=True)
        await server.main_loop()
        await server.shutdown()

    uvloop.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
        if args.command == "start":
            return _start_foreground(config)
    except ConfigError as exc:
        print(f"tether: config error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tether: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
