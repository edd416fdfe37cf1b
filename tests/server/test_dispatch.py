"""run_handler: sync and async handlers, eager start, and how results and errors reach the caller."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import scaled
from tether.server.dispatch import NOT_DONE, run_handler


class Outcome:
    def __init__(self) -> None:
        self.done: list[Any] = []
        self.errors: list[BaseException] = []
        self.finished = asyncio.Event()

    def on_done(self, result: Any) -> None:
        self.done.append(result)
        self.finished.set()

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.finished.set()


async def test_sync_result_is_returned() -> None:
    out = Outcome()
    assert run_handler(lambda a, b: a + b, (2, 3), out.on_done, out.on_error) == 5
    assert out.done == out.errors == []


async def test_async_without_await_finishes_eagerly() -> None:
    async def handler(x: int) -> int:
        return x * 2

    out = Outcome()
    assert run_handler(handler, (4,), out.on_done, out.on_error) == 8
    assert len(asyncio.all_tasks()) == 1  # no Task was made: only the test's own


async def test_sync_exception_goes_to_on_error_and_is_not_a_result() -> None:
    def handler() -> None:
        raise ValueError("nope")

    out = Outcome()
    assert run_handler(handler, (), out.on_done, out.on_error) is NOT_DONE
    assert [str(e) for e in out.errors] == ["nope"] and out.done == []


async def test_async_exception_before_any_await() -> None:
    async def handler() -> None:
        raise KeyError("early")

    out = Outcome()
    # NOT_DONE, not None: a connect handler raising Reject must not also accept the client
    assert run_handler(handler, (), out.on_done, out.on_error) is NOT_DONE
    assert isinstance(out.errors[0], KeyError) and out.done == []


async def test_suspended_handler_reports_through_on_done() -> None:
    async def handler() -> str:
        await asyncio.sleep(0.01)
        return "later"

    out = Outcome()
    assert run_handler(handler, (), out.on_done, out.on_error) is NOT_DONE
    await asyncio.wait_for(out.finished.wait(), scaled(5))
    assert out.done == ["later"] and out.errors == []


async def test_suspended_handler_error_and_timeout() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("late")

    out = Outcome()
    assert run_handler(fails, (), out.on_done, out.on_error) is NOT_DONE
    await asyncio.wait_for(out.finished.wait(), scaled(5))
    assert isinstance(out.errors[0], RuntimeError)

    cleaned_up = []

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.append(True)

    out = Outcome()
    assert run_handler(slow, (), out.on_done, out.on_error, timeout=0.05) is NOT_DONE
    await asyncio.wait_for(out.finished.wait(), scaled(5))
    assert isinstance(out.errors[0], TimeoutError)
    assert cleaned_up == [True]  # the handler's finally ran


async def test_awaiting_a_future_twice_in_one_handler() -> None:
    loop = asyncio.get_running_loop()

    async def handler() -> int:
        f1: asyncio.Future[int] = loop.create_future()
        loop.call_soon(f1.set_result, 1)
        a = await f1
        f2: asyncio.Future[int] = loop.create_future()
        loop.call_soon(f2.set_result, 2)
        return a + await f2

    out = Outcome()
    assert run_handler(handler, (), out.on_done, out.on_error) is NOT_DONE
    await asyncio.wait_for(out.finished.wait(), scaled(5))
    assert out.done == [3]
