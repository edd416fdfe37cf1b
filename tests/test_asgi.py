"""tether.asgi.ASGIApp inside real ASGI servers (uvicorn and hypercorn, in this process on 127.0.0.1:0),
with the official socket.io-client (node, tests/js/scenarios.mjs) and python-socketio's client, a plain
ASGI app mounted as ``other_asgi_app``, and the Redis adapter across two ASGI servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

import tether
from tests.apps import asgi_app
from tests.apps.basic_routes import build_router
from tests.conftest import make_config
from tests.helpers import TEXT_BODY, Recorder, scaled, wait_until, within
from tests.server.clients import TRANSPORTS, SioClient
from tests.server.test_js_client import run_node
from tether.asgi import ASGIApp

pytestmark = pytest.mark.asyncio(loop_scope="module")


@contextlib.asynccontextmanager
async def serve(app: Any, kind: str) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn or hypercorn on a free loopback port; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    if kind == "uvicorn":
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(app, lifespan="on", log_level="warning", ws="websockets-sansio")
        )
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        await wait_until(lambda: server.started or task.done(), 10, "uvicorn started")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await within(task, 15)
            sock.close()
    else:
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config as HypercornConfig

        config = HypercornConfig()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket from here
        config.loglevel = "WARNING"
        stop = asyncio.Event()
        task = asyncio.ensure_future(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        started = lambda: app.server.state.started_at > 0  # noqa: E731 - lifespan startup reached Tether
        await wait_until(lambda: started() or task.done(), 10, "hypercorn started")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop.set()
            await within(task, 15)


class Served:
    def __init__(self, kind: str, url: str, app: ASGIApp, rec: Recorder) -> None:
        self.kind = kind
        self.url = url
        self.app = app
        self.rec = rec
        self.tasks_ran: dict[str, Any] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["uvicorn", "hypercorn"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    asgi_app.EVENTS.clear()
    rec = Recorder()
    app = ASGIApp(build_router(rec), other_asgi_app=asgi_app.app, config=make_config())
    ran: dict[str, Any] = {}

    async def record(name: str) -> None:
        ran[name] = tether.current_server()

    # Asked for where no loop runs (a module imported before the ASGI server's loop): kept until it starts.
    await asyncio.to_thread(app.server.start_background_task, record, "deferred")
    app.server.start_background_task(record, "once", once=True)
    async with serve(app, request.param) as url:
        served = Served(request.param, url, app, rec)
        served.tasks_ran = ran
        yield served
    # The server's lifespan went through ASGIApp to the other app, once each way.
    assert asgi_app.EVENTS == ["startup", "shutdown"]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_python_socketio_client(served: Served, transport: str) -> None:
    client = await SioClient(TRANSPORTS[transport]).connect(served.url)
    try:
        await client.echo_works()
        expected = {"websocket": "websocket", "polling": "polling", "upgrade": "websocket"}[transport]
        await wait_until(lambda: client.sio.transport() == expected, what=f"transport {expected}")
    finally:
        await client.close()


async def test_official_js_client(served: Served) -> None:
    # The client's default: polling first, then the upgrade, so both transports (python-socketio's tests
    # above take each one alone); one node run per server keeps the suite's time budget.
    mode = "default"
    steps = await run_node("scenarios.mjs", served.url, mode)
    connect = steps["connect"]
    assert connect["welcome"] == {"sid": connect["sid"], "user": "js"}
    if mode == "default":
        assert connect["initial"] == "polling" and connect["upgraded"] == "websocket"
    assert steps["reject"]["data"] == {"code": 401, "message": "bad token"}
    assert steps["emit"]["echoAck"] == {"a": [1, 2]}
    assert steps["emit"]["askAck"] == {"answer": 21, "from": "js"}
    assert steps["rooms"]["gotB"] == steps["rooms"]["gotC"] == ["hi red"]
    assert steps["broadcast"]["shouts"] == [["all"]] * 3
    blob = bytes((i * 7) % 256 for i in range(1000))
    assert steps["binary"]["ack"] == {"orig": blob, "rev": blob[::-1], "len": 1000}
    assert steps["namespace"]["ack"] == {"ns": "/chat", "args": ["x"]}
    assert steps["disconnect_server"]["reason"] == "io server disconnect"


async def test_background_tasks_and_current_server(served: Served) -> None:
    # Under an ASGI server Tether starts on lifespan.startup: the tasks asked for before it start then, a
    # once=True task runs (one process: this one), and current_server() answers (it raised "no Tether
    # server is running in this process yet" from every handler).
    await wait_until(lambda: len(served.tasks_ran) == 2, what="both background tasks ran")
    assert served.tasks_ran == {"deferred": served.app.server, "once": served.app.server}
    assert tether.current_server() is served.app.server


async def test_metrics_listen_is_said_to_be_unserved(caplog: pytest.LogCaptureFixture) -> None:
    # [metrics] listen is the master's listener: under an ASGI server nothing serves it, and it used to be
    # ignored without a word (a Prometheus target that never answers).
    app = ASGIApp(build_router(Recorder()), config=make_config(metrics={"listen": "127.0.0.1:9502"}))
    with caplog.at_level(logging.WARNING, logger="tether.asgi"):
        await app.startup()
        await app.shutdown()
    assert "metrics.listen 127.0.0.1:9502 is not served under an ASGI server" in caplog.text
    assert "[metrics] key" in caplog.text


async def test_other_app_and_tether_paths(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(served.url + "/echo", json={"n": 1}) as resp:
            assert (await resp.json())["got"] == {"n": 1}
        async with http.get(served.url + "/tether/session.js") as resp:
            assert resp.status == 200 and "Tether" in await resp.text()
        async with http.get(served.url + "/socket.io/?EIO=3&transport=polling") as resp:
            assert resp.status == 400
            assert await resp.json() == {"code": 5, "message": "Unsupported protocol version"}
        url = served.url + "/socket.io/?EIO=4&transport=polling"
        async with http.get(url, headers={"Origin": "https://elsewhere.example"}) as resp:
            assert resp.status == 403


async def test_held_poll_ends_when_the_client_goes(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(served.url + "/socket.io/?EIO=4&transport=polling") as resp:
            sid = (await resp.text())[1:].split('"')[3]
        url = served.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data=b'40{"token":"secret"}', headers=TEXT_BODY) as resp:
            assert resp.status == 200
        async with http.get(url) as resp:  # the CONNECT reply and welcome
            assert b"40" in await resp.read()
        with contextlib.suppress(TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.5)) as resp:  # held, then dropped
                await resp.read()
    await wait_until(lambda: sid not in served.app.server.clients, 10, "the session closed")


async def test_redis_adapter_across_two_asgi_servers(redis_server: Any) -> None:
    kind = "uvicorn"  # the adapter does not see the ASGI server: one of them is enough
    apps = []
    for _ in range(2):
        config = make_config(
            room={"driver": "redis"}, redis={"url": redis_server.url, "prefix": f"asgi-{kind}"}
        )
        apps.append(ASGIApp(build_router(Recorder()), config=config))
    async with serve(apps[0], kind) as url_a, serve(apps[1], kind) as url_b:
        a = await SioClient(["websocket"]).connect(url_a)
        b = await SioClient(["websocket"]).connect(url_b)
        try:
            assert await a.sio.call("join", "asgi-room", timeout=scaled(5)) == ["asgi-room"]
            assert await b.sio.call("join", "asgi-room", timeout=scaled(5)) == ["asgi-room"]
            assert all(len(app.server.clients) == 1 for app in apps)  # one client in each process
            await a.sio.call("room_emit", {"room": "asgi-room", "msg": "across"}, timeout=scaled(5))
            (got,) = await b.next("room_msg", timeout=10)
            assert got == "across"
        finally:
            await a.close()
            await b.close()
