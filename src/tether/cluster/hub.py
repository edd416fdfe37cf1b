"""Cross-worker delivery on one host with no Redis: the master is a hub between its workers.

Theory of operation::

    worker 1 ──frame──▶ master (Hub.relay) ──same bytes──▶ worker 2, worker 3, ...
       │                    │
       └ delivers locally   └ keeps who has which user room (presence) and who is alive

Every worker has one Unix socket pair to the master (its *channel*). A broadcast is delivered to the
worker's own sockets first (as with any adapter), then :meth:`HubAdapter.publish` writes one frame to the
channel; the master writes the same bytes, undecoded, to every other worker, which delivers them with
:meth:`Server.deliver_local`. The frame carries the packets already encoded by the sending worker, so a
broadcast is encoded once for the whole host; binary packets keep their :class:`Binary` type through
msgpack's extension type 1. When the workers do not all use the same parser (a reload that changed
``[websocket] parser`` leaves old and new workers side by side for a moment), the master says so and
frames carry the arguments as well, which the receiver re-encodes with its own parser.

User presence (``is_user_online``) is replicated like Swoole's shared tables: a worker reports when its
first socket joins, or its last socket leaves, a user room; the master relays that to the others, which
keep a set of worker ids per ``(namespace, room)`` and answer without a round trip. When a worker dies,
the master tells the others to forget its entries.

Frame layout (one channel carries hub and control frames)::

    !I length of what follows | 1 byte kind | msgpack body
    kind B  broadcast  [version, parser, namespace, event, rooms, except_rooms, packets, args|nil]
    kind P  presence   [namespace, room, online, wid]
    kind G  gone       [wid]
    kind S  session    [type, session id, reason|nil]
    kind Q  request    [sender wid, namespace, request id|nil, request bytes]   relayed to every other worker
    kind N  count      [request id, workers the request went to]                master -> the sender of a Q
    kind A  answer     [to wid, namespace, response bytes]                      master -> worker ``to`` only
    kind C  control    {"t": ..., ...}   (hello, ready, stats, stop...: see tether.manager)

Requests and answers carry the bytes of node's redis-adapter request format (:mod:`.wire`), so the code
that asks and answers cluster-wide questions is the Redis adapter's (:mod:`.requests`): ``fetch_sockets``,
counts, remote join/leave/disconnect and emits with acks work across workers as across nodes. The
master's ``N`` reply plays the part of Redis's ``PUBSUB NUMSUB``: how many answers to wait for.

Connection state recovery (``[recovery]`` on) adds frames that make the master the host's recovery log:
every emit goes through it to get its offset, so that all workers deliver in one order and a client may
come back on any worker (or on a new one after a reload: the master outlives its workers)::

    kind E  emit       [namespace, event, rooms, except_rooms, packets, direct]   worker -> master
    kind D  deliver    [offset, namespace, event, rooms, except_rooms, packets]   master -> workers
    kind K  keep       [pid, sid, namespace, rooms, data, user_id, session_id, base]   worker -> master
    kind R  restore?   [request id, pid, offset, namespace]                       worker -> master
    kind T  restored   [request id, session (as in K) | nil, packets, last offset]   master -> worker
    kind X  take over  [pid]                                                      master -> other workers

The master answers R on the asking worker's channel after every D frame it sent there before: the D
frames up to the answer's last offset reached that worker before the recovered socket existed (they are in
the answer's packets), the later ones reach the socket. Nothing is missed or sent twice. An R for a private
id the master does not hold may be a client back before its worker noticed the old connection die: the
master parks it (:data:`PARK_SECONDS`), asks every other worker to close that pid's connection if it has it
(X), and answers as soon as the K frame that close sends arrives (or None when the time is up).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from ..errors import ClusterError
from ..protocol.engineio import Binary
from ..recovery import RecoveryLog, Restored, SavedSession, selects, with_offset
from ..timeouts import wait_done
from .base import BroadcastMessage, LocalSocket
from .requests import RequestingAdapter
from .wire import Request, SessionCommand, decode_object, decode_request, encode_json, encode_msgpack

__all__ = [
    "ANSWER",
    "BROADCAST",
    "CONTROL",
    "COUNT",
    "EMIT",
    "GONE",
    "KEEP",
    "PRESENCE",
    "REQUEST",
    "RESTORE",
    "SESSION",
    "FrameReader",
    "Hub",
    "HubAdapter",
    "decode_broadcast",
    "encode_broadcast",
    "frame",
]

log = logging.getLogger("tether.cluster.hub")

BROADCAST = b"B"[0]
PRESENCE = b"P"[0]
GONE = b"G"[0]
CONTROL = b"C"[0]
SESSION = b"S"[0]
REQUEST = b"Q"[0]
COUNT = b"N"[0]
ANSWER = b"A"[0]
RELAYED = frozenset({BROADCAST, PRESENCE, SESSION, REQUEST, ANSWER})
"""Frame kinds a worker sends that the master passes on (:meth:`Hub.relay`)."""
EMIT = b"E"[0]
DELIVER = b"D"[0]
KEEP = b"K"[0]
RESTORE = b"R"[0]
RESTORED = b"T"[0]
TAKE_OVER = b"X"[0]
PARK_SECONDS = 1.0
"""How long the master waits for a worker to hand over a socket still open there (see X frames)."""
MAX_PARKED = 1000
"""Most restores parked at once: beyond, one for an unknown pid is refused at once (a flood of forged
private ids costs the workers no X frames)."""
RECENT_SECONDS = 10.0
"""How long after a recovery answer a worker keeps the D frames it delivers, for the recovered socket."""
RECENT_DELIVERIES = 10_000
"""Most D frames kept meanwhile (the oldest go first)."""

WIRE_VERSION = 1
MAX_FRAME = 64 * 1024 * 1024
"""Largest frame accepted on a channel: well above ``max_payload``, small enough to catch a corrupt length."""

_HEADER = struct.Struct("!I")
_BINARY_EXT = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, Binary):
        return msgpack.ExtType(_BINARY_EXT, bytes(obj))
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot send {type(obj).__name__} between workers")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _BINARY_EXT:
        return Binary(data)
    return msgpack.ExtType(code, data)


def pack(obj: Any) -> bytes:
    # Binary is a bytes subclass: strict_types makes msgpack hand it to _default instead of packing it as bin.
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def frame(kind: int, body: Any) -> bytes:
    """One channel frame: length, kind byte, msgpack body."""
    payload = pack(body)
    return _HEADER.pack(len(payload) + 1) + bytes((kind,)) + payload


class FrameReader:
    """Splits the bytes of a channel into ``(kind, frame bytes)``; sans-I/O, fed by the transport.

    The frame bytes returned include the header, so the master can relay them without re-encoding.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes read from the channel; return the frames now complete.

        Raises:
            ClusterError: a frame longer than :data:`MAX_FRAME` or empty (the channel is corrupt).
        """
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length == 0 or length > MAX_FRAME:
                raise ClusterError("hub", f"bad frame length {length}")
            end = pos + 4 + length
            if end > n:
                break
            out.append((buf[pos + 4], bytes(buf[pos:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out


def body_of(raw: bytes) -> Any:
    """The decoded body of a frame returned by :meth:`FrameReader.feed`."""
    return unpack(memoryview(raw)[5:])


def encode_broadcast(message: BroadcastMessage, packets: list[bytes], parser: str, with_args: bool) -> bytes:
    """The B frame for ``message``; ``with_args`` adds the arguments for workers with another parser.

    Raises:
        TypeError: ``with_args`` and an argument msgpack cannot carry.
    """
    args = list(message.args) if with_args else None
    return frame(
        BROADCAST,
        [
            WIRE_VERSION,
            parser,
            message.namespace,
            message.event,
            message.rooms,
            message.except_rooms,
            packets,
            args,
        ],
    )


def decode_broadcast(raw: bytes) -> tuple[BroadcastMessage, str, list[bytes], bool]:
    """``(message, parser name, packets, has_args)`` of a B frame (``message.args`` is ``()`` without args).

    Raises:
        ClusterError: an unknown wire version.
    """
    body = body_of(raw)
    if body[0] != WIRE_VERSION:
        raise ClusterError("hub", f"broadcast frame version {body[0]} (this worker speaks {WIRE_VERSION})")
    _, parser, namespace, event, rooms, except_rooms, packets, args = body
    message = BroadcastMessage(namespace, event, tuple(args or ()), tuple(rooms), tuple(except_rooms))
    return message, parser, packets, args is not None


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
        self.remote_users: dict[tuple[str, str], set[int]] = {}
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
        namespace, room, online, wid = body_of(raw)
        key = (namespace, room)
        if online:
            self.remote_users.setdefault(key, set()).add(wid)
        else:
            wids = self.remote_users.get(key)
            if wids is not None:
                wids.discard(wid)
                if not wids:
                    del self.remote_users[key]

    def receive_gone(self, raw: bytes) -> None:
        (wid,) = body_of(raw)
        for key in [k for k, wids in self.remote_users.items() if wid in wids]:
            wids = self.remote_users[key]
            wids.discard(wid)
            if not wids:
                del self.remote_users[key]

    def user_online_changed(self, namespace: str, user_room: str, online: bool) -> None:
        self._send(frame(PRESENCE, [namespace, user_room, online, self.wid]))

    def is_user_online_remote(self, user_room: str, namespace: str) -> bool:
        return (namespace, user_room) in self.remote_users


class Hub:
    """The master side: relays frames between workers and keeps the presence table. No I/O.

    ``add``/``remove`` register a worker's writer (a callable taking frame bytes).
    """

    def __init__(self, recovery: RecoveryLog | None = None) -> None:
        self.writers: dict[int, Callable[[bytes], None]] = {}
        self.presence: dict[tuple[str, str], set[int]] = {}
        self.relayed = 0
        self.recovery = recovery
        """The host's recovery log (``[recovery]`` on): emits get their offsets here."""
        self._expired_at = 0.0
        self.parked: dict[str, tuple[int, int, Any, str, float]] = {}
        """pid -> (asking worker, request id, offset, namespace, deadline): restores waiting for a K frame."""

    def add(self, wid: int, write: Callable[[bytes], None]) -> None:
        """Register worker ``wid`` and send it the presence of every other worker."""
        self.writers[wid] = write
        for (namespace, room), wids in self.presence.items():
            for other in wids:
                if other != wid:
                    write(frame(PRESENCE, [namespace, room, True, other]))

    def remove(self, wid: int) -> None:
        """Forget worker ``wid``: its presence entries go, the others are told."""
        self.writers.pop(wid, None)
        for key in [k for k, wids in self.presence.items() if wid in wids]:
            wids = self.presence[key]
            wids.discard(wid)
            if not wids:
                del self.presence[key]
        gone = frame(GONE, [wid])
        for write in self.writers.values():
            write(gone)

    def relay(self, sender: int, kind: int, raw: bytes) -> None:
        """Pass a frame from ``sender`` on: B, P, S and Q to every other worker (and the count of them
        back to the sender of a Q that waits for answers), A to the worker it answers."""
        if kind == ANSWER:
            to = body_of(raw)[0]
            write = self.writers.get(to)
            if write is not None:
                write(raw)
            self.relayed += 1
            return
        if kind == PRESENCE:
            namespace, room, online, wid = body_of(raw)
            key = (namespace, room)
            if online:
                self.presence.setdefault(key, set()).add(wid)
            else:
                wids = self.presence.get(key)
                if wids is not None:
                    wids.discard(wid)
                    if not wids:
                        del self.presence[key]
        sent = 0
        for wid, write in self.writers.items():
            if wid != sender:
                write(raw)
                sent += 1
        self.relayed += 1
        if kind == REQUEST:
            request_id = body_of(raw)[2]
            back = self.writers.get(sender)
            if request_id is not None and back is not None:
                back(frame(COUNT, [request_id, sent]))

    # -- connection state recovery ---------------------------------------------------------------------

    def receive_recovery(self, sender: int, kind: int, raw: bytes, now: float) -> bool:
        """Act on an E, K or R frame from worker ``sender`` at ``now`` (monotonic seconds).

        Returns:
            True when an R frame was parked: call :meth:`release_parked` after :data:`PARK_SECONDS`.

        Raises:
            ClusterError: recovery is off in the master, or a frame of the wrong shape.
        """
        log_ = self.recovery
        if log_ is None:
            raise ClusterError("hub", "a recovery frame, but [recovery] is off in the master")
        if now - self._expired_at >= 1.0:
            self._expired_at = now
            log_.expire(now)
        body = body_of(raw)
        if kind == EMIT:
            namespace, event, rooms, except_rooms, packets, direct = body
            seq = log_.take_offset()
            try:
                packets = with_offset(packets, seq)
            except (ValueError, IndexError) as exc:
                raise ClusterError("hub", f"emit without an EVENT packet: {exc}") from exc
            log_.append(seq, now, namespace, tuple(rooms), tuple(except_rooms), packets)
            data = frame(DELIVER, [seq, namespace, event, rooms, except_rooms, packets])
            for wid, write in self.writers.items():
                if not direct or wid == sender:
                    write(data)
        elif kind == KEEP:
            session = session_from(body, now)
            log_.persist(session)
            parked = self.parked.pop(session.pid, None)
            if parked is not None:
                asker, rid, offset, namespace, _deadline = parked
                self._answer(asker, rid, session.pid, offset, namespace, now)
        elif kind == RESTORE:
            rid, pid, offset, namespace = body
            unknown = isinstance(pid, str) and pid not in log_.sessions and pid not in self.parked
            if unknown and len(self.parked) < MAX_PARKED:
                self.parked[pid] = (sender, rid, offset, namespace, now + PARK_SECONDS)
                take_over = frame(TAKE_OVER, [pid])
                for wid, write in self.writers.items():
                    if wid != sender:
                        write(take_over)
                return True
            self._answer(sender, rid, pid, offset, namespace, now)
        return False

    def release_parked(self, pid: str, now: float) -> None:
        """Answer a parked restore of ``pid`` if no worker handed its socket over in time (not recovered)."""
        parked = self.parked.get(pid)
        if parked is not None and now >= parked[4]:
            del self.parked[pid]
            asker, rid, offset, namespace, _deadline = parked
            self._answer(asker, rid, pid, offset, namespace, now)

    def _answer(self, asker: int, rid: int, pid: Any, offset: Any, namespace: str, now: float) -> None:
        log_ = self.recovery
        assert log_ is not None
        restored = log_.restore(pid, offset, now, namespace)
        answer_to = self.writers.get(asker)
        if answer_to is None:
            return
        if restored is None:
            answer_to(frame(RESTORED, [rid, None, [], log_.last_seq]))
        else:
            answer = [rid, session_fields(restored.session), restored.packets, restored.last_offset]
            answer_to(frame(RESTORED, answer))

    def broadcast_control(self, body: dict[str, Any], wids: Iterable[int] | None = None) -> None:
        data = frame(CONTROL, body)
        for wid, write in self.writers.items():
            if wids is None or wid in wids:
                write(data)


def session_fields(session: SavedSession) -> list[Any]:
    """A saved session as the body of a K frame (and the session of an A frame)."""
    return [
        session.pid,
        session.sid,
        session.namespace,
        session.rooms,
        session.data,
        session.user_id,
        session.session_id,
        session.base,
    ]


def session_from(fields: list[Any], now: float) -> SavedSession:
    """The saved session of a K frame's body, disconnected at ``now``.

    Raises:
        ClusterError: a body of the wrong shape.
    """
    try:
        pid, sid, namespace, rooms, data, user_id, session_id, base = fields
        return SavedSession(pid, sid, namespace, tuple(rooms), data, user_id, session_id, int(base), now)
    except (TypeError, ValueError) as exc:
        raise ClusterError("hub", f"bad saved session: {exc}") from exc
