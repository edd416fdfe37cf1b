"""run_handler: sync and async handlers, eager start, and how results and errors reach the caller."""

from __future__ import annotations

import asyncio
import contextvars
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


# -- the first step runs as a Task would: asyncio.timeout, aiohttp and ContextVars before the first await --


async def test_timeout_before_the_first_await() -> None:
    # 3.11's asyncio.timeout asks for the current Task: outside one it raised "Timeout should be used inside
    # a task" (aiohttp's timer too), which every handler calling an HTTP API on its first line hit.
    async def quick() -> str:
        async with asyncio.timeout(scaled(1)):
            return "in time"

    async def stuck() -> str:
        try:
            async with asyncio.timeout(0.05):  # entered in the eager step, expires after the Task took over
                await asyncio.Event().wait()
        except TimeoutError:
            return "timed out"
        return "not reached"

    out = Outcome()
    assert run_handler(quick, (), out.on_done, out.on_error) == "in time"
    assert run_handler(stuck, (), out.on_done, out.on_error) is NOT_DONE
    await asyncio.wait_for(out.finished.wait(), scaled(2))
    assert out.done == ["timed out"] and out.errors == []


async def test_context_vars_do_not_leak_between_handlers() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")

    async def sets(value: str) -> str:
        var.set(value)
        return var.get()

    async def reads() -> str:
        return var.get()

    async def sets_then_waits(value: str) -> str:
        var.set(value)
        await asyncio.sleep(0)
        return var.get()  # its own context goes on with it into the Task

    out = Outcome()
    assert run_handler(sets, ("a",), out.on_done, out.on_error) == "a"
    assert run_handler(reads, (), out.on_done, out.on_error) == "unset"
    assert run_handler(sets_then_waits, ("b",), out.on_done, out.on_error) is NOT_DONE
    assert run_handler(reads, (), out.on_done, out.on_error) == "unset"
    await asyncio.wait_for(out.finished.wait(), scaled(2))
    assert out.done == ["b"] and var.get() == "unset"


async def test_current_task_in_the_first_step_is_not_the_callers() -> None:
    # Inside an ASGI server the packet arrives in the ASGI connection's Task: a handler's timeout must not
    # cancel that one. Here the test's own Task plays the ASGI connection.
    outer = asyncio.current_task()
    seen: list[Any] = []

    async def handler() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    out = Outcome()
    assert run_handler(handler, (), out.on_done, out.on_error) is NOT_DONE
    assert asyncio.current_task() is outer  # given back after the step
    await asyncio.wait_for(out.finished.wait(), scaled(2))
    assert seen[0] is not None and seen[0] is not outer
    assert isinstance(seen[1], asyncio.Task) and seen[1] is not outer and seen[0].task is seen[1]
