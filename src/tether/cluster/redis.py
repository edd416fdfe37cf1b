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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from ..errors import ClusterError, ConfigError, TetherError
from .base import BroadcastMessage, LocalNode
from .requests import RequestingAdapter
from .wire import (
    SESSION_CHANNEL,
    Channels,
    Request,
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

__all__ = ["RedisAdapter"]

log = logging.getLogger("tether.cluster.redis")

BACKOFF_MIN = 0.05
PING_INTERVAL = 5.0
"""Seconds between PINGs on the subscriber connection when it is idle; three missed means Redis is gone."""
BATCH = 512
"""Most messages sent in one pipeline."""

_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redact_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = (
        (parts.username or "") + ":***@" + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    )
    return urlunsplit(parts._replace(netloc=netloc))


class RedisAdapter(RequestingAdapter):
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

    def attach(self, server: LocalNode) -> None:
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
        # The loops also end on ``_stopping``, not on the cancel alone: on Python 3.11 a cancel that lands as
        # redis-py's ``asyncio.wait_for`` completes is swallowed, and the loop would run (and stop() wait) on.
        if self._wake is not None:
            self._wake.set()
        for task in self._tasks:
            task.cancel()
        # gather, not ``suppress(CancelledError)`` around each await, which would also swallow a cancel of
        # stop() itself; the tasks' own errors are dropped: stopping, nobody left to tell.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._end_requests()
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

    def _reading(self) -> bool:
        """Whether the running reader should go on: not stopping, and not replaced by :meth:`_failed`.

        Checked besides the cancel, which may be lost (see :meth:`stop`).
        """
        return not self._stopping and bool(self._tasks) and self._tasks[0] is asyncio.current_task()

    async def _read_forever(self) -> None:
        assert self._sub is not None and self._ready is not None
        delay = BACKOFF_MIN
        loop = asyncio.get_running_loop()
        while self._reading():
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
                while self._reading():
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
            if not self._reading():
                return
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

    # -- requests from other nodes (answered by RequestingAdapter) ----------------------------------

    def _on_request(self, namespace: str, data: bytes) -> None:
        if self.server is None:
            return
        req = decode_request(data)
        if self.is_own_request(req):
            return
        self.answer_request(
            namespace, req, lambda response, binary: self._respond(namespace, response, binary)
        )

    def _respond(self, namespace: str, response: dict[str, Any], binary: bool = False) -> None:
        payload = encode_msgpack(response) if binary else encode_json(response)
        self._enqueue(self.channels.response(namespace), payload)

    def _on_response(self, data: bytes) -> None:
        self.receive_response(decode_object(data))

    # -- our requests ---------------------------------------------------------------------------------

    async def _send_request(self, namespace: str, request: Request) -> int:
        """``PUBSUB NUMSUB`` says how many nodes listen (we are one of them), then the request goes."""
        if not self.connected or self._pub is None:
            return 0
        self.watch_namespace(namespace)
        channel = self.channels.request(namespace)
        try:
            numsub = await self._pub.pubsub_numsub(channel)
        except Exception as exc:
            self._failed(exc)
            return 0
        expected = int(numsub[0][1]) - 1 if numsub else 0  # we are subscribed too
        if expected > 0:
            self._enqueue(channel, request.encode())
        return max(0, expected)

    def _send_change(self, namespace: str, request: Request) -> None:
        self._enqueue(self.channels.request(namespace), request.encode())

    def _timed_out(self, request: Request, answered: int, expected: int, seconds: float) -> None:
        self.counters["requests_timed_out"] += 1
        super()._timed_out(request, answered, expected, seconds)

    async def server_count(self) -> int:
        if not self.connected or self._pub is None:
            return 1
        try:
            numsub = await self._pub.pubsub_numsub(self.channels.request("/"))
        except Exception as exc:
            self._failed(exc)
            return 1
        return max(1, int(numsub[0][1]) if numsub else 1)

    # -- the once-per-cluster lease (tether.server.leader) ---------------------------------------------

    @property
    def lease_key(self) -> str:
        return f"{self.channels.prefix}#leader#"

    async def hold_lease(self, ttl: float) -> bool:
        """Take the leader lease if free, extend it if ours; True while we hold it.

        Raises:
            ClusterError: Redis is not connected.
            redis.RedisError: the command failed.
        """
        if self._pub is None or not self.connected:
            raise ClusterError("redis", "not connected")
        script = self._pub.register_script(_LEASE_SCRIPT)  # EVALSHA, loading the script when Redis lacks it
        held = await script(keys=[self.lease_key], args=[self.uid, max(1, round(ttl * 1000))])
        return bool(held)

    async def release_lease(self) -> None:
        """Give the lease up if we hold it (a clean stop: another node takes over at once)."""
        if self._pub is not None:
            await self._pub.register_script(_RELEASE_SCRIPT)(keys=[self.lease_key], args=[self.uid])

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
        while not self._stopping:  # see stop(): a cancel may be lost
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._stopping:
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
