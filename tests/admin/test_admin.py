"""The admin UI's server side (tether.admin) driven by python-socketio clients speaking the UI's protocol.

The same events and commands the official UI uses (see tests/admin/test_admin_ui_browser.py for the UI
itself in Chromium): log-in with a bcrypt password, session ids, config, all_sockets, the per-socket reports,
server_stats, the commands, read-only and production modes, and two nodes on one real Redis.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import socketio

from tests.conftest import make_config
from tests.helpers import scaled, wait_until, within
from tests.redis_fixtures import RedisServer
from tether import Config, Router, Server, Socket, run_server
from tether.admin import get_instrument
from tether.admin.auth import AdminAuth
from tether.errors import ConfigError

JS_DIR = Path(__file__).resolve().parents[1] / "js"
PASSWORD = "s3cret-admin"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cost 4: fast tests


def app_router() -> Router:
    r = Router()

    @r.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    @r.on("odd data")
    def odd_data(socket: Socket) -> str:
        socket.data.update({"when": object(), 7: "int key"})  # not JSON: shown as best it can be
        return "ok"

    @r.on("connect", namespace="/other")
    def other(socket: Socket, auth: Any) -> None:
        return None

    @r.on("shout")
    async def shout(socket: Socket, text: str) -> str:
        await socket.emit("heard", text)
        return "ok"

    return r


class Watcher:
    """A python-socketio client on a namespace, recording every event it gets."""

    def __init__(self, url: str, namespace: str = "/", auth: Any = None) -> None:
        self.url, self.namespace, self.auth = url, namespace, auth
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[list[Any]]] = defaultdict(list)
        self.sid = ""

        async def record(event: str, *args: Any) -> None:
            self.events[event].append(list(args))

        async def refused(data: Any) -> None:
            self.events["connect_error"].append([data])

        self.sio.on("*", record, namespace=namespace)
        self.sio.on("connect_error", refused, namespace=namespace)

    async def connect(self) -> Watcher:
        await self.sio.connect(
            self.url,
            namespaces=[self.namespace],
            auth=self.auth,
            transports=["websocket"],
            wait_timeout=scaled(5),
        )
        self.sid = self.sio.get_sid(self.namespace) or ""
        return self

    async def call(self, event: str, *args: Any) -> Any:
        return await self.sio.call(event, args[0] if len(args) == 1 else args, timeout=scaled(5))

    async def emit(self, event: str, *args: Any) -> None:
        await self.sio.emit(event, args, namespace=self.namespace)

    def got(self, event: str, where: Any = lambda args: True) -> list[list[Any]]:
        return [args for args in self.events[event] if where(args)]

    async def wait(self, event: str, where: Any = lambda args: True, timeout: float = 5.0) -> list[Any]:
        await wait_until(lambda: bool(self.got(event, where)), timeout, f"{event} on {self.namespace}")
        return self.got(event, where)[0]

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown()


async def start(**admin: Any) -> Server:
    section = {"password": HASH, "stats_interval": 0.2, **admin}
    config = make_config(admin={"enabled": True, **section})
    return await run_server(config, app_router())


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = await start()
    try:
        yield s
    finally:
        await s.shutdown(timeout=scaled(5))


async def login(server: Server, **auth: Any) -> Watcher:
    return await Watcher(server.url, "/admin", {"username": "admin", "password": PASSWORD, **auth}).connect()


async def test_config_is_the_first_thing_an_admin_ui_gets(server: Server) -> None:
    """node's admin server sends ``config`` in its connection handler, so the UI has the server's features
    before any report. The worst case: a report made at once after the accept (a server_stats tick)."""
    instrument = get_instrument(server)
    server.accept_hooks.append(lambda sock: instrument.report("server_stats", instrument.stats()))
    order: list[str] = []
    sio = socketio.AsyncClient(reconnection=False)

    async def record(event: str, *args: Any) -> None:
        order.append(event)

    sio.on("*", record, namespace="/admin")
    await sio.connect(
        server.url,
        namespaces=["/admin"],
        auth={"username": "admin", "password": PASSWORD},
        transports=["websocket"],
        wait_timeout=scaled(5),
    )
    try:
        await wait_until(lambda: "config" in order and "server_stats" in order, what="config, server_stats")
    finally:
        await sio.disconnect()
    assert order.index("config") < order.index("server_stats"), order


# -- config ---------------------------------------------------------------------------------------------


def test_off_by_default_and_on_with_the_section(tmp_path: Any) -> None:
    assert Config.load(None, env={}).admin.enabled is False
    path = tmp_path / "tether.toml"
    path.write_text(f'[admin]\npassword = "{HASH}"\n')
    assert Config.load(path, env={}).admin.enabled is True
    path.write_text("[admin]\nauth = false\n")
    assert Config.load(path, env={}).admin.auth is False


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({}, "admin.password"),
        ({"password": "plain-text"}, "admin.password"),
        ({"password": HASH[:-1]}, "admin.password"),
        ({"password": HASH, "namespace": "/"}, "admin.namespace"),
        ({"password": HASH, "namespace": "admin"}, "admin.namespace"),
        ({"password": HASH, "mode": "debug"}, "admin.mode"),
        ({"password": HASH, "stats_interval": 0}, "admin"),
    ],
)
def test_bad_admin_config_is_refused_before_start(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(None, env={}, overrides={"admin": {"enabled": True, **values}})
    assert info.value.key == key
    assert "plain-text" not in str(info.value)  # a secret is never quoted


def test_the_password_is_redacted() -> None:
    config = Config.load(None, env={}, overrides={"admin": {"enabled": True, "password": HASH}})
    assert config.redacted()["admin"]["password"] == "***"


async def test_a_namespace_of_the_app_is_not_taken_over_by_the_admin_ui() -> None:
    router = app_router()
    router.on("whoami", lambda socket: "the app's", namespace="/admin")
    with pytest.raises(ConfigError) as info:
        await run_server(make_config(admin={"enabled": True, "password": HASH}), router)
    assert info.value.key == "admin.namespace" and "/admin is already a namespace" in str(info.value)
    # Another admin namespace: both serve.
    config = make_config(admin={"enabled": True, "password": HASH, "namespace": "/socket-admin"})
    server = await run_server(config, router)
    try:
        app = Watcher(server.url, "/admin")
        await app.connect()
        assert await app.sio.call("whoami", namespace="/admin", timeout=scaled(5)) == "the app's"
        await app.sio.disconnect()
    finally:
        await server.shutdown(timeout=scaled(5))


async def test_without_the_section_there_is_no_admin_namespace() -> None:
    server = await run_server(make_config(), app_router())
    try:
        watcher = Watcher(server.url, "/admin", {"username": "admin", "password": PASSWORD})
        with pytest.raises(socketio.exceptions.ConnectionError):
            await watcher.connect()
        await watcher.sio.shutdown()
    finally:
        await server.shutdown(timeout=scaled(5))


# -- log-in ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        {"username": "admin", "password": "wrong"},
        {"username": "root", "password": PASSWORD},
        {"username": "admin"},
        {"username": "admin", "password": PASSWORD * 10},  # over bcrypt's 72 bytes
        {"sessionId": "0.0.forged"},
        None,
        {"username": ["admin"], "password": [PASSWORD]},
    ],
)
async def test_wrong_credentials_are_refused_with_the_references_message(server: Server, auth: Any) -> None:
    watcher = Watcher(server.url, "/admin", auth)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await watcher.connect()
    (refusal,) = watcher.got("connect_error")
    assert (
        refusal[0]["message"] == "invalid credentials"
    )  # what the UI shows (socket.io-client's err.message)
    await watcher.sio.shutdown()


async def test_login_gives_a_session_id_that_reconnects_without_the_password(server: Server) -> None:
    admin = await login(server)
    try:
        (session_id,) = await admin.wait("session")
        (config,) = await admin.wait("config")
        assert "JOIN" in config["supportedFeatures"] and "ALL_EVENTS" in config["supportedFeatures"]
    finally:
        await admin.close()
    again = await Watcher(server.url, "/admin", {"sessionId": session_id}).connect()
    try:
        await again.wait("config")
        assert again.got("session") == []  # no new session for a valid one
    finally:
        await again.close()


def test_session_ids_are_signed_and_expire() -> None:
    config = Config.load(None, env={}, overrides={"admin": {"enabled": True, "password": HASH}}).admin
    auth = AdminAuth(config)
    sid = auth.new_session(now=1000.0)
    assert auth.session_valid(sid, now=1000.0 + config.session_ttl - 1)
    assert not auth.session_valid(sid, now=1000.0 + config.session_ttl)  # at exactly its ttl: over
    body, _, mac = sid.rpartition(".")
    later = f"{int(body.split('.')[0], 16) + 10**6:x}.{body.split('.')[1]}"
    assert not auth.session_valid(f"{later}.{mac}", now=1000.0)  # a longer life cannot be forged
    other = AdminAuth(
        Config.load(
            None,
            env={},
            overrides={
                "admin": {"enabled": True, "password": bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()}
            },
        ).admin
    )
    assert not other.session_valid(sid, now=1000.0)  # a new password ends every session


async def test_auth_false_lets_anyone_in() -> None:
    server = await run_server(make_config(admin={"enabled": True, "auth": False}), app_router())
    try:
        admin = await Watcher(server.url, "/admin").connect()
        await admin.wait("config")
        assert admin.got("session") == []
        await admin.close()
    finally:
        await server.shutdown(timeout=scaled(5))


async def test_the_password_check_does_not_block_the_loop(server: Server) -> None:
    # bcrypt at cost 12 takes ~0.2 s of CPU; the loop must keep ticking while it runs.
    slow = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()
    auth = AdminAuth(
        Config.load(None, env={}, overrides={"admin": {"enabled": True, "password": slow}}).admin
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await within(auth.check({"username": "admin", "password": PASSWORD}), 20)
    elapsed = loop.time() - started
    ticker.cancel()
    assert ticks >= elapsed / 0.01 / 4  # a blocked loop would have ticked about once


# -- reports --------------------------------------------------------------------------------------------


async def test_all_sockets_lists_the_connected_sockets_with_their_rooms(server: Server) -> None:
    user = await Watcher(server.url).connect()
    try:
        assert await user.call("join", "lobby") == "ok"
        admin = await login(server)
        (sockets,) = await admin.wait("all_sockets")
        mine = next(s for s in sockets if s["id"] == user.sid)
        assert mine["nsp"] == "/" and sorted(mine["rooms"]) == sorted([user.sid, "lobby"])
        assert mine["transport"] == "websocket" and mine["clientId"]
        assert mine["handshake"]["address"] == "127.0.0.1" and mine["handshake"]["issued"] > 0
        assert "_admin" not in mine["data"]
        assert await user.call("odd data") == "ok"
        again = await login(server)
        (sockets,) = await again.wait("all_sockets")
        odd = next(s for s in sockets if s["id"] == user.sid)["data"]
        assert odd["7"] == "int key" and odd["when"].startswith("<object object")
        await again.close()
        assert any(s["id"] == admin.sid and s["nsp"] == "/admin" for s in sockets)
        await admin.close()
    finally:
        await user.close()


async def test_sockets_rooms_and_events_are_reported_as_they_happen(server: Server) -> None:
    admin = await login(server)
    try:
        await admin.wait("all_sockets")
        user = await Watcher(server.url).connect()
        (sock, stamp) = await admin.wait("socket_connected", lambda a: a[0]["id"] == user.sid)
        assert sock["nsp"] == "/" and stamp.endswith("Z")
        await user.call("join", "r1")
        await admin.wait("room_joined", lambda a: a[:3] == ["/", "r1", user.sid])
        await user.call("shout", "hi")
        await admin.wait("event_received", lambda a: a[:3] == ["/", user.sid, ["shout", "hi"]])
        await admin.wait("event_sent", lambda a: a[:3] == ["/", user.sid, ["heard", "hi"]])
        server.to("r1").emit("news", {"n": 1})
        await admin.wait("event_sent", lambda a: a[:3] == ["/", user.sid, ["news", {"n": 1}]])
        await user.close()
        (nsp, _sid, reason, _t) = await admin.wait("socket_disconnected", lambda a: a[1] == user.sid)
        assert nsp == "/" and reason in ("client namespace disconnect", "transport close")
        # the admin namespace's own traffic is not reported as events
        assert not admin.got("event_received", lambda a: a[0] == "/admin")
        assert not admin.got("event_sent", lambda a: a[0] == "/admin")
    finally:
        await admin.close()


async def test_server_stats_every_interval(server: Server) -> None:
    user = await Watcher(server.url).connect()
    admin = await login(server)
    try:
        await admin.wait("server_stats", lambda a: a[0]["clientsCount"] == 2)
        await user.call("shout", "x")
        count = len(admin.got("server_stats"))
        await wait_until(lambda: len(admin.got("server_stats")) >= count + 3, 5, "three more server_stats")
        stats = admin.got("server_stats")[-1][0]
        assert stats["serverId"] == get_instrument(server).server_id
        assert {n["name"]: n["socketsCount"] for n in stats["namespaces"]} == {"/": 1, "/admin": 1}
        assert stats["pollingClientsCount"] == 0 and stats["pid"] > 0 and stats["uptime"] > 0
        kinds = {e["type"] for (s,) in admin.got("server_stats") for e in s["aggregatedEvents"]}
        assert {"packetsIn", "packetsOut"} <= kinds
    finally:
        await admin.close()
        await user.close()


# -- commands -------------------------------------------------------------------------------------------


async def test_join_leave_and_disconnect_commands(server: Server) -> None:
    user = await Watcher(server.url).connect()
    admin = await login(server)
    try:
        await admin.wait("config")
        await admin.emit("join", "/", "vip", user.sid)
        await wait_until(lambda: "vip" in server.get_socket(user.sid).rooms, 5, "join")  # type: ignore[union-attr]
        await admin.wait("room_joined", lambda a: a[:3] == ["/", "vip", user.sid])
        await admin.emit("emit", "/", "vip", "hello", "from admin")
        await user.wait("hello", lambda a: a == ["from admin"])
        # The filter may be a room: every member of "vip" joins "vip2" (the UI's MJOIN).
        await admin.emit("join", "/", "vip2", "vip")
        await admin.wait("room_joined", lambda a: a[:3] == ["/", "vip2", user.sid])
        await admin.emit("leave", "/", "vip", user.sid)
        await admin.wait("room_left", lambda a: a[:3] == ["/", "vip", user.sid])
        await admin.emit("join", "/", 42, None)  # bad arguments: ignored, nothing breaks
        await admin.emit("_disconnect", "/", False, user.sid)
        await wait_until(lambda: not user.sio.namespaces, 5, "the user to be disconnected")
        await admin.wait("socket_disconnected", lambda a: a[1] == user.sid)
    finally:
        await admin.close()
        await user.close()


@pytest.mark.parametrize("close", [False, True])
async def test_disconnect_one_namespace_or_the_whole_connection(server: Server, close: bool) -> None:
    # close = false: the Sockets page's button (that namespace only); true: the Clients page's (everything).
    user = socketio.AsyncClient(reconnection=False)
    await user.connect(
        server.url, namespaces=["/", "/other"], transports=["websocket"], wait_timeout=scaled(5)
    )
    sid = user.get_sid("/")
    admin = await login(server)
    try:
        await admin.wait("config")
        await admin.emit("_disconnect", "/", close, sid)
        await wait_until(lambda: "/" not in user.namespaces, 5, "the / socket to be disconnected")
        if close:
            await wait_until(lambda: not user.connected, 5, "the connection to close")
        else:
            await asyncio.sleep(scaled(0.2))
            assert list(user.namespaces) == ["/other"] and user.connected
    finally:
        await admin.close()
        await user.disconnect()
        await user.shutdown()


async def test_read_only_refuses_the_commands() -> None:
    server = await start(read_only=True)
    user = await Watcher(server.url).connect()
    admin = await login(server)
    try:
        (config,) = await admin.wait("config")
        assert config["supportedFeatures"] == ["AGGREGATED_EVENTS", "ALL_EVENTS"]
        await admin.emit("_disconnect", "/", True, user.sid)
        await admin.emit("join", "/", "vip", user.sid)
        await admin.wait("server_stats")
        await asyncio.sleep(scaled(0.3))
        sock = server.get_socket(user.sid)
        assert sock is not None and "vip" not in sock.rooms
    finally:
        await admin.close()
        await user.close()
        await server.shutdown(timeout=scaled(5))


async def test_production_mode_reports_stats_only() -> None:
    server = await start(mode="production")
    admin = await login(server)
    try:
        (config,) = await admin.wait("config")
        assert "ALL_EVENTS" not in config["supportedFeatures"]
        user = await Watcher(server.url).connect()
        await user.call("shout", "x")
        await admin.wait("server_stats", lambda a: a[0]["clientsCount"] == 2)
        await user.close()
        assert not admin.got("all_sockets") and not admin.got("socket_connected")
        assert not admin.got("event_received")
    finally:
        await admin.close()
        await server.shutdown(timeout=scaled(5))


# -- two nodes ------------------------------------------------------------------------------------------


async def test_two_nodes_on_redis_one_ui_sees_and_commands_both(redis_server: RedisServer) -> None:
    def node() -> Config:
        return make_config(
            admin={"enabled": True, "password": HASH, "stats_interval": 0.2},
            room={"driver": "redis"},
            redis={"url": redis_server.url, "prefix": "admin-test", "request_timeout": scaled(3)},
        )

    a = await run_server(node(), app_router())
    b = await run_server(node(), app_router())
    on_b = await Watcher(b.url).connect()
    admin = await login(a)
    try:
        await on_b.call("join", "far")
        (sockets,) = await admin.wait("all_sockets")
        far = next(s for s in sockets if s["id"] == on_b.sid)
        assert "far" in far["rooms"] and far["transport"] == "websocket"  # carried in data._admin
        servers = {get_instrument(a).server_id, get_instrument(b).server_id}
        await wait_until(
            lambda: {s[0]["serverId"] for s in admin.got("server_stats")} >= servers, 5, "both nodes' stats"
        )
        await on_b.call("shout", "over there")
        await admin.wait("event_received", lambda a: a[1] == on_b.sid)
        await admin.emit("_disconnect", "/", False, on_b.sid)
        await wait_until(lambda: not on_b.sio.namespaces, 5, "the socket on the other node to go")
        await admin.wait("socket_disconnected", lambda a: a[1] == on_b.sid)
    finally:
        await admin.close()
        await on_b.close()
        await b.shutdown(timeout=scaled(5))
        await a.shutdown(timeout=scaled(5))


NODE_CLIENT = """
const { io } = require("socket.io-client");
const socket = io(process.argv[1]);  // the defaults: polling, then the upgrade to WebSocket
socket.on("connect", () => {
  console.log(JSON.stringify({ sid: socket.id }));
});
process.stdin.on("end", () => socket.close());  // the test closes stdin when it has seen what it needs
process.stdin.resume();
"""


async def test_an_upgrade_to_websocket_is_reported(server: Server) -> None:
    # socket.io-client connects the namespace over polling, then upgrades: what socket_updated is for.
    node = shutil.which("node")
    assert node is not None, "node is not installed: run `make test`"
    admin = await login(server)
    await admin.wait("all_sockets")
    proc = await asyncio.create_subprocess_exec(
        node,
        "-e",
        NODE_CLIENT,
        server.url,
        cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await within(proc.stdout.readline(), 10))
        (sock, _t) = await admin.wait("socket_connected", lambda a: a[0]["id"] == first["sid"])
        assert sock["transport"] == "polling"
        await admin.wait(
            "socket_updated", lambda a: a[0] == {"id": first["sid"], "nsp": "/", "transport": "websocket"}
        )
        assert proc.stdin is not None
        proc.stdin.close()
        assert await within(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await admin.close()


async def test_with_sessions_on_the_admin_ui_logs_in_without_a_session_token() -> None:
    config = make_config(
        admin={"enabled": True, "password": HASH},
        session={"enabled": True, "secret": "test-secret-for-sessions-0123456789"},
    )
    server = await run_server(config, app_router())
    try:
        admin = await login(server)
        await admin.wait("config")
        await admin.close()
        user = Watcher(server.url)  # the application's namespace still wants its token
        with pytest.raises(socketio.exceptions.ConnectionError):
            await user.connect()
        await user.sio.shutdown()
    finally:
        await server.shutdown(timeout=scaled(5))
