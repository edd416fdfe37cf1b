"""The Redis Streams adapter's cluster-wide questions: Redis pub/sub in node's ``ClusterAdapter`` format.

Node's adapter sends questions and their answers on pub/sub channels (``doPublish`` for "ephemeral"
messages, ``doPublishResponse``): a whole message, msgpack-encoded, in the shapes of node's
``ClusterAdapter`` (:mod:`.cluster_messages` holds them and their translation)::

    PUBLISH <prefix>#<nsp>#          the questions (FETCH_SOCKETS, BROADCAST with acks), SERVER_SIDE_EMIT
    PUBLISH <prefix>#<nsp>#<uid>#    the answers to node <uid> (SERVER_SIDE_EMIT_RESPONSE among them)

Every node SUBSCRIBEs to both channels of each namespace it serves, so ``PUBSUB NUMSUB`` of the public
channel counts the nodes (node's ``serverCount``): the asker waits for that many answers less its own, or
``[redis] request_timeout`` seconds. With ``[redis] sharded_pubsub`` (node's ``useShardedPubSub``) the
same goes through SSUBSCRIBE, SPUBLISH and ``PUBSUB SHARDNUMSUB``. The asking and answering is
:class:`~.requests.RequestingAdapter`'s, shared with the pub/sub adapter and the workers' hub.
:class:`StreamsQuestions` is the layer of :class:`~.streams.RedisStreamsAdapter` that carries them; the
adapter holds the connections, the state and the one ordered write queue (``_enqueue_publish``) that
PUBLISH shares with XADD.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from ..errors import ClusterError
from .cluster_messages import (
    RESPONSES,
    ClusterMessage,
    MessageType,
    answer_message,
    answer_of,
    question,
    request_of,
)
from .requests import Gather, RequestingAdapter
from .wire import Request, RequestType, decode_object, encode_msgpack

__all__ = ["StreamsQuestions"]

log = logging.getLogger("tether.cluster.streams")


class StreamsQuestions(RequestingAdapter):
    """Asks and answers cluster-wide questions over Redis pub/sub (a layer of the streams adapter).

    The attributes below are the adapter's (:meth:`~.streams.RedisStreamsAdapter.__init__` sets them).
    """

    uid: str
    stream: str
    sharded_pubsub: bool
    debug: bool
    counters: dict[str, int]
    _cmd: aioredis.Redis | None
    _sub: aioredis.Redis | None
    _pubsub: Any
    _ready: asyncio.Event | None
    _namespaces: set[str]
    _stopping: bool

    def _enqueue_publish(self, channel: str, payload: bytes) -> None:
        """PUBLISH ``payload`` on ``channel``, in order with the stream's writes (the adapter's queue)."""
        raise NotImplementedError

    def public_channel(self, namespace: str) -> str:
        """Where questions about ``namespace`` go (node's ``#publicChannel``)."""
        return f"{self.stream}#{namespace}#"

    def private_channel(self, namespace: str, uid: str) -> str:
        """Where the answers to node ``uid``'s questions about ``namespace`` go."""
        return f"{self.stream}#{namespace}#{uid}#"

    def _channels(self, namespaces: list[str]) -> list[str]:
        return [c for ns in namespaces for c in (self.public_channel(ns), self.private_channel(ns, self.uid))]

    async def _listen_forever(self) -> None:
        assert self._sub is not None and self._ready is not None
        backoff = 0.05
        while not self._stopping:
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await self._subscribe(pubsub, self._channels(sorted(self._namespaces)))
                self._pubsub = pubsub
                self._ready.set()
                backoff = 0.05
                while not self._stopping:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        self._on_published(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["errors"] += 1
                log.warning("! redis-streams: SUBSCRIBE failed: %s (again in %.2fs)", exc, backoff)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):  # the connection is broken already
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._ready.set()
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _subscribe(self, pubsub: Any, channels: list[str]) -> None:
        if self.sharded_pubsub:
            await pubsub.ssubscribe(*channels)
        else:
            await pubsub.subscribe(*channels)

    async def _watch(self, namespace: str) -> bool:
        """Subscribed to ``namespace``'s channels (to get the answers of a question about it)?"""
        pubsub = self._pubsub
        if pubsub is None:
            return False
        if namespace not in self._namespaces:
            self._namespaces.add(namespace)
            try:
                await self._subscribe(pubsub, self._channels([namespace]))
            except Exception as exc:  # the listener notices the broken connection and resubscribes all
                log.warning("! redis-streams: SUBSCRIBE %s failed: %s", namespace, exc)
                return False
        return True

    def _on_published(self, msg: dict[str, Any]) -> None:
        try:
            data = msg.get("data")
            if msg.get("type") not in ("message", "smessage") or not isinstance(data, bytes):
                return
            self._on_message(decode_object(data))
        except Exception as exc:
            # Garbage from some other process must not stop the listener (nor reach any handler).
            self.counters["errors"] += 1
            log.warning("! redis-streams: pub/sub message dropped: %s: %s", type(exc).__name__, exc)

    def _on_message(self, message: dict[str, Any]) -> None:
        """One of node's ClusterAdapter messages (a question or an answer).

        Raises:
            ClusterError: not ``{"uid": str, "nsp": str, "type": int, "data": {...}}``, or a question
                without a ``requestId``.
        """
        uid, namespace, type_, data = (message.get(k) for k in ("uid", "nsp", "type", "data"))
        if uid == self.uid:
            return  # our own question, on the public channel we listen to as well
        if not (isinstance(uid, str) and isinstance(namespace, str) and isinstance(type_, int)):
            raise ClusterError("redis-streams", "a message needs uid, nsp and type")
        if not isinstance(data, dict):
            raise ClusterError("redis-streams", f"message type {type_}: data must be a map")
        self.counters["received"] += 1
        if self.debug:
            log.debug("< pub/sub type %s from %s on %s", type_, uid, namespace)
        if type_ in RESPONSES:
            self._on_answer(type_, data)
            return
        request = request_of(uid, type_, data)
        if request is None:
            if self.debug:  # unknown, or not a question (heartbeats of node's older adapters)
                log.debug("= pub/sub message type %s not answered by Tether", type_)
            return
        if self.server is not None:
            self.answer_request(
                namespace, request, lambda answer, _binary: self._answer(namespace, uid, answer)
            )

    def server_side_emit(self, namespace: str, packet: tuple[Any, ...]) -> None:
        """PUBLISH a SERVER_SIDE_EMIT without ``requestId`` on the namespace's public channel (node's
        ``serverSideEmit`` without a callback: sent whoever listens). Not a change: changes go in the
        stream, server-side events through pub/sub (node's ``isEphemeral``). With acks, it is a question
        (:meth:`~.requests.RequestingAdapter.server_side_emit_with_ack`).

        Raises:
            ClusterError: an argument msgpack cannot encode.
        """
        message = question(self.uid, namespace, Request(RequestType.SERVER_SIDE_EMIT, self.uid, data=packet))
        assert message is not None
        self._enqueue_publish(self.public_channel(namespace), encode_msgpack(message))

    def _answer(self, namespace: str, requester: str, answer: dict[str, Any]) -> None:
        """Send an answer of :meth:`answer_request` (the pub/sub adapter's shape) in node's shape."""
        message = answer_message(self.uid, namespace, answer)
        if message is not None:
            self._publish_answer(self.private_channel(namespace, requester), message)

    def _publish_answer(self, channel: str, message: ClusterMessage) -> None:
        try:
            payload = encode_msgpack(message)
        except ClusterError as exc:  # an ack or handler value msgpack cannot carry: the asker times out
            self.counters["errors"] += 1
            log.error("! redis-streams: answer on %s not sent: %s", channel, exc)
            return
        self._enqueue_publish(channel, payload)

    def _on_answer(self, type_: int, data: dict[str, Any]) -> None:
        """An answer to one of our questions, handed to :meth:`receive_response` in its shape."""
        pending = self._requests.get(str(data.get("requestId")))
        if pending is None:
            return  # not ours, or too late
        if not isinstance(pending, Gather):
            if type_ == MessageType.FETCH_SOCKETS_RESPONSE:
                return  # sockets answer a gathering question only
            asked = RequestType.BROADCAST
        else:
            asked = pending.request.type if pending.request is not None else RequestType.REMOTE_FETCH
        answer = answer_of(type_, data, asked)
        if answer is not None:
            self.receive_response(answer)

    async def _send_request(self, namespace: str, request: Request) -> int:
        """``PUBSUB NUMSUB`` of the public channel counts the nodes (us included), then PUBLISH.

        Raises:
            ClusterError: an argument of an emit with acks that cannot be encoded.
        """
        message = question(self.uid, namespace, request)
        if message is None or self._cmd is None or not await self._watch(namespace):
            return 0
        payload = encode_msgpack(message)
        channel = self.public_channel(namespace)
        subscribed = await self._subscribers(channel)
        if subscribed is None:
            self.counters["errors"] += 1
            return 0
        expected = subscribed - 1
        if expected > 0:
            self._enqueue_publish(channel, payload)
        return max(0, expected)

    async def server_count(self) -> int:
        """Nodes subscribed to the public channel of ``/`` (node's ``serverCount``), 1 when unknown."""
        subscribed = await self._subscribers(self.public_channel("/")) if self._cmd is not None else None
        return max(1, subscribed if subscribed is not None else 1)

    async def _subscribers(self, channel: str) -> int | None:
        """How many nodes subscribe to ``channel`` (``PUBSUB NUMSUB``, us included); None if Redis failed."""
        assert self._cmd is not None
        try:
            if self.sharded_pubsub:
                numsub: Any = await self._cmd.pubsub_shardnumsub(channel)
            else:
                numsub = await self._cmd.pubsub_numsub(channel)
        except Exception as exc:
            log.warning("! redis-streams: PUBSUB NUMSUB failed: %s", exc)
            return None
        return int(numsub[0][1]) if numsub else 0
