"""The control socket: how ``tether stop|reload|infos|restart`` talk to a running master.

One request per connection, as one JSON line each way::

    > {"cmd": "infos"}
    < {"ok": true, "pid": 1234, "workers": [...], ...}
    > {"cmd": "reload"}
    < {"ok": false, "error": "new worker failed to start: ConfigError: ..."}

Commands: ``ping``, ``infos``, ``reload`` (answers when the reload is over), ``stop`` (answers at once;
``{"force": true}`` or a second stop forces), ``launch`` (the arguments the instance was started with).
The socket is a Unix socket created with mode 0600 and the master also checks the peer's uid
(``SO_PEERCRED``): only the user running tether (or root) may control it. The CLI checks the other way
too: a socket served by another account (planted in the run folder) is not asked anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["ControlError", "ControlServer", "request"]

log = logging.getLogger("tether.manager.control")

MAX_LINE = 1 << 20

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The master did not answer on its control socket."""


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    """The master's side: serves ``path`` and answers each request with ``handler(request)``."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen on ``path`` with mode 0600 (a file left by a dead master is replaced).

        Raises:
            OSError: the path is too long for a Unix socket or its folder is not writable.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        # asyncio is imported by the master that serves, not by the CLI that only calls `request`.
        import asyncio

        old = os.umask(0o177)  # created 0600: no window where another user could connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, self.path, limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio  # loaded by start(): a lookup in sys.modules

        try:
            sock = writer.get_extra_info("socket")
            uid = _peer_uid(sock) if sock is not None else os.getuid()
            if uid not in (os.getuid(), 0):
                log.warning("! control request from uid %d refused", uid)
                return
            async with asyncio.timeout(10):
                line = await reader.readline()
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                reply: dict[str, Any] = {"ok": False, "error": f"bad request: {exc}"}
            else:
                reply = await self.handler(req)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            log.debug("! control connection: %s", exc)
        except Exception:
            log.exception("! control request failed")
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def request(path: str, cmd: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
    """Send one command to the master at ``path`` and return its answer (blocking; used by the CLI).

    Raises:
        ControlError: nothing listens at ``path``, or it did not answer within ``timeout`` seconds.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise ControlError(f"no master answers on {path}: {exc.strerror or exc}") from exc
        uid = _peer_uid(sock)
        if uid not in (os.getuid(), 0):
            raise ControlError(f"{path} is served by uid {uid}, not by this user: not asked")
        sock.sendall(json.dumps({"cmd": cmd, **params}).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError as exc:
                raise ControlError(
                    f"the master on {path} did not answer {cmd!r} within {timeout:g}s"
                ) from exc
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_LINE:
                raise ControlError("answer too long")
    finally:
        sock.close()
    if not buf:
        raise ControlError(f"the master on {path} closed the connection without answering {cmd!r}")
    reply = json.loads(buf)
    if not isinstance(reply, dict):
        raise ControlError(f"unexpected answer: {reply!r}")
    return reply
