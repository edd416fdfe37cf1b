"""Connection state recovery wired into one server process: offsets on emits, sessions kept on disconnect,
taken back on connect. The bookkeeping itself is sans-I/O (:mod:`tether.recovery`); this module only
decides when to call it.

Order of what a recovering client receives (as the reference server sends it, socket.io ``socket.ts``
constructor): the missed packets, then (the socket having joined its rooms in the same step) anything new,
then the CONNECT reply; socket.io-client buffers events that arrive before the CONNECT reply and hands them
to the application right after it, in order, before its ``connect`` listeners run.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..recovery import RECOVERABLE_REASONS, RecoveryLog, Restored, SavedSession

if TYPE_CHECKING:
    from ..context import Socket
    from .client import Client
    from .server import Server

__all__ = ["Recovery"]

log = logging.getLogger("tether.recovery")


class Recovery:
    """The recovery state of a server (``[recovery] max_disconnection_duration`` > 0).

    Attributes:
        log: the packets and saved sessions of this process.
        live: private id -> connected socket, so that a client coming back before the server noticed its
            old connection die (a cut TCP connection is noticed at the next ping timeout) takes it over.
    """

    __slots__ = ("live", "log", "server", "skip_connect_handler")

    def __init__(self, server: Server) -> None:
        cfg = server.config.recovery
        self.server = server
        self.log = RecoveryLog(
            cfg.max_disconnection_duration,
            max_session_bytes=cfg.max_session_bytes,
            max_buffer_bytes=cfg.max_buffer_bytes,
            max_sessions=cfg.max_sessions,
        )
        self.skip_connect_handler = cfg.skip_connect_handler
        self.live: dict[str, Socket] = {}

    @staticmethod
    def new_pid() -> str:
        """A private id: 120 random bits, as unguessable as a sid (socket.io: ``base64id.generateId``)."""
        return os.urandom(15).hex()

    def encode(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
    ) -> list[bytes]:
        """Encode an emit with its offset as the last argument and keep it in the log (encoded once)."""
        log_ = self.log
        seq = log_.take_offset()
        packets = self.server.parser_cls.encode_event(namespace, event, (*args, str(seq)))
        log_.append(seq, time.monotonic(), namespace, rooms, except_rooms, packets)
        return packets

    def accepted(self, sock: Socket) -> None:
        """``sock`` is connected: note where the log stands (the client's offset until it gets a packet)."""
        if sock.pid is not None:
            sock._recovery_base = self.log.last_seq
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
        self.log.persist(
            SavedSession(
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
        )
        if self.server.debug:
            log.debug("= %s kept for recovery (%s)", sock.sid, reason)

    def restore(self, client: Client, namespace: str, auth: Any) -> Restored | None:
        """The saved session the CONNECT ``auth`` (``{"pid", "offset"}``) names, with its missed packets.

        Returns:
            None when ``auth`` names no session, or one that cannot be recovered (see
            :meth:`RecoveryLog.restore`), or one whose user session has expired or ended since.
        """
        if type(auth) is not dict:
            return None
        pid = auth.get("pid")
        if pid is None:
            return None
        if type(pid) is str:
            old = self.live.get(pid)
            if old is not None and old.namespace == namespace and old.client is not client:
                # The client is back before we noticed that its old connection died: the private id proves
                # it is the same client, so that connection is over (and its socket is kept, just below).
                self.server.close_client(old.client, "transport close", send_close=False)
        restored = self.log.restore(pid, auth.get("offset"), time.monotonic(), namespace)
        if restored is None or not self._session_alive(restored.session.session_id):
            if self.server.debug:
                log.debug("= %s not recovered: unknown, expired or out of the buffer", client.sid)
            return None
        return restored

    def _session_alive(self, session_id: str | None) -> bool:
        """False for a user session (tether.sessions) that expired or was logged out."""
        if session_id is None:
            return True
        sessions = self.server.extensions.get("sessions")
        if sessions is None:
            return True
        return bool(sessions.get(session_id) is not None and not sessions.is_ended(session_id))
