"""Plain ``def`` handlers run in a thread pool; whatever they call on Tether runs on the event loop.

A route file written for Flask-SocketIO (``def on_message(socket, data): db.query(...)``) blocks the
thread it runs on. On the event loop that would stall every client of the worker, so, as Starlette runs
sync endpoints, :func:`wrap_sync` makes such a handler run in a :class:`HandlerPool` thread (``[handlers]
threads``; 0 keeps it on the loop). Its return value still answers the client's ack.

Thread safety: Tether's objects belong to the event loop. In a pool thread, the calls that touch them
(``socket.emit``, ``join``, ``leave``, ``disconnect``, ``server.emit``, ``server.to(...).emit``...) are
passed to the loop with :func:`call_in_loop` and the thread waits for them to be done, so a handler that
joins a room and then reads ``socket.rooms`` sees the room. One exception, the commonest calls: an
emit without ack (``socket.emit``, ``socket.to(room).emit``, ``server.to(room).emit``...) is encoded in
the thread and handed to the loop without waiting (nothing to read back; the loop runs what threads hand
it in order, so emits keep their order and come before the handler's ack). What would be an
``asyncio.Future`` or a coroutine on the loop (an emit with ``ack=True``, ``server.call``) is a
``concurrent.futures.Future`` there: ``.result(timeout)`` waits for it.

Events of one client whose handlers are ``def`` may finish in another order than they came, as with
python-socketio's ``async_handlers`` (each event its own task); ``async def`` handlers start in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "HandlerPool",
    "bind_thread",
    "call_in_loop",
    "in_loop",
    "loop_of_thread",
    "run_for_loop",
    "wrap_sync",
]

log = logging.getLogger("tether.handlers")

F = TypeVar("F", bound=Callable[..., Any])


class _Local(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    """The loop a pool thread works for; None on the loop's own thread and in any other thread."""


_local = _Local()


def loop_of_thread() -> asyncio.AbstractEventLoop | None:
    """The event loop this pool thread works for, or None when not in a pool thread."""
    return _local.loop


def bind_thread(loop: asyncio.AbstractEventLoop) -> None:
    """Make the Tether calls of this thread, one Tether did not start, run on ``loop`` from now on.

    For the threads of the application's sync code (a Flask or Django view through asgiref, a FastAPI
    ``def`` endpoint, a thread of its own) that push with ``tether.current_server().emit(...)``, as
    Flask-SocketIO's ``socketio.emit`` is used from a view. Nothing changes in a thread that runs an event
    loop (the loop's own calls stay direct) or that is bound to a loop still running (a handler pool
    thread); one bound to a loop that stopped (its server is gone) is bound again.
    """
    bound = _local.loop
    if bound is loop or (bound is not None and bound.is_running()):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _local.loop = loop  # no loop runs here: every Tether call of this thread is passed to ``loop``


def run_for_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in this thread as a pool thread of ``loop`` runs a handler: the Tether
    calls it makes go to ``loop`` (for a ``def`` background task, which ``asyncio.to_thread`` runs in the
    loop's default executor, whose threads Tether does not own).

    Returns:
        What ``fn`` returns.

    Raises:
        Exception: whatever ``fn`` raised.
    """
    _local.loop = loop
    try:
        return fn(*args, **kwargs)
    finally:
        _local.loop = None  # the executor's thread goes on to run other code, not bound to this loop


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

    A queue of jobs and up to ``size`` threads that take them, started as handlers come (a thread is
    started when every thread is busy). A job's result goes back to the loop with one
    ``call_soon_threadsafe``. This is what ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` does,
    without its per-job ``concurrent.futures.Future`` (a ``threading.Condition`` made, locked and
    notified in Python for every handler) and its chain of callbacks: that machinery was most of what a
    ``def`` handler cost (bench: a ``def`` echo at ~200 µs of server CPU against ~40 µs ``async def``).

    Args:
        size: most threads (``[handlers] threads``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.running = 0
        """Handlers given to a thread and not done yet (counted on the loop)."""
        _POOLS.add(self)

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``fn(*args)`` in a thread; an awaitable it returns is awaited here, on the loop.

        Raises:
            asyncio.CancelledError: the pool was shut down before a thread took it.
            Exception: whatever ``fn`` raised.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.running += 1
        self._jobs.put((loop, future, contextvars.copy_context(), fn, args))
        if self.running > len(self._threads) and len(self._threads) < self.size:
            # After the put: a new thread takes the job as soon as it starts (Thread.start waits for it).
            self._start_thread()
        try:
            result = await future
        finally:
            self.running -= 1
        if inspect.isawaitable(result):
            result = await result
        return result

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, args=(self._jobs,), name=f"tether-handler_{len(self._threads)}", daemon=False
        )
        self._threads.append(thread)
        thread.start()

    @staticmethod
    def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, context, fn, args = job
            _local.loop = loop
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the awaiting side, which decides
                _post(loop, _set_exception, future, exc)
            else:
                _post(loop, _set_result, future, result)
            finally:
                _local.loop = None
                del job, future, fn, args  # nothing of a finished handler kept while this thread waits

    def shutdown(self) -> None:
        """Let running handlers finish in the background; take no new ones (queued ones are cancelled).

        The pool may be used again afterwards: new threads start on a new queue.
        """
        jobs, threads = self._jobs, self._threads
        self._jobs, self._threads = queue.SimpleQueue(), []
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _post(job[0], job[1].cancel)
        for _ in threads:
            jobs.put(None)


_POOLS: weakref.WeakSet[HandlerPool] = weakref.WeakSet()


def _release_at_exit() -> None:
    # The threads are not daemons (a running handler finishes before the process exits), so a pool whose
    # server was never shut down would keep the interpreter waiting forever for its idle threads: wake them
    # to leave, as concurrent.futures' executors do from the same hook.
    for pool in list(_POOLS):
        for _ in pool._threads:
            pool._jobs.put(None)


threading._register_atexit(_release_at_exit)  # type: ignore[attr-defined]  # runs before non-daemon joins

_Job = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` on ``loop``, from a thread; nothing when the loop is closed (the server is gone)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        if isinstance(exc, StopIteration):  # an asyncio future refuses it (it would end the awaiter)
            exc = RuntimeError(f"handler raised StopIteration: {exc!r}")
        future.set_exception(exc)


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
