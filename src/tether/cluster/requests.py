"""Cluster-wide requests, whatever carries them: Redis pub/sub between nodes, the master's hub between
the workers of one host.

Both carriers speak node's ``@socket.io/redis-adapter`` request format (:mod:`.wire`), so one body of
code asks and answers: :class:`RequestingAdapter` is the base of :class:`~.redis.RedisAdapter` and
:class:`~.hub.HubAdapter`, which only say how a request leaves (:meth:`~RequestingAdapter._send_request`,
returning how many peers got it) and how an answer goes back (the ``respond`` callable given to
:meth:`~RequestingAdapter.answer_request`).

Theory of operation of a question (``fetch_sockets``, ``sids``, ``all_rooms``...): the asker registers a
:class:`Gather` under the request id, sends the request, learns how many peers got it, and waits for that
many responses or ``request_timeout`` seconds. An emit with acks registers an
:class:`~tether.acks.AckCollector` instead: peers answer first with how many sockets they reached, then
once per socket's ack. Changes (join, leave, disconnect, set data) are sent and not answered: a carrier
delivers in order, so an emit sent after a remote join reaches the socket that joined. A server-side event
(node's ``serverSideEmit``, :mod:`.server_side`) is a change when it wants no ack, and a question answered
once per peer, with its handler's value, when it does.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..acks import AckCollector
from ..errors import ClusterError, ConnectionClosed
from ..timeouts import wait_done
from .base import Adapter, SocketInfo, socket_info
from .server_side import run_server_side
from .wire import Request, RequestType, has_binary

__all__ = ["Gather", "RequestingAdapter", "Respond"]

log = logging.getLogger("tether.cluster")

Respond = Callable[[dict[str, Any], bool], None]
"""``respond(response, binary)``: send a response to the asker (msgpack when ``binary``, else JSON)."""


@dataclass(slots=True)
class Gather:
    """A question of ours waiting for answers: ``expected`` is known once the request is sent."""

    future: asyncio.Future[None]
    done_when: Callable[[dict[str, Any]], bool] | None = None
    request: Request | None = None
    """What was asked: a carrier whose answers do not say it (the Streams adapter) reads it here."""
    expected: int | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, response: dict[str, Any]) -> None:
        if self.future.done():
            return
        self.responses.append(response)
        self.check(response)

    def check(self, response: dict[str, Any] | None = None) -> None:
        if self.future.done():
            return
        if (self.expected is not None and len(self.responses) >= self.expected) or (
            response is not None and self.done_when is not None and self.done_when(response)
        ):
            self.future.set_result(None)


def feed_acks(collector: AckCollector, response: dict[str, Any]) -> None:
    """A response to one of our BROADCAST requests: a peer's socket count or one socket's ack."""
    t = response.get("type")
    if t == RequestType.BROADCAST_CLIENT_COUNT:
        count = response.get("clientCount")
        collector.server_counted(count if isinstance(count, int) else 0)
    elif t == RequestType.BROADCAST_ACK:
        args = response.get("args")
        if isinstance(args, list) and len(args) > 1:
            collector.answer(tuple(args))
        else:
            collector.answer(response.get("packet"))


class RequestingAdapter(Adapter):
    """An adapter that asks and answers cluster-wide requests (see the module docstring)."""

    remote = True
    request_timeout: float = 5.0
    uid: str = ""
    debug: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._requests: dict[str, Gather | AckCollector] = {}

    # -- what a carrier provides ----------------------------------------------------------------------

    async def _send_request(self, namespace: str, request: Request) -> int:
        """Send ``request`` to every peer; return how many got it (0: nobody will answer)."""
        raise NotImplementedError

    def _send_change(self, namespace: str, request: Request) -> None:
        """Send a request nobody answers (join, leave, disconnect, set data)."""
        raise NotImplementedError

    # -- answering ------------------------------------------------------------------------------------

    def is_own_request(self, req: Request) -> bool:
        return req.uid == self.uid or (req.request_id is not None and req.request_id in self._requests)

    def answer_request(self, namespace: str, req: Request, respond: Respond) -> None:
        """Act on a peer's request for this process's sockets; answer it through ``respond``.

        Raises:
            ClusterError: a BROADCAST request without an event.
        """
        server = self._server()
        if self.debug:
            log.debug("< request %s from %s on %s", req.type.name, req.uid, namespace)
        t = req.type
        ns = server.namespaces.get(namespace)
        if t is RequestType.SOCKETS:
            sids = [s.sid for s in server.local_sockets(namespace, req.rooms)]
            respond({"requestId": req.request_id, "sockets": sids}, False)
        elif t is RequestType.ALL_ROOMS:
            rooms = [*ns.rooms.all_rooms(), *(s.sid for s in ns.rooms.select(()))] if ns is not None else []
            respond({"requestId": req.request_id, "rooms": rooms}, False)
        elif t is RequestType.REMOTE_FETCH:
            infos = [
                info_json(socket_info(s))
                for s in server.local_sockets(namespace, req.target_rooms, req.except_rooms)
            ]
            respond({"requestId": req.request_id, "sockets": infos}, False)
        elif t in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT):
            self._remote_change(namespace, req, respond)
        elif t is RequestType.REMOTE_SET_DATA:
            if isinstance(req.data, dict):
                for sock in server.local_sockets(namespace, req.target_rooms, req.except_rooms):
                    sock._data = dict(req.data)
        elif t is RequestType.BROADCAST:
            self._broadcast_with_ack(namespace, req, respond)
        elif t is RequestType.SERVER_SIDE_EMIT:
            self._server_side_emit(namespace, req, respond)
        elif self.debug:
            log.debug("= request %s not supported by Tether: ignored", t.name)

    def _remote_change(self, namespace: str, req: Request, respond: Respond) -> None:
        if req.sid is not None:
            # The single-socket form: answer only when the socket is here.
            if self._server().get_socket(req.sid, namespace) is None:
                return
            targets: tuple[str, ...] = (req.sid,)
            rooms: tuple[str, ...] = (req.room,) if req.room is not None else ()
        else:
            targets, rooms = req.target_rooms, req.rooms
        if req.type is RequestType.REMOTE_JOIN:
            Adapter.add_sockets(self, namespace, targets, req.except_rooms, rooms)
        elif req.type is RequestType.REMOTE_LEAVE:
            Adapter.del_sockets(self, namespace, targets, req.except_rooms, rooms)
        else:
            Adapter.disconnect_sockets(self, namespace, targets, req.except_rooms, req.close)
        if req.sid is not None:
            respond({"requestId": req.request_id}, False)

    def _broadcast_with_ack(self, namespace: str, req: Request, respond: Respond) -> None:
        # node's emitWithAck across the cluster: tell how many acks to expect, then forward each one.
        packet = req.packet or {}
        payload = packet.get("data")
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise ClusterError("cluster", "BROADCAST request without an event")
        sockets = list(self._server().local_sockets(namespace, req.target_rooms, req.except_rooms))
        respond(
            {
                "type": int(RequestType.BROADCAST_CLIENT_COUNT),
                "requestId": req.request_id,
                "clientCount": len(sockets),
            },
            False,
        )
        timeout = req.flags.get("timeout")
        seconds = timeout / 1000 if isinstance(timeout, int | float) and timeout > 0 else self.request_timeout
        for sock in sockets:
            try:
                future = sock.emit(payload[0], *payload[1:], ack=True, timeout=seconds)
            except ConnectionClosed:
                continue
            assert isinstance(future, asyncio.Future)
            future.add_done_callback(lambda f: _forward_ack(req.request_id, f, respond))

    def _server_side_emit(self, namespace: str, req: Request, respond: Respond) -> None:
        # node's serverSideEmit: run the handler; with a requestId, answer once with its value.
        packet = req.data
        if not isinstance(packet, list) or not packet or not isinstance(packet[0], str):
            raise ClusterError("cluster", "SERVER_SIDE_EMIT without [event, ...args]")
        reply = None
        if req.request_id is not None:
            request_id = req.request_id

            def reply(value: Any) -> None:
                answer = {"type": int(RequestType.SERVER_SIDE_EMIT), "requestId": request_id, "data": value}
                try:
                    respond(answer, has_binary(value))
                except ClusterError as exc:  # a value neither JSON nor msgpack carries: the asker times out
                    log.error("! answer to server-side event %r not sent: %s", packet[0], exc)

        run_server_side(self._server(), namespace, packet[0], packet[1:], reply)

    # -- receiving responses --------------------------------------------------------------------------

    def receive_response(self, response: dict[str, Any]) -> None:
        """A response to one of our requests (others' responses are ignored)."""
        pending = self._requests.get(str(response.get("requestId")))
        if pending is None:
            return
        if isinstance(pending, AckCollector):
            feed_acks(pending, response)
        else:
            pending.feed(response)

    # -- asking ---------------------------------------------------------------------------------------

    def new_request(self, rtype: RequestType, **fields: Any) -> Request:
        return Request(rtype, self.uid, secrets.token_hex(8), **fields)

    async def _ask(
        self,
        namespace: str,
        request: Request,
        done_when: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Send ``request``; gather the answers (fewer on timeout; none when no peer got it)."""
        return (await self._gather(namespace, request, done_when, timeout)).responses

    async def _gather(
        self,
        namespace: str,
        request: Request,
        done_when: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float | None = None,
    ) -> Gather:
        """:meth:`_ask`, with how many answers were expected (``Gather.expected``); ``timeout`` in seconds
        (None: ``request_timeout``)."""
        assert request.request_id is not None
        pending = Gather(asyncio.get_running_loop().create_future(), done_when, request)
        self._requests[request.request_id] = pending
        seconds = self.request_timeout if timeout is None else timeout
        try:
            pending.expected = await self._send_request(namespace, request)
            pending.check()
            # wait_done, not asyncio.timeout: a handler may ask before it is a Task (tether.timeouts).
            if pending.expected > 0 and not await wait_done(pending.future, seconds):
                self._timed_out(request, len(pending.responses), pending.expected, seconds)
        finally:
            del self._requests[request.request_id]
        return pending

    def _end_requests(self) -> None:
        """Stopping: questions waiting for answers get what they have; emits with acks are cancelled."""
        for pending in self._requests.values():
            if not pending.future.done():
                pending.future.set_result(None) if isinstance(pending, Gather) else pending.future.cancel()

    def _timed_out(self, request: Request, answered: int, expected: int, seconds: float) -> None:
        log.warning(
            "! %s request: %d of %d peers answered within %gs", request.type.name, answered, expected, seconds
        )

    async def broadcast_with_ack(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        timeout: float,
        collector: AckCollector,
    ) -> None:
        request = self.new_request(
            RequestType.BROADCAST,
            target_rooms=rooms,
            except_rooms=except_rooms,
            packet={"type": 2, "data": [event, *args], "nsp": namespace},
            flags={"timeout": max(1, round(timeout * 1000))},
        )
        assert request.request_id is not None
        self._requests[request.request_id] = collector
        collector.future.add_done_callback(lambda _f: self._requests.pop(str(request.request_id), None))
        try:
            peers = await self._send_request(namespace, request)
        except Exception:
            self._requests.pop(request.request_id, None)
            raise
        collector.expect_servers(peers)
        if not peers:
            self._requests.pop(request.request_id, None)

    def server_side_emit(self, namespace: str, packet: tuple[Any, ...]) -> None:
        """A SERVER_SIDE_EMIT request without ``requestId``, sent like a change (nobody answers).

        Raises:
            ClusterError: an argument neither JSON nor msgpack can encode.
        """
        self._send_change(namespace, Request(RequestType.SERVER_SIDE_EMIT, self.uid, data=list(packet)))

    async def server_side_emit_with_ack(
        self, namespace: str, packet: tuple[Any, ...], timeout: float
    ) -> tuple[list[Any], int]:
        """A SERVER_SIDE_EMIT request with a ``requestId``: one answer per peer that got it (the carrier's
        count: ``PUBSUB NUMSUB`` less one, node's ``serverCount() - 1``), or what came in ``timeout`` s.

        Raises:
            ClusterError: an argument neither JSON nor msgpack can encode.
        """
        request = self.new_request(RequestType.SERVER_SIDE_EMIT, data=list(packet))
        pending = await self._gather(namespace, request, timeout=timeout)
        return [r.get("data") for r in pending.responses], pending.expected or 0

    async def fetch_sockets(
        self, namespace: str, rooms: tuple[str, ...] = (), except_rooms: tuple[str, ...] = ()
    ) -> list[SocketInfo]:
        found = await super().fetch_sockets(namespace, rooms, except_rooms)
        request = self.new_request(RequestType.REMOTE_FETCH, target_rooms=rooms, except_rooms=except_rooms)
        for response in await self._ask(namespace, request):
            for s in response.get("sockets") or ():
                if isinstance(s, dict) and isinstance(s.get("id"), str):
                    found.append(info_from_json(namespace, s))
        return found

    async def sids(self, namespace: str, rooms: tuple[str, ...] = ()) -> set[str]:
        found = await super().sids(namespace, rooms)
        for response in await self._ask(namespace, self.new_request(RequestType.SOCKETS, rooms=rooms)):
            found.update(s for s in response.get("sockets") or () if isinstance(s, str))
        return found

    async def all_rooms(self, namespace: str) -> set[str]:
        found = await super().all_rooms(namespace)
        for response in await self._ask(namespace, self.new_request(RequestType.ALL_ROOMS)):
            found.update(r for r in response.get("rooms") or () if isinstance(r, str))
        return found

    async def is_user_online(self, user_room: str, namespace: str) -> bool:
        if await super().is_user_online(user_room, namespace):
            return True
        request = self.new_request(RequestType.SOCKETS, rooms=(user_room,))
        responses = await self._ask(namespace, request, done_when=lambda r: bool(r.get("sockets")))
        return any(r.get("sockets") for r in responses)

    # -- changes everywhere ---------------------------------------------------------------------------

    def add_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], join: tuple[str, ...]
    ) -> None:
        super().add_sockets(namespace, rooms, except_rooms, join)
        self._send_change(
            namespace, Request(RequestType.REMOTE_JOIN, self.uid, None, join, rooms, except_rooms)
        )

    def del_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], leave: tuple[str, ...]
    ) -> None:
        super().del_sockets(namespace, rooms, except_rooms, leave)
        self._send_change(
            namespace, Request(RequestType.REMOTE_LEAVE, self.uid, None, leave, rooms, except_rooms)
        )

    def disconnect_sockets(
        self, namespace: str, rooms: tuple[str, ...], except_rooms: tuple[str, ...], close: bool = False
    ) -> None:
        super().disconnect_sockets(namespace, rooms, except_rooms, close)
        request = Request(RequestType.REMOTE_DISCONNECT, self.uid, None, (), rooms, except_rooms, close=close)
        self._send_change(namespace, request)

    def set_data(self, namespace: str, rooms: tuple[str, ...], data: dict[str, Any]) -> None:
        super().set_data(namespace, rooms, data)
        request = Request(RequestType.REMOTE_SET_DATA, self.uid, None, (), rooms, data=data)
        self._send_change(namespace, request)


def _forward_ack(request_id: str | None, future: asyncio.Future[Any], respond: Respond) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    value = future.result()
    response: dict[str, Any] = {"type": int(RequestType.BROADCAST_ACK), "requestId": request_id}
    if isinstance(value, tuple):
        # node's format carries one value per ack (the first argument); Tether peers read "args" too.
        response["packet"] = value[0] if value else None
        response["args"] = list(value)
    else:
        response["packet"] = value
    respond(response, True)


def info_json(info: SocketInfo) -> dict[str, Any]:
    # The fields of node's REMOTE_FETCH answer, plus Tether's userId (ignored by node).
    return {
        "id": info.id,
        "handshake": info.handshake,
        "rooms": list(info.rooms),
        "data": info.data,
        "userId": info.user_id,
    }


def info_from_json(namespace: str, s: dict[str, Any]) -> SocketInfo:
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
