"""The master side of the hub: :class:`Hub` relays frames between workers and keeps the presence table.

With ``[recovery]`` on it is also the host's recovery log: every emit gets its offset here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ...errors import ClusterError
from ...recovery import RecoveryLog, with_offset
from .frames import (
    ANSWER,
    CONTROL,
    COUNT,
    DELIVER,
    EMIT,
    GONE,
    KEEP,
    PRESENCE,
    REQUEST,
    RESTORE,
    RESTORED,
    TAKE_OVER,
    Presence,
    body_of,
    forget_worker,
    frame,
    record_presence,
    session_fields,
    session_from,
)

__all__ = ["MAX_PARKED", "PARK_SECONDS", "Hub"]

PARK_SECONDS = 1.0
"""How long the master waits for a worker to hand over a socket still open there (see X frames)."""
MAX_PARKED = 1000
"""Most restores parked at once: beyond, one for an unknown pid is refused at once (a flood of forged
private ids costs the workers no X frames)."""


class Hub:
    """The master side: relays frames between workers and keeps the presence table. No I/O.

    ``add``/``remove`` register a worker's writer (a callable taking frame bytes).
    """

    def __init__(self, recovery: RecoveryLog | None = None) -> None:
        self.writers: dict[int, Callable[[bytes], None]] = {}
        self.presence: Presence = {}
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
        forget_worker(self.presence, wid)
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
            record_presence(self.presence, raw)
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
