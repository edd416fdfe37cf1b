"""Receiver.receive_event, the hot path of every ``42[...]`` frame: the first step of an ``async def``
handler written out (run as a Task's first step would, ended with ``next`` when no ack is wanted), the
route cache and the hooks it skips when there are none.

Every event here comes over a raw Engine.IO WebSocket (``EioClient``), so the WebSocket listener's fast
path hands it to ``receive_event`` directly, as in production.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.hardening.support import EioClient
from tests.helpers import scaled, wait_until
from tether import Router, Socket

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


def receive_router() -> Router:
    router = Router()

    @router.on("after_sleep0")
    async def after_sleep0(socket: Socket, tag: str) -> None:
        # asyncio.sleep(0) yields None to the loop: the step must go on in a Task, not be taken as ended.
        await asyncio.sleep(0)
        await socket.emit("slept", tag)

    @router.on("returns")
    async def returns(socket: Socket, value: Any) -> Any:
        await socket.emit("returning", value)
        return value  # without an ack id nobody wants it: no ack packet may be sent

    @router.on("set_var")
    async def set_var(socket: Socket, value: str) -> str:
        before = seen.get()
        seen.set(value)
        return before

    @router.on("read_var")
    async def read_var(socket: Socket) -> str:
        return seen.get()

    @router.on("current_task")
    async def current_task(socket: Socket) -> bool:
        async with asyncio.timeout(scaled(5)):  # needs asyncio.current_task() in the first step
            return asyncio.current_task() is not None

    @router.on("fails")
    async def fails(socket: Socket) -> None:
        raise ValueError("handler failed on purpose")

    @router.on("replaced")
    async def first(socket: Socket) -> str:
        return "first"

    # With an ack id the handler runs inside receive._answering: its value must reach the ack whether it
    # ends in the first step or in a Task, and a Task's cancel and the handler's own errors must reach it.
    @router.on("answer_later")
    async def answer_later(socket: Socket, value: Any, seconds: float) -> Any:
        await asyncio.sleep(0)  # a bare yield first, then a future
        await asyncio.sleep(seconds)
        return value

    @router.on("answer_pair_later")
    async def answer_pair_later(socket: Socket, value: Any) -> tuple[Any, Any]:
        await asyncio.sleep(0.001)
        return "pair", value

    @router.on("fails_later")
    async def fails_later(socket: Socket) -> str:
        await asyncio.sleep(0.001)
        raise ValueError("handler failed later on purpose")

    @router.on("hangs")
    async def hangs(socket: Socket) -> str:
        try:
            await asyncio.get_running_loop().create_future()  # never done: [limits] handler_timeout ends it
        finally:
            await socket.emit("cleaned up")
        return "never"

    return router


@pytest.fixture
async def client(server_factory: ServerFactory) -> Any:
    server = await server_factory(receive_router())
    c = await EioClient.connect(server)
    yield c
    await c.close()


async def test_a_handler_that_yields_none_goes_on_in_a_task(client: EioClient) -> None:
    await client.emit("after_sleep0", "a")
    await client.emit("after_sleep0", "b")
    await wait_until(lambda: client.events_named("slept") == [["a"], ["b"]])


async def test_a_returned_value_without_ack_id_sends_no_ack(client: EioClient) -> None:
    for value in (None, 0, "x", [1, 2], {"k": "v"}):
        await client.emit("returns", value)
    # An ack-wanting event after them: its answer comes after whatever the five could have sent.
    assert await client.call("read_var") == ["unset"]
    assert client.events_named("returning") == [[None], [0], ["x"], [[1, 2]], [{"k": "v"}]]
    assert [m for m in client.received if isinstance(m, str) and m.startswith("43")] == []


async def test_a_handler_s_context_variable_does_not_reach_the_next_handler(client: EioClient) -> None:
    await client.emit("set_var", "from the first event")  # no ack: ended with next()
    assert await client.call("set_var", "second") == ["unset"]  # with an ack: ended with send()
    assert await client.call("read_var") == ["unset"]


async def test_the_first_step_has_a_current_task_with_and_without_ack(client: EioClient) -> None:
    assert await client.call("current_task") == [True]
    await client.emit("current_task")
    assert await client.call("read_var") == ["unset"]  # the connection still serves events


async def test_a_failing_handler_without_ack_is_logged_and_the_connection_goes_on(
    client: EioClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tether"):
        await client.emit("fails")
        assert await client.call("read_var") == ["unset"]
    assert "handler failed on purpose" in caplog.text


async def test_a_route_replaced_after_its_first_use_is_the_one_called(server_factory: ServerFactory) -> None:
    router = receive_router()
    server = await server_factory(router)
    client = await EioClient.connect(server)
    try:
        assert await client.call("replaced") == ["first"]  # now in the router's cache

        @router.on("replaced")
        async def second(socket: Socket) -> str:
            return "second"

        assert await client.call("replaced") == ["second"]
    finally:
        await client.close()


async def test_an_ack_handler_s_value_is_its_answer_when_it_suspends(client: EioClient) -> None:
    assert await client.call("answer_later", {"k": [1]}, 0.001) == [{"k": [1]}]
    assert await client.call("answer_later", None, 0.001) == []
    assert await client.call("answer_pair_later", 7) == ["pair", 7]
    # Each event has its own box: a slow answer asked first and a quick one asked after get their own.
    slow = asyncio.ensure_future(client.call("answer_later", "slow", 0.05))
    quick = asyncio.ensure_future(client.call("answer_later", "quick", 0.0))
    assert await quick == ["quick"]
    assert not slow.done()
    assert await slow == ["slow"]


async def test_an_ack_handler_that_fails_after_suspending_answers_nothing(
    client: EioClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tether"):
        with pytest.raises(TimeoutError):
            await client.call("fails_later", timeout=scaled(0.3))
        assert await client.call("answer_later", "still served", 0.0) == ["still served"]
    assert "handler failed later on purpose" in caplog.text


async def test_an_ack_handler_cancelled_by_handler_timeout_runs_its_finally_and_answers_nothing(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(receive_router(), limits={"handler_timeout": 0.2})
    client = await EioClient.connect(server)
    try:
        with pytest.raises(TimeoutError):
            await client.call("hangs", timeout=scaled(0.6))
        await wait_until(lambda: client.events_named("cleaned up") == [[]])
        await wait_until(lambda: server.state.handler_errors == 1)
        assert await client.call("answer_later", "after", 0.0) == ["after"]
    finally:
        await client.close()
