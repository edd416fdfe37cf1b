"""``tether start|stop|restart|reload|infos|token``: flags -> Config -> Server.

The CLI only parses flags into a :class:`~tether.config.Config`; every flag also has a ``TETHER_*``
environment variable. The service commands live in :mod:`tether.manager.commands`; other subcommands
register on the same subparsers in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import Config
from .manager import commands as service

__all__ = ["build_parser", "load_config", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description="Tether realtime WebSocket server")
    sub = parser.add_subparsers(dest="command", required=True)
    service.add_subcommands(sub)  # start, stop, restart, reload, infos
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``--config`` / ``TETHER_CONFIG``, ``TETHER_*`` variables and the flags in ``args``.

    Raises:
        ConfigError: a bad file, key or value.
    """
    return service.load_config(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in service.COMMANDS:
        return service.run(args, argv)
    return 0
