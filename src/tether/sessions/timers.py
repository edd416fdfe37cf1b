"""Many deadlines, one wake-up: the sans-I/O timer structure behind idle sessions.

Theory of operation
-------------------
A push service tracks one idle deadline per session, and every event from any tab of a session moves
its deadline. One asyncio timer handle per session would mean 100,000 handles for 100,000 sessions,
each cancelled and re-created on every event (aiohttp's ``web_ws.py`` heartbeat notes the same churn).
:class:`Deadlines` keeps all of them in a binary heap and tells its owner the one time it must wake up
(:meth:`Deadlines.next_wakeup`); the owner then calls :meth:`Deadlines.pop_expired` with the time.

The heap uses *lazy deletion* and *lazy postponement*:

* ``_live[key]`` holds the key's true deadline and the sequence number of the heap entry that stands
  for it. A heap entry whose sequence number is not the key's current one is stale and skipped.
* Moving a deadline **later** (the common case: activity) only writes the new time into ``_live``:
  O(1), no heap operation, no new entry. When the key's old entry reaches the top, :meth:`pop_expired`
  sees the true deadline is still ahead and pushes one entry for it then. A session that is active
  every second while its timeout is 15 minutes costs one heap push per 15 minutes, not one per event.
* Moving a deadline **earlier**, or cancelling, leaves a stale entry behind; when stale entries
  outnumber live ones the heap is rebuilt (amortised O(1) per operation).

Because of lazy postponement, :meth:`next_wakeup` is a lower bound: waking then may find nothing due,
in which case the owner simply sleeps again until the new :meth:`next_wakeup`.

Nothing here reads a clock or touches asyncio: times are plain floats passed in by the caller.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K", bound=Hashable)


class _Entry:
    """A key's true deadline and the sequence number of the heap entry that stands for it."""

    __slots__ = ("deadline", "seq")

    def __init__(self, deadline: float, seq: int) -> None:
        self.deadline = deadline
        self.seq = seq


_COMPACT_MIN = 1024
"""Never rebuild heaps smaller than this: rebuilding a tiny heap saves nothing."""


class Deadlines(Generic[K]):
    """Keys with a deadline each; the earliest ones come out first.

    Example::

        timers: Deadlines[str] = Deadlines()
        timers.schedule("s1", now + 900)
        timers.schedule("s1", now + 901)        # activity: moved later, O(1)
        wake_at = timers.next_wakeup()          # arm ONE timer for this
        for key, deadline in timers.pop_expired(now):
            ...
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, _Entry] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __iter__(self) -> Iterator[K]:
        return iter(self._live)

    @property
    def heap_size(self) -> int:
        """Entries in the heap, stale ones included (for tests and the bench)."""
        return len(self._heap)

    def deadline(self, key: K) -> float | None:
        """The deadline of ``key``, or None when it has none."""
        rec = self._live.get(key)
        return None if rec is None else rec.deadline

    def schedule(self, key: K, when: float) -> None:
        """Set the deadline of ``key`` to ``when``, adding the key or moving its deadline either way."""
        rec = self._live.get(key)
        if rec is None:
            self._seq += 1
            self._live[key] = _Entry(when, self._seq)
            heapq.heappush(self._heap, (when, self._seq, key))
            return
        if when >= rec.deadline:
            # Later (or equal): the existing entry fires early and is re-pushed then; see the module doc.
            rec.deadline = when
            return
        self._seq += 1
        rec.deadline = when
        rec.seq = self._seq
        heapq.heappush(self._heap, (when, self._seq, key))
        self._maybe_compact()

    def touch(self, key: K, when: float) -> bool:
        """Move the deadline of an existing ``key`` to ``when``. False (and nothing added) if unknown."""
        if key not in self._live:
            return False
        self.schedule(key, when)
        return True

    def cancel(self, key: K) -> bool:
        """Forget ``key``. Returns False if it had no deadline."""
        if self._live.pop(key, None) is None:
            return False
        self._maybe_compact()
        return True

    def next_wakeup(self) -> float | None:
        """When the owner must call :meth:`pop_expired` next (None: no deadlines).

        A lower bound of the earliest deadline: stale entries at the top are dropped here, but an entry
        whose key was postponed still reports its old time.
        """
        heap = self._heap
        live = self._live
        while heap:
            when, seq, key = heap[0]
            rec = live.get(key)
            if rec is not None and rec.seq == seq:
                return when
            heapq.heappop(heap)
        return None

    def pop_expired(self, now: float, limit: int | None = None) -> list[tuple[K, float]]:
        """Remove and return keys whose deadline is ``<= now``, earliest first, with their deadline.

        Args:
            limit: return at most this many (the rest stay due: call again). Lets the owner spread a
                burst of expiries over several loop iterations.
        """
        heap = self._heap
        live = self._live
        out: list[tuple[K, float]] = []
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            _, seq, key = heapq.heappop(heap)
            rec = live.get(key)
            if rec is None or rec.seq != seq:
                continue  # cancelled, or superseded by an earlier entry
            deadline = rec.deadline
            if deadline > now:
                # Postponed while waiting in the heap: take its place again at the true deadline.
                self._seq += 1
                rec.seq = self._seq
                heapq.heappush(heap, (deadline, self._seq, key))
                continue
            del live[key]
            out.append((key, deadline))
        # A key postponed to a time that is also past comes out at its old entry's place, possibly before
        # a key with an earlier true deadline: sort the batch by true deadline.
        if len(out) > 1:
            out.sort(key=lambda item: item[1])
        return out

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def _maybe_compact(self) -> None:
        heap = self._heap
        if len(heap) > _COMPACT_MIN and len(heap) > 2 * len(self._live):
            self._heap = [(rec.deadline, rec.seq, key) for key, rec in self._live.items()]
            heapq.heapify(self._heap)
