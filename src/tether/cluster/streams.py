"""The Redis Streams adapter: many hosts with connection state recovery (`[room] driver = "redis-streams"`).

It speaks the wire format of node's ``@socket.io/redis-streams-adapter`` (0.3), so Node.js servers using
that adapter share the cluster, and a client may drop from a node of one kind and be recovered on the
other. Where the pub/sub adapter forgets, a stream keeps: the log a recovering node reads is the stream.

It writes node's shapes (:mod:`.stream_entries` holds them, with no I/O)::

    XADD <stream> MAXLEN ~ <max_len> * uid <node uid> nsp <namespace> type <n> data <payload>
    SET <session_prefix><pid> base64(msgpack({"sid", "pid", "rooms", "data"})) PX <window ms>

The entry id (``1733000000000-0``) is the offset: every node delivers an emit with its id appended as the
last argument as its XREAD loop reads it, the emitting node included (local delivery waits for Redis, as
in node; and every socket gets its packets in stream order, which is what makes its last offset exact).
A recovering client's offset is an entry id: the node takes the
session (GET + DEL in one MULTI: one attempt per private id), checks that the offset is still in the stream
(else it was trimmed: not recovered), and reads every entry after it (XRANGE) that the session's rooms
select. Between that read and the moment the socket is in its rooms, entries may still be delivered here:
those with a larger id are replayed from a short memory of recent deliveries, those at or below the read's
end are kept from the socket (its *floor*), so nothing is missed or sent twice.

Cluster-wide questions go through Redis pub/sub, as node's adapter sends them: that layer of the adapter
is :class:`~.streams_questions.StreamsQuestions` (its module docstring has the channels; the asking and
answering is :class:`~.requests.RequestingAdapter`'s). ``<prefix>`` is the stream name (``[redis] prefix``):
node's ``channelPrefix`` and ``streamName`` must both be set to it (both are ``socket.io`` by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from ..errors import ConfigError
from ..recovery import Restored, SavedSession, selects
from .base import Adapter, BroadcastMessage, LocalNode, LocalSocket
from .cluster_messages import CHANGES, ClusterMessage, MessageType
from .redis import redact_url
from .stream_entries import (
    BROADCAST,
    DISCONNECT_SOCKETS,
    ID,
    SOCKETS_JOIN,
    SOCKETS_LEAVE,
    broadcast_data,
    change_data,
    decode_data,
    decode_session,
    encode_data,
    encode_session,
    is_volatile,
    parse_id,
    stream_name,
)
from .streams_questions import StreamsQuestions
from .wire import Request

if TYPE_CHECKING:
    from ..config import Config

# decode_data, encode_data and parse_id were defined here first: still importable from this module.
__all__ = ["ClusterMessage", "MessageType", "RedisStreamsAdapter", "decode_data", "encode_data", "parse_id"]

log = logging.getLogger("tether.cluster.streams")


BATCH = 256
RECENT = 10_000
"""Deliveries remembered for a recovery that completes while they happen (see the module docstring)."""
XRANGE_CALLS = 100
"""Most XRANGE pages (1,000 entries each) read for one recovery: node's RESTORE_SESSION_MAX_XRANGE_CALLS."""


class RedisStreamsAdapter(StreamsQuestions):
    """Carries emits between nodes through one Redis stream; keeps recovery sessions in Redis keys; asks
    and answers cluster-wide questions through Redis pub/sub.

    Args:
        url: ``redis://[:password@]host:port/db``.
        stream: the stream name (node's ``streamName``, default ``socket.io``).
        max_len: the stream's approximate cap (``MAXLEN ~``, node's ``maxLen``): the recovery window in
            entries, whatever ``max_disconnection_duration`` says.
        session_prefix: key prefix of saved sessions (node's ``sessionKeyPrefix``).
        recovery_ms: the recovery window in ms; 0: recovery off (no offsets, no sessions).
        max_session_bytes: most bytes of missed packets replayed to one session; 0: no limit.
        request_timeout: seconds to wait for the other nodes' answers to a cluster-wide question.
        sharded_pubsub: questions through ``SPUBLISH``/``SSUBSCRIBE`` (node's ``useShardedPubSub``).
        stream_count: node's ``streamCount``: each namespace's entries go to one of that many streams
            (:func:`~.stream_entries.stream_name`); 1: the stream is ``stream`` itself.
    """

    remote = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = "socket.io",
        max_len: int = 10_000,
        session_prefix: str = "sio:session:",
        recovery_ms: int = 0,
        max_session_bytes: int = 0,
        request_timeout: float = 5.0,
        sharded_pubsub: bool = False,
        stream_count: int = 1,
        debug: bool = False,
    ) -> None:
        super().__init__()
        self.sharded_pubsub = sharded_pubsub
        self.stream_count = stream_count
        self._streams = [stream] if stream_count == 1 else [f"{stream}-{i}" for i in range(stream_count)]
        # JavaScript's % keeps the hash's sign: node's "<stream>--<i>" names exist too (stream_name).
        self._streams += [f"{stream}--{i}" for i in range(1, stream_count)]
        self._last: dict[str, tuple[tuple[int, int], str]] = {}
        """Stream -> the last entry delivered here (its key and id): a new socket's base offset."""
        self.url = url
        self.stream = stream
        self.max_len = max_len
        self.session_prefix = session_prefix
        self.recovery_ms = recovery_ms
        self.max_session_bytes = max_session_bytes
        self.request_timeout = request_timeout
        self.sequences_emits = recovery_ms > 0
        self.debug = debug
        self.uid = secrets.token_hex(8)
        self.last_seq: Any = "0-0"
        self.counters: dict[str, int] = dict.fromkeys(("published", "received", "errors", "dropped"), 0)
        self._cmd: aioredis.Redis | None = None
        self._rd: aioredis.Redis | None = None
        self._sub: aioredis.Redis | None = None
        self._pubsub: Any = None
        """The subscription of the listener task while it is up (cluster-wide questions)."""
        self._ready: asyncio.Event | None = None
        self._namespaces: set[str] = {"/"}
        # XADD (fields, what to do with the entry id) or PUBLISH (channel, payload), sent in order.
        self._queue: deque[tuple[dict[str, str], Callable[[str], None] | None] | tuple[str, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._recent: deque[tuple[tuple[int, int], str, list[str], list[str], list[bytes]]] = deque(
            maxlen=RECENT
        )
        self._skipped: set[int] = set()
        """Entry types seen and skipped (logged once each)."""
        self._floors: dict[str, tuple[tuple[int, int], set[tuple[int, int]]]] = {}
        """sid of a socket recovered here -> (the end of its read, ids replayed from the recent deliveries):
        deliveries of those are kept from it."""

    @classmethod
    def from_config(cls, config: Config) -> RedisStreamsAdapter:
        """The adapter ``[redis]`` and ``[recovery]`` describe (``[redis] prefix`` is the stream name).

        Raises:
            ConfigError: a URL that is not ``redis://``, ``rediss://`` or ``unix://``.
        """
        r = config.redis
        if not r.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(config.source, "redis.url", f"{redact_url(r.url)!r} is not a redis:// URL")
        rec = config.recovery
        return cls(
            r.url,
            stream=r.prefix,
            max_len=r.stream_max_len,
            session_prefix=r.session_prefix,
            recovery_ms=int(rec.max_disconnection_duration * 1000),
            max_session_bytes=rec.max_session_bytes,
            request_timeout=r.request_timeout,
            sharded_pubsub=r.sharded_pubsub,
            stream_count=r.stream_count,
            debug=config.server.debug,
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    def attach(self, server: LocalNode) -> None:
        super().attach(server)
        self._namespaces.update(server.router.namespaces(), server.router.server_side_namespaces())

    async def start(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._cmd = aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0)
        self._rd = aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0)
        self._sub = aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0)
        # Read from the end as it is now, as node does ("$"): what was added before this node started is
        # for the nodes that were there.
        start: dict[str, str] = {}
        try:
            for name in self._streams:
                info: Any = await self._cmd.xrevrange(name, count=1)
                start[name] = info[0][0].decode() if info else "0-0"
                # A socket that connects before any delivery has this base offset, not "0-0" (which would
                # replay the whole stream to it on a recovery).
                self._last[name] = (parse_id(start[name]), start[name])
        except Exception as exc:  # Redis down at start: serve locally, keep trying in the loops
            log.error("! redis-streams: %s unreachable at start: %s", redact_url(self.url), exc)
            start = dict.fromkeys(self._streams, "$")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_forever(start)),
            loop.create_task(self._write_forever()),
            loop.create_task(self._listen_forever()),
        ]
        # Subscribed (or failed once) when startup() returns: a healthy node answers questions at once.
        await self._ready.wait()

    async def stop(self) -> None:
        if self._queue and self._cmd is not None:
            # What the last handlers emitted (and the sessions the shutdown kept) still goes out.
            with contextlib.suppress(Exception):
                pipe = self._cmd.pipeline(transaction=False)
                for item in self._queue:
                    self._pipe(pipe, item)
                self._queue.clear()
                async with asyncio.timeout(2.0):
                    await pipe.execute()
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._end_requests()
        for conn in (self._cmd, self._rd, self._sub):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.aclose()

    # -- writing --------------------------------------------------------------------------------------

    def _fields(self, namespace: str, type_: int, data: Any) -> dict[str, str]:
        return {"uid": self.uid, "nsp": namespace, "type": str(type_), "data": encode_data(data)}

    def _enqueue(self, fields: dict[str, str], done: Callable[[str], None] | None) -> None:
        self._queue.append((fields, done))
        assert self._wake is not None
        self._wake.set()

    def _enqueue_publish(self, channel: str, payload: bytes) -> None:
        if self._wake is None:
            return  # not started (or stopped): nobody to ask or answer
        self._queue.append((channel, payload))
        self._wake.set()

    def _pipe(
        self, pipe: Any, item: tuple[dict[str, str], Callable[[str], None] | None] | tuple[str, bytes]
    ) -> None:
        if isinstance(item[0], dict):
            pipe.xadd(self.stream_of(item[0]["nsp"]), item[0], maxlen=self.max_len, approximate=True)
        elif self.sharded_pubsub:
            pipe.spublish(item[0], item[1])
        else:
            pipe.publish(item[0], item[1])

    async def _write_forever(self) -> None:
        assert self._wake is not None and self._cmd is not None
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                pipe = self._cmd.pipeline(transaction=False)
                for item in batch:
                    self._pipe(pipe, item)
                try:
                    ids = await pipe.execute()
                except Exception as exc:
                    self.counters["errors"] += 1
                    log.error("! redis-streams: XADD/PUBLISH failed (%d messages): %s", len(batch), exc)
                    ids = [None] * len(batch)
                for item, eid in zip(batch, ids, strict=True):
                    self.counters["published"] += 1
                    done = item[1]
                    if callable(done):
                        try:
                            done(eid.decode() if isinstance(eid, bytes) else "")
                        except Exception:
                            log.exception("! redis-streams: local delivery failed")

    def publish(self, message: BroadcastMessage, packets: list[bytes]) -> None:
        """Recovery off: the server delivered locally already; the other nodes read it from the stream."""
        self._enqueue(
            self._broadcast_fields(
                message.namespace, message.event, message.args, message.rooms, message.except_rooms
            ),
            None,
        )

    def _broadcast_fields(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
    ) -> dict[str, str]:
        return self._fields(namespace, BROADCAST, broadcast_data(namespace, event, args, rooms, except_rooms))

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
        """Recovery on: XADD; this node delivers it, with the entry id as the offset, when its reader reads
        it, like any other node's. Node's adapter delivers its own emits when XADD answers instead, which
        lets a socket get a later offset before an earlier one (another node's, still being read): its
        client's last offset then no longer says what it has, and a recovery sends some packets twice."""
        server = self._server()

        def failed(eid: str) -> None:
            if not eid:  # Redis failed: deliver without an offset (this emit cannot be recovered)
                server.deliver_local(namespace, packets, rooms, except_rooms)

        self._enqueue(self._broadcast_fields(namespace, event, args, rooms, except_rooms), failed)

    def _deliver(
        self, eid: str, namespace: str, event: str, args: list[Any], rooms: list[str], except_rooms: list[str]
    ) -> None:
        server = self._server()
        key = parse_id(eid)
        packets = server.parser_cls.encode_event(namespace, event, (*args, eid))
        stream = self.stream_of(namespace)
        if key > self._last.get(stream, ((0, 0), ""))[0]:
            self._last[stream] = (key, eid)
            self.last_seq = eid
        self._recent.append((key, namespace, rooms, except_rooms, packets))
        excluded = tuple(except_rooms)
        if self._floors:
            excluded += tuple(sid for sid, (end, ids) in self._floors.items() if key <= end or key in ids)
        n = server.deliver_local(namespace, packets, rooms, excluded)
        if server.state.observe and n:
            server.state.count_out(event, n)

    # -- reading --------------------------------------------------------------------------------------

    async def _read_forever(self, start: dict[str, str]) -> None:
        assert self._rd is not None
        last = dict(start)
        backoff = 0.05
        while not self._stopping:
            try:
                response: Any = await self._rd.xread(last, count=100, block=1000)  # type: ignore[arg-type]
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["errors"] += 1
                log.warning("! redis-streams: XREAD failed: %s (again in %.2fs)", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for raw_stream, entries in response or []:
                name = raw_stream.decode()
                for raw_id, raw_fields in entries:
                    eid = last[name] = raw_id.decode()
                    try:
                        self._on_entry(eid, {k.decode(): v.decode() for k, v in raw_fields.items()})
                    except Exception as exc:
                        self.counters["errors"] += 1
                        log.warning("! redis-streams: entry %s of %s not understood: %s", eid, name, exc)

    def _on_entry(self, eid: str, fields: dict[str, str]) -> None:
        if fields.get("uid") == self.uid and not (self.sequences_emits and fields.get("type") == "3"):
            return  # ours: delivered locally already (local-first), or acted on here before it was sent
        namespace = fields.get("nsp", "")
        if not namespace:
            return  # node's reader skips entries without a namespace too (adapter.ts startPolling)
        type_ = int(fields.get("type", "0"))
        data = decode_data(fields["data"]) if fields.get("data") else {}
        self.counters["received"] += 1
        opts = data.get("opts") or {}
        rooms, except_rooms = list(opts.get("rooms") or ()), list(opts.get("except") or ())
        if type_ == BROADCAST:
            packet = data["packet"]
            if packet.get("type") != 2 or "requestId" in data or packet.get("id") is not None:
                return  # not an EVENT, or an emit with acks: not supported across nodes here
            event, *args = packet["data"]
            if self.sequences_emits and not is_volatile(opts):
                self._deliver(eid, namespace, event, args, rooms, except_rooms)
            else:
                server = self._server()
                server.deliver_local(
                    namespace,
                    server.parser_cls.encode_event(namespace, event, tuple(args)),
                    rooms,
                    except_rooms,
                )
        elif type_ == SOCKETS_JOIN:
            Adapter.add_sockets(self, namespace, tuple(rooms), tuple(except_rooms), tuple(data["rooms"]))
        elif type_ == SOCKETS_LEAVE:
            Adapter.del_sockets(self, namespace, tuple(rooms), tuple(except_rooms), tuple(data["rooms"]))
        elif type_ == DISCONNECT_SOCKETS:
            Adapter.disconnect_sockets(
                self, namespace, tuple(rooms), tuple(except_rooms), bool(data.get("close"))
            )
        elif type_ == MessageType.SET_DATA and isinstance(data.get("data"), dict):
            Adapter.set_data(self, namespace, tuple(rooms), data["data"])
        elif type_ not in self._skipped:
            # Heartbeats (1, 2, 13: node's ClusterAdapterWithHeartbeat, not used by the 0.3 adapter) or a
            # type of a later version: skipped, said once per type (a busy stream would flood the log).
            self._skipped.add(type_)
            log.warning("! redis-streams: entry %s of type %s skipped (not one Tether reads)", eid, type_)

    # -- cluster-wide changes: here (RequestingAdapter), then the others through the stream --------------

    def _send_change(self, namespace: str, request: Request) -> None:
        """A join, leave, disconnect or set-data as node's stream entry (SET_DATA: Tether's own type)."""
        try:
            fields = self._fields(namespace, CHANGES[request.type], change_data(request))
        except (TypeError, ValueError) as exc:  # socket.data that neither JSON nor msgpack can carry
            self.counters["errors"] += 1
            log.error("! redis-streams: %s not sent to the other nodes: %s", request.type.name, exc)
            return
        self._enqueue(fields, None)

    # -- recovery -------------------------------------------------------------------------------------

    def persist_session(self, session: SavedSession) -> None:
        """SET the session as node's adapter does (msgpack, base64), expiring with the recovery window."""
        try:
            value = encode_session(session)
        except TypeError as exc:
            log.warning("! %s not kept for recovery: its data cannot be stored: %s", session.sid, exc)
            return
        key = self.session_prefix + session.pid
        self._server().spawn(self._set(key, value))

    async def _set(self, key: str, value: str) -> None:
        assert self._cmd is not None
        try:
            await self._cmd.set(key, value, px=self.recovery_ms)
        except Exception as exc:
            self.counters["errors"] += 1
            log.error("! redis-streams: session not kept: %s", exc)

    def restore_session(
        self, pid: str, offset: str | None, namespace: str
    ) -> asyncio.Future[Restored | None]:
        return asyncio.ensure_future(self._restore(pid, offset, namespace))

    async def _restore(self, pid: str, offset: str | None, namespace: str) -> Restored | None:
        assert self._cmd is not None
        if offset is not None and not ID.fullmatch(offset):
            return None  # refused before any Redis round trip (node: "invalid offset")
        key = self.session_prefix + pid
        pipe = self._cmd.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        try:
            raw, _ = await pipe.execute()
        except Exception as exc:
            log.error("! redis-streams: cannot restore a session: %s", exc)
            return None
        if raw is None:
            return None
        body = decode_session(raw)
        extra = body.get("tether") or {}
        if offset is None:
            offset = extra.get("base")
            if not isinstance(offset, str) or not ID.fullmatch(offset):
                return None
        stream = self.stream_of(namespace)
        if offset != "0-0" and not await self._cmd.xrange(stream, offset, offset):
            return None  # trimmed from the stream (MAXLEN): what it missed is partly gone
        rooms = set(body.get("rooms") or ())
        packets: list[bytes] = []
        size = 0
        server = self._server()
        position = offset
        for _ in range(XRANGE_CALLS):
            ms, seq = parse_id(position)
            entries: Any = await self._cmd.xrange(stream, f"{ms}-{seq + 1}", "+", count=1000)
            if not entries:
                break
            for raw_id, raw_fields in entries:
                position = raw_id.decode()
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if fields.get("nsp") != namespace or fields.get("type") != str(BROADCAST):
                    continue
                data = decode_data(fields["data"])
                opts = data.get("opts") or {}
                if (
                    data["packet"].get("type") != 2
                    or not selects(rooms, opts.get("rooms") or (), opts.get("except") or ())
                    or is_volatile(opts)  # delivered without an offset: replaying it could send it twice
                ):
                    continue
                event, *args = data["packet"]["data"]
                encoded = server.parser_cls.encode_event(namespace, event, (*args, position))
                size += sum(len(p) for p in encoded)
                if self.max_session_bytes and size > self.max_session_bytes:
                    return None
                packets.extend(encoded)
        session = SavedSession(
            body.get("pid", pid),
            body["sid"],
            namespace,
            tuple(body.get("rooms") or ()),
            body.get("data"),
            extra.get("user_id"),
            extra.get("session_id"),
            position,
            time.monotonic(),
        )
        return Restored(session, packets, position)

    def recovered(self, sock: LocalSocket, restored: Restored) -> list[bytes]:
        """The socket is in its rooms now: what was delivered here after the session's read, and a floor
        that keeps from it what this node delivers late at or below that read."""
        end = parse_id(str(restored.last_offset))
        rooms = set(restored.session.rooms)
        extra: list[bytes] = []
        replayed: set[tuple[int, int]] = set()
        for key, namespace, targets, excluded, packets in sorted(self._recent, key=lambda e: e[0]):
            if key > end and namespace == sock.namespace and selects(rooms, targets, excluded):
                extra.extend(packets)
                replayed.add(key)
        self._floors[sock.sid] = (end, replayed)
        asyncio.get_running_loop().call_later(10.0, self._floors.pop, sock.sid, None)
        return extra

    def stream_of(self, namespace: str) -> str:
        """The stream ``namespace``'s entries go to (node's ``computeStreamName``)."""
        return stream_name(self.stream, namespace, self.stream_count)

    def base_offset(self, namespace: str) -> Any:
        """The id of the last entry of ``namespace``'s stream delivered here (at start: the stream's end)."""
        return self._last.get(self.stream_of(namespace), ((0, 0), "0-0"))[1]

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "stream": self.stream, **self.counters}
