"""An ASGI application mounted on Tether's port (tether.server.app_door): uvicorn's protocol behind the front
door, Tether's paths kept, connections handed both ways, the app's lifespan around the server's life."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import websockets

from tests.apps import asgi_app
from tests.apps.basic_routes import build_router
from tests.conftest import make_config
from tests.helpers import Recorder, scaled, within
from tests.server.clients import TRANSPORTS, SioClient
from tether import Server, run_server
from tether.errors import AppStartupError
from tether.server.app_door import request_path

METRICS_KEY = "metrics-key-for-tests-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(rec: Recorder) -> AsyncIterator[Server]:
    asgi_app.EVENTS.clear()
    config = make_config(app={"asgi": "tests.apps.asgi_app:app"}, metrics={"key": METRICS_KEY})
    srv = await run_server(config, build_router(rec))
    try:
        yield srv
    finally:
        await srv.shutdown(timeout=scaled(5))


def test_request_path() -> None:
    assert request_path(b"GET /a%20b?x=1 HTTP/1.1\r\n") == "/a b"
    assert request_path(b"GET http://h:1/socket.io/?EIO=4 HTTP/1.1\r\n") == "/socket.io/"
    assert request_path(b"GET /partial") is None
    assert request_path(b"GET") is None
    assert request_path(b"X" * 8192) == ""  # no request line in reach: whoever parses it answers 400


async def test_http_json_in_streaming_out_and_tether_paths(server: Server) -> None:
    assert asgi_app.EVENTS == ["startup"]  # before the server took a connection
    connector = aiohttp.TCPConnector(limit=1)  # one connection: every request below reuses it
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(server.url + "/echo", json={"a": [1, 2, 3]}) as resp:
            assert resp.status == 200
            assert (await resp.json())["got"] == {"a": [1, 2, 3]}
        async with http.get(server.url + "/stream") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            assert "date" in resp.headers
            assert await resp.text() == "part0\npart1\npart2\nend\n"
        # Tether's own paths on the connection the app had: handed back to the front door.
        async with http.get(server.url + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200
            assert (await resp.text()).startswith("0{")
        metrics_auth = {"Authorization": f"Bearer {METRICS_KEY}"}  # served on this port only with a key
        async with http.get(server.url + "/metrics", headers=metrics_auth) as resp:
            assert resp.status == 200 and "tether_" in await resp.text()
        async with http.get(server.url + "/tether/session.js") as resp:
            assert resp.status == 200
        async with http.get(server.url + "/") as resp:
            assert (await resp.text()).startswith("app page / ")
        async with http.get(server.url + "/socket.io/other") as resp:
            assert (await resp.text()).startswith("app page /socket.io/other")


async def test_pipelined_tether_request_waits_for_the_app_response(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)  # the app is still answering when the next request arrives
    writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await within(reader.read(), 10)
    writer.close()
    first, _, rest = data.partition(b"app page /slow")
    assert b"HTTP/1.1 200" in first and b"HTTP/1.1 200" in rest and b'0{"sid"' in rest


async def test_app_websocket_and_socketio_on_the_same_port(server: Server) -> None:
    async with websockets.connect(server.url.replace("http", "ws") + "/app-ws") as ws:
        await ws.send("hi")
        assert await within(ws.recv()) == "app:hi"
    for transport in ("websocket", "polling"):
        client = await SioClient(TRANSPORTS[transport]).connect(server.url)
        try:
            await client.echo_works()
        finally:
            await client.close()


async def test_app_routes_hidden_by_tethers_paths_are_named(caplog: pytest.LogCaptureFixture) -> None:
    # A FastAPI/Starlette @app.websocket("/ws") is Tether's bare WebSocket path: its handler never runs.
    # It used to say nothing; the log now names the route and the key that moves Tether's.
    with caplog.at_level(logging.WARNING, logger="tether.app"):
        srv = await run_server(make_config(app={"asgi": "tests.apps.asgi_app:starlette_app"}))
    try:
        assert "the application's routes /ws are Tether's paths" in caplog.text
        assert "[websocket] ws_path" in caplog.text and "/page" not in caplog.text
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/page") as resp:
            assert await resp.text() == "page"
    finally:
        await srv.shutdown(timeout=scaled(5))
    # Moved: nothing to say, and the app has its /ws.
    caplog.clear()
    moved = {"ws_path": "/tether-ws"}
    config = make_config(app={"asgi": "tests.apps.asgi_app:starlette_app"}, websocket=moved)
    with caplog.at_level(logging.WARNING, logger="tether.app"):
        srv = await run_server(config)
    try:
        assert "Tether's paths" not in caplog.text
        async with websockets.connect(srv.url.replace("http", "ws") + "/ws") as ws:
            assert await within(ws.recv()) == "from the app"
    finally:
        await srv.shutdown(timeout=scaled(5))


async def test_each_hidden_route_is_named_with_the_key_that_moves_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # With [metrics] key, the app's own /metrics (a FastAPI app with prometheus-fastapi-instrumentator) is
    # Tether's: the warning used to offer only [websocket]'s keys, which do not move /metrics.
    app = {"asgi": "tests.apps.asgi_app:starlette_app"}
    with caplog.at_level(logging.WARNING, logger="tether.app"):
        srv = await run_server(make_config(app=app, metrics={"key": METRICS_KEY}))
    await srv.shutdown(timeout=scaled(5))
    assert "the application's routes /metrics, /ws are Tether's paths" in caplog.text
    assert "/metrics: [metrics] path; /ws: [websocket] ws_path" in caplog.text
    caplog.clear()
    # Moved as the warning says: the app gets its /metrics back, Tether serves its own at the new path.
    moved = make_config(app=app, metrics={"key": METRICS_KEY, "path": "/tether-metrics"})
    with caplog.at_level(logging.WARNING, logger="tether.app"):
        srv = await run_server(moved)
    try:
        assert "/metrics" not in caplog.text and "/ws: [websocket] ws_path" in caplog.text
        auth = {"Authorization": f"Bearer {METRICS_KEY}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.url + "/metrics") as resp:
                assert await resp.text() == "page"
            async with http.get(srv.url + "/tether-metrics", headers=auth) as resp:
                assert "tether_connections" in await resp.text()
    finally:
        await srv.shutdown(timeout=scaled(5))


# A worker whose Python has neither websockets nor wsproto (Tether's own dependencies bring neither: picows
# is its WebSocket): sys.modules entries of None make those imports fail, as an absent package does.
_WITHOUT_WS_LIBRARIES = """
import sys
sys.modules["websockets"] = sys.modules["wsproto"] = None
import asyncio, logging
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from tests.apps.basic_routes import build_router
from tests.helpers import Recorder
from tether import Config, run_server
async def main():
    overrides = {"server": {"host": "127.0.0.1", "port": 0}, "app": {"asgi": "tests.apps.asgi_app:app"}}
    srv = await run_server(Config.load(None, env={}, overrides=overrides), build_router(Recorder()))
    print(srv.url, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await srv.shutdown(timeout=1)
asyncio.run(main())
"""


async def test_app_websocket_routes_need_a_websocket_library_tethers_do_not() -> None:
    # docs/frameworks.md: `pip install tether fastapi` brings uvicorn without websockets or wsproto, so the
    # app's own WebSocket routes do not upgrade (uvicorn says so per request) while Tether's (picows) work.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WITHOUT_WS_LIBRARIES,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        url = (await within(proc.stdout.readline(), 20)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        with pytest.raises(websockets.InvalidStatus) as refused:  # not upgraded: the app answers a GET
            await within(websockets.connect(url.replace("http", "ws") + "/app-ws"), 10)
        assert b"app page /app-ws" in refused.value.response.body
        client = await SioClient(["websocket"]).connect(url)  # Tether's own WebSocket: picows, unaffected
        await client.echo_works()
        await client.close()
    finally:
        proc.stdin.close()
        await within(proc.wait(), 15)
    log = (await proc.stderr.read()).decode()
    assert "No supported WebSocket library detected" in log and "Traceback" not in log


async def test_lifespan_shutdown_on_stop() -> None:
    asgi_app.EVENTS.clear()
    srv = await run_server(make_config(app={"asgi": "tests.apps.asgi_app:app"}))
    await srv.shutdown(timeout=scaled(5))
    assert asgi_app.EVENTS == ["startup", "shutdown"]


async def test_failed_startup_is_reported_and_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TEST_LIFESPAN_FAIL", "1")
    srv = Server(make_config(app={"asgi": "tests.apps.asgi_app:app", "lifespan": "on"}))
    with pytest.raises(AppStartupError):
        await srv.startup()
    assert srv.sockets == []


def test_bad_app_spec_is_a_config_error() -> None:
    from tether.errors import ConfigError

    with pytest.raises(ConfigError, match=r"app\.asgi"):
        Server(make_config(app={"asgi": "tests.apps.asgi_app:nothing"}))
    with pytest.raises(ConfigError, match=r"app\.asgi"):
        make_config(app={"asgi": "no_colon"})
    # main.py's ASGIApp for uvicorn is Tether itself: --app takes the app it wraps.
    with pytest.raises(ConfigError, match=r"app\.asgi: .*is a tether\.asgi\.ASGIApp, i\.e\. Tether itself"):
        Server(make_config(app={"asgi": "tests.apps.wrapped_asgi_app:app"}))
    Server(make_config(app={"asgi": "tests.apps.wrapped_asgi_app:api"}))


async def test_flask_through_asgiref(rec: Recorder) -> None:
    # Flask is WSGI: asgiref's WsgiToAsgi (Django's own ASGI helper library) makes it an ASGI app.
    from asgiref.wsgi import WsgiToAsgi
    from flask import Flask, jsonify, request

    flask_app = Flask(__name__)

    @flask_app.post("/double")
    def double() -> object:
        return jsonify(value=request.get_json()["value"] * 2)

    srv = await run_server(make_config(), build_router(rec), app=WsgiToAsgi(flask_app))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(srv.url + "/double", json={"value": 21}) as resp,
        ):
            assert resp.status == 200 and await resp.json() == {"value": 42}
        client = await SioClient(TRANSPORTS["polling"]).connect(srv.url)
        try:
            await client.echo_works()
        finally:
            await client.close()
    finally:
        await srv.shutdown(timeout=scaled(5))
