"""``tether.timeouts.wait_done``: a bounded wait that works in a handler's eager start and keeps a cancel."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import scaled
from tether.server.dispatch import EagerStart, run_handler
from tether.timeouts import wait_done


async def test_a_cancel_that_lands_as_the_future_completes_is_raised() -> None:
    """The race of gh-86296 staged: the future completes and its waiter is cancelled in one turn of the
    loop. ``asyncio.wait_for(asyncio.shield(future), ...)`` returns there on 3.11; wait_done raises."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    after: list[str] = []

    async def waiter() -> None:
        await wait_done(future, scaled(5))
        after.append("ran on after its cancel")

    task = loop.create_task(waiter())
    await asyncio.sleep(0)  # waiting now

    def complete_and_cancel() -> None:
        future.set_result(1)
        task.cancel()

    loop.call_soon(complete_and_cancel)
    done, _ = await asyncio.wait({task}, timeout=scaled(5))
    assert task in done and task.cancelled() and after == []
    assert future.result() == 1


async def test_in_a_handlers_eager_start() -> None:
    """dispatch starts a handler outside any Task (here: in a plain loop callback, as picows's and
    httptools's callbacks are), with a stand-in as the current task; wait_done waits, the handler goes on
    in a Task, and a timeout leaves the future alone."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[int] = loop.create_future()
    silent: asyncio.Future[int] = loop.create_future()
    results: asyncio.Future[Any] = loop.create_future()
    errors: list[BaseException] = []

    async def handler() -> tuple[bool, bool]:
        assert isinstance(asyncio.current_task(), EagerStart)  # the eager start
        got = await wait_done(answered, scaled(5))
        timed_out = not await wait_done(silent, 0.01)
        return got, timed_out

    loop.call_soon(run_handler, handler, (), results.set_result, errors.append)
    loop.call_later(0.01, answered.set_result, 1)
    assert await asyncio.wait_for(results, scaled(5)) == (True, True)
    assert errors == [] and not silent.done()
