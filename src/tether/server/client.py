"""One connected client as seen by the server: a protocol Connection plus the transport it writes to.

This is the thin part between :mod:`tether.protocol.connection` and the bytes on the wire. WebSocket
writes go to picows at the end of the current loop iteration, through the server's
:class:`~tether.server.writes.WriteBatch` (each encoded packet is one frame); polling writes go to the
connection's queue and release a waiting GET at the end of the current loop iteration, so that several
emits in one handler leave in one HTTP response.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from picows import WSMsgType

from ..protocol.connection import Connection, State, Transport
from ..protocol.engineio import Binary
from ..protocol.parsers import Parser
from .writes import WriteBatch

if TYPE_CHECKING:
    from ..config import Config
    from ..context import Socket
    from ..handler import Request
    from .state import ServerState

__all__ = ["Client", "ClientOwner", "PollWaiter"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY


class PollWaiter(Protocol):
    """A held polling GET (implemented by the HTTP protocol)."""

    def respond_payload(self, body: bytes) -> None: ...


class ClientOwner(Protocol):
    """The server as a client uses it: limits, counters, and where a slow consumer is reported."""

    config: Config
    state: ServerState
    writes: WriteBatch

    def on_slow_consumer(self, client: Client) -> None: ...


class Client:
    """A client connection: Engine.IO session state, its sockets by namespace, and its writer."""

    __slots__ = (
        "__weakref__",
        "_flush_scheduled",
        "_rate_last",
        "_rate_over",
        "_rate_tokens",
        "conn",
        "connecting",
        "dropped",
        "fast_ws",
        "hb_box",
        "parser",
        "paused",
        "poll_waiter",
        "remote",
        "request",
        "server",
        "sockets",
        "strip_prefix",
        "writes",
        "ws",
    )

    def __init__(self, server: ClientOwner, conn: Connection, request: Request) -> None:
        self.server = server
        self.conn = conn
        self.parser: Parser = conn.parser
        self.request = request
        self.remote = request.remote
        self.sockets: dict[str, Socket] = {}
        self.connecting: dict[str, Socket] = {}
        """Sockets whose CONNECT is being handled (hooks, connect handler), by namespace."""
        self.ws: Any = None  # picows WSTransport once on WebSocket
        self.writes = server.writes
        self.fast_ws = False
        """True while packets can be written to ``ws`` as they are: open, Engine.IO framing, not paused."""
        self.hb_box: list[Client | None] | None = None
        """The box of this client's live entry in the server's Heartbeat (see server/heartbeat.py)."""
        self.poll_waiter: PollWaiter | None = None
        self._flush_scheduled = False
        self.paused = False
        self.dropped = 0
        self._rate_tokens = float(server.config.limits.event_burst)
        self._rate_last = 0.0
        self._rate_over = 0
        # On the bare endpoint, the json/raw parsers' frames carry no Engine.IO type digit.
        self.strip_prefix = conn.transport is Transport.BARE and not self.parser.requires_connect

    @property
    def sid(self) -> str:
        return self.conn.sid

    @property
    def transport(self) -> str:
        return self.conn.transport.value

    def attach_websocket(self, ws: Any) -> None:
        """The client now writes to the WebSocket ``ws``."""
        self.ws = ws
        self.fast_ws = not self.strip_prefix and not self.paused

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.fast_ws = (
            self.ws is not None and not paused and not self.strip_prefix and self.conn.state is State.OPEN
        )

    def send(self, packets: list[bytes]) -> None:
        """Write encoded packets (see :mod:`tether.protocol.parsers`) to the client, in order.

        A WebSocket gets them at the end of this loop iteration (:mod:`.writes`). Never blocks and never
        buffers without limit: past the high-water mark of ``[limits]`` the
        client is a slow consumer (see :meth:`Server.on_slow_consumer`) and what it is sent is dropped
        (and counted) until it has read enough, or until the ``disconnect`` policy has closed it.
        """
        if self.fast_ws:
            writes = self.writes
            for p in packets:
                writes.send(self, _BINARY if type(p) is Binary else _TEXT, p)
            return
        if self.ws is not None and self.conn.state is State.OPEN:
            if self.paused:
                self._drop(packets)
                return
            writes = self.writes
            if self.strip_prefix:
                for p in packets:
                    if type(p) is Binary:
                        writes.send(self, _BINARY, p)
                    else:
                        writes.send(self, _TEXT, p[1:])
                return
            for p in packets:
                if type(p) is Binary:
                    writes.send(self, _BINARY, p)
                else:
                    writes.send(self, _TEXT, p)
            return
        if self.conn.state is State.CLOSED:
            return
        if self.paused:
            # Drop the newest rather than the oldest: what the client gets stays a contiguous prefix,
            # and queued control packets (the CONNECT reply, a noop releasing an upgrade) are never lost.
            self._drop(packets)
            return
        conn = self.conn
        conn.queue(packets)
        limits = self.server.config.limits
        if conn.queued_messages > limits.send_buffer_messages or conn.queued_bytes > limits.send_buffer_bytes:
            self.paused = True
            self.server.on_slow_consumer(self)
        if self.poll_waiter is not None and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_poll)

    def _drop(self, packets: list[bytes]) -> None:
        self.count_dropped(len(packets))

    def count_dropped(self, n: int) -> None:
        """``n`` packets for this client were dropped (a slow consumer): counted here and server-wide."""
        self.dropped += n
        self.server.state.dropped_messages += n

    def take_payload(self) -> bytes | None:
        """The body for a polling GET (see :meth:`Connection.take_payload`); ends a slow-consumer episode
        once the queue is down to a quarter of its marks, as a transport's low-water mark does."""
        body = self.conn.take_payload()
        if self.paused:
            limits = self.server.config.limits
            conn = self.conn
            if (
                conn.queued_messages <= limits.send_buffer_messages // 4
                and conn.queued_bytes <= limits.send_buffer_bytes // 4
            ):
                self.paused = False
        return body

    def take_rate_token(self, now: float, rate: float, burst: int) -> bool:
        """Token bucket of ``[limits] event_rate`` / ``event_burst``: may this client send one more event?

        Refusals add up until the bucket is full again, i.e. until the client has stayed under the rate long
        enough to earn its whole burst back. Resetting on any single token instead would forgive a client
        that floods at a steady two or three times the rate, since it gets a token now and then.
        """
        tokens = self._rate_tokens + (now - self._rate_last) * rate
        self._rate_last = now
        if tokens >= burst:
            tokens = burst
            self._rate_over = 0
        if tokens >= 1.0:
            self._rate_tokens = tokens - 1.0
            return True
        self._rate_tokens = tokens
        self._rate_over += 1
        return False

    @property
    def rate_violations(self) -> int:
        """Events refused since the bucket was last full: one episode of flooding."""
        return self._rate_over

    def send_raw_frame(self, data: bytes) -> None:
        """A control packet written as is on the WebSocket (ping, pong, noop, open)."""
        if self.ws is not None:
            self.writes.send(self, _TEXT, data)

    def _flush_poll(self) -> None:
        self._flush_scheduled = False
        waiter = self.poll_waiter
        if waiter is None:
            return
        body = self.take_payload()
        if body is not None:
            self.poll_waiter = None
            waiter.respond_payload(body)

    def flush_to_websocket(self) -> None:
        """After an upgrade: what was queued for polling goes out on the WebSocket."""
        self.paused = False  # a polling slow-consumer episode ends here: the WebSocket has its own buffer
        queued = self.conn.take_queued()
        if queued:
            self.send(queued)
