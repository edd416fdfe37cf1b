"""/metrics on one server: counters from hooks, bounded labels, aggregation of worker snapshots."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio

from tests.helpers import scaled, wait_until
from tether import Config, Router, run_server
from tether.metrics import aggregate, render
from tether.server import state as state_module


def make_router() -> Router:
    router = Router()

    async def echo(socket: Any, data: Any) -> Any:
        return data

    async def boom(socket: Any) -> None:
        raise RuntimeError("boom")

    async def slow(socket: Any) -> str:
        await asyncio.sleep(0.05)
        return "done"

    async def shout(socket: Any, text: str) -> None:
        socket.server.emit("shout", text)

    router.on("echo", echo)
    router.on("boom", boom)
    router.on("slow", slow)
    router.on("shout", shout)
    return router


KEY = "metrics-key-for-tests-0123456789abcdef"


async def test_metrics_endpoint_counts_what_happened() -> None:
    server = await run_server(Config().replace(server={"port": 0}, metrics={"key": KEY}), make_router())
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(server.url, transports=["websocket"])
        for _ in range(3):
            await client.call("echo", 1)
        assert await client.call("slow") == "done"
        await client.emit("boom")
        await client.emit("no-such-route")
        await client.call("shout", "hey")
        await client.call("echo", 2)
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}) as resp,
        ):
            assert resp.status == 200
            text = await resp.text()
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)
    assert "tether_connections 1.0" in text
    assert 'tether_events_in_total{event="echo"} 4.0' in text
    assert 'tether_events_in_total{event="_unrouted"} 1.0' in text
    assert 'tether_events_out_total{event="shout"} 1.0' in text
    assert 'tether_handler_seconds_count{event="echo"} 4.0' in text
    assert 'tether_handler_seconds_bucket{event="slow",le="0.025"} 0.0' in text
    assert 'tether_handler_seconds_bucket{event="slow",le="0.1"} 1.0' in text
    assert 'tether_handler_failures_total{event="boom"} 1.0' in text
    assert "tether_handshakes_total 1.0" in text


async def test_every_kind_of_emit_is_counted_out() -> None:
    """A socket's own emits (on the loop, from a ``def`` handler's thread, with an ack) count as events out
    as broadcasts do: ``state.events_out`` is what ``tether infos`` (EVENTS OUT, OUT/S), the admin UI's
    ``packetsOut`` and ``/api/stats`` show; they used to count broadcasts only, so an echo server showed 0."""
    router = Router()

    async def echo(socket: Any, data: Any) -> None:
        await socket.emit("echoed", data)

    def echo_in_thread(socket: Any, data: Any) -> None:
        socket.emit("echoed_sync", data)

    async def ask(socket: Any) -> Any:
        return await socket.emit("question", ack=True, timeout=scaled(5))

    router.on("echo", echo)
    router.on("echo_sync", echo_in_thread)
    router.on("ask", ask)
    server = await run_server(Config().replace(server={"port": 0}, metrics={"key": KEY}), router)
    client = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    client.on("echoed", got.append)
    client.on("echoed_sync", got.append)
    client.on("question", lambda: "answer")
    try:
        await client.connect(server.url, transports=["websocket"])
        assert server.state.events_out == 0
        await client.emit("echo", 1)
        await client.emit("echo_sync", 2)
        assert await client.call("ask", timeout=scaled(5)) == "answer"
        await wait_until(lambda: len(got) == 2, 5, "both echoes")
        assert server.state.events_out == 3
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}) as resp,
        ):
            text = await resp.text()
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)
    for name in ("echoed", "echoed_sync", "question"):
        assert f'tether_events_out_total{{event="{name}"}} 1.0' in text, name


async def test_metrics_can_be_turned_off() -> None:
    server = await run_server(Config().replace(server={"port": 0}, metrics={"enabled": False}), Router())
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
            assert resp.status == 404
        assert "metrics" not in server.extensions
    finally:
        await server.shutdown(timeout=1)


async def test_event_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_NAMES", 2)  # the tables are kept by ServerState
    router = Router()

    async def any_event(socket: Any, name: str, *args: Any) -> None:
        socket.emit(name)

    router.on("*", any_event)
    server = await run_server(Config().replace(server={"port": 0}, metrics={"key": KEY}), router)
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(server.url, transports=["websocket"])
        for i in range(5):
            await client.emit(f"e{i}")
        await asyncio.sleep(0.1)
        snap = server.extensions["metrics"].snapshot()
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)
    # A client chooses the names: the ones only a catch-all handles are one label, kept and timed as one.
    assert snap["events_in"] == {"_unrouted": 5}
    assert server.state.events_in_by_name == {"_unrouted": 5}
    assert set(server.state.handler_latency) == {"_unrouted"}
    # What the app emits is its own choice, bounded by MAX_NAMES.
    assert snap["events_out"] == {"e0": 1, "e1": 1, "_other": 3}


async def test_unrouted_names_are_not_kept() -> None:
    """The issue's case: many distinct names, no route for them: the tables do not grow."""
    router = Router()
    router.on("known", lambda socket: None)
    server = await run_server(Config().replace(server={"port": 0}, metrics={"key": KEY}), router)
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(server.url, transports=["websocket"])
        for i in range(300):
            await client.emit(f"name-{i}-" + "x" * 200)
        await client.emit("known")
        await client.call("known")
        snap = server.extensions["metrics"].snapshot()
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)
    assert server.state.events_in_by_name == {"_unrouted": 300, "known": 2}
    assert snap["events_in"] == {"_unrouted": 300, "known": 2}


def test_aggregate_and_render() -> None:
    a = {
        "connections": 2,
        "handshakes": 5,
        "events_in": {"x": 1},
        "disconnects": {"transport close": 1},
        "latency": {"x": [1.0] + [0.0] * 14 + [0.0004, 0.0]},
    }
    b = {
        "connections": 3,
        "handshakes": 1,
        "events_in": {"x": 2, "y": 1},
        "disconnects": {},
        "latency": {"x": [0.0, 2.0] + [0.0] * 13 + [0.002, 1.0]},
    }
    total = aggregate([a, b])
    assert total["connections"] == 5 and total["handshakes"] == 6
    assert total["events_in"] == {"x": 3, "y": 1}
    assert total["latency"]["x"][:2] == [1.0, 2.0] and total["latency"]["x"][-1] == 1.0
    counters = aggregate([a, b], counters_only=True)
    assert "connections" not in counters and counters["handshakes"] == 6
    text = render([a, b], {"workers": 2.0}).decode()
    assert "tether_connections 5.0" in text
    assert 'tether_handler_seconds_bucket{event="x",le="0.001"} 3.0' in text
    assert 'tether_handler_seconds_count{event="x"} 3.0' in text
    assert "tether_workers 2.0" in text
