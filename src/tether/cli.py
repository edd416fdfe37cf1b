"""``tether start|stop|restart|reload|infos|token``: flags -> Config -> Server.

The CLI only parses flags into a :class:`~tether.config.Config`; every flag also has a ``TETHER_*``
environment variable. The service commands live in :mod:`tether.manager.commands`; other subcommands
register on the same subparsers in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from .config import Config
from .errors import ConfigError
from .manager import commands as service

__all__ = ["build_parser", "load_config", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description="Tether realtime WebSocket server")
    sub = parser.add_subparsers(dest="command", required=True)
    service.add_subcommands(sub)  # start, stop, restart, reload, infos
    _add_token_parser(sub)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``--config`` / ``TETHER_CONFIG``, ``TETHER_*`` variables and the flags in ``args``.

    Raises:
        ConfigError: a bad file, key or value.
    """
    return service.load_config(args)


# -- tether token (sessions) --------------------------------------------------------------------------


def _add_token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="print a signed session token for a user (tests, scripts, the demo)")
    token.add_argument("user_id", metavar="USER_ID", help="the user the token is for")
    token.add_argument("--session", help="session id (default: a new random one)")
    token.add_argument("--config", "-c", help="tether.toml with [session] secret (env TETHER_CONFIG)")


def _token(args: argparse.Namespace) -> int:
    from .sessions import issue_token

    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"tether: config error: {exc}", file=sys.stderr)
        return 2
    if not config.session.secret:
        print("tether: config error: no [session] secret (config or TETHER_SESSION_SECRET)", file=sys.stderr)
        return 2
    try:
        print(issue_token(args.user_id, args.session, config=config))
    except ValueError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return 2
    return 0


# -----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command in service.COMMANDS:
            return service.run(args, argv)
        if args.command == "token":
            return _token(args)
    except BrokenPipeError:
        # `tether infos | head -3`: the reader left. Exit quietly, as a shell tool does, and point stdout
        # at /dev/null so that the interpreter's final flush does not raise again (Python's docs, "Note on
        # SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        # The process ends next (this is the `tether` command's entry point). A master that served in the
        # foreground would otherwise spend 0.4 s in the interpreter's teardown collections over its heap
        # before its service manager or shell sees it exit; frozen objects are skipped by them.
        gc.freeze()
    return 0
