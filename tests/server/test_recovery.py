"""Connection state recovery on one server process, with the official socket.io-client and by hand.

The cut is a real one: the client talks to the server through :class:`tests.helpers.CutProxy`, which aborts
both TCP connections at once while the server is sending, so packets in flight are lost on the way and
the server learns of it from the aborted socket, as after a tunnel or a Wi-Fi hand-over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import make_config
from tests.helpers import CutProxy, scaled, wait_until, within
from tests.recovery_support import NodeClient, gaps_and_duplicates
from tether import Reject, Router, Server, Socket, run_server

COUNT = 1000


def recovery_router(seen: list[tuple[str, bool]]) -> Router:
    router = Router()

    @router.on("connect")
    def on_connect(socket: Socket, auth: Any) -> None:
        seen.append((socket.sid, socket.recovered))
        if isinstance(auth, dict) and auth.get("refuse_recovered") and socket.recovered:
            raise Reject({"message": "no recovery for you"})

    @router.on("join")
    def join(socket: Socket, room: str) -> bool:
        socket.join(room)
        socket.data["joined"] = room
        return True

    @router.on("whoami")
    def whoami(socket: Socket) -> dict[str, Any]:
        return {
            "sid": socket.sid,
            "rooms": sorted(socket.rooms),
            "data": socket.data,
            "recovered": socket.recovered,
        }

    return router


METRICS_KEY = "metrics-key-for-tests-0123456789abcdef"


async def start(seen: list[tuple[str, bool]], **recovery: Any) -> Server:
    section = {"max_disconnection_duration": 120.0, **recovery}
    # Metrics served (behind a key) so that they are kept: the recovery counters are checked in them.
    config = make_config(recovery=section, metrics={"key": METRICS_KEY})
    return await run_server(config, recovery_router(seen))


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, CutProxy, list[tuple[str, bool]]]]:
    seen: list[tuple[str, bool]] = []
    server = await start(seen)
    proxy = await CutProxy("127.0.0.1", server.port).start()
    try:
        yield server, proxy, seen
    finally:
        await proxy.close()
        await server.shutdown(timeout=scaled(2))


async def send_numbered(server: Server, room: str, proxy: CutProxy, cut_at: int, count: int = COUNT) -> None:
    """Emit 1..count to ``room``, cutting the client's TCP connection after ``cut_at`` (and in the middle of
    a burst, so that some packets are lost in flight, some are emitted while it is away, some after)."""
    for i in range(1, count + 1):
        server.to(room).emit("n", i)
        if i == cut_at:
            assert proxy.cut() >= 1
        if i % 25 == 0:
            await asyncio.sleep(0.002)


@pytest.mark.parametrize(
    "transports", [["websocket"], ["polling", "websocket"]], ids=["websocket", "upgrade"]
)
async def test_official_client_recovers_everything_after_a_cut(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]], transports: list[str]
) -> None:
    server, proxy, seen = served
    client = await NodeClient(
        f"http://127.0.0.1:{proxy.port}", count=COUNT, room="r", transports=transports
    ).start()
    try:
        first = await client.wait_step("connect")
        await client.wait_step("joined")
        if transports != ["websocket"]:
            await wait_until(
                lambda: all(c.ws is not None for c in server.clients.values()), what="the upgrade"
            )
        await send_numbered(server, "r", proxy, cut_at=300)
        done = await client.wait_step("done", timeout=30)
    finally:
        await client.close()
    missing, duplicates = gaps_and_duplicates(done["received"], COUNT)
    assert (missing, duplicates) == ([], []), f"missing {missing[:20]}..., duplicates {duplicates[:20]}..."
    assert done["received"] == list(range(1, COUNT + 1))  # in order, too
    assert done["recovered"] is True and done["id"] == first["id"]
    assert done["offsets"] == COUNT  # every message carried its offset
    assert first["recovered"] is False and client.steps("connect")[1]["recovered"] is True
    assert client.steps("disconnect")[0]["reason"] in ("transport close", "transport error")
    # skip_connect_handler (default): the connect route ran for the first connect only
    assert seen == [(first["id"], False)]
    stats = server.recovery.log.stats() if server.recovery else {}
    assert stats["recovered"] == 1 and stats["replayed"] > 0
    from tether.metrics import render

    metrics = render([server.extensions["metrics"].snapshot()]).decode()
    assert (
        'tether_recovery{what="recovered"} 1.0' in metrics and 'tether_recovery{what="persisted"}' in metrics
    )


async def session_kept(server: Server) -> None:
    await wait_until(lambda: bool(server.recovery and server.recovery.log.sessions), what="the session kept")


async def raw_connect(
    server: Server | CutProxy, auth: Any = None
) -> tuple[Any, dict[str, Any], list[list[Any]]]:
    """A Socket.IO client by hand: the WebSocket, the CONNECT reply's data, and the events sent before it."""
    ws = await within(
        connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket", ping_interval=None)
    )
    opened = await within(ws.recv())
    assert opened.startswith("0")
    await ws.send("40" + (orjson.dumps(auth).decode() if auth is not None else ""))
    before: list[list[Any]] = []
    while True:
        message = await within(ws.recv())
        if message.startswith("42"):
            before.append(orjson.loads(message[2:]))
            continue
        assert message.startswith(("40", "44")), message
        return ws, orjson.loads(message[2:]), before


async def call(ws: Any, event: str, *args: Any, ack_id: int = 1) -> tuple[Any, list[list[Any]]]:
    """Emit with an ack and return the ack's first argument, with the events that came before it."""
    await ws.send(f"42{ack_id}" + orjson.dumps([event, *args]).decode())
    events = []
    while True:
        message = await within(ws.recv())
        if message.startswith(f"43{ack_id}"):
            return orjson.loads(message[2 + len(str(ack_id)) :])[0], events
        if message.startswith("42"):
            events.append(orjson.loads(message[2:]))


async def test_connect_reply_carries_pid_and_events_carry_offsets(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]],
) -> None:
    server, _proxy, _seen = served
    ws, reply, _ = await raw_connect(server)
    assert set(reply) == {"sid", "pid"} and len(reply["pid"]) == 30
    await call(ws, "join", "r")
    server.to("r").emit("n", 1)
    server.get_socket(reply["sid"]).emit("direct", "x")  # type: ignore[union-attr]
    _me, events = await call(ws, "whoami", ack_id=2)
    (ev1, off1), (ev2, off2) = [(e[0], e[-1]) for e in events]
    assert (ev1, ev2) == ("n", "direct") and int(off2) == int(off1) + 1
    await ws.close()


async def test_recovered_socket_keeps_sid_rooms_data_and_gets_missed_packets_first(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]],
) -> None:
    server, proxy, _seen = served
    ws, reply, _ = await raw_connect(proxy)
    await call(ws, "join", "r")
    server.to("r").emit("n", 1)
    _me, events = await call(ws, "whoami", ack_id=2)
    offset = events[-1][-1]
    proxy.cut()
    await wait_until(lambda: not server.clients, what="the server to see the cut")
    for i in range(2, 5):
        server.to("r").emit("n", i)
    server.emit("everyone", "hi")
    server.to("other").emit("n", 99)  # not for this socket
    ws2, reply2, before = await raw_connect(proxy, {"pid": reply["pid"], "offset": offset})
    assert reply2 == reply
    assert [e[:2] for e in before] == [["n", 2], ["n", 3], ["n", 4], ["everyone", "hi"]]
    me, _ = await call(ws2, "whoami")
    assert me == {
        "sid": reply["sid"],
        "rooms": sorted([reply["sid"], "r"]),
        "data": {"joined": "r"},
        "recovered": True,
    }
    await ws2.close()


async def test_outside_the_window_the_client_connects_as_new() -> None:
    seen: list[tuple[str, bool]] = []
    server = await start(seen, max_disconnection_duration=0.5)
    try:
        ws, reply, _ = await raw_connect(server)
        await call(ws, "join", "r")
        await ws.close()
        await wait_until(
            lambda: bool(server.recovery and server.recovery.log.sessions), what="the session kept"
        )
        await asyncio.sleep(0.6)
        ws2, reply2, before = await raw_connect(server, {"pid": reply["pid"], "offset": "0"})
        assert reply2["sid"] != reply["sid"] and reply2["pid"] != reply["pid"] and before == []
        me, _ = await call(ws2, "whoami")
        assert me["recovered"] is False and me["rooms"] == [reply2["sid"]]
        assert [r for _sid, r in seen] == [False, False]
        await ws2.close()
    finally:
        await server.shutdown(timeout=scaled(2))


async def test_connect_handler_sees_recovered_when_not_skipped() -> None:
    seen: list[tuple[str, bool]] = []
    server = await start(seen, skip_connect_handler=False)
    try:
        ws, reply, _ = await raw_connect(server)
        await ws.close()
        await wait_until(
            lambda: bool(server.recovery and server.recovery.log.sessions), what="the session kept"
        )
        ws2, reply2, _ = await raw_connect(server, {"pid": reply["pid"], "offset": "0"})
        assert reply2["sid"] == reply["sid"]
        assert seen == [(reply["sid"], False), (reply["sid"], True)]
        await ws2.close()
        # The connect handler may still refuse a recovered socket.
        await wait_until(
            lambda: bool(server.recovery and server.recovery.log.sessions), what="the session kept"
        )
        ws3, reply3, _ = await raw_connect(
            server, {"pid": reply["pid"], "offset": "0", "refuse_recovered": True}
        )
        assert reply3["message"] == "no recovery for you"
        await ws3.close()
    finally:
        await server.shutdown(timeout=scaled(2))


async def test_client_back_before_the_server_saw_the_cut_takes_its_socket_over(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]],
) -> None:
    """A half-open connection (the server would notice at the next ping timeout): the pid proves ownership."""
    server, _proxy, _seen = served
    ws, reply, _ = await raw_connect(server)
    await call(ws, "join", "r")
    server.to("r").emit("n", 1)
    ws2, reply2, before = await raw_connect(server, {"pid": reply["pid"], "offset": "0"})
    assert reply2 == reply and [e[:2] for e in before] == [["n", 1]]
    await within(ws.wait_closed())
    assert len(server.clients) == 1
    await ws2.close()


async def test_a_client_closing_on_purpose_is_not_kept(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]],
) -> None:
    server, _proxy, _seen = served
    ws, reply, _ = await raw_connect(server)
    await ws.send("41")  # DISCONNECT: "client namespace disconnect" is not a reason to keep anything
    await wait_until(lambda: not server.get_socket(reply["sid"]), what="the disconnect")
    await ws.close()
    await wait_until(lambda: not server.clients, what="the close")
    assert server.recovery is not None and not server.recovery.log.sessions


async def test_forged_pids_and_offsets_learn_nothing(
    served: tuple[Server, CutProxy, list[tuple[str, bool]]],
) -> None:
    server, _proxy, _seen = served
    ws, reply, _ = await raw_connect(server)
    await call(ws, "join", "r")
    await ws.close()
    await session_kept(server)
    forged = [
        {"pid": "0" * 30, "offset": "0"},
        {"pid": reply["pid"][:-1] + "x", "offset": "0"},
        {"pid": ["x"], "offset": {"a": 1}},
        {"pid": "x" * 100_000, "offset": "1" * 100_000},
    ]
    for auth in forged:
        wsf, replyf, before = await raw_connect(server, auth)
        assert replyf["sid"] != reply["sid"] and before == []
        me, _ = await call(wsf, "whoami")
        assert me["recovered"] is False and me["rooms"] == [replyf["sid"]] and me["data"] == {}
        await wsf.close()
    # The real session was not touched by the forgeries; a forged offset with the real pid spends it.
    assert server.recovery is not None and reply["pid"] in server.recovery.log.sessions
    wsb, replyb, _ = await raw_connect(server, {"pid": reply["pid"], "offset": "999999"})
    assert replyb["sid"] != reply["sid"] and reply["pid"] not in server.recovery.log.sessions
    await wsb.close()


async def test_sessions_keep_their_meaning() -> None:
    """A recovered socket keeps its user and its session's deadline; an ended or expired one is never back."""
    from tether.sessions import get_manager, issue_token

    config = make_config(
        recovery={"max_disconnection_duration": 120.0},
        session={"enabled": True, "secret": "s" * 32, "idle_timeout": 60.0},
    )
    server = await run_server(config, recovery_router([]))
    try:
        sessions = get_manager(server)
        token = issue_token("alice", "sess-1", secret="s" * 32)
        ws, reply, _ = await raw_connect(server, {"token": token})
        session = sessions.get("sess-1")
        assert session is not None
        deadline = session.deadline
        await ws.close()
        await session_kept(server)
        ws2, reply2, _ = await raw_connect(server, {"token": token, "pid": reply["pid"], "offset": "0"})
        assert reply2["sid"] == reply["sid"]
        sock = server.get_socket(reply["sid"])
        assert sock is not None and sock.user_id == "alice" and sock.session_id == "sess-1"
        assert sock.rooms >= {"user:alice", "session:sess-1"}
        assert session.deadline == deadline  # coming back is not activity: the idle deadline holds
        await ws2.close()
        # Logged out while away: the session is not recovered (and the token no longer connects).
        await session_kept(server)
        sessions.end("sess-1", "logout")
        ws3, reply3, before = await raw_connect(server, {"token": token, "pid": reply["pid"], "offset": "0"})
        assert "sid" not in reply3 and before == []
        await ws3.close()
    finally:
        await server.shutdown(timeout=scaled(2))


async def test_slow_consumer_cut_is_recovered() -> None:
    """The client stops reading; the server's send buffer passes its mark and it cuts the client (slow
    consumer, what it wrote is lost); the client comes back with everything from its last offset."""
    seen: list[tuple[str, bool]] = []
    config = make_config(
        recovery={"max_disconnection_duration": 120.0, "max_session_bytes": 64_000_000},
        limits={"send_buffer_bytes": 32_768, "slow_consumer_policy": "disconnect"},
    )
    server = await run_server(config, recovery_router(seen))
    proxy = await CutProxy("127.0.0.1", server.port).start()
    client = await NodeClient(f"http://127.0.0.1:{proxy.port}", count=10**9, room="r").start()
    pad = "x" * 16_000
    n = 0

    def send(count: int) -> None:
        nonlocal n
        for _ in range(count):
            n += 1
            server.to("r").emit("n", n, pad)

    try:
        await client.wait_step("joined")
        send(100)
        await asyncio.sleep(0.2)
        proxy.stall()
        for _ in range(200):  # at most 64 MB: the kernel's buffers fill first, then ours (32 KiB)
            send(20)
            await asyncio.sleep(0.005)
            if server.state.slow_consumers:
                break
        await wait_until(lambda: server.state.slow_consumers >= 1, what="the slow consumer")
        await wait_until(lambda: not server.clients, what="the slow-consumer cut")
        send(100)  # while the client is away
        proxy.resume()
        await client.wait_step("connect", 2, timeout=10)
        send(100)
        server.to("r").emit("end")
        done = await client.wait_step("done", timeout=30)
    finally:
        await client.close()
        await proxy.close()
        await server.shutdown(timeout=scaled(2))
    assert server.state.disconnects.get("slow consumer") == 1
    missing, duplicates = gaps_and_duplicates(done["received"], n)
    assert (missing, duplicates) == ([], [])
    assert done["received"] == list(range(1, n + 1)) and done["recovered"] is True and done["why"] == "end"
    assert server.recovery is not None and server.recovery.log.counters["recovered"] == 1
