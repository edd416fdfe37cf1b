"""The service commands: ``tether start|stop|restart|reload|infos``. Flags -> Config -> Master.

The flags and the config they describe are :mod:`.flags`; ``start`` is :mod:`.start`; the commands that
talk to a running instance (``stop``, ``restart``, ``reload``, ``infos``) are :mod:`.running`. This module
is what the CLI calls; it imports each command's module when that command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .flags import add_subcommands, load_config

__all__ = ["COMMANDS", "add_subcommands", "load_config", "run"]

COMMANDS = ("start", "stop", "restart", "reload", "infos")


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the subcommand in ``args``; ``argv`` is what the user typed (kept for ``restart``)."""
    command = args.command
    # Imported per command: ``start`` brings the master and the server stack (asyncio, picows, the
    # cluster), which ``stop``/``infos``/``reload`` must not pay for on every call (tests/test_init.py).
    if command == "start":
        from .start import cmd_start

        return cmd_start(args, list(argv))
    from .running import cmd_infos, cmd_reload, cmd_restart, cmd_stop

    if command == "stop":
        return cmd_stop(args)
    if command == "restart":
        return cmd_restart(args)
    if command == "reload":
        return cmd_reload(args)
    if command == "infos":
        return cmd_infos(args)
    raise AssertionError(command)
