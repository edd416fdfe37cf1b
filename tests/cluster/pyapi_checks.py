"""One body of checks for python-socketio's server API across processes, run on two workers of one host
(tests/manager/test_sid_api_workers.py) and on two nodes on Redis (tests/cluster/test_sid_api_nodes.py).

``a`` and ``b`` are clients of two different processes; every call is made in ``a``'s process about
``b``'s socket, through the ``api`` route of tests/apps/pyapi_routes.py.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import wait_until
from tests.redis_fixtures import Client


async def api(c: Client, op: str, **kwargs: Any) -> Any:
    return await c.call("api", op, kwargs)


def got(c: Client, event: str) -> list[Any]:
    return c.events.get(event, [])


async def check_calls_about_a_remote_socket(a: Client, b: Client, c: Client) -> None:
    """``a`` and ``c`` live in one process, ``b`` in another."""
    assert (await a.call("whoami"))["pid"] != (await b.call("whoami"))["pid"]
    # enter_room for a sid elsewhere; the emit that follows reaches it (one ordered channel).
    await api(a, "enter_room", sid=b.sid, room="remote-room")
    await api(a, "emit", event="in-room", data={"n": 1}, to="remote-room")
    await wait_until(lambda: got(b, "in-room"), what="the emit after a remote enter_room")
    assert got(b, "in-room") == [{"n": 1}]
    assert await api(a, "rooms", sid=b.sid) == sorted([b.sid, "remote-room"])
    await api(a, "leave_room", sid=b.sid, room="remote-room")
    assert await api(a, "rooms", sid=b.sid) == [b.sid]

    # To a sid elsewhere, skip_sid, send.
    await api(a, "emit", event="direct", data=[1, 2], to=b.sid)
    await api(a, "send", data="msg", to=b.sid)
    await api(a, "emit", event="everyone-but-b", data=1, skip_sid=b.sid)
    await wait_until(
        lambda: got(b, "direct") and got(b, "message") and got(c, "everyone-but-b"), what="emits"
    )
    assert got(b, "direct") == [[1, 2]] and got(b, "message") == ["msg"] and not got(b, "everyone-but-b")

    # Sessions of a socket elsewhere.
    await api(a, "save_session", sid=b.sid, session={"user": "bob", "n": 2})
    assert await api(a, "get_session", sid=b.sid) == {"user": "bob", "n": 2}

    # call() and an emit with a callback, answered by a client elsewhere.
    assert await api(a, "call", event="question", data="q", to=b.sid, timeout=10) == "ack-question"
    await a.call("callback_to", b.sid)
    await wait_until(lambda: got(a, "callback_answer"), what="the callback of an emit to a remote sid")
    assert got(a, "callback_answer") == [["ack-question"]]

    # Acks from many, counting on every process; count(); close_room everywhere.
    for x in (a, b, c):
        await api(a, "enter_room", sid=x.sid, room="all-three")
    assert await api(a, "count", room="all-three") == 3
    assert await api(b, "count", room="all-three") == 3
    answers = await a.call("ask_room", "all-three", 10)
    # socket.to() would leave the sender out; server.to() does not: three answers, from two processes.
    assert answers == {"answers": ["ack-question"] * 3, "expected": 3, "missing": 0, "timed_out": False}
    await api(a, "close_room", room="all-three")
    assert await api(a, "count", room="all-three") == 0

    # disconnect() a socket elsewhere: the client sees the server's disconnect.
    await api(a, "disconnect", sid=b.sid)
    await wait_until(lambda: not b.sio.connected, what="the remote disconnect")
