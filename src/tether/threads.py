"""Plain ``def`` handlers run in a thread pool; whatever they call on Tether runs on the event loop.

A route file written for Flask-SocketIO (``def on_message(socket, data): db.query(...)``) blocks the
thread it runs on. On the event loop that would stall every client of the worker, so, as Starlette runs
sync endpoints, :func:`wrap_sync` makes such a handler run in a :class:`HandlerPool` thread (``[handlers]
threads``; 0 keeps it on the loop). Its return value still answers the client's ack.

Thread safety: Tether's objects belong to the event loop. In a pool thread, the calls that touch them
(``socket.emit``, ``join``, ``leave``, ``disconnect``, ``server.emit``, ``server.to(...).emit``...) are
passed to the loop with :func:`call_in_loop` and the thread waits for them to be done, so a handler that
joins a room and then reads ``socket.rooms`` sees the room. What would be an ``asyncio.Future`` or a
coroutine on the loop (an emit with ``ack=True``, ``server.call``) is a ``concurrent.futures.Future``
there: ``.result(timeout)`` waits for it.

Events of one client whose handlers are ``def`` may finish in another order than they came, as with
python-socketio's ``async_handlers`` (each event its own task); ``async def`` handlers start in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HandlerPool", "call_in_loop", "in_loop", "loop_of_thread", "wrap_sync"]

log = logging.getLogger("tether.handlers")

F = TypeVar("F", bound=Callable[..., Any])


class _Local(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    """The loop a pool thread works for; None on the loop's own thread and in any other thread."""


_local = _Local()


def loop_of_thread() -> asyncio.AbstractEventLoop | None:
    """The event loop this pool thread works for, or None when not in a pool thread."""
    return _local.loop


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` on ``loop`` and wait for it here (a pool thread).

    Returns its result; an ``asyncio.Future`` or coroutine result becomes a ``concurrent.futures.Future``.

    Raises:
        Exception: whatever ``fn`` raised.
    """
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run_coroutine_threadsafe(result, loop)
            elif isinstance(result, asyncio.Future):
                result = _to_concurrent(result)
            done.set_result(result)
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return done.result()


def _to_concurrent(future: asyncio.Future[Any]) -> concurrent.futures.Future[Any]:
    out: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def copy(f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            out.cancel()
        elif f.exception() is not None:
            out.set_exception(f.exception())
        else:
            out.set_result(f.result())

    future.add_done_callback(copy)
    return out


def in_loop(method: F) -> F:
    """Make a method of a loop-owned object safe to call from a pool thread (see the module docstring)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        loop = _local.loop
        if loop is None:
            return method(*args, **kwargs)
        return call_in_loop(loop, method, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class HandlerPool:
    """The threads of one server's ``def`` handlers.

    Args:
        size: most threads (``[handlers] threads``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.running = 0
        """Handlers running in a thread right now."""

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self.size, thread_name_prefix="tether-handler"
            )
        return self._executor

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``fn(*args)`` in a thread; an awaitable it returns is awaited here, on the loop."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()

        def in_thread() -> Any:
            _local.loop = loop
            try:
                return context.run(fn, *args)
            finally:
                _local.loop = None

        self.running += 1
        try:
            result = await loop.run_in_executor(self._pool(), in_thread)
        finally:
            self.running -= 1
        if inspect.isawaitable(result):
            result = await result
        return result

    def shutdown(self) -> None:
        """Let running handlers finish in the background; take no new ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def wrap_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself when it is ``async def``; else a handler that runs it in its server's pool.

    The server is the first argument's (every handler gets the socket first). A server without a pool
    (``[handlers] threads = 0``) calls ``fn`` on the loop, as before.
    """
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return fn
    if getattr(fn, "__tether_sync__", None) is not None:
        return fn  # wrapped already

    @functools.wraps(fn)
    def handler(sock: Any, *args: Any) -> Any:
        pool: HandlerPool | None = getattr(getattr(sock, "server", None), "handler_pool", None)
        if pool is None or _local.loop is not None:
            return fn(sock, *args)
        return pool.run(fn, (sock, *args))

    handler.__tether_sync__ = fn  # type: ignore[attr-defined]
    return handler


class BlockWatch:
    """Warns, naming the handler, when one step of an ``async def`` handler held the loop too long.

    Args:
        threshold: seconds (``[handlers] block_warning``); 0 turns it off.
        interval: at most one warning per handler in this many seconds (a handler that always blocks
            would otherwise fill the log).
    """

    __slots__ = ("_last", "interval", "threshold", "warnings")

    def __init__(self, threshold: float, interval: float = 10.0) -> None:
        self.threshold = threshold
        self.interval = interval
        self.warnings = 0
        self._last: dict[str, float] = {}

    def check(self, handler: Any, event: str, seconds: float) -> None:
        """Called with how long one step of ``handler`` (for ``event``) ran."""
        if seconds < self.threshold:
            return
        name = handler_name(handler)
        now = time.monotonic()
        last = self._last.get(name)
        if last is not None and now - last < self.interval:
            return
        self._last[name] = now
        self.warnings += 1
        log.warning(
            "! async handler %s (event %r) blocked the event loop for %.3fs "
            "([handlers] block_warning = %gs): every client of this worker waited; make it a plain def "
            "(it then runs in a thread) or await the blocking call with asyncio.to_thread()",
            name,
            event,
            seconds,
            self.threshold,
        )


def handler_name(handler: Any) -> str:
    """``module.qualname`` of a handler (of the function a bound method or wrapper holds)."""
    fn = getattr(handler, "__tether_sync__", None) or getattr(handler, "__func__", None) or handler
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
