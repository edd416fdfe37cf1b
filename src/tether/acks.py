"""Acks from many: the answers to one emit that asked every recipient to acknowledge it.

Semantics are socket.io 4.5's broadcast with acknowledgements (``io.timeout(5000).emit("q", cb)``,
``emitWithAck``): every process that delivers the emit first says how many sockets it sent it to, then
forwards each socket's answer; the emit is complete when every process has counted and every counted
socket has answered, or when the timeout expires. Node rejects on a timeout with the answers so far;
Tether resolves to :class:`Answers` in both cases and says how many did not answer (``missing``).

Each answer follows :meth:`tether.Socket.emit`'s convention for acks: a client that acked with one
argument gives that value, several give a tuple, none gives None. A Node.js peer forwards only the
first argument of each answer (its wire format has room for one).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["AckCollector", "Answers"]


class Answers(list[Any]):
    """The answers to an emit with acks: a list (in arrival order) that also says who did not answer.

    Attributes:
        expected: how many sockets the emit reached (counted by every process that answered in time).
        missing: how many of them did not answer before the timeout (or disconnected first).
        timed_out: True when the timeout expired before every answer came.
        servers_missing: processes that never said how many sockets they reached (their sockets are
            not in ``expected``: a process that died, or a Redis outage).
    """

    expected: int
    missing: int
    timed_out: bool
    servers_missing: int

    def __init__(
        self, answers: list[Any], expected: int, timed_out: bool = False, servers_missing: int = 0
    ) -> None:
        super().__init__(answers)
        self.expected = expected
        self.missing = max(0, expected - len(answers))
        self.timed_out = timed_out
        self.servers_missing = servers_missing

    def __repr__(self) -> str:
        return f"Answers({list.__repr__(self)}, expected={self.expected}, missing={self.missing})"


class AckCollector:
    """Counts sockets and answers for one emit with acks until it is complete (see the module docstring).

    The local part counts itself with :meth:`add_local`; each adapter calls :meth:`expect_servers` once
    (how many other processes will answer) and then :meth:`server_counted` / :meth:`answer` as their
    responses arrive.
    """

    __slots__ = ("_answers", "_expected", "_expired", "_failed", "_servers", "_servers_counted", "future")

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers: list[Any] = []
        self._expected = 0
        self._failed = 0
        self._expired = False
        self._servers: int | None = None
        self._servers_counted = 0

    def add_local(self, futures: list[asyncio.Future[Any]]) -> None:
        """The acks of this process's sockets (from :meth:`Socket.emit` with ``ack=True``)."""
        self._expected += len(futures)
        for future in futures:
            future.add_done_callback(self._local_done)

    def _local_done(self, future: asyncio.Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or exc is not None:
            self._failed += 1  # timed out or disconnected: it will never answer
            # A socket's own ack timer may fire just before the collector's: that is a timeout too.
            self._expired |= isinstance(exc, TimeoutError)
            self._check()
        else:
            self.answer(future.result())

    def expect_servers(self, count: int) -> None:
        """How many other processes were sent the emit (each will say how many sockets it reached)."""
        self._servers = (self._servers or 0) + count
        self._check()

    def server_counted(self, clients: int) -> None:
        """Another process reached ``clients`` sockets."""
        self._servers_counted += 1
        self._expected += max(0, clients)
        self._check()

    def answer(self, value: Any) -> None:
        """One socket answered ``value``."""
        if self.future.done():
            return  # late: after the timeout the answers are final
        self._answers.append(value)
        self._check()

    def _check(self) -> None:
        if self.future.done() or self._servers is None:
            return
        if self._servers_counted >= self._servers and len(self._answers) + self._failed >= self._expected:
            self.future.set_result(None)

    async def wait(self, timeout: float) -> Answers:
        """The answers once complete, or those that came within ``timeout`` seconds."""
        timed_out = False
        if not self.future.done():
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands as the future
                # completes (gh-86296), and the caller (a background task shutdown cancels) runs on.
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.future)
            except TimeoutError:
                timed_out = True
        if not self.future.done():
            self.future.cancel()
        servers_missing = max(0, (self._servers or 0) - self._servers_counted)
        return Answers(list(self._answers), self._expected, timed_out or self._expired, servers_missing)
