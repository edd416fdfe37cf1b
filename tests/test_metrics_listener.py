"""Metrics are not public by accident: off the service port by default, a bearer key or a separate listener.

The listener itself (``tether.metrics_listener``) is tested here with a real socket on 127.0.0.1:0; the
master's use of it (``[metrics] listen`` under ``tether start``) in tests/manager/test_commands.py.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from tests.helpers import scaled
from tether import metrics_listener
from tether.config import Config, parse_listen
from tether.errors import ConfigError
from tether.metrics import BUCKETS
from tether.router import Router
from tether.server.server import run_server

KEY = "metrics-key-for-tests-0123456789abcdef"


async def test_the_service_port_serves_no_metrics_by_default() -> None:
    router = Router()
    router.on("ping", lambda socket: "pong")
    server = await run_server(Config().replace(server={"port": 0}), router)
    client = socketio.AsyncClient(reconnection=False)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
            assert resp.status == 404
        await client.connect(server.url, transports=["websocket"])
        assert await client.call("ping", timeout=scaled(5)) == "pong"
        # Served nowhere, so not kept: no per-event tables or handler timings on the hot path. The totals
        # that `tether infos` shows are still counted.
        assert "metrics" not in server.extensions and not server.state.observe
        assert server.state.events_in_by_name == {} and server.state.handler_latency == {}
        assert server.state.events_in == 1 and server.state.connections_total == 1
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)


@pytest.mark.parametrize("section", [{"key": KEY}, {"listen": "127.0.0.1:0"}], ids=["key", "listen"])
async def test_metrics_are_kept_where_they_are_served(section: dict[str, str]) -> None:
    """A worker started with ``key`` (served on its port) or ``listen`` (the master's listener asks every
    worker for its snapshot) keeps the per-event tables from its start."""
    router = Router()
    router.on("ping", lambda socket: "pong")
    server = await run_server(Config().replace(server={"port": 0}, metrics=section), router)
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(server.url, transports=["websocket"])
        assert await client.call("ping", timeout=scaled(5)) == "pong"
        snap = server.extensions["metrics"].snapshot()
    finally:
        await client.disconnect()
        await server.shutdown(timeout=1)
    assert snap["events_in"] == {"ping": 1}
    assert sum(snap["latency"]["ping"][: len(BUCKETS) + 1]) == 1


async def test_a_bearer_key_guards_metrics_on_the_service_port() -> None:
    server = await run_server(Config().replace(server={"port": 0}, metrics={"key": KEY}), Router())
    url = server.url + "/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
                assert "tether_" not in await resp.text()
            for wrong in (KEY[:-1], KEY + "x", "x" * len(KEY)):
                async with http.get(url, headers={"Authorization": f"Bearer {wrong}"}) as resp:
                    assert resp.status == 403
            async with http.get(url, headers={"Authorization": f"Basic {KEY}"}) as resp:
                assert resp.status == 401
            async with http.get(url, headers={"Authorization": f"bearer {KEY}"}) as resp:
                assert resp.status == 200 and "tether_handshakes_total" in await resp.text()
    finally:
        await server.shutdown(timeout=1)
    assert KEY not in str(server.config.redacted())


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_the_listener_answers_scrapers_only() -> None:
    calls = 0

    async def render() -> bytes:
        nonlocal calls
        calls += 1
        return b"tether_up 1.0\n"

    listener = await metrics_listener.start("127.0.0.1:0", "/metrics", render)
    port = listener.sockets[0].getsockname()[1]
    try:
        ok = await _raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\ntether_up 1.0\n")
        assert b"Content-Type: text/plain; version=" in ok and b"Connection: close" in ok
        head = await _raw(port, b"HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert b"Content-Length: 14\r\n" in head
        assert (await _raw(port, b"GET /api/stats HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
        assert (await _raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")).startswith(
            b"HTTP/1.1 405 "
        )
        assert (await _raw(port, b"NOT HTTP\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        exact = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"
        big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * metrics_listener.MAX_REQUEST + b"\r\n\r\n"
        assert (await _raw(port, exact)).startswith(b"HTTP/1.1 200 ")
        assert (await _raw(port, big)).startswith(b"HTTP/1.1 431 ")
        assert calls == 3
    finally:
        listener.close()
        await listener.wait_closed()


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9502") == ("127.0.0.1", 9502)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9502", ":9502", "localhost:", "h:65536", "h:-1"):
        with pytest.raises(ValueError, match="host:port"):
            parse_listen(bad)
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        Config.load(overrides={"metrics": {"listen": "9502"}}, env={})
    assert Config.load(env={}).metrics.listen == "" and Config.load(env={}).metrics.key == ""
