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


async def test_polling_body_over_max_payload(served: Served) -> None:
    """As the front door (tests/server/test_polling_content_type_vs_node.py compares it with node): the
    session is checked before the size, an ``application/octet-stream`` POST is 400 whatever its size, a
    text one over ``max_payload`` 413; both end the session."""
    server = served.app.server
    body = b"4" + b"x" * server.config.websocket.max_payload
    async with aiohttp.ClientSession() as http:
        base = served.url + "/socket.io/?EIO=4&transport=polling"
        async with http.post(base + "&sid=nosuchsession", data=body, headers=TEXT_BODY) as resp:
            assert (resp.status, await resp.json()) == (400, {"code": 1, "message": "Session ID unknown"})
        for content_type, status in (("application/octet-stream", 400), ("text/plain;charset=UTF-8", 413)):
            async with http.get(base) as resp:
                sid = (await resp.text())[1:].split('"')[3]
            headers = {"Content-Type": content_type}
            async with http.post(base + f"&sid={sid}", data=body, headers=headers) as resp:
                assert resp.status == status, content_type
            await wait_until(lambda: sid not in server.clients, 10, "the session closed")  # noqa: B023


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


async def test_mounted_in_fastapi_under_a_prefix() -> None:
    # docs/frameworks.md, "Mounted in a FastAPI app": python-socketio's other usual shape,
    # api.mount("/rt", ASGIApp(...)). Starlette hands the mounted app the full path, so socketio_path carries
    # the prefix (as python-socketio's does), and a mounted app gets no lifespan: the FastAPI app's runs
    # Tether's startup and shutdown.
    from fastapi import FastAPI

    rec = Recorder()
    sio_app = ASGIApp(build_router(rec), socketio_path="rt/socket.io", config=make_config())

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await sio_app.startup()
        yield
        await sio_app.shutdown()

    api = FastAPI(lifespan=lifespan)

    @api.get("/hello")
    async def hello() -> dict[str, int]:
        return {"clients": len(sio_app.server.clients)}

    api.mount("/rt", sio_app)
    async with serve(api, "uvicorn") as url:
        assert sio_app.server.state.started_at > 0  # started by the lifespan, not by a first request
        client = SioClient(["polling", "websocket"])
        await client.sio.connect(
            url, auth={"token": "secret"}, socketio_path="/rt/socket.io", wait_timeout=scaled(5)
        )
        try:
            await client.next("welcome")
            await client.echo_works()
            async with aiohttp.ClientSession() as http:
                async with http.get(url + "/hello") as resp:
                    assert await resp.json() == {"clients": 1}
                async with http.get(url + "/rt/socket.io/socket.io.js") as resp:
                    assert resp.status == 200 and "io" in await resp.text()
        finally:
            await client.close()
    assert sio_app.server.state.draining  # shut down with the FastAPI app, not left running


# -- static_files: python-socketio's argument, served alongside Tether and the other app -----------------


async def _not_found_app(scope: Any, receive: Any, send: Any) -> None:
    """The other app: /api answers, anything else is its own 404 (so a fall-through is visible)."""
    if scope["type"] != "http":
        return
    status, body = (200, b"api") if scope["path"] == "/api" else (404, b"other app: no such page")
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


class StaticSite:
    def __init__(self, url: str, public: Any) -> None:
        self.url = url
        self.public = public


SECRET = b"the secret outside public/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def static_site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StaticSite]:
    root = tmp_path_factory.mktemp("static")
    public = root / "public"
    (public / "sub").mkdir(parents=True)
    (root / "secret.txt").write_bytes(SECRET)
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "notes.md").write_bytes(b"# notes")
    (public / "app.js").write_bytes(b"console.log(1)")
    (public / "logo.svg").write_bytes(b"<svg/>")
    (public / "sub" / "index.html").write_bytes(b"<p>sub index</p>")
    (public / "sub" / "data.json").write_bytes(b"[1]")
    (public / "link.txt").symlink_to(root / "secret.txt")  # a link out of public/ is not served
    static_files = {
        "/": str(root / "index.html"),
        "/static": str(public) + "/",
        "/notes": {"filename": str(root / "notes.md"), "content_type": "text/markdown"},
    }
    app = ASGIApp(build_router(Recorder()), _not_found_app, static_files, config=make_config())
    async with serve(app, "uvicorn") as url:
        yield StaticSite(url, public)


async def _raw_get(url: str, target: str, method: str = "GET") -> tuple[int, bytes]:
    """One request with the target exactly as written (aiohttp would normalise ``..`` away)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = await within(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/", "text/html", b"<h1>home</h1>"),  # a file
        ("/static/app.js", "application/javascript", b"console.log(1)"),  # a directory, engineio's table
        ("/static/logo.svg", "image/svg+xml", b"<svg/>"),  # not in engineio's table: mimetypes
        ("/static/sub/", "text/html", b"<p>sub index</p>"),  # a directory's index.html
        ("/static/sub/data.json", "application/json", b"[1]"),
        ("/notes", "text/markdown", b"# notes"),  # the entry's own content type
    ],
)
async def test_static_files_served(
    static_site: StaticSite, path: str, content_type: str, body: bytes
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(static_site.url + path) as resp:
            assert (resp.status, resp.headers["Content-Type"], await resp.read()) == (200, content_type, body)
        async with http.head(static_site.url + path) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == content_type
            assert int(resp.headers["Content-Length"]) == len(body) and await resp.read() == b""


async def test_static_files_missing_other_methods_and_traversal(static_site: StaticSite) -> None:
    async with aiohttp.ClientSession() as http:
        # No such file under a mapped directory: on to the other app, as python-socketio does (its 404).
        async with http.get(static_site.url + "/static/missing.js") as resp:
            assert (resp.status, await resp.read()) == (404, b"other app: no such page")
        async with http.get(static_site.url + "/api") as resp:
            assert (resp.status, await resp.read()) == (200, b"api")
        async with http.post(static_site.url + "/static/app.js", data=b"x") as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD"
    for target in (
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",  # the ASGI path is decoded: the same ..
        "/static/sub/../../secret.txt",
        "/static/..",
        "/static/link.txt",  # inside public/ by name, outside once the link is resolved
    ):
        status, body = await _raw_get(static_site.url, target)
        # Refused by the lookup, so on to the other app (its 404, in chunks): never the file.
        assert status == 404 and b"other app: no such page" in body and SECRET not in body, target


async def test_static_files_alongside_tether(static_site: StaticSite) -> None:
    # "/" is a static file here, yet Tether's paths are Tether's: polling, then a python-socketio client.
    status, body = await _raw_get(static_site.url, "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith(b'0{"sid":')
    client = await SioClient(["websocket"]).connect(static_site.url)
    try:
        await client.echo_works()
    finally:
        await client.close()


async def test_static_files_lookup_matches_engineio() -> None:
    # The reference: python-engineio's own get_static_file (what python-socketio's ASGIApp calls), on
    # every shape of the mapping where the two agree by design.
    from engineio.static_files import get_static_file as engineio_lookup

    from tether.static_files import get_static_file

    files: dict[str, Any] = {
        "/": "index.html",
        "/a.txt": {"filename": "docs/a.txt", "content_type": "text/x-a"},
        "/static": "public",
        "/assets/": "dist/",
        "/img/": {"filename": "pics/", "content_type": "image/png"},
    }
    for path in ("/", "/a.txt", "/static/x.css", "/static/y/z.js", "/assets/", "/assets/b.json",
                 "/assets/c/", "/img/p", "/nothing", "/a.txt/x"):  # fmt: skip
        ours = get_static_file(path, files)
        theirs = engineio_lookup(path, files)
        assert ours == ((theirs["filename"], theirs["content_type"]) if theirs else None), path
    with_index = {"/": "site/", "": {"filename": "home.htm", "content_type": "text/html"}}
    assert get_static_file("/", with_index) == ("site/home.htm", "text/html")
    assert engineio_lookup("/", with_index) == {"filename": "site/home.htm", "content_type": "text/html"}


async def test_third_argument_compatibility() -> None:
    from tether.errors import ConfigError

    router = build_router(Recorder())
    # Tether's order before static_files: (routes, other_asgi_app, socketio_path, config).
    old = ASGIApp(router, None, "chat.io", make_config())
    assert old.server.config.websocket.path == "/chat.io/" and old.static_files == {}
    new = ASGIApp(router, None, {"/": "index.html"}, "chat.io", config=make_config())
    assert new.server.config.websocket.path == "/chat.io/" and new.static_files == {"/": "index.html"}
    keywords = ASGIApp(router, socketio_path="/x/", config=make_config(), on_startup=print, on_shutdown=print)
    assert keywords.server.config.websocket.path == "/x/" and keywords.on_startup is print
    with pytest.raises(TypeError, match="socketio_path twice"):
        ASGIApp(router, None, "a.io", socketio_path="b.io", config=make_config())
    with pytest.raises(TypeError, match="config twice"):
        ASGIApp(router, None, None, make_config(), config=make_config())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"static_files\['/'\]"):
        ASGIApp(router, None, {"/": {"content_type": "text/html"}}, config=make_config())
    with pytest.raises(ConfigError, match="static_files"):
        ASGIApp(router, None, [("/", "index.html")], config=make_config())  # type: ignore[arg-type]


async def test_static_files_streamed_in_chunks(tmp_path: Any) -> None:
    # Files larger than one chunk, from python-socketio's static_files and from [server] static_dir (served
    # by the front door's lookup when there is no other app), go out in CHUNK-sized body messages with
    # the Content-Length of the file: never read whole.
    from tether.asgi import CHUNK

    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    big = bytes(i % 251 for i in range(3 * CHUNK + 123))
    (site / "big.bin").write_bytes(big)
    (site / "exact.bin").write_bytes(big[:CHUNK])
    (site / ".env").write_bytes(b"SECRET=1")
    (tmp_path / "other.bin").write_bytes(big[::-1])
    app = ASGIApp(
        build_router(Recorder()),
        static_files={"/other": str(tmp_path / "other.bin")},
        config=make_config(server={"static_dir": str(site)}),
    )
    bodies: dict[str, list[int]] = {}

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counted(message: Any) -> None:
            if message["type"] == "http.response.body":
                bodies.setdefault(f"{scope['method']} {scope['path']}", []).append(len(message["body"]))
            await send(message)

        await app(scope, receive, counted if scope["type"] == "http" else send)

    counting.server = app.server  # type: ignore[attr-defined]
    async with serve(counting, "uvicorn") as url, aiohttp.ClientSession() as http:
        for path, expected in (("/big.bin", big), ("/other", big[::-1]), ("/exact.bin", big[:CHUNK])):
            async with http.get(url + path) as resp:
                assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(expected)
                assert await resp.read() == expected, path
            async with http.head(url + path) as resp:
                assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(expected)
                assert await resp.read() == b""
        assert bodies["GET /big.bin"] == bodies["GET /other"] == [CHUNK, CHUNK, CHUNK, 123]
        assert bodies["GET /exact.bin"] == [CHUNK]  # exactly one chunk: one message
        assert bodies["HEAD /big.bin"] == [0]
        async with http.get(url + "/big.bin", headers={"Range": "bytes=0-1"}) as resp:
            assert resp.status == 200  # no ranges, as the front door
        for path in ("/.env", "/sub/", "/missing.bin"):
            async with http.get(url + path) as resp:
                assert resp.status == 404 and b"SECRET" not in await resp.read(), path
        async with http.get(url + "/tether/session.js") as resp:
            assert resp.status == 200 and "Tether" in await resp.text()
