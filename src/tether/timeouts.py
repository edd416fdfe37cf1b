"""A bounded wait that keeps a cancel, for code a handler may run before it is a Task.

``async with asyncio.timeout(...)`` is the bounded wait in a Task. :mod:`tether.server.dispatch` starts an
``async def`` handler with ``coro.send(None)`` outside any Task, with a stand-in as the current task
(``EagerStart``) that becomes the handler's Task if it suspends; Tether's own waits reachable from there
use this helper, which needs no current task at all. ``asyncio.wait_for`` would work there but, on Python
3.11, returns the result when a cancel lands as the awaited future completes (CPython gh-86296, fixed in
3.12 by building it on ``asyncio.timeout``): its caller runs on after it was cancelled. :func:`wait_done`
is wait_for's waiter without that flaw.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["wait_done"]


async def wait_done(future: asyncio.Future[Any], timeout: float | None) -> bool:
    """Wait until ``future`` is done or ``timeout`` seconds (None: no limit) have passed.

    Returns:
        True when ``future`` is done. It is never cancelled here, on a timeout or a cancel of the caller
        (as ``asyncio.wait_for(asyncio.shield(future), timeout)``).

    Raises:
        asyncio.CancelledError: the caller was cancelled, also when the cancel lands in the turn of the
            loop in which ``future`` completed (where 3.11's ``wait_for`` returns instead).
    """
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def release(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(release)
    handle = loop.call_later(timeout, release) if timeout is not None else None
    try:
        # A cancel cancels ``waiter``, or, when ``waiter`` is already done, is raised here as the Task (or
        # dispatch's driver) resumes: never caught, so never lost.
        await waiter
    finally:
        future.remove_done_callback(release)
        if handle is not None:
            handle.cancel()
    return future.done()
