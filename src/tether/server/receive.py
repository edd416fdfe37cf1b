"""What a client sends, acted on: events to their routes, acks to their futures, CONNECT/DISCONNECT.

The transports call :meth:`Receiver.receive` with the events the sans-I/O core decoded, and the WebSocket
transport calls :meth:`Receiver.receive_event` directly for the common ``42[...]`` frame (the hot path).
"""

from __future__ import annotations

import logging
import time
from asyncio import AbstractEventLoop, get_running_loop
from asyncio.tasks import _enter_task, _leave_task  # what a Task implementation calls around a step
from bisect import bisect_left
from collections.abc import Generator
from contextvars import Context, copy_context
from time import perf_counter
from types import CoroutineType, coroutine
from typing import Any

from ..context import Socket
from ..errors import TetherError
from ..protocol.connection import State
from ..protocol.events import Ack, ClientEvent, Connect, Disconnect, Event
from .client import _TEXT, Client
from .dispatch import EagerStart, continue_in_task, current_task
from .lifecycle import Lifecycle
from .state import LATENCY_BUCKETS

__all__ = ["UNROUTED", "Receiver"]

log = logging.getLogger("tether.server")

UNROUTED = "_unrouted"
"""The one metrics label of every event name without a route of its own (a catch-all's included)."""

RETURNED: Any = object()
"""What the first step of a handler answers when the coroutine returned (no ack: its value unused)."""


@coroutine
def _answering(coro: Any, answer: list[Any]) -> Generator[Any, Any, None]:
    """Run ``coro`` (a handler whose value is an ack) and put its value in ``answer[0]``.

    Driven with ``next(..., RETURNED)`` like a coroutine without an ack, it ends without a StopIteration
    when the handler returns (``yield from`` takes the value in C). What ``coro`` yields passes through, so
    a Task can drive this generator in its place (``throw`` and ``close`` reach ``coro`` too).
    """
    answer[0] = yield from coro


class Receiver(Lifecycle):
    """Incoming packets to handlers (a layer of :class:`~tether.server.Server`; what transports drive)."""

    _loop: AbstractEventLoop | None = None
    """The loop the server started on (asyncio.get_running_loop() costs ~1,000 instructions per event)."""

    def receive(self, client: Client, events: list[ClientEvent]) -> None:
        """Act on what a client sent."""
        for ev in events:
            t = type(ev)
            if t is Event:
                assert isinstance(ev, Event)
                self.receive_event(client, ev.namespace, ev.name, ev.args, ev.ack_id)
                if client.conn.state is State.CLOSED:
                    return
            elif t is Ack:
                assert isinstance(ev, Ack)
                sock = client.sockets.get(ev.namespace)
                acked = sock is not None and sock._receive_ack(ev.id, ev.args)
                if not acked and self.debug:
                    log.debug("< %s ack %s never asked for: ignored", client.sid, ev.id)
            elif t is Connect:
                assert isinstance(ev, Connect)
                # Each CONNECT costs a reply (or a connect handler): a flood of them is limited like events.
                if self._event_rate and not self._within_rate(client, self._event_rate):
                    if client.conn.state is State.CLOSED:
                        return
                    continue
                self._connect(client, ev)
            elif t is Disconnect:
                assert isinstance(ev, Disconnect)
                if ev.namespace is None:
                    self.close_client(client, ev.reason, send_close=False)
                    return
                sock = client.sockets.get(ev.namespace)
                if sock is not None:
                    self.disconnect_socket(sock, ev.reason, notify=False)

    def receive_event(
        self, client: Client, namespace: str, name: str, args: list[Any], ack_id: int | None
    ) -> None:
        """One event from a client: rate limit, hooks, route, and the ack with the handler's result.

        This is the hot path of every message; the WebSocket transport calls it directly for the common
        ``42[...]`` frame without building an Event. Handlers run eagerly (see :mod:`.dispatch`). With
        handler hooks (metrics) a handler is timed with two clock reads; closures are made only for a
        handler that suspends.
        """
        state = self.state
        state.events_in += 1
        if len(name) > self._max_name_length:
            self._name_too_long(client, "event name")
            return
        if self._event_rate and not self._within_rate(client, self._event_rate):
            return
        sock = client.sockets.get(namespace)
        if sock is None:
            if self.debug:
                log.debug("< %s event %r for unconnected namespace %s", client.sid, name, namespace)
            return
        # Tested before the loops: iterating an empty list still makes (and frees) an iterator per event.
        if self.event_hooks:
            for hook in self.event_hooks:
                hook(sock, name)
        if self.event_args_hooks:
            for args_hook in self.event_args_hooks:
                args_hook(sock, name, args)
        router = self.router
        handler = router.resolved.get((namespace, name)) or router.get(namespace, name)
        timed = state.observe or self.handler_hooks
        if timed:
            # Its metrics row: a client chooses event names, so only routed ones (chosen by the app) get one.
            key = name if handler is not None else UNROUTED
            if state.observe:
                counts = state.events_in_by_name
                n = counts.get(key)
                if n is None:
                    state.count_in(key)  # a new name: the table is bounded there
                else:
                    counts[key] = n + 1
            started = perf_counter()
        else:
            started = 0.0
        ended = 0.0
        try:
            if handler is not None:
                result = handler(sock, *args)
            else:
                handler = self.router.get(namespace, "*")
                if handler is None:
                    if self.debug:
                        log.debug("< %s no route for %r in %s: ignored", sock.sid, name, namespace)
                    return
                result = handler(sock, name, *args)
            if type(result) is CoroutineType:
                coro: Any = result
                block = self._block_warning
                # One clock read serves both the handler's timing and the block watch when both are on.
                step = (started or perf_counter()) if block else 0.0
                # dispatch.first_step written out: the first step as a Task would run it (its own
                # context, a stand-in as the current task), without a call.
                eager = EagerStart()
                context = copy_context()
                loop = self._loop or get_running_loop()
                outer = current_task(loop)  # an ASGI connection's Task, when Tether runs inside one
                if outer is not None:
                    _leave_task(loop, outer)
                _enter_task(loop, eager)  # type: ignore[arg-type]  # a stand-in: see EagerStart
                # next() with a default ends a coroutine that returns None without raising StopIteration at
                # all, where send() raises it and `except ... as` builds it and its traceback: half the cost
                # of starting and ending a handler that does not suspend. A handler's value is the ack, so
                # with an ack id the coroutine runs inside _answering, which puts the value in a box and
                # returns None itself.
                try:
                    if ack_id is None:
                        answer = None
                        yielded = context.run(next, coro.__await__(), RETURNED)
                    else:
                        answer = [None]
                        coro = _answering(coro, answer)
                        yielded = context.run(next, coro, RETURNED)
                        result = answer[0]  # (None while it is suspended: then the Task's on_done reads it)
                    if yielded is not RETURNED:
                        if step:
                            self._check_block(handler, name, step)
                        self._suspended(
                            sock, name, ack_id, coro, yielded, started, handler, eager, context, answer
                        )
                        return
                finally:
                    _leave_task(loop, eager)  # type: ignore[arg-type]
                    if outer is not None:
                        _enter_task(loop, outer)
                if step:
                    ended = perf_counter()
                    if ended - step >= block:
                        self.block_watch.check(handler, name, ended - step)
        except Exception as exc:
            if timed:
                self._report_handler(namespace, name, started, False)
            self._handler_failed(sock, name, exc)
            return
        if timed:
            # _report_handler written out for the common case (the handler finished here): no second
            # route lookup for the row, no second clock read when the block watch took one.
            elapsed = (ended or perf_counter()) - started
            if state.observe:
                # ServerState.time_handler written out for a row that exists (every event but a name's first).
                row = state.handler_latency.get(key)
                if row is None:
                    state.time_handler(key, elapsed, True)
                else:
                    row[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
                    row[-2] += elapsed
            for done in self.handler_hooks:
                done(namespace, name, elapsed, True)
        if ack_id is not None:
            self._send_ack(sock, ack_id, result)

    def _report_handler(self, namespace: str, name: str, started: float, ok: bool) -> None:
        elapsed = perf_counter() - started
        if self.state.observe:
            routed = self.router.get(namespace, name) is not None
            self.state.time_handler(name if routed else UNROUTED, elapsed, ok)
        for hook in self.handler_hooks:
            hook(namespace, name, elapsed, ok)

    def _check_block(self, handler: Any, name: str, step_started: float) -> None:
        elapsed = perf_counter() - step_started
        if elapsed >= self._block_warning:
            self.block_watch.check(handler, name, elapsed)

    def _suspended(
        self,
        sock: Socket,
        name: str,
        ack_id: int | None,
        coro: Any,
        yielded: Any,
        started: float,
        handler: Any = None,
        eager: EagerStart | None = None,
        context: Context | None = None,
        answer: list[Any] | None = None,
    ) -> None:
        """The handler awaits something: let a Task finish it, then time it and ack.

        ``answer``: the box :func:`_answering` puts the handler's value in (``coro`` is then that wrapper,
        whose own value is None).
        """
        timed = bool(self.state.observe or self.handler_hooks)
        namespace = sock.namespace

        def on_done(result: Any) -> None:
            if timed:
                self._report_handler(namespace, name, started, True)
            if ack_id is not None:
                self._send_ack(sock, ack_id, answer[0] if answer is not None else result)

        def on_error(exc: BaseException) -> None:
            if timed:
                self._report_handler(namespace, name, started, False)
            self._handler_failed(sock, name, exc)

        watch = self.block_watcher(handler, name) if handler is not None else None
        continue_in_task(
            coro,
            yielded,
            on_done,
            on_error,
            self.config.limits.handler_timeout,
            self._tasks,
            watch,
            self._block_warning,
            eager,
            context,
        )

    def _within_rate(self, client: Client, rate: float) -> bool:
        limits = self.config.limits
        if client.take_rate_token(time.monotonic(), rate, limits.event_burst):
            return True
        self.state.rate_limited += 1
        if client.rate_violations > limits.rate_disconnect_after:
            self.close_client(client, "rate limit", send_close=True, ws_code=1008)
        elif client.rate_violations == 1:
            # One error event per episode of refusals: the client learns why, and a flood is not amplified.
            sock = client.sockets.get("/") or next(iter(client.sockets.values()), None)
            if sock is not None:
                client.send(
                    client.parser.encode_event(
                        sock.namespace,
                        "tether:error",
                        ({"code": 429, "message": "event rate limit exceeded"},),
                    )
                )
        return False

    def _send_ack(self, sock: Socket, ack_id: int, result: Any) -> None:
        if not sock.connected:
            return
        args = result if isinstance(result, tuple) else (() if result is None else (result,))
        client: Client = sock.client  # type: ignore[assignment]  # a server's sockets link to its Clients
        try:
            packets = client.parser.encode_ack(sock.namespace, ack_id, args)
            if client.fast_ws and len(packets) == 1 and type(packets[0]) is bytes:
                # Client.send written out for the common answer (one text packet on an open WebSocket).
                client.writes.send(client, _TEXT, packets[0])
            else:
                client.send(packets)
        except TetherError as exc:
            log.error("! ack %s for %s: %s", ack_id, sock.sid, exc)
