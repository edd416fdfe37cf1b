"""The asyncio shell: transports that feed the sans-I/O core, and the server that routes its events."""

from .server import Server, run_server

__all__ = ["Server", "run_server"]
