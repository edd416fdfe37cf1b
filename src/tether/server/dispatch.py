"""Running handlers: sync or async, eagerly, with errors logged and never raised into the transport.

An ``async def`` handler is started with ``coro.send(None)`` right away: most handlers (emit, join,
return a value) finish without ever suspending, so no Task is created for them. Only a handler that
really awaits something (an ack, a database) gets a Task, which resumes the same coroutine. Python 3.12
has this built in as ``asyncio.eager_task_factory``; Tether supports 3.11, so it is done here, and it is
the single largest saving per event (a Task costs about as much as the rest of an echo).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from time import perf_counter
from types import CoroutineType
from typing import Any

__all__ = ["NOT_DONE", "continue_in_task", "run_handler"]

log = logging.getLogger("tether.handlers")


class _NotDone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<not done>"


NOT_DONE: Any = _NotDone()
"""Returned by :func:`run_handler` when the outcome goes to the callbacks: the handler went on in a Task,
or it raised and ``on_error`` has been called."""


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
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value
        finally:
            if watch is not None and perf_counter() - step >= threshold:
                watch(perf_counter() - step)
    except Exception as exc:
        on_error(exc)
        return NOT_DONE
    continue_in_task(coro, yielded, on_done, on_error, timeout, tasks, watch, threshold)
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
) -> asyncio.Task[Any]:
    """Finish a coroutine that suspended on its eager start (it yielded ``yielded``) in a Task.

    The Task is kept in ``tasks`` until it ends (the server waits for them on stop). ``watch(seconds)`` is
    called for a step of the coroutine (from one await to the next) that held the loop ``threshold``
    seconds or more: a handler that blocks the loop (``[handlers] block_warning``)."""
    task = asyncio.get_running_loop().create_task(_resume(coro, yielded, watch, threshold))
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
