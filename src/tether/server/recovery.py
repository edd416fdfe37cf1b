"""Connection state recovery wired into one server process: offsets on emits, sessions kept on disconnect,
taken back on connect. The bookkeeping itself is sans-I/O (:mod:`tether.recovery`); this module only
decides when to call it, and where the log lives:

* **local**: one process (or nodes without a shared log): this process keeps its own
  :class:`~tether.recovery.RecoveryLog`, emits are stamped here and delivered at once;
* **remote**: workers of one host (the master hub): the master keeps the log, every emit goes through it
  to get its offset and comes back to be delivered, in one order on every worker, and a client may come
  back on any worker, or on a new one after a reload (``Adapter.sequences_emits``).

Order of what a recovering client receives (as the reference server sends it, socket.io ``socket.ts``
constructor): the missed packets, then anything new, then the CONNECT reply (after the connect handler,
when it runs); socket.io-client buffers events that arrive before the CONNECT reply and hands them to the
application right after it, in order, before its ``connect`` listeners run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..recovery import RECOVERABLE_REASONS, RecoveryLog, Restored, SavedSession, plausible

if TYPE_CHECKING:
    import asyncio

    from ..cluster.base import Adapter
    from ..config import Config
    from ..context import Socket
    from ..protocol.parsers import Parser
    from .client import Client

__all__ = ["Recovery"]

log = logging.getLogger("tether.recovery")


class RecoveryHost(Protocol):
    """The server as recovery uses it (implemented by :class:`~tether.server.Server`)."""

    config: Config
    debug: bool
    parser_cls: type[Parser]
    adapter: Adapter
    extensions: dict[str, Any]

    def close_session_of(self, sock: Socket, reason: str, send_close: bool, ws_code: int = 1000) -> None: ...


class Recovery:
    """The recovery state of a server (``[recovery] max_disconnection_duration`` > 0).

    Attributes:
        log: the packets and saved sessions of this process (unused when ``remote``).
        remote: the adapter stamps emits and keeps sessions (the master hub).
        live: private id -> connected socket, so that a client coming back before the server noticed its
            old connection die (a cut TCP connection is noticed at the next ping timeout) takes it over.
    """

    __slots__ = ("live", "log", "remote", "server", "skip_connect_handler")

    def __init__(self, server: RecoveryHost) -> None:
        cfg = server.config.recovery
        self.server = server
        self.log = RecoveryLog(
            cfg.max_disconnection_duration,
            max_session_bytes=cfg.max_session_bytes,
            max_buffer_bytes=cfg.max_buffer_bytes,
            max_sessions=cfg.max_sessions,
        )
        self.remote = server.adapter.sequences_emits
        self.skip_connect_handler = cfg.skip_connect_handler
        self.live: dict[str, Socket] = {}

    @staticmethod
    def new_pid() -> str:
        """A private id: 120 random bits, as unguessable as a sid (socket.io: ``base64id.generateId``)."""
        return os.urandom(15).hex()

    # -- emits ----------------------------------------------------------------------------------------

    def encode(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
    ) -> list[bytes]:
        """Local: encode an emit with its offset as the last argument and keep it (encoded once)."""
        log_ = self.log
        seq = log_.take_offset()
        packets = self.server.parser_cls.encode_event(namespace, event, (*args, str(seq)))
        log_.append(seq, time.monotonic(), namespace, rooms, except_rooms, packets)
        return packets

    def send_remote(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        direct: bool,
    ) -> None:
        """Remote: encode once and hand the emit to the adapter, which delivers it with its offset."""
        packets = self.server.parser_cls.encode_event(namespace, event, args)
        self.server.adapter.publish_sequenced(namespace, event, rooms, except_rooms, packets, direct, args)

    # -- sockets --------------------------------------------------------------------------------------

    def accepted(self, sock: Socket) -> None:
        """``sock`` is connected: note where the log stands (the client's offset until it gets a packet)."""
        if sock.pid is not None:
            remote = self.remote
            sock._recovery_base = (
                self.server.adapter.base_offset(sock.namespace) if remote else self.log.last_seq
            )
            self.live[sock.pid] = sock

    def socket_closed(self, sock: Socket, reason: str) -> None:
        """Keep ``sock``'s state for the client when ``reason`` is one it recovers from.

        Called before the socket leaves its rooms. A socket of an ended or expired session is not kept.
        """
        pid = sock.pid
        if pid is None:
            return
        if self.live.get(pid) is sock:
            del self.live[pid]
        if reason not in RECOVERABLE_REASONS or not self._session_alive(sock.session_id):
            return
        saved = SavedSession(
            pid,
            sock.sid,
            sock.namespace,
            tuple(sock.rooms),
            sock._data,
            sock.user_id,
            sock.session_id,
            sock._recovery_base,
            time.monotonic(),
        )
        if self.remote:
            self.server.adapter.persist_session(saved)
        else:
            self.log.persist(saved)
        if self.server.debug:
            log.debug("= %s kept for recovery (%s)", sock.sid, reason)

    def take_over(self, pid: str) -> None:
        """The client of ``pid`` is back on another worker: close its connection here, if it is still open
        (the close keeps its state, which goes to the master, which answers that worker)."""
        old = self.live.get(pid)
        if old is not None:
            self.server.close_session_of(old, "transport close", send_close=False)

    @staticmethod
    def wants_restore(auth: Any) -> bool:
        """Whether a CONNECT's auth asks for a recovery (carries a ``pid``)."""
        return type(auth) is dict and auth.get("pid") is not None

    def restore(
        self, client: Client, namespace: str, auth: dict[str, Any], then: Callable[[Restored | None], None]
    ) -> None:
        """Find the session the CONNECT ``auth`` (``{"pid", "offset"}``) names and call ``then`` with it and
        its missed packets, or with None (at once when local; when the master answers when remote).

        None when ``auth`` names no session, or one that cannot be recovered (see
        :meth:`RecoveryLog.restore`), or one whose user session has expired or ended since.
        """
        pid = auth.get("pid")
        offset = auth.get("offset")
        if not plausible(pid, offset):
            self.log.counters["refused"] += 1
            then(None)
            return
        assert isinstance(pid, str)
        old = self.live.get(pid)
        if old is not None and old.namespace == namespace and old.client is not client:
            # The client is back before we noticed that its old connection died: the private id proves
            # it is the same client, so that connection is over (and its socket is kept, just below).
            self.server.close_session_of(old, "transport close", send_close=False)
        if not self.remote:
            then(self._checked(self.log.restore(pid, offset, time.monotonic(), namespace)))
            return
        future = self.server.adapter.restore_session(pid, offset, namespace)

        def done(f: asyncio.Future[Restored | None]) -> None:
            restored = None if f.cancelled() or f.exception() is not None else f.result()
            then(self._checked(restored))

        future.add_done_callback(done)

    def _checked(self, restored: Restored | None) -> Restored | None:
        if restored is None or not self._session_alive(restored.session.session_id):
            return None
        return restored

    def _session_alive(self, session_id: str | None) -> bool:
        """False for a user session (tether.sessions) that expired or was logged out."""
        if session_id is None:
            return True
        sessions = self.server.extensions.get("sessions")
        if sessions is None:
            return True
        if self.remote:
            # Another worker may have tracked it: this one knows of its end through the relayed tombstone.
            return not sessions.is_ended(session_id)
        return bool(sessions.get(session_id) is not None and not sessions.is_ended(session_id))
