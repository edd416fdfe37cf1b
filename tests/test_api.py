"""The HTTP API: bearer-key auth (401/403), size limits (413), emit targets, sessions, stats, OpenAPI."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.helpers import wait_until
from tests.redis_fixtures import API_KEY, Client, Cluster, clients, settle
from tether import Config, Router, Server, Socket, run_server
from tether.api import openapi_document

KEY = "k-" + "x" * 30
_ids = itertools.count(1)


def uniq(name: str) -> str:
    return f"{name}-{next(_ids)}-{time.monotonic_ns()}"


def got(c: Client, event: str) -> list[object]:
    return c.events.get(event, [])


def routes() -> Router:
    router = Router()

    @router.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    @router.on("login")
    def login(socket: Socket, user: Any) -> str:
        socket.login_using(user)
        return "ok"

    @router.on("join", namespace="/admin")
    def admin_join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    return router


def config(**api: Any) -> Config:
    return Config.load(
        env={},
        overrides={"server": {"port": 0}, "api": {"key": KEY, **api}, "websocket": {"max_payload": 20_000}},
    )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await run_server(config(max_body=1_000), routes())
    yield srv
    await srv.shutdown()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(http: aiohttp.ClientSession, url: str, body: Any, key: str | None = KEY) -> tuple[int, Any]:
    headers = auth(key) if key is not None else {}
    data = body if isinstance(body, bytes) else None
    async with http.post(url, json=None if data is not None else body, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


# -- auth and limits -------------------------------------------------------------------------------------


async def test_no_key_is_401_wrong_key_is_403(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url + "/api/stats"
    async with http.get(url) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"] == "missing bearer key"
    async with http.get(url, headers={"Authorization": f"Basic {KEY}"}) as resp:
        assert resp.status == 401
    async with http.get(url, headers=auth(KEY + "x")) as resp:
        assert resp.status == 403
    async with http.get(url, headers=auth("")) as resp:
        assert resp.status == 401
    async with http.get(url, headers=auth()) as resp:
        assert resp.status == 200
    for path in ("/api/emit", "/api/sessions/s1/touch"):
        status, body = await post(http, server.url + path, {"event": "x"}, key=None)
        assert status == 401 and body["status"] == 401
        status, _ = await post(http, server.url + path, {"event": "x"}, key="nope")
        assert status == 403


async def test_bodies_over_max_body_are_413(server: Server, http: aiohttp.ClientSession) -> None:
    status, body = await post(http, server.url + "/api/emit", {"event": "big", "data": "x" * 2_000})
    assert status == 413 and "max_body=1000" in body["error"]
    # Over [websocket] max_payload the HTTP layer refuses before the API sees the body.
    async with http.post(server.url + "/api/emit", data=b"x" * 30_000, headers=auth()) as resp:
        assert resp.status == 413


async def test_api_is_off_without_a_key(http: aiohttp.ClientSession) -> None:
    srv = await run_server(Config.load(env={}, overrides={"server": {"port": 0}}), routes())
    try:
        async with http.get(srv.url + "/api/stats", headers=auth()) as resp:
            assert resp.status == 404
        assert "api" not in srv.extensions
    finally:
        await srv.shutdown()


def test_key_from_the_environment() -> None:
    cfg = Config.load(env={"TETHER_API_KEY": "from-env-0123456789abcdef0123456789"})
    assert cfg.api.key == "from-env-0123456789abcdef0123456789"
    assert cfg.redacted()["api"]["key"] == "***"


# -- emit --------------------------------------------------------------------------------------------------


async def test_emit_targets(server: Server, http: aiohttp.ClientSession) -> None:
    emit = server.url + "/api/emit"
    async with clients(server.url, server.url, server.url, (server.url, "/admin")) as (c1, c2, c3, admin):
        await c1.call("join", "r")
        await c2.call("join", "r")
        await c2.call("join", "quiet")
        await c3.call("login", 7)
        await admin.call("join", "r")
        assert await post(http, emit, {"event": "all", "data": {"a": 1}}) == (
            200,
            {"ok": True, "namespace": "/", "rooms": []},
        )
        assert (await post(http, emit, {"event": "room", "data": 1, "room": "r", "except": "quiet"}))[
            0
        ] == 200
        assert (await post(http, emit, {"event": "rooms", "room": ["r", "user:7"]}))[0] == 200
        assert (await post(http, emit, {"event": "sid", "data": "you", "sid": c3.sid}))[0] == 200
        assert (await post(http, emit, {"event": "user", "data": [1, 2], "user": 7}))[0] == 200
        assert (await post(http, emit, {"event": "admin", "data": "a", "room": "r", "namespace": "/admin"}))[
            0
        ] == 200
        await wait_until(lambda: got(c3, "user") and got(admin, "admin"), what="the last emits")
        await settle()
        assert [got(c, "all") for c in (c1, c2, c3)] == [[{"a": 1}]] * 3
        assert got(admin, "all") == []  # another namespace
        assert got(c1, "room") == [1] and got(c2, "room") == [] and got(c3, "room") == []
        assert got(c1, "rooms") == [[]] and got(c2, "rooms") == [[]] and got(c3, "rooms") == [[]]
        assert got(c3, "sid") == ["you"] and got(c1, "sid") == []
        assert got(c3, "user") == [[1, 2]] and got(c1, "user") == []
        assert got(admin, "admin") == ["a"] and got(c1, "admin") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        ({"data": 1}, '"event"'),
        ({"event": ""}, '"event"'),
        ({"event": "connect"}, "reserved"),
        ({"event": "x", "room": "a", "user": 1}, "one of room, sid, user"),
        ({"event": "x", "room": ""}, '"room"'),
        ({"event": "x", "room": [1]}, '"room"'),
        ({"event": "x", "user": True}, '"user"'),
        ({"event": "x", "namespace": "admin"}, '"namespace"'),
        ({"event": "x", "rooms": ["a"]}, "unknown fields: rooms"),
    ],
)
async def test_emit_rejects_bad_bodies(
    server: Server, http: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, answer = await post(http, server.url + "/api/emit", body)
    assert status == 400
    assert message in answer["error"]


# -- sessions, stats, openapi ----------------------------------------------------------------------------


class RecordingSessions:
    """Stands in for tether.sessions (another feature): records what the API asks of it."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.calls: list[tuple[str, str]] = []

    def touch(self, session_id: str) -> bool:
        self.calls.append(("touch", session_id))
        return session_id in self.known

    async def end_session(self, session_id: str) -> bool:
        self.calls.append(("end", session_id))
        return session_id in self.known


async def test_session_routes(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url + "/api/sessions/"
    server.extensions.pop("sessions", None)
    status, body = await post(http, url + "s1/touch", {})
    assert status == 404 and "sessions feature is not enabled" in body["error"]
    sessions = server.extensions["sessions"] = RecordingSessions({"s1"})
    assert await post(http, url + "s1/touch", b"") == (
        200,
        {"ok": True, "session": "s1", "action": "touch", "found_here": True},
    )
    assert (await post(http, url + "s1/end", b""))[0] == 200
    status, body = await post(http, url + "nope/touch", b"")
    assert (
        status == 404 and "no session" in body["error"]
    )  # one node: an unknown session is known to be unknown
    for bad in ("s1/delete", "touch", "a/b/touch"):
        assert (await post(http, url + bad, b""))[0] == 404
    assert sessions.calls == [("touch", "s1"), ("end", "s1"), ("touch", "nope")]


async def test_stats(server: Server, http: aiohttp.ClientSession) -> None:
    async with (
        clients(server.url, server.url),
        http.get(server.url + "/api/stats?cluster=1", headers=auth()) as resp,
    ):
        assert resp.status == 200
        stats = await resp.json()
    assert stats["node"]["connections"] == 2 and stats["node"]["namespaces"]["/"] == 2
    assert stats["adapter"] == {"driver": "LocalAdapter", "remote": False}
    assert stats["cluster"] == {"nodes": 1}


async def test_openapi_document_is_served_without_a_key(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url + "/api/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc == openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/api/emit",
        "/api/sessions/{id}/{action}",
        "/api/stats",
        "/api/openapi.json",
    }
    # Every $ref points at a schema that exists.
    refs: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            refs.extend(r for k, r in v.items() if k == "$ref")
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    assert refs and all(r.removeprefix("#/components/schemas/") in doc["components"]["schemas"] for r in refs)


# -- across nodes ------------------------------------------------------------------------------------------


async def test_api_emit_on_one_node_reaches_clients_of_the_other(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    room, user = uniq("room"), uniq("u")
    async with clients(cluster.a.url, cluster.b.url) as (a1, b1):
        await b1.call("join", room)
        await a1.call("login", user)
        status, _ = await post(
            http, cluster.a.url + "/api/emit", {"event": "r", "data": 1, "room": room}, API_KEY
        )
        assert status == 200
        status, _ = await post(
            http, cluster.b.url + "/api/emit", {"event": "u", "data": 2, "user": user}, API_KEY
        )
        assert status == 200
        await wait_until(lambda: got(b1, "r") and got(a1, "u"), what="emits from the other node's API")
        await settle()
        assert got(b1, "r") == [1] and got(a1, "r") == [] and got(a1, "u") == [2]


async def test_session_commands_reach_the_sessions_feature_of_every_node_once(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Two nodes in this process (Redis adapter) with a sessions feature each, plus the session's nodes."""
    cfg = Config.load(
        env={},
        overrides={
            "server": {"port": 0},
            "room": {"driver": "redis"},
            "redis": {"url": cluster.redis.url},
            "api": {"key": KEY},
        },
    )
    first, second = await run_server(cfg, routes()), await run_server(cfg, routes())
    try:
        s1 = first.extensions["sessions"] = RecordingSessions({"s9"})
        s2 = second.extensions["sessions"] = RecordingSessions(set())
        # Node A of the session cluster has no sessions feature in this build: its API says so.
        status, _ = await post(http, cluster.a.url + "/api/sessions/s9/touch", b"", API_KEY)
        assert status == 404
        # Through the first node's API: it acts locally, the other node hears it through Redis, once each.
        status, body = await post(http, first.url + "/api/sessions/s9/touch", b"")
        assert (status, body["found_here"]) == (200, True)
        await wait_until(lambda: s2.calls, what="the other node to hear the touch")
        # Published by an emitter (no node of origin): every node acts on it.
        from tether.emitter import AsyncEmitter

        emitter = AsyncEmitter.from_url(cluster.redis.url)
        try:
            assert await emitter.end_session("s9") >= 4  # 2 nodes here + the 2 of the session cluster
        finally:
            await emitter.aclose()
        await wait_until(lambda: len(s1.calls) == 2 and len(s2.calls) == 2, what="the end command")
        await settle()
        assert s1.calls == [("touch", "s9"), ("end", "s9")]
        assert s2.calls == [("touch", "s9"), ("end", "s9")]
    finally:
        await first.shutdown()
        await second.shutdown()
