"""Sessions on a real server: tokens on connect, idle expiry pushed to every tab, warnings, touch, log-out."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
import socketio
import websockets

from tests.helpers import scaled
from tests.sessions.helpers import SECRET, Recorder, ServerFactory, session_config
from tether import Config, Router, Server
from tether.sessions import get_manager, issue_token


async def connect_fails(r: Recorder, url: str, token: str | None) -> Any:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await r.connect(url, token)
    return r.connect_error


async def assert_no_event(r: Recorder, seconds: float) -> None:
    try:
        ev = await asyncio.wait_for(r.events.get(), scaled(seconds))
    except TimeoutError:
        return
    raise AssertionError(f"unexpected event {ev}")


# -- tokens on connect ---------------------------------------------------------------------------------


async def test_no_token_is_422(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server()
    err = await connect_fails(clients(), server.url, None)
    assert err["code"] == 422
    assert err["message"] == "Parameter error"
    assert get_manager(server).counters.rejected_no_token == 1


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("not-a-token", "Invalid token"),
        (issue_token("alice", secret="another-secret", ttl=60), "Invalid token"),
        (issue_token("alice", secret=SECRET, ttl=60, now=0.0), "Token expired"),
    ],
    ids=["garbage", "wrong-secret", "expired"],
)
async def test_bad_token_is_401(make_server: ServerFactory, clients: Any, token: str, message: str) -> None:
    server = await make_server()
    err = await connect_fails(clients(), server.url, token)
    assert err == {"code": 401, "message": message, "data": {"code": 401}}
    assert server.connection_count <= 1  # the Engine.IO session may linger; no namespace socket
    assert server.state.sockets == 0


async def test_token_ttl_caps_older_tokens(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server(token_ttl=60)
    import time

    old = issue_token("alice", secret=SECRET, ttl=3600, now=time.time() - 120)
    err = await connect_fails(clients(), server.url, old)
    assert err["code"] == 401 and err["message"] == "Token expired"


async def test_valid_token_binds_user_and_session(make_server: ServerFactory, clients: Any) -> None:
    router = Router()
    seen: dict[str, Any] = {}

    @router.on("whoami")
    async def whoami(socket: Any) -> dict[str, Any]:
        seen["rooms"] = socket.rooms
        return {"user": socket.user_id, "session": socket.session_id}

    server = await make_server(session_config(), router)
    token = issue_token("alice", "s-1", secret=SECRET, ttl=60)
    r = clients()
    await r.connect(server.url, token)
    assert await r.sio.call("whoami", timeout=scaled(5)) == {"user": "alice", "session": "s-1"}
    assert {"user:alice", "session:s-1"} <= seen["rooms"]
    assert server.is_user_online("alice")
    assert not server.is_user_online("bob")
    server.to_user("alice").emit("hello", 1)
    ev = await r.next_event(2)
    assert ev[:2] == ("hello", 1)


async def test_bare_ws_token_in_query(make_server: ServerFactory) -> None:
    server = await make_server(idle_timeout=scaled(0.6))
    token = get_manager(server).issue_token("alice")
    base = server.url.replace("http", "ws")
    async with websockets.connect(f"{base}/ws?token={quote(token)}") as ws:
        assert str(await asyncio.wait_for(ws.recv(), scaled(2))).startswith("40")
        msg = await asyncio.wait_for(ws.recv(), scaled(3))
        assert msg == '42["session:expired",{"reason":"idle"}]'
        assert await asyncio.wait_for(ws.recv(), scaled(2)) == "41"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), scaled(2))


@pytest.mark.parametrize(("query", "code"), [("", 422), ("?token=forged", 401)])
async def test_bare_ws_refused(make_server: ServerFactory, query: str, code: int) -> None:
    server = await make_server()
    base = server.url.replace("http", "ws")
    async with websockets.connect(f"{base}/ws{query}") as ws:
        msg = await asyncio.wait_for(ws.recv(), scaled(2))
        assert isinstance(msg, str) and msg.startswith(f'44{{"code":{code}')
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), scaled(2))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


# -- idle expiry ---------------------------------------------------------------------------------------


async def test_expired_is_pushed_to_every_socket_of_the_session(
    make_server: ServerFactory, clients: Any
) -> None:
    idle = scaled(2.0)
    server = await make_server(idle_timeout=idle)
    manager = get_manager(server)
    token = manager.issue_token("alice", "tabs")
    tab1, tab2, tab3 = clients(), clients(), clients()
    other = clients()  # the same user in another session (another browser)
    await tab1.connect(server.url, token)
    session = manager.get("tabs")
    assert session is not None
    await tab2.connect(server.url, token, transport="polling")
    await tab3.connect(server.url, token)
    await other.connect(server.url, manager.issue_token("alice", "elsewhere"))
    loop = asyncio.get_running_loop()
    # Keep the other session alive while the first one lapses.
    keep_alive = loop.create_task(_activity(other, every=idle / 5, until=session.deadline + 0.5))
    try:
        for tab in (tab1, tab2, tab3):
            event, data, at = await tab.next_event(idle + 2)
            assert (event, data) == ("session:expired", {"reason": "idle"})
            # Never before the deadline, and promptly after it.
            assert session.deadline <= at <= session.deadline + scaled(0.5)
        for tab in (tab1, tab2, tab3):
            await asyncio.wait_for(tab.disconnected.wait(), scaled(2))
    finally:
        await keep_alive
    assert other.sio.connected
    assert manager.get("elsewhere") is not None
    assert manager.get("tabs") is None
    assert manager.counters.expired == 1
    # One timer for the process: a handful of wake-ups, not one per socket or per activity event.
    assert manager.counters.wakeups <= 6


async def _activity(r: Recorder, every: float, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until and r.sio.connected:
        await r.sio.emit("activity")
        await asyncio.sleep(every)


async def test_reconnecting_after_expiry_is_refused(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server(idle_timeout=scaled(0.5))
    manager = get_manager(server)
    token = manager.issue_token("alice", "s")
    r = clients()
    await r.connect(server.url, token)
    assert (await r.next_event(3))[0] == "session:expired"
    err = await connect_fails(clients(), server.url, token)
    assert err["code"] == 401 and err["message"] == "Session expired"
    assert manager.is_ended("s")
    # A token issued after the expiry (a fresh log-in reusing the id, on purpose) is accepted.
    await asyncio.sleep(0.01)
    fresh = clients()
    await fresh.connect(server.url, manager.issue_token("alice", "s"))
    assert manager.get("s") is not None


async def test_close_on_expire_false_keeps_sockets(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server(idle_timeout=scaled(0.5), close_on_expire=False)
    r = clients()
    await r.connect(server.url, get_manager(server).issue_token("alice"))
    assert (await r.next_event(3))[0] == "session:expired"
    await asyncio.sleep(scaled(0.3))
    assert r.sio.connected


async def test_warning_then_expiry(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server(idle_timeout=scaled(2.0), warn_before=scaled(1.0))
    r = clients()
    manager = get_manager(server)
    await r.connect(server.url, manager.issue_token("alice", "warned"))
    session = manager.get("warned")
    assert session is not None
    deadline = session.deadline
    event, data, at = await r.next_event(3)
    assert event == "session:warning"
    assert data == {"seconds_left": round(scaled(1.0))}
    assert deadline - scaled(1.0) <= at <= deadline - scaled(1.0) + scaled(0.5)
    event, _, at = await r.next_event(3)
    assert event == "session:expired"
    assert deadline <= at <= deadline + scaled(0.5)


async def test_activity_after_warning_extends_everywhere(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server(idle_timeout=scaled(1.5), warn_before=scaled(1.0))
    manager = get_manager(server)
    token = manager.issue_token("alice", "w")
    a, b = clients(), clients()
    await a.connect(server.url, token)
    await b.connect(server.url, token)
    assert (await a.next_event(3))[0] == "session:warning"
    assert (await b.next_event(3))[0] == "session:warning"
    await a.sio.emit("activity")
    for r in (a, b):
        event, data, _ = await r.next_event(2)
        assert (event, data) == ("session:extended", {"seconds_left": round(scaled(1.5))})
    # Warned again, then expired, since nobody moves any more.
    assert (await b.next_event(3))[0] == "session:warning"
    assert (await b.next_event(3))[0] == "session:expired"
    session_stats = manager.counters
    assert session_stats.warned == 2 and session_stats.extended == 1 and session_stats.expired == 1


async def test_any_event_and_activity_keep_a_session_alive(make_server: ServerFactory, clients: Any) -> None:
    idle = scaled(1.5)
    server = await make_server(idle_timeout=idle)
    manager = get_manager(server)
    token = manager.issue_token("alice", "busy")
    a, b = clients(), clients()
    await a.connect(server.url, token)
    await b.connect(server.url, token)
    # Tab a sends "activity", tab b an ordinary app event: either keeps the whole session alive.
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(8):
        await (a.sio.emit("activity") if i % 2 else b.sio.emit("anything", {"x": i}))
        await asyncio.sleep(idle / 4)
    assert loop.time() - start > 1.5 * idle  # well past one idle timeout
    await assert_no_event(a, 0.01)
    await assert_no_event(b, 0.01)
    session = manager.get("busy")
    assert session is not None
    assert session.events == 8 and session.activity == 4
    # Idle from now on: expires one idle_timeout after the last event.
    assert (await a.next_event(idle + 1))[0] == "session:expired"


async def test_touch_from_python(make_server: ServerFactory, clients: Any) -> None:
    idle = scaled(1.5)
    server = await make_server(idle_timeout=idle)
    manager = get_manager(server)
    r = clients()
    await r.connect(server.url, manager.issue_token("alice", "t"))
    for _ in range(3):
        await asyncio.sleep(idle / 2)
        assert manager.touch("t")
    await assert_no_event(r, 0.01)
    assert manager.get("t") is not None and manager.get("t").events == 0  # type: ignore[union-attr]
    left = manager.seconds_left("t")
    assert left is not None and 0 < left <= idle
    assert not manager.touch("unknown")
    assert (await r.next_event(idle + 1))[0] == "session:expired"
    assert not manager.touch("t")


async def test_logout_in_one_tab_ends_the_others(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server()
    manager = get_manager(server)
    token = manager.issue_token("alice", "L")
    a, b, c = clients(), clients(), clients()
    await a.connect(server.url, token)
    await b.connect(server.url, token)
    await c.connect(server.url, token, transport="polling")
    bystander = clients()
    await bystander.connect(server.url, manager.issue_token("bob"))
    await a.sio.emit("session:logout")
    for r in (b, c):
        event, data, _ = await r.next_event(2)
        assert (event, data) == ("session:ended", {"reason": "logout"})
        await asyncio.wait_for(r.disconnected.wait(), scaled(2))
    # The tab that logged out gets no push; the server closes it too.
    await asyncio.wait_for(a.disconnected.wait(), scaled(2))
    assert a.events.empty()
    await assert_no_event(bystander, 0.2)
    assert bystander.sio.connected
    assert not server.is_user_online("alice")
    err = await connect_fails(clients(), server.url, token)
    assert err == {"code": 401, "message": "Session ended", "data": {"code": 401}}
    assert manager.counters.ended == 1


async def test_end_from_python_reaches_every_tab(make_server: ServerFactory, clients: Any) -> None:
    server = await make_server()
    manager = get_manager(server)
    token = manager.issue_token("alice", "E")
    a, b = clients(), clients()
    await a.connect(server.url, token)
    await b.connect(server.url, token)
    assert manager.end("E", "admin")
    for r in (a, b):
        assert (await r.next_event(2))[:2] == ("session:ended", {"reason": "admin"})
    assert not manager.end("E")


async def test_namespaces_share_the_session(make_server: ServerFactory, clients: Any) -> None:
    router = Router()
    router.on("ping", lambda socket: "pong", namespace="/chat")
    server = await make_server(session_config(idle_timeout=scaled(0.6)), router)
    token = get_manager(server).issue_token("alice")
    r = clients()
    await r.sio.connect(
        server.url,
        auth={"token": token},
        namespaces=["/", "/chat"],
        transports=["websocket"],
        wait_timeout=scaled(5),
    )
    got: list[str] = []
    r.sio.on("session:expired", lambda data: got.append("chat"), namespace="/chat")
    assert (await r.next_event(3))[0] == "session:expired"
    await asyncio.sleep(scaled(0.1))
    assert got == ["chat"]


# -- settings and install ------------------------------------------------------------------------------


async def test_settings_route(make_server: ServerFactory) -> None:
    import aiohttp

    server = await make_server(idle_timeout=60, warn_before=20, activity_interval=5)
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/tether/session-config.json") as resp:
        assert resp.status == 200
        assert await resp.json() == {"idle_timeout": 60.0, "warn_before": 20.0, "activity_interval": 5.0}


async def test_disabled_installs_nothing_and_user_binding_still_works(
    make_server: ServerFactory, clients: Any
) -> None:
    router = Router()

    @router.on("login")
    async def login(socket: Any, user: str) -> bool:
        socket.login_using(user)
        return True

    config = Config.load(env={}, overrides={"server": {"port": 0}})
    assert not config.session.enabled
    server = await make_server(config, router)
    assert "sessions" not in server.extensions
    from tether.sessions import SessionManager

    hooks = [*server.connect_hooks, *server.event_hooks, *server.disconnect_hooks]
    assert not any(isinstance(getattr(h, "__self__", None), SessionManager) for h in hooks)
    assert ("GET", "/tether/session-config.json") not in server.http_routes
    r, other = clients(), clients()
    await r.connect(server.url, None)  # no token needed
    await other.connect(server.url, None)
    assert await r.sio.call("login", "carol", timeout=scaled(5)) is True
    assert server.is_user_online("carol")
    server.to_user("carol").emit("note", "hi")
    assert (await r.next_event(2))[:2] == ("note", "hi")
    await assert_no_event(other, 0.2)
    with pytest.raises(Exception, match="sessions are not enabled"):
        get_manager(server)


async def test_validator_hook(make_server: ServerFactory, clients: Any, tmp_path: Any) -> None:
    (tmp_path / "myauth_for_tests.py").write_text(
        "from tether.errors import InvalidToken\n"
        "SESSIONS = {'cookie-1': {'user_id': 'dana', 'session_id': 'django-1'},\n"
        "            'cookie-2': {'user_id': 'erin'}}\n"
        "def check(token):\n"
        "    if token == 'boom':\n"
        "        raise RuntimeError('database down')\n"
        "    if token == 'revoked':\n"
        "        raise InvalidToken('Revoked')\n"
        "    return SESSIONS.get(token)\n"
    )
    (tmp_path / "tether.toml").write_text(
        '[server]\nport = 0\n[session]\nvalidator = "myauth_for_tests:check"\nidle_timeout = 30\n'
    )
    server = await make_server(Config.load(tmp_path / "tether.toml", env={}))
    router_probe = clients()
    await router_probe.connect(server.url, "cookie-1")
    manager = get_manager(server)
    assert manager.get("django-1") is not None and manager.get("django-1").user_id == "dana"  # type: ignore[union-attr]
    await clients().connect(server.url, "cookie-2")
    assert server.is_user_online("erin")
    assert (await connect_fails(clients(), server.url, "nobody"))["code"] == 401
    assert (await connect_fails(clients(), server.url, "revoked"))["message"] == "Revoked"
    assert (await connect_fails(clients(), server.url, "boom"))["code"] == 500


async def test_bad_validator_fails_at_start(tmp_path: Any) -> None:
    from tether import ConfigError

    (tmp_path / "tether.toml").write_text('[session]\nvalidator = "no_such_module_xyz:check"\n')
    with pytest.raises(ConfigError, match=r"session\.validator"):
        Server(Config.load(tmp_path / "tether.toml", env={}))


async def test_a_later_hook_rejecting_undoes_the_session_rooms(
    make_server: ServerFactory, clients: Any
) -> None:
    from tether import Reject

    server = await make_server()

    def deny_mallory(sock: Any, auth: Any) -> None:
        if sock.user_id == "mallory":
            raise Reject({"code": 403, "message": "Banned"})

    server.connect_hooks.append(deny_mallory)
    manager = get_manager(server)
    err = await connect_fails(clients(), server.url, manager.issue_token("mallory", "m"))
    assert err["code"] == 403 and err["message"] == "Banned"
    ns = server.namespaces["/"]
    assert ns.rooms.members("session:m") == {} and ns.rooms.members("user:mallory") == {}
    assert len(ns.rooms) == 0
    assert not server.is_user_online("mallory")


async def test_a_burst_of_expiries_is_spread_over_loop_iterations(make_server: ServerFactory) -> None:
    from tether.sessions import Claims
    from tether.sessions.manager import EXPIRE_BATCH

    server = await make_server(idle_timeout=scaled(0.3))
    manager = get_manager(server)
    n = EXPIRE_BATCH * 3 + 5
    for i in range(n):
        manager._open(Claims(f"u{i}", f"s{i}"))  # the bookkeeping of a connect, without the sockets
    ticks_during_burst = 0

    async def ticker() -> None:
        nonlocal ticks_during_burst
        while manager.sessions:
            if manager.counters.expired:
                ticks_during_burst += 1  # this task ran while some sessions were expired and some not
            await asyncio.sleep(0)

    await asyncio.wait_for(ticker(), scaled(5))
    assert manager.counters.expired == n
    # Four batches, with other work running between them.
    assert manager.counters.wakeups >= 4
    assert ticks_during_burst >= 3


def test_the_packages_manager_names_are_the_manager_modules() -> None:
    # tether.sessions imports them from .manager on first use (so that `tether token` does not).
    import tether.sessions
    from tether.sessions import manager

    lazy = set(tether.sessions.__all__) - {"Claims", "Deadlines", "TokenChecker", "Validator"}
    lazy -= {"get_manager", "install", "issue_token", "new_session_id", "verify_token"}
    assert lazy == {"ACTIVITY", "ENDED", "EXPIRED", "EXTENDED", "LOGOUT", "WARNING"} | {
        "Session", "SessionCounters", "SessionManager", "session_room"
    }  # fmt: skip
    # The package's list of lazy names is kept by hand beside manager.__all__: the two must not drift.
    assert tether.sessions._MANAGER_NAMES == set(manager.__all__) == lazy
    for name in lazy:
        assert getattr(tether.sessions, name) is getattr(manager, name), name
    assert set(tether.sessions.__all__) <= set(dir(tether.sessions))
    with pytest.raises(AttributeError, match="has no attribute 'SessionManagr'"):
        _ = tether.sessions.SessionManagr  # type: ignore[attr-defined]
