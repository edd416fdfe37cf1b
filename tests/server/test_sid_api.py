"""python-socketio's server API on one worker: every call of ``tether.server.sid_api`` through a real server
and real python-socketio clients; acks from many; ``def`` handlers in threads; the blocked-loop warning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import socketio
import websockets

import tether
from tests.apps.pyapi_routes import install
from tests.helpers import scaled, wait_until, within
from tests.redis_fixtures import Client, clients
from tether import AckTimeout, Answers, Config, ConnectionClosed, Router, Server, TetherError, run_server
from tether.server import sid_api
from tether.threads import loop_of_thread

pytestmark = pytest.mark.asyncio(loop_scope="module")


ONE_ARG_DISCONNECTED: list[str] = []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    router = Router()
    install(router)

    @router.on("hog")
    async def hog(socket: Any, seconds: float) -> str:
        time.sleep(seconds)  # blocks the loop: the block warning must name this handler
        return "hogged"

    @router.on("connect", namespace="/hogging")
    async def hogging_connect(socket: Any, auth: Any) -> None:
        time.sleep(0.3)  # a connect handler that blocks the loop is named too

    @router.on("connect", namespace="/by-sid")
    async def by_sid_connect(socket: Any, auth: Any) -> None:
        # Written as for python-socketio: the sid alone, before the socket is connected.
        server = socket.server
        await server.save_session(socket.sid, {"name": "ann"}, namespace="/by-sid")
        async with server.session(socket.sid, namespace="/by-sid") as session:
            session["visits"] = 1
        await server.enter_room(socket.sid, "lobby", namespace="/by-sid")

    @router.on("connect", namespace="/refused")
    async def refused_connect(socket: Any, auth: Any) -> None:
        # A connect route ported from python-socketio: its own exception, with data.
        raise socketio.exceptions.ConnectionRefusedError("authentication failed", {"code": 7})

    @router.on("whoami", namespace="/by-sid")
    async def by_sid_whoami(socket: Any) -> Any:
        server = socket.server
        return {
            "session": await server.get_session(socket.sid, "/by-sid"),
            "rooms": server.rooms(socket.sid, "/by-sid"),
        }

    @router.on("connect", namespace="/one-arg")
    async def one_arg_connect(socket: Any) -> None:  # python-socketio's connect(sid, environ): no auth
        socket.data["connected"] = True

    @router.on("disconnect", namespace="/one-arg")
    def one_arg_disconnect(socket: Any) -> None:  # python-socketio's disconnect(sid): no reason; sync
        ONE_ARG_DISCONNECTED.append(socket.sid)

    @router.on("data", namespace="/one-arg")
    async def one_arg_data(socket: Any) -> Any:
        return socket.data

    config = Config().replace(server={"port": 0}, handlers={"threads": 4, "block_warning": 0.2})
    srv = await run_server(config, router)
    yield srv
    await srv.shutdown(timeout=1)


@contextlib.asynccontextmanager
async def silent_client(server: Server) -> AsyncIterator[str]:
    """A raw Socket.IO client over a WebSocket that connects to ``/`` and never answers anything."""
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket") as ws:
        assert str(await within(ws.recv())).startswith("0{")
        await ws.send("40")
        opened = str(await within(ws.recv()))
        assert opened.startswith("40{")
        yield json.loads(opened[2:])["sid"]


def got(c: Client, event: str) -> list[Any]:
    return c.events.get(event, [])


async def api(c: Client, op: str, **kwargs: Any) -> Any:
    return await c.call("api", op, kwargs)


async def test_emit_with_python_socketio_arguments(server: Server) -> None:
    async with clients(server.url, server.url, server.url) as (a, b, c):
        await api(a, "emit", event="to-one", data={"x": 1}, to=b.sid)
        await api(a, "emit", event="room-alias", data="r", room=c.sid)
        await api(a, "emit", event="several", data=[1, 2], to=[a.sid, b.sid])
        await api(a, "emit", event="all-but", data="hi", skip_sid=a.sid)
        await wait_until(lambda: got(b, "all-but") and got(c, "all-but"), what="the emits")
        assert got(b, "to-one") == [{"x": 1}] and not got(a, "to-one") and not got(c, "to-one")
        assert got(c, "room-alias") == ["r"]
        assert got(a, "several") == got(b, "several") == [[1, 2]] and not got(c, "several")
        assert not got(a, "all-but")
        # A tuple is several arguments (python-socketio); several positional ones too (Tether).
        server.emit("tuple", (1, "two"), to=c.sid)
        server.emit("positional", 1, "two", to=c.sid)
        server.emit("nothing", to=c.sid)
        await server.send("a message", to=c.sid)  # awaiting is allowed
        await wait_until(lambda: got(c, "message"), what="send")
        assert got(c, "tuple") == [[1, "two"]] and got(c, "positional") == [[1, "two"]]
        assert got(c, "nothing") == [[]] and got(c, "message") == ["a message"]
        with pytest.raises(TypeError):
            server.emit("both", 1, data=2)


async def test_call_and_callback(server: Server) -> None:
    async with clients(server.url, server.url) as (a, b):
        assert await server.call("question", "q1", to=b.sid, timeout=scaled(5)) == "ack-question"
        assert await server.call("question", "q2", sid=b.sid) == "ack-question"
        await a.call("callback_to", b.sid)
        await wait_until(lambda: got(a, "callback_answer"), what="the callback")
        assert got(a, "callback_answer") == [["ack-question"]]
        with pytest.raises(ConnectionClosed):
            await server.call("question", to="no-such-sid", timeout=scaled(2))
        with pytest.raises(ValueError):
            server.call("question")
        with pytest.raises(ValueError, match="one sid"):
            server.emit("question", to=["x", "y"], callback=print)

    # A client that never answers: AckTimeout (a TimeoutError, as python-socketio's).
    async with silent_client(server) as sid:
        with pytest.raises(AckTimeout):
            await server.call("question", to=sid, timeout=0.3)
        with pytest.raises(TimeoutError):
            await server.call("question", to=sid, timeout=0.3)


async def test_rooms_by_sid(server: Server) -> None:
    async with clients(server.url, server.url) as (a, b):
        assert await server.enter_room(b.sid, "r1") is None  # awaitable
        server.enter_room(b.sid, "r2")
        assert server.rooms(b.sid) == sorted([b.sid, "r1", "r2"])  # a list at once for a local sid
        assert await server.rooms(b.sid) == sorted([b.sid, "r1", "r2"])  # and awaitable
        await api(a, "emit", event="in-r1", data=1, to="r1")
        await wait_until(lambda: got(b, "in-r1"), what="room emit")
        await server.leave_room(b.sid, "r1")
        assert "r1" not in server.rooms(b.sid)
        server.enter_room(a.sid, "r2")
        assert await server.count("r2") == 2
        await server.close_room("r2")
        assert await server.count("r2") == 0 and await server.count() >= 2
        assert await server.rooms("nobody") == []
        await server.disconnect(b.sid)
        await wait_until(lambda: not b.sio.connected, what="the disconnect")


async def test_socket_join_leave_disconnect_may_be_awaited(server: Server) -> None:
    async with clients(server.url) as (a,):
        sock = server.get_socket(a.sid)
        assert sock is not None
        await sock.join("x")
        await sock.leave("x")
        sock.join(["y", "z"])
        assert {"y", "z"} <= sock.rooms
        await sock.disconnect()
        await wait_until(lambda: not a.sio.connected, what="disconnect")


async def test_sessions(server: Server) -> None:
    async with clients(server.url) as (a,):
        session = await server.get_session(a.sid)
        assert session == {}
        await server.save_session(a.sid, {"user": "ann"})
        async with server.session(a.sid) as s:
            s["visits"] = 1
        assert await server.get_session(a.sid) == {"user": "ann", "visits": 1}
        assert server.get_socket(a.sid).data == {"user": "ann", "visits": 1}  # type: ignore[union-attr]
        with pytest.raises(KeyError):
            await server.get_session("no-such-sid")


async def test_sessions_and_rooms_by_sid_in_the_connect_handler(server: Server) -> None:
    async with clients((server.url, "/by-sid")) as (a,):
        answer = await a.sio.call("whoami", namespace="/by-sid", timeout=scaled(5))
        assert answer == {"session": {"name": "ann", "visits": 1}, "rooms": sorted([a.sid, "lobby"])}
    assert not tether.server.sid_api.CONNECTING  # nothing is kept once the socket connected


async def test_connect_and_disconnect_handlers_that_take_the_socket_alone(server: Server) -> None:
    async with clients((server.url, "/one-arg")) as (a,):
        assert await a.sio.call("data", namespace="/one-arg", timeout=scaled(5)) == {"connected": True}
        sid = a.sid
    await wait_until(lambda: sid in ONE_ARG_DISCONNECTED, what="the one-argument disconnect handler")


async def test_current_server_from_any_module(server: Server) -> None:
    assert tether.current_server() is server
    other = await run_server(Config().replace(server={"port": 0}), Router())
    assert tether.current_server() is other  # the latest started
    await other.shutdown(timeout=1)
    assert tether.current_server() is server


async def test_current_server_from_a_thread_of_the_app(server: Server) -> None:
    # Flask-SocketIO's habit: a sync view (Flask through asgiref, Django, FastAPI's def endpoints run in
    # threads Tether does not own) pushes with `socketio.emit(...)`; here `tether.current_server().emit`.
    # The server's objects belong to its loop: current_server() in such a thread binds it to the loop,
    # so its calls run there (picows refused the send from that thread before).
    def view(sid: str) -> list[Any]:
        sio = tether.current_server()
        sio.emit("pushed", "by sid", to=sid)
        sio.to(sid).emit("pushed", "by room")
        sio.enter_room(sid, "viewed")
        return sorted(sio.rooms(sid))

    async with clients(server.url) as (a,):
        rooms = await within(asyncio.to_thread(view, a.sid))
        assert "viewed" in rooms
        await wait_until(lambda: len(a.events["pushed"]) == 2)
        assert a.events["pushed"] == ["by sid", "by room"]
    # On the loop's own thread nothing is bound: its calls stay direct.
    assert tether.current_server() is server and loop_of_thread() is None


async def test_current_server_before_any_started_says_where_to_call_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `sio = tether.current_server()` at the top of a route file (python-socketio's habit) runs before
    # the server starts: the error names the two places that work.
    monkeypatch.setattr(sid_api, "_running", [])
    with pytest.raises(TetherError, match=r"inside a handler.*@websocket\.setup"):
        tether.current_server()


async def test_event_decorator_on_the_server(server: Server) -> None:
    # sio.event's name on the server too: a module that took `sio = tether.current_server()` registers live.
    sio = tether.current_server()

    @sio.event(namespace="/by-sid")
    async def shout(socket: Any, text: str) -> str:
        return text.upper()

    async with clients((server.url, "/by-sid")) as (a,):
        assert await a.sio.call("shout", "hi", namespace="/by-sid", timeout=scaled(5)) == "HI"


async def test_python_socketios_connection_refused_error_refuses(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    # The CONNECT_ERROR python-socketio sends for it (message, data); it used to be a handler failure:
    # an ERROR with a traceback and the generic "Connection rejected by server".
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    with caplog.at_level(logging.ERROR, logger="tether.server"):
        async with websockets.connect(url) as ws:
            assert str(await within(ws.recv())).startswith("0{")
            await ws.send("40/refused,")
            refused = str(await within(ws.recv()))
    assert refused.startswith("44/refused,")
    assert json.loads(refused[len("44/refused,") :]) == {
        "message": "authentication failed",
        "data": {"code": 7},
    }
    assert "refused_connect" not in caplog.text and "ConnectionRefusedError" not in caplog.text


async def test_transport_and_get_environ_by_sid(server: Server) -> None:
    # python-socketio's sio.transport(sid) and sio.get_environ(sid), for a socket of this process.
    async with clients((server.url, "/by-sid")) as (a,):
        assert server.transport(a.sid, namespace="/by-sid") == "websocket"
        environ = server.get_environ(a.sid, namespace="/by-sid")
        assert environ is not None
        assert environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"] == "/socket.io/"
        assert "EIO=4" in environ["QUERY_STRING"] and environ["REMOTE_ADDR"] == "127.0.0.1"
        assert environ["HTTP_HOST"].startswith("127.0.0.1:")
        # Not in this namespace, or no such sid here: None, as python-socketio's get_environ.
        assert server.transport(a.sid) is None and server.get_environ(a.sid) is None
        assert server.get_environ("no-such-sid") is None


async def test_background_tasks_and_sleep(server: Server) -> None:
    ran: list[str] = []

    async def job(tag: str) -> None:
        await server.sleep(0.01)
        ran.append(tag)

    def blocking(tag: str) -> None:
        time.sleep(0.01)
        ran.append(tag)

    task = server.start_background_task(job, "async")
    await within(task)
    await within(server.start_background_task(blocking, "thread"))
    assert ran == ["async", "thread"]

    forever = server.start_background_task(asyncio.sleep, 3600)
    server.cancel_background_tasks()  # what shutdown does first
    with pytest.raises(asyncio.CancelledError):
        await forever


async def test_a_def_background_task_may_emit_and_ask(server: Server) -> None:
    # python-socketio's habit: a plain function started with start_background_task emits every so often.
    # It runs in a thread, and Tether's objects belong to the loop: its calls must go to the loop as a
    # def handler's do (picows refused a send from that thread, and the task died).
    def ticker(sid: str, count: int) -> list[Any]:
        for i in range(count):
            started = time.monotonic()
            server.sleep(0.05)  # Flask-SocketIO's socketio.sleep in a def task: this thread sleeps
            assert time.monotonic() - started >= 0.05
            server.emit("tick", i, to=sid)
            server.to(sid).emit("tock", i)
        server.enter_room(sid, "ticked")
        answer = server.call("question", "from a task", to=sid, timeout=scaled(5))
        counted = server.count("ticked")  # an awaitable on the loop: a concurrent Future here, as call's
        return [answer.result(scaled(5)), sorted(server.rooms(sid)), counted.result(scaled(5))]

    async with clients(server.url) as (a,):
        answer, rooms, counted = await within(server.start_background_task(ticker, a.sid, 3))
        assert answer == "ack-question" and "ticked" in rooms and counted == 1
        await wait_until(lambda: len(a.events["tock"]) == 3)
        assert a.events["tick"] == [0, 1, 2] and a.events["tock"] == [0, 1, 2]


async def test_acks_from_many_count_the_silent(server: Server) -> None:
    async with clients(server.url, server.url) as (a, b), silent_client(server) as silent:
        for sid in (a.sid, b.sid, silent):
            server.enter_room(sid, "asked")
        answers = await a.call("ask_room", "asked", 0.5)
        assert answers == {"answers": ["ack-question"] * 2, "expected": 3, "missing": 1, "timed_out": True}
        # Everyone answers: complete before the timeout; socket.to() leaves the sender out.
        server.leave_room(silent, "asked")
        started = time.monotonic()
        full = await server.to("asked").timeout(scaled(10)).emit("question", 1)
        assert isinstance(full, Answers) and list(full) == ["ack-question"] * 2 and full.missing == 0
        assert time.monotonic() - started < scaled(5)
        sock = server.get_socket(a.sid)
        assert sock is not None
        others = await sock.to("asked").timeout(scaled(5)).emit("question", 2)
        assert list(others) == ["ack-question"] and others.expected == 1
        assert (
            list(await server.to("asked").emit("question", 3, ack=True, timeout=scaled(5)))
            == ["ack-question"] * 2
        )
        assert list(await server.to("nobody-here").timeout(1).emit("question")) == []


async def test_a_blocking_def_handler_does_not_delay_another_clients_ack(server: Server) -> None:
    async with clients(server.url, server.url) as (a, b):
        blocked = asyncio.ensure_future(a.call("block", 2.5))
        await asyncio.sleep(0.2)  # the blocking handler is running in its thread now
        started = time.monotonic()
        assert await b.call("quick") == "quick"
        # On the loop it would have waited the ~2.3 s left of the sleep; 1.2 s leaves room for a busy host.
        assert time.monotonic() - started < 1.2
        assert not blocked.done()
        assert await within(blocked) == "slept"
        await wait_until(lambda: got(a, "blocked"), what="the emit from the thread")
        assert got(a, "blocked") == [2.5]


async def test_an_async_handler_that_blocks_the_loop_is_named(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async with clients(server.url) as (a,):
        with caplog.at_level(logging.WARNING, logger="tether.handlers"):
            assert await a.call("hog", 0.3) == "hogged"
            assert await a.call("hog", 0.05) == "hogged"
        warnings = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "hog" in warnings[0] and "'hog'" in warnings[0] and "block_warning = 0.2s" in warnings[0]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tether.handlers"):
            async with clients((server.url, "/hogging")):
                pass
        assert "hogging_connect (event 'connect') blocked the event loop" in caplog.text


async def test_def_handlers_on_the_loop_with_threads_0() -> None:
    router = Router()
    install(router)
    config = Config().replace(server={"port": 0}, handlers={"threads": 0})
    srv = await run_server(config, router)
    try:
        assert srv.handler_pool is None
        async with clients(srv.url) as (a,):
            assert await a.call("block", 0.01) == "slept"
    finally:
        await srv.shutdown(timeout=1)
