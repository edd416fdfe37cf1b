"""Class-based namespaces from a route file: ``tether.Namespace`` and a python-socketio ``AsyncNamespace``
subclass run unchanged, against real python-socketio clients."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio

from tests.apps import namespace_routes
from tests.helpers import scaled, wait_until
from tests.redis_fixtures import Client
from tether import Config, Namespace, Router, Server, run_server
from tether.errors import ConfigError, TetherError
from tether.router import load_route_file

ROUTES = Path(__file__).parent / "apps" / "namespace_routes.py"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    router = load_route_file(str(ROUTES))
    srv = await run_server(Config().replace(server={"port": 0}), router)
    yield srv
    await srv.shutdown(timeout=1)


def seen(kind: str) -> list[object]:
    # load_route_file imports the file under its own module name: read that module's SEEN.
    import sys

    module = next(
        m for name, m in sys.modules.items() if name.startswith("_tether_routes_") and hasattr(m, "Room")
    )
    return module.SEEN[kind]  # type: ignore[no-any-return]


async def refused_with(server: Server, namespace: str, auth: object) -> object:
    """The CONNECT_ERROR data a client gets when its connection is refused."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[object] = []
    client.on("connect_error", errors.append, namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, namespaces=[namespace], auth=auth, wait_timeout=scaled(5))
    return errors[0]


async def test_tether_namespace_class(server: Server) -> None:
    assert (await refused_with(server, "/room", {"token": "no"}))["message"] == "bad token"  # type: ignore[index]
    a, b = Client(server.url, "/room"), Client(server.url, "/room")
    for c in (a, b):
        await c.sio.connect(server.url, namespaces=["/room"], auth={"token": "ok"}, transports=["websocket"])
        c.sid = c.sio.get_sid("/room") or ""
    try:
        assert await a.call("join", "loud") == sorted([a.sid, "loud"])
        assert await b.call("join", "loud") == sorted([b.sid, "loud"])
        assert await a.call("shout", "hi") == "shouted"
        await wait_until(lambda: b.events.get("shouted"), what="the namespace's emit")
        assert b.events["shouted"] == ["HI"] and not a.events.get("shouted")
    finally:
        await a.close()
        await b.close()
    await wait_until(lambda: any(e[0] == "disconnect" for e in seen("room")), what="on_disconnect")


async def test_python_socketio_async_namespace_unchanged(server: Server) -> None:
    assert (await refused_with(server, "/chat", {"refuse": True}))["message"] == "go away"  # type: ignore[index]
    ann, bob = Client(server.url, "/chat"), Client(server.url, "/chat")
    for c, name in ((ann, "ann"), (bob, "bob")):
        await c.sio.connect(server.url, namespaces=["/chat"], auth={"name": name}, transports=["websocket"])
        c.sid = c.sio.get_sid("/chat") or ""
    try:
        assert await ann.call("message", "hello") == ("delivered", 1)
        assert await ann.call("message", "again") == ("delivered", 2)  # the session is kept
        await wait_until(lambda: len(bob.events.get("message", [])) == 2, what="the room emit")
        assert bob.events["message"][0] == {"from": "ann", "text": "hello"} and not ann.events.get("message")
        assert await bob.call("rooms") == sorted([bob.sid, "general"])
        assert await bob.call("sync_event", 5) == {"echo": 5}
        session = await server.get_session(ann.sid, namespace="/chat")
        assert session["name"] == "ann" and session["said"] == 2 and "python" in session["agent"].lower()
        assert ("connect", ann.sid, "GET") in seen("chat")
        await server.disconnect(bob.sid, namespace="/chat")
        await wait_until(lambda: ("disconnect", bob.sid, "server disconnect") in seen("chat"), what="reason")
    finally:
        await ann.close()
        await bob.close()
    # python-engineio may close the WebSocket before its DISCONNECT packet leaves: "transport close" then.
    await wait_until(
        lambda: any(e[:2] == ("disconnect", ann.sid) for e in seen("chat")), what="ann's disconnect"
    )
    reason = next(e[2] for e in seen("chat") if e[:2] == ("disconnect", ann.sid))
    assert reason in ("client disconnect", "transport close")


async def test_trigger_event_sees_every_event(server: Server) -> None:
    """A ``tether.Namespace`` that overrides ``trigger_event`` gets connect, events with and without an
    ``on_<event>`` method, and disconnect, as python-socketio's ``AsyncNamespace`` does; its
    ``self.server.start_background_task``/``sleep`` and awaited room calls work as there."""
    c = Client(server.url, "/audit")
    await c.sio.connect(server.url, namespaces=["/audit"], auth={"k": 1}, transports=["websocket"])
    c.sid = c.sio.get_sid("/audit") or ""
    try:
        assert await c.call("echo", {"a": 1}) == {"a": 1}
        assert await c.call("unrouted", 2) == "seen by trigger_event"
        assert await c.call("ticks", 3) == "started"
        await wait_until(lambda: not c.sio.connected, what="the background task's disconnect")
        assert c.events["tick"] == [0, 1, 2]
        assert seen("ticks") == [sorted([c.sid, "tickers"])]
    finally:
        await c.close()
    await wait_until(lambda: seen("audit")[-1][0] == "disconnect", what="disconnect through trigger_event")
    assert seen("audit") == [
        ("connect", {"k": 1}),
        ("echo", {"a": 1}),
        ("unrouted", 2),
        ("ticks", 3),
        ("disconnect", "server namespace disconnect"),
    ]


def test_same_calls_as_python_socketio_async_namespace() -> None:
    """Every public method of ``socketio.AsyncNamespace`` is on ``tether.Namespace``, taking the same
    arguments by the same names; ``trigger_event`` is a coroutine there and here."""
    theirs = socketio.AsyncNamespace
    for name in dir(theirs):
        if name.startswith("_"):
            continue
        assert hasattr(Namespace, name), name
        ours = inspect.signature(getattr(Namespace, name))
        for param in inspect.signature(getattr(theirs, name)).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                assert any(p.kind is param.kind for p in ours.parameters.values()), (name, param)
            else:
                assert param.name in ours.parameters, (name, param.name)
    assert inspect.iscoroutinefunction(Namespace.trigger_event)
    assert Namespace("/x").is_asyncio_based()


async def test_default_trigger_event_dispatch() -> None:
    """The default dispatch: ``on_<event>``, None without one; a one-argument ``on_connect``/
    ``on_disconnect`` gets the socket alone, as a route would; no catch-all route unless overridden."""
    got: list[object] = []

    class Plain(Namespace):
        def on_connect(self, socket: object) -> None:
            got.append(("connect", socket))

        async def on_disconnect(self, socket: object) -> None:
            got.append(("disconnect", socket))

        async def on_add(self, socket: object, a: int, b: int) -> int:
            return a + b

    ns = Plain("/p")
    router = Router()
    router.register_namespace(ns)
    assert router.get("/p", "*") is None and set(router.events("/p")) == {"connect", "disconnect", "add"}
    assert await ns.trigger_event("add", "sock", 2, 3) == 5
    assert await ns.trigger_event("nothing", "sock") is None
    assert await ns.trigger_event("connect", "sock", {"auth": 1}) is None
    assert await ns.trigger_event("disconnect", "sock", "transport close") is None
    assert got == [("connect", "sock"), ("disconnect", "sock")]
    # Registered without any method, a namespace is served all the same, as under python-socketio.
    bare = Router()
    bare.register_namespace(Namespace("/bare"))
    assert bare.has_namespace("/bare") and bare.events("/bare") == ["connect"]


def test_ported_on_connect_fails_at_registration() -> None:
    class Ported(Namespace):
        async def on_connect(self, sid: str, environ: dict[str, object], auth: object) -> None: ...

    with pytest.raises(ConfigError, match="socket, auth"):
        Router().register_namespace(Ported("/ported"))


def test_registration_errors() -> None:
    with pytest.raises(TypeError):
        Router().register_namespace(object())
    with pytest.raises(ValueError):
        Namespace("chat")
    with pytest.raises(TetherError):
        Namespace("/x").emit("e")
    assert namespace_routes.Room("/r").handlers().keys() == {"connect", "join", "shout", "disconnect"}
