"""The Redis adapter: many hosts behave like one (``[room] driver = "redis"``).

Theory of operation. Each node has a random ``uid`` and two Redis connections:

* a *subscriber* that PSUBSCRIBEs to ``<prefix>#*`` (broadcasts of every namespace) and SUBSCRIBEs to
  ``<prefix>-request#<nsp>#`` / ``<prefix>-response#<nsp>#`` for each namespace it serves, plus
  ``tether#session#``. One reader task decodes what arrives and delivers it locally;
* a *publisher* fed by a queue: :meth:`publish` (called on the emit hot path, synchronously) encodes the
  message and appends it; a writer task sends queued messages in pipelined batches, so an emit never waits
  for Redis and a burst of emits costs one round trip.

The wire format is node's ``@socket.io/redis-adapter`` one (:mod:`tether.cluster.wire`), so Node.js servers
and emitters can share the Redis. Messages carrying our own uid are dropped: the sender delivered locally
already (``Server.broadcast`` is local-first), which is what makes every emit arrive exactly once.

Resilience: when Redis goes away the reader logs it once, local delivery continues (the server never waits
on the adapter), messages for other nodes are dropped and counted (pub/sub keeps nothing for a subscriber
that is gone anyway), and the reader reconnects with exponential backoff and jitter, resubscribes, and logs
once more when it is back. Nothing here raises into a handler: errors are logged and counted.

Cluster-wide questions (``fetch_sockets``, ``sids``, ``is_user_online``...) use the request/response
channels: ``PUBSUB NUMSUB`` on the request channel says how many nodes will answer; we wait for that many
answers or ``[redis] request_timeout`` seconds, whichever comes first, and use what we have.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from ..errors import ClusterError, ConfigError, ConnectionClosed, TetherError
from .base import Adapter, BroadcastMessage, SocketInfo, socket_info
from .wire import (
    SESSION_CHANNEL,
    Channels,
    Request,
    RequestType,
    SessionCommand,
    decode_broadcast,
    decode_object,
    decode_request,
    decode_session_command,
    encode_broadcast,
    encode_json,
    encode_msgpack,
    encode_session_command,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..server.server import Server

__all__ = ["RedisAdapter"]

log = logging.getLogger("tether.cluster.redis")

BACKOFF_MIN = 0.05
PING_INTERVAL = 5.0
"""Seconds between PINGs on the subscriber connection when it is idle; three missed means Redis is gone."""
BATCH = 512
"""Most messages sent in one pipeline."""


def redact_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = (
        (parts.username or "") + ":***@" + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    )
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(slots=True)
class _Pending:
    """A request of ours waiting for answers."""

    expected: int
    future: asyncio.Future[None]
    done_when: Callable[[dict[str, Any]], bool] | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)


class RedisAdapter(Adapter):
    """Carries emits and cluster-wide questions between Tether nodes (and Node.js servers) via Redis.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS).
        prefix: channel prefix, ``socket.io`` as in node's adapter; nodes and emitters must agree.
        request_timeout: seconds to wait for the other nodes' answers to a cluster-wide question.
        max_queue: messages waiting for Redis beyond which new ones are dropped (and counted).
        reconnect_max: the longest wait, in seconds, between two reconnection attempts.
    """

    remote = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "socket.io",
        *,
        request_timeout: float = 5.0,
        max_queue: int = 10_000,
        reconnect_max: float = 5.0,
        debug: bool = False,
    ) -> None:
        super().__init__()
        self.url = url
        self.channels = Channels(prefix)
        self.uid = secrets.token_hex(6)
        self.request_timeout = request_timeout
        self.max_queue = max_queue
        self.reconnect_max = reconnect_max
        self.debug = debug
        self.connected = False
        """True while the subscriber connection is up (and so, in all likelihood, the publisher's)."""
        self.counters: dict[str, int] = dict.fromkeys(
            ("published", "received", "dropped", "errors", "reconnects", "requests_timed_out"), 0
        )
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._pub: aioredis.Redis | None = None
        self._sub: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._namespaces: set[str] = {"/"}
        self._requests: dict[str, _Pending] = {}
        self._down_since: float | None = None
        self._stopping = False

    @classmethod
    def from_config(cls, config: Config) -> RedisAdapter:
        """The adapter ``[redis]`` describes.

        Raises:
            ConfigError: a URL that is not ``redis://``, ``rediss://`` or ``unix://``, or a prefix that is
                empty or contains ``#`` (the channel separator).
        """
        r = config.redis
        if urlsplit(r.url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(config.source, "redis.url", f"{redact_url(r.url)!r} is not a redis:// URL")
        if not r.prefix or "#" in r.prefix:
            raise ConfigError(config.source, "redis.prefix", "must be non-empty and without '#'")
        return cls(
            r.url,
            r.prefix,
            request_timeout=r.request_timeout,
            max_queue=r.max_queue,
            reconnect_max=r.reconnect_max,
            debug=config.server.debug,
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    def attach(self, server: Server) -> None:
        super().attach(server)
        self._namespaces.update(server.router.namespaces())

    async def start(self) -> None:
        """Connect and subscribe. Redis being down is not fatal: the node serves locally and keeps trying."""
        self._stopping = False
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._pub = aioredis.Redis.from_url(
            self.url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            socket_connect_timeout=2.0,
            socket_timeout=10.0,
        )
        # The subscriber gets no retries of its own: the reader loop owns reconnection (and the logging).
        self._sub = aioredis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_forever()), loop.create_task(self._write_forever())]
        # Wait for the first attempt so that a healthy node is subscribed when startup() returns.
        await self._ready.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._queue and self.connected:
            await self._flush_once()  # what handlers emitted last still goes out
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping: nobody left to tell
                await task
        self._tasks = []
        for pending in self._requests.values():
            if not pending.future.done():
                pending.future.set_result(None)
        for client in (self._pub, self._sub):
            if client is not None:
                with contextlib.suppress(Exception):  # connection already gone
                    await client.aclose()
        self._pub = self._sub = None
        self.connected = False

    def watch_namespace(self, namespace: str) -> None:
        """Answer requests about ``namespace`` too (namespaces of the router are watched from the start)."""
        if namespace in self._namespaces:
            return
        self._namespaces.add(namespace)
        pubsub = self._pubsub
        if pubsub is not None and self.connected:
            asyncio.get_running_loop().create_task(self._subscribe_namespace(pubsub, namespace))

    async def _subscribe_namespace(self, pubsub: Any, namespace: str) -> None:
        try:
            await pubsub.subscribe(*self._namespace_channels(namespace))
        except Exception as exc:  # the reader will notice the connection is gone and resubscribe everything
            self._failed(exc)

    def _namespace_channels(self, namespace: str) -> list[str]:
        c = self.channels
        return [c.request(namespace), c.response(namespace), c.specific_response(namespace, self.uid)]

    # -- connection state -----------------------------------------------------------------------------

    def _note_down(self, exc: BaseException) -> None:
        if self._stopping:
            return
        self.connected = False
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "! redis %s unreachable (%s: %s): serving local clients only, reconnecting with backoff",
                redact_url(self.url),
                type(exc).__name__,
                exc,
            )
        elif self.debug:
            log.debug("! redis still unreachable: %s", exc)

    def _failed(self, exc: BaseException) -> None:
        """A command failed outside the reader: restart the reader, which owns the connection state.

        Only the reader sets ``connected`` back to True (after resubscribing); if we only marked the node
        down here while the subscriber stayed healthy, nothing would ever mark it up again.
        """
        was_connected = self.connected
        self._note_down(exc)
        if was_connected and self._tasks and not self._stopping:
            reader = self._tasks[0]
            reader.cancel()
            self._tasks[0] = asyncio.get_running_loop().create_task(self._read_forever())

    def _note_up(self) -> None:
        self.connected = True
        if self._down_since is not None:
            self.counters["reconnects"] += 1
            log.warning(
                "= redis %s is back after %.1fs; resubscribed",
                redact_url(self.url),
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        elif self.debug:
            log.debug("= redis %s subscribed as node %s", redact_url(self.url), self.uid)

    # -- reading --------------------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._sub is not None and self._ready is not None
        delay = BACKOFF_MIN
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self.channels.broadcast_pattern)
                channels = [SESSION_CHANNEL]
                for namespace in sorted(self._namespaces):
                    channels += self._namespace_channels(namespace)
                await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                self._note_up()
                self._ready.set()
                delay = BACKOFF_MIN
                last_seen = last_ping = loop.time()
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    now = loop.time()
                    if msg is not None:
                        last_seen = now
                        self._dispatch(msg)
                        continue
                    if now - last_seen > 3 * PING_INTERVAL:
                        raise ClusterError("redis", f"no reply for {now - last_seen:.0f}s")
                    if now - last_ping > PING_INTERVAL:
                        last_ping = now
                        await pubsub.ping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._note_down(exc)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):  # the connection is broken already
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._ready.set()
            # Jitter keeps many nodes from hammering a Redis that just came back at the same instant.
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.reconnect_max)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        try:
            channel = msg["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            data = msg["data"]
            if msg["type"] not in ("message", "pmessage") or not isinstance(data, bytes):
                return  # a pong: liveness only
            if msg["type"] == "pmessage":
                self._on_broadcast(channel, data)
            elif channel == SESSION_CHANNEL:
                self._on_session(data)
            elif (ns := self.channels.namespace_of(channel, "request")) is not None:
                self._on_request(ns, data)
            elif self.channels.namespace_of(channel, "response") is not None:
                self._on_response(data)
        except Exception as exc:
            # A bad message from some other process must not stop the reader (nor reach any handler).
            self.counters["errors"] += 1
            log.error("! dropped a cluster message: %s: %s", type(exc).__name__, exc)

    def _on_broadcast(self, channel: str, data: bytes) -> None:
        server = self.server
        if server is None:
            return
        where = self.channels.split_broadcast(channel)
        if where is None:
            return
        namespace, room = where
        ns = server.namespaces.get(namespace)
        # Cheap filters before decoding: no socket here in that namespace, or in that room.
        if ns is None or not len(ns.rooms) or (room is not None and not ns.rooms.members(room)):
            return
        message = decode_broadcast(data)
        if message.uid == self.uid:
            return
        self.counters["received"] += 1
        if self.debug:
            log.debug("< %s from %s to %s", message.event, message.uid, message.rooms or "all")
        packets = server.parser_cls.encode_event(namespace, message.event, message.args)
        server.deliver_local(namespace, packets, message.rooms, message.except_rooms)
        for outgoing in server.outgoing_hooks:
            outgoing(namespace, message.event, message.args, message.rooms, message.except_rooms)

    def _on_session(self, data: bytes) -> None:
        command = decode_session_command(data)
        if command.node != self.uid:  # our own command: we acted on it when we published it
            self.deliver_session(command)

    # -- requests from other nodes --------------------------------------------------------------------

    def _on_request(self, namespace: str, data: bytes) -> None:
        server = self.server
        if server is None:
            return
        req = decode_request(data)
        if req.uid == self.uid or (req.request_id is not None and req.request_id in self._requests):
            return  # our own request
        if self.debug:
            log.debug("< request %s from %s on %s", req.type.name, req.uid, namespace)
        t = req.type
        ns = server.namespaces.get(namespace)
        if t is RequestType.SOCKETS:
            sids = [s.sid for s in server.local_sockets(namespace, req.rooms)]
            self._respond(namespace, {"requestId": req.request_id, "sockets": sids})
        elif t is RequestType.ALL_ROOMS:
            rooms = [*ns.rooms.all_rooms(), *(s.sid for s in ns.rooms.select(()))] if ns is not None else []
            self._respond(namespace, {"requestId": req.request_id, "rooms": rooms})
        elif t is RequestType.REMOTE_FETCH:
            infos = [
                _info_json(socket_info(s))
                for s in server.local_sockets(namespace, req.target_rooms, req.except_rooms)
            ]
            self._respond(namespace, {"requestId": req.request_id, "sockets": infos})
        elif t in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT):
            self._on_remote_change(namespace, req)
        elif t is RequestType.BROADCAST:
            self._on_broadcast_with_ack(namespace, req)
        elif self.debug:
            log.debug("= request %s not supported by Tether: ignored", t.name)

    def _on_remote_change(self, namespace: str, req: Request) -> None:
        if req.sid is not None:
            # The single-socket form: answer only when the socket is here.
            assert self.server is not None
            if self.server.get_socket(req.sid, namespace) is None:
                return
            targets: tuple[str, ...] = (req.sid,)
            rooms: tuple[str, ...] = (req.room,) if req.room is not None else ()
        else:
            targets, rooms = req.target_rooms, req.rooms
        if req.type is RequestType.REMOTE_JOIN:
            super().add_sockets(namespace, targets, req.except_rooms, rooms)
        elif req.type is RequestType.REMOTE_LEAVE:
            super().del_sockets(namespace, targets, req.except_rooms, rooms)
        else:
            super().disconnect_sockets(namespace, targets, req.except_rooms, req.close)
        if req.sid is not None:
            self._respond(namespace, {"requestId": req.request_id})

    def _on_broadcast_with_ack(self, namespace: str, req: Request) -> None:
        # node's emitWithAck across the cluster: tell how many acks to expect, then forward each one.
        assert self.server is not None
        packet = req.packet or {}
        payload = packet.get("data")
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise ClusterError("redis", "BROADCAST request without an event")
        sockets = list(self.server.local_sockets(namespace, req.target_rooms, req.except_rooms))
        self._respond(
            namespace,
            {
                "type": int(RequestType.BROADCAST_CLIENT_COUNT),
                "requestId": req.request_id,
                "clientCount": len(sockets),
            },
        )
        timeout = req.flags.get("timeout")
        seconds = timeout / 1000 if isinstance(timeout, int | float) and timeout > 0 else self.request_timeout
        for sock in sockets:
            try:
                future = sock.emit(payload[0], *payload[1:], ack=True, timeout=seconds)
            except ConnectionClosed:
                continue
            assert isinstance(future, asyncio.Future)
            future.add_done_callback(lambda f: self._forward_ack(namespace, req.request_id, f))

    def _forward_ack(self, namespace: str, request_id: str | None, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        value = future.result()
        if isinstance(value, tuple):
            value = value[0] if value else None
        response = {"type": int(RequestType.BROADCAST_ACK), "requestId": request_id, "packet": value}
        self._enqueue(self.channels.response(namespace), encode_msgpack(response))

    def _respond(self, namespace: str, response: dict[str, Any]) -> None:
        self._enqueue(self.channels.response(namespace), encode_json(response))

    # -- our requests ---------------------------------------------------------------------------------

    def _on_response(self, data: bytes) -> None:
        response = decode_object(data)
        pending = self._requests.get(str(response.get("requestId")))
        if pending is None or pending.future.done():
            return
        pending.responses.append(response)
        if len(pending.responses) >= pending.expected or (
            pending.done_when is not None and pending.done_when(response)
        ):
            pending.future.set_result(None)

    async def _ask(
        self, namespace: str, request: Request, done_when: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Publish ``request``; gather the answers (fewer on timeout; none while Redis is down)."""
        if not self.connected or self._pub is None:
            return []
        self.watch_namespace(namespace)
        channel = self.channels.request(namespace)
        try:
            numsub = await self._pub.pubsub_numsub(channel)
        except Exception as exc:
            self._failed(exc)
            return []
        expected = int(numsub[0][1]) - 1 if numsub else 0  # we are subscribed too
        if expected <= 0:
            return []
        assert request.request_id is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._requests[request.request_id] = _Pending(expected, future, done_when)
        try:
            self._enqueue(channel, request.encode())
            try:
                await asyncio.wait_for(future, self.request_timeout)
            except TimeoutError:
                self.counters["requests_timed_out"] += 1
                log.warning(
                    "! %s request: %d of %d nodes answered within %gs",
                    request.type.name,
                    len(pending.responses),
                    expected,
                    self.request_timeout,
                )
        finally:
            del self._requests[request.request_id]
        return pending.responses

    def _new_request(self, rtype: RequestType, **fields: Any) -> Request:
        return Request(rtype, self.uid, secrets.token_hex(8), **fields)

    async def fetch_sockets(
        self, namespace: str, rooms: tuple[str, ...] = (), except_rooms: tuple[str, ...] = ()
    ) -> list[SocketInfo]:
        found = await super().fetch_sockets(namespace, rooms, except_rooms)
        request = self._new_request(RequestType.REMOTE_FETCH, target_rooms=rooms, except_rooms=except_rooms)
        for response in await self._ask(namespace, request):
            for s in response.get("sockets") or ():
                if isinstance(s, dict) and isinstance(s.get("id"), str):
                    found.append(_info_from_json(namespace, s))
        return found

    async def sids(self, namespace: str, rooms: tuple[str, ...] = ()) -> set[str]:
        found = await super().sids(namespace, rooms)
        for response in await self._ask(namespace, self._new_request(RequestType.SOCKETS, rooms=rooms)):
            found.update(s for s in response.get("sockets") or () if isinstance(s, str))
        return found

    async def all_rooms(self, namespace: str) -> set[str]:
        found = await super().all_rooms(namespace)
        for response in await self._ask(namespace, self._new_request(RequestType.ALL_ROOMS)):
            found.update(r for r in response.get("rooms") or () if isinstance(r, str))
        return found

    async def server_count(self) -> int:
        if not self.connected or self._pub is None:
            return 1
        try:
            numsub = await self._pub.pubsub_numsub(self.channels.request("/"))
        except Exception as exc:
            self._failed(exc)
            return 1
        return max(1, int(numsub[0][1]) if numsub else 1)

    async def is_user_online(self, user_room: str, namespace: str) -> bool:
        if await super().is_user_online(user_room, namespace):
            return True
        request = self._new_request(RequestType.SOCKETS, rooms=(user_room,))
        responses = await self._ask(namespace, request, done_when=lambda r: bool(r.get("sockets")))
        return any(r.get("sockets") for r in responses)

    # -- changes everywhere ---------------------------------------------------------------------------

    def add_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], join: tuple[str, ...]
    ) -> None:
        super().add_sockets(namespace, rooms, except_rooms, join)
        self._publish_request(
            namespace, Request(RequestType.REMOTE_JOIN, self.uid, None, join, rooms, except_rooms)
        )

    def del_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], leave: tuple[str, ...]
    ) -> None:
        super().del_sockets(namespace, rooms, except_rooms, leave)
        self._publish_request(
            namespace, Request(RequestType.REMOTE_LEAVE, self.uid, None, leave, rooms, except_rooms)
        )

    def disconnect_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], close: bool = False
    ) -> None:
        super().disconnect_sockets(namespace, rooms, except_rooms, close)
        request = Request(RequestType.REMOTE_DISCONNECT, self.uid, None, (), rooms, except_rooms, close=close)
        self._publish_request(namespace, request)

    def _publish_request(self, namespace: str, request: Request) -> None:
        self._enqueue(self.channels.request(namespace), request.encode())

    def publish_session(self, command: SessionCommand) -> None:
        if command.node is None:
            command = dataclasses.replace(command, node=self.uid)  # we acted locally: skip our own echo
        self._enqueue(SESSION_CHANNEL, encode_session_command(command))

    # -- writing --------------------------------------------------------------------------------------

    def publish(self, message: BroadcastMessage, packets: list[bytes]) -> None:
        """Queue ``message`` for the other nodes. Never raises: a failure is logged and counted."""
        try:
            channel, payload = encode_broadcast(
                self.channels,
                self.uid,
                message.namespace,
                message.event,
                message.args,
                message.rooms,
                message.except_rooms,
            )
        except TetherError as exc:
            self.counters["errors"] += 1
            log.error("! emit %r not sent to other nodes: %s", message.event, exc)
            return
        self._enqueue(channel, payload)

    def _enqueue(self, channel: str, payload: bytes) -> None:
        if not self.connected or len(self._queue) >= self.max_queue:
            self.counters["dropped"] += 1
            return
        self._queue.append((channel, payload))
        wake = self._wake
        if wake is not None and not wake.is_set():
            wake.set()

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._flush_once()

    async def _flush_once(self) -> None:
        assert self._pub is not None
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(BATCH, len(queue)))]
        try:
            if len(batch) == 1:
                await self._pub.publish(*batch[0])
            else:
                async with self._pub.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            self.counters["published"] += len(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters["dropped"] += len(batch)
            self._failed(exc)

    # -- introspection --------------------------------------------------------------------------------

    def is_user_online_remote(self, user_room: str, namespace: str) -> bool:
        # The synchronous check cannot wait for other nodes: use ``await server.user_online(...)``.
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "driver": "redis",
            "remote": True,
            "uid": self.uid,
            "url": redact_url(self.url),
            "prefix": self.channels.prefix,
            "connected": self.connected,
            "queued": len(self._queue),
            **self.counters,
        }


def _info_json(info: SocketInfo) -> dict[str, Any]:
    # The fields of node's REMOTE_FETCH answer, plus Tether's userId (ignored by node).
    return {
        "id": info.id,
        "handshake": info.handshake,
        "rooms": list(info.rooms),
        "data": info.data,
        "userId": info.user_id,
    }


def _info_from_json(namespace: str, s: dict[str, Any]) -> SocketInfo:
    rooms = s.get("rooms")
    data = s.get("data")
    handshake = s.get("handshake")
    user_id = s.get("userId")
    return SocketInfo(
        s["id"],
        namespace,
        tuple(r for r in rooms if isinstance(r, str)) if isinstance(rooms, list) else (),
        data if isinstance(data, dict) else {},
        handshake if isinstance(handshake, dict) else {},
        user_id if isinstance(user_id, str) else None,
        node="remote",
    )
