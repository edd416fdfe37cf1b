"""One timer for every connection's heartbeat: deadlines in slots of a wake-up grid, visited only when due.

Theory of operation: each client has at most one live entry, in the slot of ``conn.next_deadline()`` on a
grid of :attr:`Heartbeat.resolution` seconds (slot ``k`` holds the deadlines in ``((k-1) * resolution,
k * resolution]``: 1/40 of the shortest configured interval, between 5 ms and :data:`TICK`). One timer
per process wakes at the earliest slot's time (:meth:`Heartbeat.wake_time`), takes the slots that are
due, lets the sans-I/O :meth:`Connection.check_timers` say what to do (ping, time out), and puts the
client in the slot of its new deadline. Deadlines close together share one wake-up: with the default
25 s / 20 s intervals that is one wake-up per 0.5 s at most, and with the published test suites'
300 ms / 200 ms it is 5 ms, precise enough that pings leave every 300 ms and a silent client is gone
500 ms after its handshake. A new deadline earlier than the armed wake-up (rare: only when intervals are
shorter than a wake-up) re-arms it.

Why slots and not a heap of deadlines: an idle client comes through here twice per ping interval (its
ping, then its pong deadline), and a heap entry cost a tuple per visit and ~log2(n) tuple comparisons per
push and pop (4,600 of the ~18,000 instructions of an idle client's ping and pong with 200 clients, more
with 10,000: bench/icount.py ping). A slot is a list: a visit appends to it. Only the slots' numbers are
in a heap, one entry per slot in use (a few dozen), not one per client.

An entry holds the client through a one-slot box: :meth:`Heartbeat.cancel` empties the box when the client
closes, so a closed client is freed at once while its stale entry waits for its slot (lazy deletion: no
removal from a list). A pong costs nothing here.
"""

from __future__ import annotations

import heapq
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

    __slots__ = ("_order", "_slots", "armed_at", "on_earlier", "resolution")

    def __init__(self, resolution: float = TICK) -> None:
        self._slots: dict[int, list[list[Client | None]]] = {}
        """Slot number -> the boxes whose deadline falls in it (see the module docstring)."""
        self._order: list[int] = []
        """A heap of the slot numbers in :attr:`_slots`."""
        self.resolution = resolution
        self.armed_at = math.inf
        """When the timer is set to wake (monotonic seconds)."""
        self.on_earlier: Callable[[], None] | None = None
        """Called when a deadline earlier than :attr:`armed_at` is scheduled: the timer must wake sooner."""

    def wake_time(self, now: float) -> float:
        """When the timer should wake next (monotonic seconds; at most :data:`TICK` from ``now``)."""
        at = now + TICK
        order = self._order
        if order:
            due = order[0] * self.resolution
            if due < at:
                at = due if due > now else now
        self.armed_at = at
        return at

    def __len__(self) -> int:
        """Entries held, stale ones (of clients closed or rescheduled since) included."""
        return sum(map(len, self._slots.values()))  # a few dozen slots: not worth a counter in run()

    def schedule(self, client: Client) -> None:
        """(Re)insert ``client`` at its connection's next deadline."""
        self.cancel(client)
        box: list[Client | None] = [client]
        client.hb_box = box
        slot = math.ceil(client.conn.next_deadline() / self.resolution)
        self._put(slot, box)
        at = slot * self.resolution
        if at < self.armed_at and self.on_earlier is not None:
            self.armed_at = at
            self.on_earlier()

    def _put(self, slot: int, box: list[Client | None]) -> None:
        boxes = self._slots.get(slot)
        if boxes is None:
            self._slots[slot] = [box]
            heapq.heappush(self._order, slot)
        else:
            boxes.append(box)

    @staticmethod
    def cancel(client: Client) -> None:
        """Forget ``client`` (closed): its entry no longer refers to it."""
        box = client.hb_box
        if box is not None:
            box[0] = None
            client.hb_box = None

    def run(self, now: float, act: Callable[[Client, Timer], None]) -> int:
        """Handle every client of every slot due at ``now``: ``act(client, timer)`` for pings and timeouts.
        Returns how many clients were visited."""
        # Every idle client comes through here twice per ping interval (its ping, then its pong deadline,
        # which a pong does not remove: lazy deletion), so the loop is written out: the box is put back in
        # its new slot, not a new one made through schedule()/cancel().
        slots = self._slots
        order = self._order
        res = self.resolution
        ceil = math.ceil
        pop = heapq.heappop
        push = heapq.heappush
        n = 0
        while order and order[0] * res <= now:
            slot = pop(order)
            boxes = slots.pop(slot)
            for box in boxes:
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
                nxt = ceil(conn.next_deadline() / res)
                if nxt <= slot:
                    # Not due yet, yet in this slot: a deadline one rounding error past the slot's time.
                    # The next slot, or this loop would take it again and again.
                    nxt = slot + 1
                later = slots.get(nxt)  # _put written out: a call less per visit
                if later is None:
                    slots[nxt] = [box]
                    push(order, nxt)
                else:
                    later.append(box)
        return n
