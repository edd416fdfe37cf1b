"""One timer for every connection's heartbeat: a heap of deadlines, visited only when due.

Theory of operation: each client has at most one live heap entry, at ``conn.next_deadline()``. One
timer per process wakes at the earliest deadline (:meth:`Heartbeat.wake_time`), pops the entries that are
due, lets the sans-I/O :meth:`Connection.check_timers` say what to do (ping, time out), and pushes the
client back at its new deadline. Wake-ups are put on a grid of :attr:`Heartbeat.resolution` seconds
(1/40 of the shortest configured interval, between 5 ms and :data:`TICK`), so that deadlines close
together share one wake-up: with the default 25 s / 20 s intervals that is one wake-up per 0.5 s at most,
as the fixed tick was, and with the published test suites' 300 ms / 200 ms it is 5 ms, precise enough
that pings leave every 300 ms and a silent client is gone 500 ms after its handshake. A new deadline
earlier than the armed wake-up (rare: only when intervals are shorter than a wake-up) re-arms it.

An entry holds the client through a one-slot box: :meth:`Heartbeat.cancel` empties
the box when the client closes, so a closed client is freed at once while its stale entry waits to
surface (lazy deletion: no O(n) removal from the heap). A pong costs nothing here.

With 10,000 idle clients and the default 25 s ping interval this is ~800 heap operations a second,
instead of visiting all 10,000 clients on every tick (which cost ~0.6% of a core on its own).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.connection import State, Timer

if TYPE_CHECKING:
    from .client import Client

__all__ = ["FINEST", "TICK", "Heartbeat", "resolution_for"]

_CLOSED = State.CLOSED
_NOTHING = Timer.NOTHING

TICK = 0.5
"""Longest sleep of the heartbeat timer (seconds), and its coarsest resolution."""

FINEST = 0.005
"""Finest resolution of the heartbeat timer (seconds)."""


def resolution_for(*intervals: float) -> float:
    """The wake-up grid for these intervals (seconds): 1/40 of the shortest, within [FINEST, TICK]."""
    shortest = min((i for i in intervals if i > 0), default=TICK * 40)
    return min(TICK, max(FINEST, shortest / 40))


class Heartbeat:
    """Deadlines of all clients of one server."""

    __slots__ = ("_heap", "_seq", "armed_at", "on_earlier", "resolution")

    def __init__(self, resolution: float = TICK) -> None:
        self._heap: list[tuple[float, int, list[Client | None]]] = []
        self._seq = itertools.count()
        self.resolution = resolution
        self.armed_at = math.inf
        """When the timer is set to wake (monotonic seconds)."""
        self.on_earlier: Callable[[], None] | None = None
        """Called when a deadline earlier than :attr:`armed_at` is scheduled: the timer must wake sooner."""

    def wake_time(self, now: float) -> float:
        """When the timer should wake next (monotonic seconds; at most :data:`TICK` from ``now``)."""
        at = now + TICK
        heap = self._heap
        if heap:
            res = self.resolution
            due = math.ceil(heap[0][0] / res) * res
            if due < at:
                at = due if due > now else now
        self.armed_at = at
        return at

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, client: Client) -> None:
        """(Re)insert ``client`` at its connection's next deadline."""
        self.cancel(client)
        box: list[Client | None] = [client]
        client.hb_box = box
        deadline = client.conn.next_deadline()
        heapq.heappush(self._heap, (deadline, next(self._seq), box))
        if deadline < self.armed_at and self.on_earlier is not None:
            self.armed_at = deadline
            self.on_earlier()

    @staticmethod
    def cancel(client: Client) -> None:
        """Forget ``client`` (closed): its entry no longer refers to it."""
        box = client.hb_box
        if box is not None:
            box[0] = None
            client.hb_box = None

    def run(self, now: float, act: Callable[[Client, Timer], None]) -> int:
        """Handle every due client: ``act(client, timer)`` for pings and timeouts. Returns the count."""
        # Every idle client comes through here twice per ping interval (its ping, then its pong deadline,
        # which a pong does not remove: lazy deletion), so the loop is written out: the popped entry's box
        # is pushed back at the new deadline instead of a new one being made through schedule()/cancel().
        heap = self._heap
        pop = heapq.heappop
        push = heapq.heappush
        seq = self._seq
        n = 0
        while heap and heap[0][0] <= now:
            box = pop(heap)[2]
            client = box[0]
            if client is None:
                continue  # cancelled or rescheduled since: a stale entry
            conn = client.conn
            if conn.state is _CLOSED:
                box[0] = client.hb_box = None
                continue
            n += 1
            action = conn.check_timers(now)
            if action is not _NOTHING:
                act(client, action)
                if conn.state is _CLOSED or client.hb_box is not box:
                    continue  # act() closed it (cancel() emptied the box) or scheduled it itself
            push(heap, (conn.next_deadline(), next(seq), box))
        return n
