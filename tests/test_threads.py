"""``[handlers]``: the thread pool's size at its edges, the blocked-loop warning's threshold at its edge,
and what a ``def`` handler's thread may call (tether.threads)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.apps.pyapi_routes import install
from tests.helpers import scaled
from tests.redis_fixtures import clients
from tether import Config, ConfigError, Router, Socket, run_server
from tether.threads import BlockWatch, bind_thread, loop_of_thread


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [("threads", 1024, 1025), ("threads", 0, -1), ("block_warning", 0.0, -0.01), ("ack_timeout", 0.01, 0.0)],
)
def test_handlers_limits_at_their_edges(key: str, good: float, bad: float) -> None:
    assert getattr(Config.load(env={}, overrides={"handlers": {key: good}}).handlers, key) == good
    with pytest.raises(ConfigError) as info:
        Config.load(env={}, overrides={"handlers": {key: bad}})
    assert "handlers" in info.value.key


def test_block_warning_at_exactly_its_threshold(caplog: pytest.LogCaptureFixture) -> None:
    def handler() -> None: ...

    watch = BlockWatch(0.2, interval=0)
    with caplog.at_level(logging.WARNING, logger="tether.handlers"):
        watch.check(handler, "ev", 0.19)
        assert watch.warnings == 0
        watch.check(handler, "ev", 0.2)
    assert (
        watch.warnings == 1 and "test_block_warning_at_exactly_its_threshold.<locals>.handler" in caplog.text
    )
    once = BlockWatch(0.2, interval=60)
    once.check(handler, "ev", 1)
    once.check(handler, "ev", 1)
    assert once.warnings == 1  # at most one warning per handler per interval


@pytest.mark.parametrize("threads", [1, 2])
async def test_pool_size_bounds_how_many_def_handlers_run_at_once(threads: int) -> None:
    router = Router()
    install(router)
    server = await run_server(Config().replace(server={"port": 0}, handlers={"threads": threads}), router)
    try:
        async with clients(server.url, server.url) as (a, b):
            started = time.monotonic()
            assert await asyncio.gather(a.call("block", 0.6), b.call("block", 0.6)) == ["slept", "slept"]
            elapsed = time.monotonic() - started
        # One thread: one after the other (>= 1.2 s); two: side by side (0.6 s and the round trips).
        assert elapsed >= 1.2 if threads == 1 else elapsed < 1.1
    finally:
        await server.shutdown(timeout=1)


async def test_a_def_handler_reads_its_own_writes_and_waits_for_acks() -> None:
    router = Router()
    seen: dict[str, Any] = {}

    @router.on("work")
    def work(socket: Socket) -> list[str]:
        socket.join("thread-room")  # done on the loop; the thread waits for it
        seen["rooms"] = sorted(socket.rooms)
        future = socket.emit("question", "from a thread", ack=True, timeout=5)
        seen["answer"] = future.result(5)  # type: ignore[attr-defined]  # a concurrent.futures.Future here
        seen["call"] = socket.server.call("question", "call", to=socket.sid, timeout=5).result(5)
        socket.server.to("thread-room").emit("done", 1)
        return seen["rooms"]  # type: ignore[no-any-return]

    server = await run_server(Config().replace(server={"port": 0}), router)
    try:
        async with clients(server.url) as (a,):
            assert await a.call("work") == sorted([a.sid, "thread-room"])
            assert seen["answer"] == "ack-question" and seen["call"] == "ack-question"
            for _ in range(100):
                if a.events.get("done"):
                    break
                await asyncio.sleep(0.01)
            assert a.events["done"] == [1]
    finally:
        await server.shutdown(timeout=1)


async def test_emits_from_a_def_handler_keep_their_order_come_before_its_ack_and_fail_in_it() -> None:
    """An emit without ack from a pool thread is handed to the loop without waiting: still in call order,
    before the handler's ack, and an argument that cannot be encoded still raises in the handler."""
    from tests.server.test_recovery import call, raw_connect

    router = Router()

    @router.on("burst")
    def burst(socket: Socket, n: int) -> str:
        socket.join("r")
        for i in range(n):
            socket.emit("n", i)
            socket.server.to("r").emit("room", i)
        return "done"

    @router.on("bad")
    def bad(socket: Socket) -> list[str]:
        raised = []
        for emit in (socket.emit, socket.server.to("r").emit):
            try:
                emit("x", object())
            except Exception as exc:
                raised.append(type(exc).__name__)
        return raised

    server = await run_server(Config().replace(server={"port": 0}), router)
    try:
        ws, _reply, _ = await raw_connect(server)
        answer, events = await call(ws, "burst", 200)
        assert answer == "done"
        assert events == [[name, i] for i in range(200) for name in ("n", "room")]
        answer, events = await call(ws, "bad", ack_id=2)
        assert answer == ["LocalProtocolError", "LocalProtocolError"] and events == []
        await ws.close()
    finally:
        await server.shutdown(timeout=1)


def test_a_process_exits_with_a_pool_whose_server_was_never_shut_down(tmp_path: Any) -> None:
    # A def handler's thread waited for work forever: the interpreter, which joins non-daemon threads at
    # exit, hung after the last line (CI's pytest did, after "1211 passed").
    script = tmp_path / "leak.py"
    script.write_text(
        "import asyncio\n"
        "from tether.threads import HandlerPool\n"
        "async def main():\n"
        "    pool = HandlerPool(2)\n"
        "    assert await pool.run(lambda x: x + 1, (1,)) == 2\n"
        "    globals()['kept'] = pool\n"
        "asyncio.run(main())\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=scaled(20))
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr


def test_bind_thread_binds_a_thread_without_a_loop_and_never_a_loops_own() -> None:
    # current_server() calls it from a sync view's thread: that thread's calls go to the server's loop.
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    seen: list[Any] = []

    def view() -> None:
        bind_thread(first)
        seen.append(loop_of_thread())
        bind_thread(second)  # bound to a loop that is not running (its server is gone): bound again
        seen.append(loop_of_thread())

    async def on_the_loop() -> None:
        bind_thread(second)  # a loop's own thread stays unbound: its calls are direct
        seen.append(loop_of_thread())

    try:
        worker = threading.Thread(target=view)
        worker.start()
        worker.join(scaled(5))
        first.run_until_complete(on_the_loop())
        assert seen == [first, second, None]
        assert loop_of_thread() is None
    finally:
        first.close()
        second.close()
