"""The per-client state machine of an Engine.IO v4 session: bytes in, events out; events in, bytes out.

Theory of operation
-------------------
A :class:`Connection` is one Engine.IO session. It never touches a socket or a clock: the transport
shell feeds it what it read (:meth:`receive_message` for one WebSocket frame, :meth:`receive_payload`
for a polling POST body), passes the time to :meth:`check_timers`, and writes what it is given
(:meth:`take_payload` for a polling GET; WebSocket writes happen directly from encoded packets, since
that is the hot path and each packet is already one frame).

Transports (engine.io-protocol §"Upgrade")::

    polling ──(ws with ?sid= arrives)──> UPGRADING ──2probe/3probe──> ──5──> websocket
       ^                                     │ (ws closes before 5)
       └─────────────────────────────────────┘

While UPGRADING, packets still go to the polling queue; ``2probe`` answered with ``3probe`` on the new
WebSocket makes the connection send a ``6`` (noop) to release the pending GET; ``5`` moves the
connection to WebSocket and the queue is flushed there.

Heartbeat (engine.io v4): the server sends ``2`` every ``ping_interval``; a client that does not answer
``3`` within ``ping_timeout`` is gone (reason ``ping timeout``). On the bare ``/ws`` endpoint the shell
uses WebSocket ping frames instead, since pages there speak no Engine.IO; the timing is the same.
"""

from __future__ import annotations

import enum

import orjson

from ..errors import InvalidPacket, PayloadTooBig, RemoteProtocolError
from .engineio import Binary, PacketType, decode_payload, encode_payload
from .events import ClientEvent, Disconnect
from .parsers import Parser

__all__ = ["CLIENT_CLOSE", "Connection", "State", "Timer", "Transport"]

CLIENT_CLOSE = "transport close"
"""The reason of a session the client closed with an Engine.IO close packet (``1``) without a Socket.IO
DISCONNECT first: ``transport close``, as engine.io names it (node socket.io 4.8)."""


class State(enum.Enum):
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSED = "closed"


class Transport(enum.Enum):
    POLLING = "polling"
    WEBSOCKET = "websocket"
    BARE = "bare"
    """A WebSocket on the bare endpoint: no Engine.IO handshake, packets framed like Engine.IO's."""


class Timer(enum.Enum):
    """What :meth:`Connection.check_timers` asks the shell to do."""

    NOTHING = 0
    PING = 1
    TIMEOUT = 2
    CONNECT_TIMEOUT = 3


# Members read on every heartbeat visit of every client, as module constants: on Python 3.11 a load like
# `Timer.PING` goes through the slot hook of EnumType.__getattr__ (~400 instructions each, a quarter of an
# idle client's ping and pong: bench/icount.py ping; 3.12 dropped that __getattr__).
_NOTHING = Timer.NOTHING
_DUE_PING = Timer.PING
_TIMEOUT = Timer.TIMEOUT
_CONNECT_TIMEOUT = Timer.CONNECT_TIMEOUT

_EMPTY: list[bytes] = []  # shared, never appended to (see Connection._push)
_PING = b"2"
_PONG = b"3"
_NOOP = b"6"


class Connection:
    """One client session. See the module docstring for the states and timers."""

    __slots__ = (
        "_binary_bytes",
        "_connect_deadline",
        "_next_ping",
        "_pong_deadline",
        "_queue",
        "_queued_bytes",
        "close_reason",
        "max_payload",
        "parser",
        "ping_interval",
        "ping_timeout",
        "sid",
        "state",
        "transport",
    )

    def __init__(
        self,
        sid: str,
        parser: Parser,
        transport: Transport,
        *,
        now: float,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        connect_timeout: float = 45.0,
        max_payload: int = 1_000_000,
    ) -> None:
        self.sid = sid
        self.parser = parser
        self.transport = transport
        self.state = State.OPEN
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.close_reason = ""
        self._next_ping = now + ping_interval
        self._pong_deadline = 0.0
        self._connect_deadline = now + connect_timeout if parser.requires_connect else 0.0
        self._queue: list[bytes] = _EMPTY  # a list of its own on first use: WebSocket clients never queue
        self._queued_bytes = 0
        self._binary_bytes = 0

    # -- handshake ------------------------------------------------------------------------------------

    def open_packet(self, upgrades: bool) -> bytes:
        """The OPEN packet (``0{...}``) that starts the session."""
        return b"0" + orjson.dumps(
            {
                "sid": self.sid,
                "upgrades": ["websocket"] if upgrades else [],
                "pingInterval": int(self.ping_interval * 1000),
                "pingTimeout": int(self.ping_timeout * 1000),
                "maxPayload": self.max_payload,
            }
        )

    def namespace_connected(self) -> None:
        """The client joined a namespace: the connect timeout no longer applies."""
        self._connect_deadline = 0.0

    # -- receiving ------------------------------------------------------------------------------------

    def receive_message(self, message: str | bytes) -> list[ClientEvent]:
        """Events in one Engine.IO packet as read from a WebSocket frame (``bytes``: a binary frame).

        Raises:
            InvalidPacket: the parser refused the message (node: ``forced close``).
            RemoteProtocolError: the packet breaks Engine.IO (node: ``parse error``); close the connection.
        """
        if type(message) is bytes:
            return self._receive_binary(message)
        assert isinstance(message, str)
        if not message:
            raise RemoteProtocolError("empty Engine.IO packet")
        c = message[0]
        if c == "4":
            try:  # inline, not self._decode: this is the hot path (a try costs nothing until it raises)
                return self.parser.decode(message[1:])
            except PayloadTooBig:
                raise
            except RemoteProtocolError as exc:
                raise InvalidPacket(str(exc)) from exc
        if c == "3":
            self._pong_deadline = 0.0
            return []
        if c == "1":
            self.state = State.CLOSED
            self.close_reason = CLIENT_CLOSE
            return [Disconnect(None, CLIENT_CLOSE)]
        if c == "6":
            return []
        if c == "2" and self.transport is Transport.BARE:
            # Pages on the bare endpoint may ping like an Engine.IO client; answered by the shell.
            return []
        raise RemoteProtocolError(f"unexpected Engine.IO packet type {c!r} from client")

    def receive_payload(self, body: bytes) -> list[ClientEvent]:
        """Events in a polling POST body.

        Raises:
            PayloadTooBig: the body exceeds ``max_payload``.
            InvalidPacket: the parser refused a message in it.
            RemoteProtocolError: an Engine.IO packet in it is invalid.
        """
        events: list[ClientEvent] = []
        for packet in decode_payload(body, self.max_payload):
            if packet.type is PacketType.MESSAGE:
                data = packet.data
                events.extend(self._receive_binary(data) if type(data) is bytes else self._decode(data))
            elif packet.type is PacketType.PONG:
                self._pong_deadline = 0.0
            elif packet.type is PacketType.CLOSE:
                self.state = State.CLOSED
                self.close_reason = CLIENT_CLOSE
                events.append(Disconnect(None, CLIENT_CLOSE))
                break
            elif packet.type is not PacketType.NOOP:
                raise RemoteProtocolError(f"unexpected Engine.IO packet {packet.type.name} in polling body")
        return events

    def _receive_binary(self, data: bytes) -> list[ClientEvent]:
        # Binary messages are attachments of one Socket.IO packet until the parser returns its event: they
        # count together against max_payload, or a client announcing 64 attachments could make us hold
        # 64 times max_payload before anything is dispatched.
        self._binary_bytes += len(data)
        if self._binary_bytes > self.max_payload:
            raise PayloadTooBig(self._binary_bytes, self.max_payload)
        events = self._decode(data)
        if events:
            self._binary_bytes = 0
        return events

    def _decode(self, data: str | bytes) -> list[ClientEvent]:
        # The Engine.IO packet was sound: what the parser refuses is a Socket.IO-level error, which node
        # ends as "forced close" (socket.io Client.onerror), not as an Engine.IO "parse error".
        try:
            return self.parser.decode(data)
        except PayloadTooBig:
            raise
        except InvalidPacket:
            raise
        except RemoteProtocolError as exc:
            raise InvalidPacket(str(exc)) from exc

    def receive_pong(self) -> None:
        """A WebSocket pong frame arrived (bare endpoint heartbeat)."""
        self._pong_deadline = 0.0

    # -- upgrade --------------------------------------------------------------------------------------

    def begin_upgrade(self) -> None:
        """A WebSocket with this sid arrived.

        Raises:
            RemoteProtocolError: the session is not on polling, or already upgrading.
        """
        if self.transport is not Transport.POLLING or self.state is not State.OPEN:
            raise RemoteProtocolError("upgrade not possible in this state")
        self.state = State.UPGRADING

    def receive_probe_message(self, message: str) -> bytes | None:
        """A text frame on the WebSocket being probed. Returns a frame to send back on it, or None.

        After ``5`` the connection is on WebSocket: the caller flushes :meth:`take_queued` there.

        Raises:
            RemoteProtocolError: anything but ``2probe`` then ``5``.
        """
        if self.state is not State.UPGRADING:
            raise RemoteProtocolError("not upgrading")
        if message == "2probe":
            # Nothing is queued for it: a held GET (and every GET until 5) is answered by take_payload
            # with a noop while UPGRADING. A queued noop would go out on the WebSocket after 5, where the
            # noop has no meaning (it is for polling GETs only).
            return b"3probe"
        if message == "5":
            self.state = State.OPEN
            self.transport = Transport.WEBSOCKET
            return None
        raise RemoteProtocolError(f"unexpected packet {message[:20]!r} during upgrade")

    def cancel_upgrade(self) -> None:
        """The probing WebSocket went away before ``5``: stay on polling."""
        if self.state is State.UPGRADING:
            self.state = State.OPEN

    # -- sending (polling) ----------------------------------------------------------------------------

    def queue(self, packets: list[bytes]) -> None:
        """Append encoded packets for the next polling GET."""
        for p in packets:
            self._push(p)

    def _push(self, packet: bytes) -> None:
        if self._queue is _EMPTY:
            self._queue = []
        self._queue.append(packet)
        self._queued_bytes += len(packet)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def queued_messages(self) -> int:
        return len(self._queue)

    def take_queued(self) -> list[bytes]:
        """Everything queued, in order; the queue is left empty."""
        queue, self._queue, self._queued_bytes = self._queue, _EMPTY, 0
        return list(queue) if queue is _EMPTY else queue

    def take_payload(self) -> bytes | None:
        """The body of a polling GET response, or None if nothing is queued (the GET waits).

        Packets are taken up to ``max_payload`` bytes (at least one), as the client's maxPayload asks;
        the rest waits for the next GET.
        """
        if not self._queue:
            # While an upgrade is probed, engine.io answers every poll with a noop (socket.ts, check()):
            # a GET that arrives after the probe's noop (the WebSocket's 3probe may reach the client after
            # it) must not wait for the "5" that the client sends only once that GET is answered.
            return _NOOP if self.state is State.UPGRADING else None
        total = 0
        n = 0
        for p in self._queue:
            size = len(p) + 1 if not isinstance(p, Binary) else (len(p) * 4 // 3) + 5
            if n and total + size > self.max_payload:
                break
            total += size
            n += 1
        packets = self._queue[:n]
        del self._queue[:n]
        self._queued_bytes -= sum(len(p) for p in packets)
        return encode_payload(packets)

    # -- time -----------------------------------------------------------------------------------------

    def check_timers(self, now: float) -> Timer:
        """What is due at ``now``. ``PING``: send a ping (the pong deadline runs from when it was due).

        Deadlines are kept on their nominal times, as node's timers: a ping checked a little late does not
        move the next ping nor the pong deadline, so pings go out every ``ping_interval`` and a silent
        client is timed out ``ping_interval + ping_timeout`` after the handshake, however coarse the timer
        that calls this.
        """
        overdue = self.overdue(now)
        if overdue is not _NOTHING:
            return overdue
        due = self._next_ping
        if now >= due:
            if now - due >= self.ping_interval:
                due = now  # far behind (the process was stopped): start again from now
            self._next_ping = due + self.ping_interval
            if not self._pong_deadline:
                self._pong_deadline = due + self.ping_timeout
            return _DUE_PING
        return _NOTHING

    def overdue(self, now: float) -> Timer:
        """``TIMEOUT`` or ``CONNECT_TIMEOUT`` when that deadline has passed at ``now``, else ``NOTHING``.

        Cheap enough to ask on every request of a session, so that a request that comes after a deadline
        finds the session gone even before the timer that enforces it has run.
        """
        if self._pong_deadline and now >= self._pong_deadline:
            return _TIMEOUT
        if self._connect_deadline and now >= self._connect_deadline:
            return _CONNECT_TIMEOUT
        return _NOTHING

    def next_deadline(self) -> float:
        """The earliest time :meth:`check_timers` may have something to do."""
        due = self._next_ping
        if self._pong_deadline and self._pong_deadline < due:
            due = self._pong_deadline
        if self._connect_deadline and self._connect_deadline < due:
            due = self._connect_deadline
        return due

    def close(self, reason: str) -> None:
        """Mark the session closed with ``reason`` (idempotent: the first reason wins)."""
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.close_reason = reason


PING = _PING
PONG = _PONG
NOOP = _NOOP
