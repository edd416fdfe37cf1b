"""Running handlers: sync or async, eagerly, with errors logged and never raised into the transport.

An ``async def`` handler is started with ``coro.send(None)`` right away (on the event hot path with
``next(..., RETURNED)``, which ends it without a StopIteration: see ``Receiver.receive_event``): most
handlers (emit, join, return a value) finish without ever suspending, so no Task is created for them. Only a
handler that really awaits something (an ack, a database) gets a Task, which resumes the same coroutine.
Python 3.12 has this built in as ``asyncio.eager_task_factory``; Tether supports 3.11, so it is done here,
and it is the single largest saving per event (a Task costs about as much as the rest of an echo).

The first step runs as a Task's would (:class:`EagerStart`): in a copy of the context (a ``ContextVar`` a
handler sets does not leak into the next handler) and with ``asyncio.current_task()`` answering a stand-in
that becomes the Task if the handler suspends. Without it, ``async with asyncio.timeout(...)`` or an
aiohttp request before the handler's first ``await`` raised "Timeout should be used inside a task" (or, in
an ASGI server, would have cancelled the ASGI connection's Task).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from asyncio.tasks import _enter_task, _leave_task  # what a Task implementation calls around a step
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from time import perf_counter
from types import CoroutineType
from typing import Any

__all__ = ["NOT_DONE", "EagerStart", "continue_in_task", "current_task", "first_step", "run_handler"]

log = logging.getLogger("tether.handlers")

if sys.version_info < (3, 12):
    # 3.11's asyncio.current_task is a Python function around this C dict: its get is one C call instead of
    # a Python frame per event (3.12 made current_task itself C, and later versions keep it elsewhere).
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]  # private, as _enter_task

    current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = _current_tasks.get
else:  # pragma: no cover - CI runs 3.11
    current_task = asyncio.current_task


class _NotDone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<not done>"


NOT_DONE: Any = _NotDone()
"""Returned by :func:`run_handler` when the outcome goes to the callbacks: the handler went on in a Task,
or it raised and ``on_error`` has been called."""


class EagerStart:
    """What ``asyncio.current_task()`` answers while a handler coroutine takes its first step outside any
    Task, as 3.12's eager tasks run it; see the module docstring.

    :func:`first_step` runs the step with a new one as the current task, in a copy of the context. If the
    coroutine suspends, :func:`continue_in_task` makes the real Task (in the same context) and links it
    here: what the step kept of the stand-in (an ``asyncio.timeout`` holds it, to cancel it on expiry) then
    reaches that Task. Only the Task methods such code calls are here: ``cancel``, ``cancelling``,
    ``uncancel``, ``get_loop``, ``done``. No ``__init__`` and no slots: a handler that does not suspend (the
    common case) pays for an empty object only; the attributes are class defaults until set.
    """

    task: asyncio.Task[Any] | None = None
    """The Task that took the coroutine over when it suspended."""
    _cancels = 0

    def cancel(self, msg: Any = None) -> bool:
        if self.task is not None:
            return self.task.cancel(msg)
        self._cancels += 1  # during the first step itself: passed on to the Task when it exists
        return True

    def cancelling(self) -> int:
        return self.task.cancelling() if self.task is not None else self._cancels

    def uncancel(self) -> int:
        if self.task is not None:
            return self.task.uncancel()
        if self._cancels:
            self._cancels -= 1
        return self._cancels

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.task.get_loop() if self.task is not None else asyncio.get_running_loop()

    def done(self) -> bool:
        return self.task.done() if self.task is not None else False


def first_step(coro: Coroutine[Any, Any, Any], standin: EagerStart, context: Context) -> Any:
    """``coro.send(None)`` in ``context`` with ``standin`` as the current task; what the coroutine yields,
    or StopIteration / its exception. (Written out in ``Receiver.receive_event``, the hot path.)"""
    loop = asyncio.get_running_loop()
    outer = current_task(loop)  # an ASGI connection's Task, when Tether runs inside one
    if outer is not None:
        _leave_task(loop, outer)
    _enter_task(loop, standin)  # type: ignore[arg-type]  # a stand-in: see EagerStart
    try:
        return context.run(coro.send, None)
    finally:
        _leave_task(loop, standin)  # type: ignore[arg-type]
        if outer is not None:
            _enter_task(loop, outer)


def run_handler(
    handler: Callable[..., Any],
    args: tuple[Any, ...],
    on_done: Callable[[Any], None] | None,
    on_error: Callable[[BaseException], None],
    timeout: float = 0.0,
    tasks: set[asyncio.Task[Any]] | None = None,
    watch: Callable[[float], None] | None = None,
    threshold: float = 0.0,
) -> Any:
    """Call ``handler(*args)``; return its result, or :data:`NOT_DONE` if it suspended or raised.

    When it suspends, ``on_done(result)`` is called once it returns; ``on_error(exc)`` on an exception
    (also for a synchronous one, and then :data:`NOT_DONE` is returned, so that a caller never takes the
    failure for a result: a ``connect`` handler that raised Reject must not also accept the client, and a
    handler that raised answers no ack). ``timeout`` > 0 cancels a suspended handler after that many seconds.
    The Task of a suspended handler is kept in ``tasks`` until it ends (the server waits for them on stop).
    ``watch(seconds)`` is told of each step that held the loop ``threshold`` seconds or more.
    """
    try:
        result = handler(*args)
        if type(result) is not CoroutineType:
            return result
        coro: Coroutine[Any, Any, Any] = result
        step = perf_counter() if watch is not None else 0.0
        eager = EagerStart()
        context = copy_context()
        try:
            yielded = first_step(coro, eager, context)
        except StopIteration as stop:
            return stop.value
        finally:
            if watch is not None and perf_counter() - step >= threshold:
                watch(perf_counter() - step)
    except Exception as exc:
        on_error(exc)
        return NOT_DONE
    continue_in_task(coro, yielded, on_done, on_error, timeout, tasks, watch, threshold, eager, context)
    return NOT_DONE


def continue_in_task(
    coro: Coroutine[Any, Any, Any],
    yielded: Any,
    on_done: Callable[[Any], None] | None,
    on_error: Callable[[BaseException], None],
    timeout: float = 0.0,
    tasks: set[asyncio.Task[Any]] | None = None,
    watch: Callable[[float], None] | None = None,
    threshold: float = 0.0,
    eager: EagerStart | None = None,
    context: Context | None = None,
) -> asyncio.Task[Any]:
    """Finish a coroutine that suspended on its eager start (it yielded ``yielded``) in a Task.

    The Task is kept in ``tasks`` until it ends (the server waits for them on stop). ``watch(seconds)`` is
    called for a step of the coroutine (from one await to the next) that held the loop ``threshold``
    seconds or more: a handler that blocks the loop (``[handlers] block_warning``). ``eager``: the
    stand-in the first step ran as, in ``context``; the Task runs in that context and takes over its
    cancels."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(_resume(coro, yielded, watch, threshold), context=context)
    if eager is not None:
        eager.task = task
        for _ in range(eager._cancels):
            task.cancel()
    if tasks is not None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if timeout > 0:
        handle = asyncio.get_running_loop().call_later(timeout, task.cancel)
        task.add_done_callback(lambda _t: handle.cancel())
    task.add_done_callback(lambda t: _finished(t, on_done, on_error))
    return task


def _finished(
    task: asyncio.Task[Any], on_done: Callable[[Any], None] | None, on_error: Callable[[BaseException], None]
) -> None:
    if task.cancelled():
        on_error(TimeoutError("handler cancelled (timeout or shutdown)"))
        return
    exc = task.exception()
    if exc is not None:
        on_error(exc)
    elif on_done is not None:
        on_done(task.result())


async def _resume(
    coro: Coroutine[Any, Any, Any],
    yielded: Any,
    watch: Callable[[float], None] | None = None,
    threshold: float = 0.0,
) -> Any:
    """Drive ``coro`` from where the eager start left it, as ``asyncio.Task.__step`` would."""
    step = 0.0
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)  # a bare ``yield``: give the loop one turn
            else:
                # The handler's own await marked the future as blocking; a Task clears that flag before it
                # waits, and so must we, or awaiting it again raises "await wasn't used with future".
                yielded._asyncio_future_blocking = False
                await yielded
        except asyncio.CancelledError as exc:
            # Our own Task was cancelled: pass it into the handler so its finally blocks run.
            if yielded is None or not yielded.cancelled():
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
        except BaseException:
            pass  # the future's exception is raised inside the coroutine when it resumes below
        if watch is not None:
            step = perf_counter()
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value
        finally:
            if watch is not None and perf_counter() - step >= threshold:
                watch(perf_counter() - step)
