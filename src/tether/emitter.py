"""Emit to Tether clients from code that is not a Tether server: Django views, Celery tasks, cron jobs.

::

    from tether.emitter import Emitter

    emitter = Emitter.from_url("redis://127.0.0.1:6379/0")
    emitter.to_user(42).emit("logout", {"reason": "password changed"})
    emitter.to("room:7").except_("room:8").emit("news", "hello")
    emitter.of("/admin").emit("refresh")
    emitter.touch(session_id)            # the user is active elsewhere: reset the idle timer
    emitter.end_session(session_id)      # log out everywhere

    # in async code
    from tether.emitter import AsyncEmitter
    await AsyncEmitter.from_url(url).to("room:7").emit("news", "hello")

The messages are those of node's ``@socket.io/redis-emitter`` (see :mod:`tether.cluster.wire`), published
on the Redis every node of the cluster subscribes to; the emitter keeps no state and needs no Tether
server in its process. Both variants share the sans-I/O :class:`Target`, which builds channel and payload;
only the last step (``PUBLISH``) differs. An emit goes to the nodes connected to Redis at that moment
(pub/sub keeps nothing), and ``emit`` returns how many of them got it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio as aioredis

from .cluster.wire import (
    EMITTER_UID,
    RESERVED_EVENTS,
    SESSION_CHANNEL,
    Channels,
    Request,
    RequestType,
    SessionCommand,
    encode_broadcast,
    encode_session_command,
    user_room,
)
from .errors import LocalProtocolError

__all__ = ["RESERVED_EVENTS", "AsyncEmitter", "Emitter", "Target", "user_room"]


def _as_rooms(room: str | Any) -> tuple[str, ...]:
    if isinstance(room, str):
        return (room,)
    return tuple(str(r) for r in room)


@dataclass(frozen=True, slots=True)
class Target:
    """Sans-I/O core of both emitters: who an emit is for, and the ``(channel, payload)`` it becomes."""

    channels: Channels = field(default_factory=Channels)
    namespace: str = "/"
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()

    def of(self, namespace: str) -> Target:
        return Target(self.channels, namespace if namespace.startswith("/") else "/" + namespace)

    def to(self, room: str | Any) -> Target:
        return replace(self, rooms=tuple(dict.fromkeys(self.rooms + _as_rooms(room))))

    def except_(self, room: str | Any) -> Target:
        return replace(self, except_rooms=tuple(dict.fromkeys(self.except_rooms + _as_rooms(room))))

    def emit_message(self, event: str, args: tuple[Any, ...]) -> tuple[str, bytes]:
        """Raises: LocalProtocolError for a reserved event name; ClusterError for unencodable arguments."""
        if not isinstance(event, str) or event in RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is a reserved event name")
        return encode_broadcast(
            self.channels, EMITTER_UID, self.namespace, event, args, self.rooms, self.except_rooms
        )

    def rooms_message(self, rtype: RequestType, rooms: tuple[str, ...]) -> tuple[str, bytes]:
        request = Request(rtype, EMITTER_UID, None, rooms, self.rooms, self.except_rooms)
        return self.channels.request(self.namespace), request.encode()

    def disconnect_message(self, close: bool) -> tuple[str, bytes]:
        request = Request(
            RequestType.REMOTE_DISCONNECT, EMITTER_UID, None, (), self.rooms, self.except_rooms, close=close
        )
        return self.channels.request(self.namespace), request.encode()

    @staticmethod
    def session_message(ctype: str, session_id: str, reason: str | None = None) -> tuple[str, bytes]:
        if not isinstance(session_id, str) or not session_id:
            raise LocalProtocolError("session_id must be a non-empty string")
        return SESSION_CHANNEL, encode_session_command(SessionCommand(ctype, session_id, reason))


E = TypeVar("E", bound="_Chain")


class _Chain:
    """The chaining methods both emitters share; each returns a new emitter (emitters are immutable)."""

    target: Target

    def _with(self: E, target: Target) -> E:
        raise NotImplementedError

    def of(self: E, namespace: str) -> E:
        """Emit in ``namespace`` (rooms chosen so far are dropped, as in node's emitter)."""
        return self._with(self.target.of(namespace))

    def to(self: E, room: str | Any) -> E:
        """Target ``room`` (a room name or a sid, or several); targets add up."""
        return self._with(self.target.to(room))

    in_ = to

    def except_(self: E, room: str | Any) -> E:
        """Leave out the members of ``room``."""
        return self._with(self.target.except_(room))

    def to_user(self: E, user_id: Any) -> E:
        """Every socket, on every node, of ``user_id`` (bound with ``socket.login_using``)."""
        return self._with(self.target.to(user_room(user_id)))

    @property
    def broadcast(self: E) -> E:
        """Everyone in the namespace: an emitter with no room already broadcasts; this reads better."""
        return self


C = TypeVar("C")


class _Base(_Chain, Generic[C]):
    def __init__(self, client: C, prefix: str = "socket.io", *, target: Target | None = None) -> None:
        self.client = client
        self.target = target or Target(Channels(prefix))

    def _with(self: Any, target: Target) -> Any:
        return type(self)(self.client, target=target)

    def __repr__(self) -> str:
        t = self.target
        return f"<{type(self).__name__} {t.namespace} rooms={list(t.rooms)} except={list(t.except_rooms)}>"


class Emitter(_Base["redis.Redis"]):
    """Blocking emitter (redis-py's ``Redis``): for WSGI views, Celery tasks, scripts."""

    @classmethod
    def from_url(cls, url: str, prefix: str = "socket.io", **kwargs: Any) -> Emitter:
        """An emitter with its own connection pool; ``kwargs`` go to ``redis.Redis.from_url``."""
        return cls(redis.Redis.from_url(url, **kwargs), prefix)

    def emit(self, event: str, *args: Any) -> int:
        """Send ``event`` with ``args`` to the targets on every node. Returns how many nodes got it.

        Raises:
            LocalProtocolError: a reserved event name.
            ClusterError: an argument that cannot be encoded.
            redis.ConnectionError: Redis is unreachable.
        """
        return int(self.client.publish(*self.target.emit_message(event, args)))

    def send(self, *args: Any) -> int:
        return self.emit("message", *args)

    def sockets_join(self, room: str | Any) -> None:
        """Make the target sockets join ``room`` on every node."""
        self.client.publish(*self.target.rooms_message(RequestType.REMOTE_JOIN, _as_rooms(room)))

    def sockets_leave(self, room: str | Any) -> None:
        self.client.publish(*self.target.rooms_message(RequestType.REMOTE_LEAVE, _as_rooms(room)))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the target sockets on every node; ``close`` closes their connections too."""
        self.client.publish(*self.target.disconnect_message(close))

    def touch(self, session_id: str) -> int:
        """The user of ``session_id`` is active: every node resets that session's idle timer."""
        return int(self.client.publish(*Target.session_message("touch", session_id)))

    def end_session(self, session_id: str, reason: str | None = None) -> int:
        """End ``session_id`` on every node: its sockets are told and disconnected."""
        return int(self.client.publish(*Target.session_message("end", session_id, reason)))

    def close(self) -> None:
        self.client.close()


class AsyncEmitter(_Base["aioredis.Redis"]):
    """asyncio emitter (``redis.asyncio.Redis``): for ASGI apps and async workers. Same methods, awaited."""

    @classmethod
    def from_url(cls, url: str, prefix: str = "socket.io", **kwargs: Any) -> AsyncEmitter:
        return cls(aioredis.Redis.from_url(url, **kwargs), prefix)

    async def emit(self, event: str, *args: Any) -> int:
        """See :meth:`Emitter.emit`."""
        return int(await self.client.publish(*self.target.emit_message(event, args)))

    async def send(self, *args: Any) -> int:
        return await self.emit("message", *args)

    async def sockets_join(self, room: str | Any) -> None:
        await self.client.publish(*self.target.rooms_message(RequestType.REMOTE_JOIN, _as_rooms(room)))

    async def sockets_leave(self, room: str | Any) -> None:
        await self.client.publish(*self.target.rooms_message(RequestType.REMOTE_LEAVE, _as_rooms(room)))

    async def disconnect_sockets(self, close: bool = False) -> None:
        await self.client.publish(*self.target.disconnect_message(close))

    async def touch(self, session_id: str) -> int:
        return int(await self.client.publish(*Target.session_message("touch", session_id)))

    async def end_session(self, session_id: str, reason: str | None = None) -> int:
        return int(await self.client.publish(*Target.session_message("end", session_id, reason)))

    async def aclose(self) -> None:
        await self.client.aclose()
