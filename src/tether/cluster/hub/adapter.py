"""The worker side of the hub: :class:`HubAdapter` publishes to the master and delivers what it relays."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ...errors import ClusterError
from ...recovery import Restored, SavedSession, selects
from ...timeouts import wait_done
from ..base import BroadcastMessage, LocalSocket
from ..requests import RequestingAdapter
from ..wire import Request, SessionCommand, decode_object, decode_request, encode_json, encode_msgpack
from .frames import (
    ANSWER,
    BROADCAST,
    COUNT,
    DELIVER,
    EMIT,
    GONE,
    KEEP,
    PRESENCE,
    REQUEST,
    RESTORE,
    RESTORED,
    SESSION,
    TAKE_OVER,
    Presence,
    body_of,
    decode_broadcast,
    encode_broadcast,
    forget_worker,
    frame,
    record_presence,
    session_fields,
    session_from,
)

__all__ = ["RECENT_DELIVERIES", "RECENT_SECONDS", "HubAdapter"]

log = logging.getLogger("tether.cluster.hub")

RECENT_SECONDS = 10.0
"""How long after a recovery answer a worker keeps the D frames it delivers, for the recovered socket."""
RECENT_DELIVERIES = 10_000
"""Most D frames kept meanwhile (the oldest go first)."""


class HubAdapter(RequestingAdapter):
    """The worker side of the hub: publishes to the master and delivers what it relays.

    Args:
        send: writes one frame to the channel (never blocks; the transport buffers).
        wid: this worker's id, used in presence frames.
    """

    remote = True

    def __init__(self, send: Callable[[bytes], None], wid: int, request_timeout: float = 5.0) -> None:
        super().__init__()
        self._send = send
        self.wid = wid
        self.uid = f"worker-{wid}"
        self.request_timeout = request_timeout
        self.peers: set[int] | None = None
        """Ids of the workers alive (set by the master's ``peers`` message); None: not told yet."""
        self._counts: dict[str, asyncio.Future[int]] = {}
        self.mixed_parsers = False
        """Set by the master when workers use different parsers: frames then carry the arguments."""
        self.carry_args = False
        """Set by a feature that needs the arguments of relayed emits (the admin UI's ``event_sent``)."""
        self.remote_users: Presence = {}
        """``(namespace, user room)`` -> ids of the *other* workers that have a socket in it."""
        self.published = 0
        self.received = 0
        self.dropped = 0
        self.last_seq = 0
        """The offset of the last D frame received (connection state recovery)."""
        self._restores: dict[int, asyncio.Future[Restored | None]] = {}
        self._restore_ids = 0
        self._recent: deque[tuple[int, str, tuple[str, ...], tuple[str, ...], list[bytes]]] = deque(
            maxlen=RECENT_DELIVERIES
        )
        """D frames delivered while a recovery answer may still be on its way to its socket (see
        :meth:`recovered`): ``(offset, namespace, rooms, except_rooms, packets)``."""
        self._recent_until = 0.0

    def publish(self, message: BroadcastMessage, packets: list[bytes]) -> None:
        assert self.server is not None
        parser = self.server.parser_cls.name
        try:
            data = encode_broadcast(message, packets, parser, self.mixed_parsers or self.carry_args)
        except TypeError as exc:
            # Only reachable with mixed parsers: the other workers' clients cannot get this emit.
            self.dropped += 1
            log.error("! broadcast %r not sent to workers with another parser: %s", message.event, exc)
            data = encode_broadcast(message, packets, parser, False)
        self._send(data)
        self.published += 1

    def receive_frame(self, kind: int, raw: bytes) -> bool:
        """Act on a B, P or G frame from the master; False for another kind (a control frame).

        Raises:
            ClusterError: a frame this worker cannot read.
        """
        if kind == BROADCAST:
            self.receive_broadcast(raw)
        elif kind == PRESENCE:
            self.receive_presence(raw)
        elif kind == GONE:
            self.receive_gone(raw)
        elif kind == SESSION:
            self.receive_session(raw)
        elif kind == DELIVER:
            self.receive_delivery(raw)
        elif kind == RESTORED:
            self.receive_restored(raw)
        elif kind == TAKE_OVER:
            (pid,) = body_of(raw)
            recovery = self.server.recovery if self.server is not None else None
            if recovery is not None and isinstance(pid, str):
                recovery.take_over(pid)
        elif kind == REQUEST:
            self.receive_request(raw)
        elif kind == ANSWER:
            self.receive_response(decode_object(body_of(raw)[2]))
        elif kind == COUNT:
            request_id, count = body_of(raw)
            future = self._counts.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(int(count))
        else:
            return False
        return True

    # -- requests (asked and answered by RequestingAdapter) -------------------------------------------

    async def _send_request(self, namespace: str, request: Request) -> int:
        """Send a Q frame; the master's N frame says how many workers got it."""
        assert request.request_id is not None
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._counts[request.request_id] = future
        self._send(frame(REQUEST, [self.wid, namespace, request.request_id, request.encode()]))
        try:
            # wait_done, not asyncio.timeout: a handler asks before it is a Task (tether.timeouts).
            if await wait_done(future, self.request_timeout):
                return future.result()
            log.warning(
                "! the master did not relay request %s within %gs", request.type.name, self.request_timeout
            )
            return 0
        finally:
            self._counts.pop(request.request_id, None)
            future.cancel()  # as wait_for did, on a timeout or a cancel: a late N frame finds nothing

    def _send_change(self, namespace: str, request: Request) -> None:
        self._send(frame(REQUEST, [self.wid, namespace, None, request.encode()]))

    def receive_request(self, raw: bytes) -> None:
        """Answer a relayed Q frame (through the master, to the asking worker only)."""
        sender, namespace, _rid, data = body_of(raw)
        req = decode_request(data)
        if self.is_own_request(req):
            return

        def respond(response: dict[str, Any], binary: bool) -> None:
            payload = encode_msgpack(response) if binary else encode_json(response)
            self._send(frame(ANSWER, [sender, namespace, payload]))

        self.answer_request(namespace, req, respond)

    async def server_count(self) -> int:
        return max(1, len(self.peers)) if self.peers else 1

    # -- connection state recovery: the master gives every emit its offset ---------------------------

    def publish_sequenced(
        self,
        namespace: str,
        event: str,
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        packets: list[bytes],
        direct: bool,
        args: tuple[Any, ...] = (),
    ) -> None:
        """Send an emit to the master, which stamps its offset, keeps it and sends it back to be delivered
        (to every worker; to this one only when ``direct``: an emit to one of this worker's sockets)."""
        self._send(frame(EMIT, [namespace, event, rooms, except_rooms, packets, direct]))
        self.published += 1

    def receive_delivery(self, raw: bytes) -> int:
        """Deliver a D frame (an emit with its offset) to this worker's sockets."""
        server = self.server
        assert server is not None
        seq, namespace, event, rooms, except_rooms, packets = body_of(raw)
        self.last_seq = seq
        self.received += 1
        if self._recent_until and time.monotonic() < self._recent_until:
            self._recent.append((seq, namespace, tuple(rooms), tuple(except_rooms), packets))
        n = server.deliver_local(namespace, packets, rooms, except_rooms)
        if server.state.observe and n:
            server.state.count_out(event, n)
        for hook in server.emit_hooks:
            hook(namespace, event, n)
        return n

    def persist_session(self, session: SavedSession) -> None:
        """Keep a disconnected socket's state in the master (it outlives this worker)."""
        try:
            data = frame(KEEP, session_fields(session))
        except TypeError as exc:
            log.warning("! %s not kept for recovery: its data cannot go to the master: %s", session.sid, exc)
            return
        self._send(data)

    def restore_session(
        self, pid: str, offset: str | None, namespace: str
    ) -> asyncio.Future[Restored | None]:
        """Ask the master for the session of ``pid`` and the packets after ``offset``; resolves to None when
        it cannot be recovered (or the master does not answer within 10 s)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Restored | None] = loop.create_future()
        self._restore_ids += 1
        rid = self._restore_ids
        self._restores[rid] = future
        self._send(frame(RESTORE, [rid, pid, offset, namespace]))
        handle = loop.call_later(10.0, self._restore_timed_out, rid)
        future.add_done_callback(lambda _f: handle.cancel())
        return future

    def _restore_timed_out(self, rid: int) -> None:
        future = self._restores.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def receive_restored(self, raw: bytes) -> None:
        rid, fields, packets, last = body_of(raw)
        future = self._restores.pop(rid, None)
        if future is None or future.done():
            return
        if fields is None:
            future.set_result(None)
            return
        # The future's callbacks run at the loop's next turn, and D frames read with this T frame are
        # delivered before that, while the socket is in no room yet: keep them for :meth:`recovered`.
        now = time.monotonic()
        if now >= self._recent_until:
            self._recent.clear()  # older than any answer still on its way
        self._recent_until = now + RECENT_SECONDS
        future.set_result(Restored(session_from(fields, 0.0), packets, last))

    def recovered(self, sock: LocalSocket, restored: Restored) -> list[bytes]:
        """The socket of ``restored`` is in its rooms now: the packets of the D frames delivered here after
        the master's answer (offsets above its ``last_offset``) that it would have got, in order."""
        last = int(restored.last_offset)
        rooms = set(restored.session.rooms)
        extra: list[bytes] = []
        for seq, namespace, targets, excluded, packets in self._recent:
            if seq > last and namespace == sock.namespace and selects(rooms, targets, excluded):
                extra.extend(packets)
        return extra

    def publish_session(self, command: SessionCommand) -> None:
        """A session ``touch`` or ``end`` this worker acted on: the other workers act on it too.

        Without it each worker would keep its own idle timer for a session whose tabs sit on several
        workers, and expire a tab the user is active in on another worker.
        """
        self._send(frame(SESSION, [command.type, command.session, command.reason]))

    def receive_session(self, raw: bytes) -> None:
        """Act on a relayed S frame (see :meth:`Adapter.deliver_session`)."""
        ctype, session_id, reason = body_of(raw)
        if ctype not in SessionCommand.TYPES or not isinstance(session_id, str):
            raise ClusterError("hub", f"bad session command {ctype!r}")
        self.deliver_session(SessionCommand(ctype, session_id, reason))

    def receive_broadcast(self, raw: bytes) -> int:
        """Deliver a relayed B frame to this worker's sockets; returns how many sockets got it."""
        server = self.server
        assert server is not None
        message, parser, packets, has_args = decode_broadcast(raw)
        self.received += 1
        if parser != server.parser_cls.name:
            if not has_args:
                self.dropped += 1
                if server.debug:
                    log.debug("! broadcast %r from a %s worker without args: dropped", message.event, parser)
                return 0
            packets = server.parser_cls.encode_event(message.namespace, message.event, message.args)
        n = server.deliver_local(message.namespace, packets, message.rooms, message.except_rooms)
        for hook in server.emit_hooks:
            hook(message.namespace, message.event, n)
        for outgoing in server.outgoing_hooks:
            outgoing(message.namespace, message.event, message.args, message.rooms, message.except_rooms)
        return n

    def receive_presence(self, raw: bytes) -> None:
        record_presence(self.remote_users, raw)

    def receive_gone(self, raw: bytes) -> None:
        (wid,) = body_of(raw)
        forget_worker(self.remote_users, wid)

    def user_online_changed(self, namespace: str, user_room: str, online: bool) -> None:
        self._send(frame(PRESENCE, [namespace, user_room, online, self.wid]))

    def is_user_online_remote(self, user_room: str, namespace: str) -> bool:
        return (namespace, user_room) in self.remote_users
