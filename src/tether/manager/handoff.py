"""Sticky long-polling with several workers: a connection that names another worker's session moves there.

The kernel spreads new TCP connections over the workers that share the listening socket, so a polling
client's requests (or its WebSocket upgrade) may reach any worker, while its session lives in one. Every
Engine.IO sid starts with its worker's id (``"3.<random>"``). A worker that gets a request for a sid it does
not have, whose prefix names a live worker, passes the TCP connection itself to that worker:

1. :class:`Handoff` (the server's ``foreign_sid_handler``) duplicates the socket's file descriptor and
   closes its own transport (the duplicate keeps the connection open: no FIN is sent);
2. it connects to the owner's Unix socket and sends the descriptor (``SCM_RIGHTS``) and the request bytes
   it has already read;
3. the owner wraps the descriptor in a new :class:`HttpProtocol` and replays the bytes into it; the request
   is answered there, and later requests on that keep-alive connection go straight to the owner.

Clients reuse their keep-alive connections, so after the first hand-off most requests need none. A hand-off
that fails (the owner just exited) falls back to answering here, which says "Session ID unknown": the client
then reconnects, as after any lost session. TLS connections cannot move (their TLS state is in this process):
with ``tls_cert`` set and several workers, use the WebSocket transport or terminate TLS in a proxy.

Hand-off frame on the Unix socket: ``!I`` length of the data, then the data; the descriptor rides with the
first bytes. Each hand-off uses its own short connection, so a slow receiver never blocks another one.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..server.http import HttpProtocol

if TYPE_CHECKING:
    from ..server.server import Server

__all__ = ["Handoff", "owner_of"]

log = logging.getLogger("tether.manager.handoff")

_LEN = struct.Struct("!I")
MAX_DATA = 64 * 1024 * 1024


def owner_of(sid: str) -> int | None:
    """The worker id in a sid's prefix (``"3.abc"`` -> 3), or None for a sid without one."""
    prefix, dot, _ = sid.partition(".")
    if not dot or not prefix.isdigit() or len(prefix) > 9:
        return None
    return int(prefix)


class _Adopted(HttpProtocol):
    """An HttpProtocol for a connection another worker read from: replays what it read, then goes on."""

    def __init__(self, server: Server, data: bytes, handoff_allowed: bool) -> None:
        super().__init__(server)
        self._replay = data
        self.handoff_allowed = handoff_allowed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        data, self._replay = self._replay, b""
        if data:
            self.data_received(data)


class Handoff:
    """Sends connections to the workers that own their sessions, and adopts the ones sent here.

    Args:
        server: this worker's server.
        wid: this worker's id.
        path_of: the Unix socket path of worker ``n``'s hand-off listener.
    """

    def __init__(self, server: Server, wid: int, path_of: Callable[[int], str]) -> None:
        self.server = server
        self.wid = wid
        self.path_of = path_of
        self.live: set[int] = set()
        """Workers whose hand-off listener is up (kept current by the master)."""
        self.sent = 0
        self.received = 0
        self.failed = 0
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- sending --------------------------------------------------------------------------------------

    def __call__(self, sid: str, transport: Any, data: bytes) -> bool:
        """The server's ``foreign_sid_handler``: True when the connection went (or is going) to its owner."""
        owner = owner_of(sid)
        if owner is None or owner == self.wid or owner not in self.live:
            return False
        if transport.get_extra_info("sslcontext") is not None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        fd = os.dup(sock.fileno())
        transport.close()
        if self.server.debug:
            log.debug("> handing %s's connection to worker %d", sid, owner)
        self._spawn(self._send(owner, fd, data))
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, owner: int, fd: int, data: bytes) -> None:
        try:
            await send_connection(self.path_of(owner), fd, data)
            self.sent += 1
        except OSError as exc:
            self.failed += 1
            log.info("! hand-off to worker %d failed (%s): answering here", owner, exc)
            await self.adopt(fd, data, handoff_allowed=False)
            return
        os.close(fd)

    # -- receiving ------------------------------------------------------------------------------------

    async def adopt(self, fd: int, data: bytes, handoff_allowed: bool = True) -> None:
        """Serve the TCP connection ``fd`` (now owned by this call) as if it had been accepted here."""
        sock = socket.socket(fileno=fd)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Adopted(self.server, data, handoff_allowed), sock
            )
        except OSError as exc:
            log.info("! adopting a handed-over connection failed: %s", exc)
            sock.close()

    async def serve(self, path: str) -> None:
        """Listen for hand-offs on ``path`` (mode 0600; peers of another uid are refused)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._path = path
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_forever(listener))

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            self._spawn(self._receive(conn))

    async def _receive(self, conn: socket.socket) -> None:
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", creds)[1] not in (os.getuid(), 0):
                log.warning("! hand-off from another uid refused")
                return
            async with asyncio.timeout(10):
                fd, data = await receive_connection(conn)
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("! bad hand-off: %s", exc)
            return
        finally:
            conn.close()
        self.received += 1
        await self.adopt(fd, data)

    async def close(self) -> None:
        if self._accept_task is not None:
            # Let the cancelled sock_accept unregister the descriptor before it is closed: a watcher left on
            # a closed descriptor number fires for the next socket that gets the same number.
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._listener = None


async def send_connection(path: str, fd: int, data: bytes) -> None:
    """Send descriptor ``fd`` and ``data`` to the hand-off listener at ``path`` (``fd`` stays open here).

    Raises:
        OSError: nothing listens at ``path`` or the connection broke.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, path)
        payload = _LEN.pack(len(data)) + data
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        while True:
            try:
                sent = sock.sendmsg([payload[:65536]], fds)
                break
            except BlockingIOError:
                await _wait(loop, sock, writable=True)
        if sent < len(payload):
            await loop.sock_sendall(sock, payload[sent:])
    finally:
        sock.close()


async def receive_connection(conn: socket.socket) -> tuple[int, bytes]:
    """Read one hand-off from ``conn``: the descriptor and the data that came with it.

    Raises:
        ValueError: no descriptor, or data shorter than announced.
    """
    loop = asyncio.get_running_loop()
    conn.setblocking(False)
    while True:
        try:
            first, fds, _flags, _addr = socket.recv_fds(conn, 65536 + _LEN.size, 4)
            break
        except BlockingIOError:
            await _wait(loop, conn, writable=False)
    if not fds:
        raise ValueError("hand-off without a file descriptor")
    for extra in fds[1:]:
        os.close(extra)
    buf = bytearray(first)
    try:
        while len(buf) < _LEN.size:
            chunk = await loop.sock_recv(conn, 65536)
            if not chunk:
                raise ValueError("hand-off cut short")
            buf += chunk
        (length,) = _LEN.unpack_from(buf)
        if length > MAX_DATA:
            raise ValueError(f"hand-off of {length} bytes")
        while len(buf) < _LEN.size + length:
            chunk = await loop.sock_recv(conn, 65536)
            if not chunk:
                raise ValueError("hand-off cut short")
            buf += chunk
    except BaseException:
        os.close(fds[0])
        raise
    return fds[0], bytes(buf[_LEN.size : _LEN.size + length])


async def _wait(loop: asyncio.AbstractEventLoop, sock: socket.socket, writable: bool) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if writable:
        loop.add_writer(sock.fileno(), ready)
    else:
        loop.add_reader(sock.fileno(), ready)
    try:
        await future
    finally:
        if writable:
            loop.remove_writer(sock.fileno())
        else:
            loop.remove_reader(sock.fileno())
