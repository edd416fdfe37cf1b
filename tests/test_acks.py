"""Acks from many (:mod:`tether.acks`): a shutdown that lands as the last answer does still stops the task
that awaits the answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.helpers import scaled
from tests.server.clients import SioClient
from tether.acks import AckCollector


async def test_shutdown_stops_a_task_whose_last_ack_lands_with_the_cancel(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background task that broadcasts with acks in a loop, cancelled by shutdown's first step
    (``cancel_background_tasks``) in the very turn of the loop in which the last answer completes the
    collector. ``AckCollector.wait`` on ``asyncio.wait_for`` (Python 3.11, gh-86296) returned the answers
    and lost that cancel: the task went on to its next round, and the same race lost the next cancel too,
    so that it never ended. On ``asyncio.timeout`` the cancel is the task's end."""
    server = await server_factory()
    client = await SioClient(["websocket"]).connect(server.url)
    rounds = 0

    async def ask_forever() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            answers: Any = await server.of("/").timeout(scaled(5)).emit("question", rounds)
            assert answers == [{"answer": rounds, "from": "python"}]

    staged: list[bool] = []
    real_answer = AckCollector.answer

    def answer_then_stop(self: AckCollector, value: Any) -> None:
        real_answer(self, value)
        staged.append(self.future.done())  # the last answer: the collector is complete...
        server.cancel_background_tasks()  # ...and shutdown cancels its awaiter before that task runs on

    monkeypatch.setattr(AckCollector, "answer", answer_then_stop)
    task = server.start_background_task(ask_forever)
    try:
        done, _ = await asyncio.wait({task}, timeout=scaled(5))
        assert task in done, f"the task lost its cancel and ran on ({rounds} rounds)"
        assert task.cancelled()
        assert rounds == 1 and staged == [True]
    finally:
        monkeypatch.undo()
        task.cancel()  # a cancel outside the race, which even wait_for keeps
        await asyncio.wait({task}, timeout=scaled(5))
        await client.close()
