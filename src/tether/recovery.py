"""Connection state recovery: the log of recent packets and the sessions of disconnected sockets. No I/O.

Socket.IO 4.6 added *connection state recovery*: a client that drops for a moment comes back with the same
sid, its rooms, its ``socket.data`` and every packet it missed. The protocol (socket.io ``namespace.ts``
``_createSocket``, ``socket.ts``; socket.io-adapter ``SessionAwareAdapter``):

* the CONNECT reply carries a private id next to the sid: ``0{"sid": "...", "pid": "..."}``;
* every EVENT sent to a room or a socket (no ack id) carries an *offset* as its last argument:
  ``42["chat","hi","17"]``. The client remembers the last offset it saw;
* on reconnecting, the client sends both in the CONNECT packet's auth: ``40{"pid": "...", "offset": "17"}``.
  The server finds the session of ``pid``, replays the packets after ``offset`` that the session's rooms
  would have received, and the client's ``socket.recovered`` is true. Anything else: a new socket.

Theory of operation. :class:`RecoveryLog` keeps one log per process (all namespaces), as the reference's
in-memory adapter does: an entry per emit, holding the packets exactly as they were written (offset
included, encoded once and shared with the sockets' writers), the target rooms and the excluded rooms.
Offsets are consecutive integers, so finding a client's offset is an index computation, not a search.
A socket that disconnects for a reason the client recovers from (:data:`RECOVERABLE_REASONS`) leaves a
:class:`SavedSession` (sid, rooms, data, user and session binding) under its private id; a reconnect
within ``max_disconnection_duration`` takes it back (:meth:`RecoveryLog.restore`) with the packets of
the log after the client's offset that its rooms select. The log is needed rather than a per-session
queue started at the disconnect because the server learns of a dead TCP connection late (a ping
timeout, ~45 s): what it wrote meanwhile was lost in flight, and only the client's offset says from where.

Bounds (``[recovery]`` config): entries and sessions older than ``max_disconnection_duration`` go; the
log holds at most ``max_buffer_bytes`` (oldest entries go first); at most ``max_sessions`` disconnected
sessions are kept (oldest go first); a session whose missed packets exceed ``max_session_bytes``, or
whose offset is older than the log's first entry, is refused whole: the client connects as new
(``recovered`` false), never half-recovered. A forged private id costs one dict lookup; a forged offset
one integer parse; neither says whether the other part was right, and a session is taken (or dropped)
by its first restore attempt, so a guessed pid gets one try.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RECOVERABLE_REASONS",
    "LogEntry",
    "RecoveryLog",
    "Restored",
    "SavedSession",
    "parse_offset",
    "plausible",
    "with_offset",
]

RECOVERABLE_REASONS = frozenset(
    {
        # socket.io socket.ts RECOVERABLE_DISCONNECT_REASONS, in Tether's words, plus the slow-consumer
        # close (the client did nothing wrong but read slowly: it reconnects and gets what it missed).
        "transport close",
        "transport error",
        "forced close",  # an invalid Socket.IO packet
        "ping timeout",
        "server shutting down",
        "server reloading",  # a rolling `tether reload`: the client comes back on a new worker
        "slow consumer",
    }
)
"""Disconnect reasons after which a socket's session is kept for recovery."""

ENTRY_OVERHEAD = 200
"""Bytes counted per log entry on top of its packets: the entry, its packet list and the bytes objects'
headers, measured with ``sys.getsizeof`` (an empty emit still costs memory)."""

MAX_OFFSET_LENGTH = 20
"""Longest offset string parsed (a decimal 64-bit integer): a longer one is refused unparsed."""


_OFFSET = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")

MAX_PID_LENGTH = 64
"""Longest private id looked up: ours are 30 characters; anything longer is forged and refused unread."""


def plausible(pid: Any, offset: Any) -> bool:
    """Whether a CONNECT's ``pid`` and ``offset`` are worth looking up (types and lengths only).

    A worker asks this before sending a restore request to the master, so that forged values cost nothing
    beyond the CONNECT itself.
    """
    if type(pid) is not str or not 0 < len(pid) <= MAX_PID_LENGTH:
        return False
    # Ours (digits) or a Redis stream entry id (digits-digits).
    return offset is None or (type(offset) is str and _OFFSET.fullmatch(offset) is not None)


def with_offset(packets: list[bytes], seq: int) -> list[bytes]:
    """``packets`` of one EVENT with the offset ``seq`` appended as its last argument, without decoding.

    The first packet of a Socket.IO EVENT or BINARY_EVENT is its text part, which always ends with the
    JSON array's ``]`` (``42["ev",1]``, ``42/chat,["ev"]``, ``451-["ev",{...}]``): the offset goes before it,
    which is what encoding the arguments plus the offset would give. The master hub uses it to stamp
    packets a worker already encoded.

    Raises:
        ValueError: the first packet does not end with ``]`` (not a Socket.IO EVENT).
    """
    first = packets[0]
    if not first.endswith(b"]"):
        raise ValueError("not a Socket.IO EVENT packet")
    return [b'%s,"%d"]' % (first[:-1], seq), *packets[1:]]


def parse_offset(value: Any) -> int | None:
    """The integer behind an offset string the client sent, or None when it is not one of ours.

    Args:
        value: what the CONNECT auth holds under ``offset`` (any JSON value).

    Returns:
        A non-negative int, or None for anything but a short string of ASCII digits.
    """
    if type(value) is not str or not 0 < len(value) <= MAX_OFFSET_LENGTH or not value.isascii():
        return None
    if not value.isdigit():
        return None
    return int(value)


@dataclass(slots=True)
class LogEntry:
    """One emit as it was written: ``packets`` carry the offset ``seq`` as their last argument."""

    seq: int
    time: float
    namespace: str
    rooms: tuple[str, ...]
    """Target rooms (a sid for a direct emit); empty: the whole namespace."""
    except_rooms: tuple[str, ...]
    packets: list[bytes]
    size: int


@dataclass(slots=True)
class SavedSession:
    """What a disconnected socket leaves behind for a recovering client."""

    pid: str
    sid: str
    namespace: str
    rooms: tuple[str, ...]
    """Every room, its own sid room included (as the reference persists ``socket.rooms``)."""
    data: dict[str, Any] | None
    user_id: str | None
    session_id: str | None
    base: int | str
    """The last offset of the log when the socket connected: the client's offset when it got none since."""
    disconnected_at: float
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for other features' state (none today); carried as is."""


@dataclass(slots=True)
class Restored:
    """A session taken back by :meth:`RecoveryLog.restore`: the saved state and the packets to replay."""

    session: SavedSession
    packets: list[bytes]
    """Engine.IO-encoded packets in emit order, each with its offset: write them as they are."""
    last_offset: int | str
    """The offset of the last packet read for it (an int here; a stream id with Redis Streams)."""


class RecoveryLog:
    """The recovery state of one process (see the module docstring).

    Args:
        max_disconnection_duration: seconds a session (and a log entry) is kept; > 0.
        max_session_bytes: most bytes of missed packets replayed to one session; 0: no limit.
        max_buffer_bytes: most bytes of packets in the log; 0: no limit (time alone bounds it).
        max_sessions: most disconnected sessions kept; 0: no limit.
    """

    __slots__ = (
        "_entries",
        "_head",
        "bytes",
        "counters",
        "max_buffer_bytes",
        "max_disconnection_duration",
        "max_session_bytes",
        "max_sessions",
        "next_seq",
        "sessions",
    )

    def __init__(
        self,
        max_disconnection_duration: float,
        *,
        max_session_bytes: int = 0,
        max_buffer_bytes: int = 0,
        max_sessions: int = 0,
    ) -> None:
        if max_disconnection_duration <= 0:
            raise ValueError("max_disconnection_duration must be > 0")
        self.max_disconnection_duration = max_disconnection_duration
        self.max_session_bytes = max_session_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self.max_sessions = max_sessions
        self._entries: list[LogEntry] = []
        self._head = 0
        """Entries before this index are dropped (compacted away in bulk: popping list heads is O(n))."""
        self.next_seq = 1
        self.bytes = 0
        self.sessions: dict[str, SavedSession] = {}
        """Private id -> session, oldest disconnect first (dict order)."""
        self.counters: dict[str, int] = dict.fromkeys(
            ("persisted", "recovered", "refused", "expired", "evicted", "replayed"), 0
        )

    # -- the log --------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The offset of the newest entry (0 before the first)."""
        return self.next_seq - 1

    @property
    def first_seq(self) -> int:
        """The offset of the oldest entry kept (``next_seq`` when the log is empty)."""
        return self._entries[self._head].seq if self._head < len(self._entries) else self.next_seq

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def take_offset(self) -> int:
        """The offset of the next emit; :meth:`append` must follow with the packets carrying it."""
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def append(
        self,
        seq: int,
        now: float,
        namespace: str,
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
        packets: list[bytes],
    ) -> None:
        """Keep an emit's packets; drops the oldest entries beyond ``max_buffer_bytes``."""
        size = sum(len(p) for p in packets) + ENTRY_OVERHEAD
        self._entries.append(LogEntry(seq, now, namespace, rooms, except_rooms, packets, size))
        self.bytes += size
        limit = self.max_buffer_bytes
        if limit and self.bytes > limit:
            self._drop_while(lambda e: self.bytes > limit)

    def expire(self, now: float) -> None:
        """Drop entries and sessions older than ``max_disconnection_duration`` (call it once a second)."""
        threshold = now - self.max_disconnection_duration
        entries = self._entries
        if self._head < len(entries) and entries[self._head].time < threshold:
            self._drop_while(lambda e: e.time < threshold)
        sessions = self.sessions
        while sessions:
            pid, session = next(iter(sessions.items()))
            if session.disconnected_at >= threshold:
                break
            del sessions[pid]
            self.counters["expired"] += 1

    def _drop_while(self, cond: Any) -> None:
        entries = self._entries
        head = self._head
        n = len(entries)
        while head < n and cond(entries[head]):
            self.bytes -= entries[head].size
            head += 1
        if head > 1024 and head * 2 > n:
            del entries[:head]
            head = 0
        self._head = head

    # -- sessions -------------------------------------------------------------------------------------

    def persist(self, session: SavedSession) -> None:
        """Keep ``session`` until it is restored or expires; the oldest goes beyond ``max_sessions``."""
        sessions = self.sessions
        sessions.pop(session.pid, None)
        sessions[session.pid] = session
        self.counters["persisted"] += 1
        if self.max_sessions and len(sessions) > self.max_sessions:
            del sessions[next(iter(sessions))]
            self.counters["evicted"] += 1

    def discard(self, pid: str) -> SavedSession | None:
        """Forget the session of ``pid`` (its user logged out, its session ended)."""
        return self.sessions.pop(pid, None)

    def restore(self, pid: Any, offset: Any, now: float, namespace: str = "/") -> Restored | None:
        """Take the session of ``pid`` back with the packets after ``offset``, or None.

        Args:
            pid: the private id from the CONNECT auth (any JSON value; only a str can match).
            offset: the client's last offset (any JSON value); absent (None): the client got no packet
                since it connected, so everything after the session's connect is replayed.
            now: the current time, on the clock of :meth:`expire`.
            namespace: the namespace the client connects to; a session of another one is refused.

        Returns:
            None when the pid is unknown or of another namespace, the session expired, the offset is not
            a valid one or is older than the log, or the missed packets exceed ``max_session_bytes``. The
            session is gone either way: a pid gets one attempt.
        """
        session = self.sessions.pop(pid, None) if type(pid) is str else None
        if session is None or session.namespace != namespace:
            self.counters["refused"] += 1
            return None
        if session.disconnected_at + self.max_disconnection_duration < now:
            self.counters["expired"] += 1
            return None
        seq = parse_offset(str(session.base) if offset is None else offset)
        if seq is None or seq > self.last_seq or seq < self.first_seq - 1:
            self.counters["refused"] += 1
            return None
        packets: list[bytes] = []
        size = 0
        limit = self.max_session_bytes
        rooms = set(session.rooms)
        entries = self._entries
        start = self._head + (seq + 1 - self.first_seq)
        for i in range(start, len(entries)):
            entry = entries[i]
            if entry.namespace != namespace or not selects(rooms, entry.rooms, entry.except_rooms):
                continue
            size += entry.size
            if limit and size > limit:
                self.counters["refused"] += 1
                return None
            packets.extend(entry.packets)
        self.counters["recovered"] += 1
        self.counters["replayed"] += len(packets)
        return Restored(session, packets, self.last_seq)

    def stats(self) -> dict[str, int]:
        """Sizes and counters, for ``infos`` and the metrics."""
        return {"entries": len(self), "bytes": self.bytes, "sessions": len(self.sessions), **self.counters}


def selects(rooms: set[str], targets: Iterable[str], except_rooms: Iterable[str]) -> bool:
    """Whether an emit to ``targets`` minus ``except_rooms`` reaches a socket in ``rooms``.

    The reference's ``shouldIncludePacket``: no targets means everyone; any excluded room excludes.
    """
    if targets and rooms.isdisjoint(targets):
        return False
    return rooms.isdisjoint(except_rooms)
