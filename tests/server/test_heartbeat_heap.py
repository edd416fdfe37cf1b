"""The heartbeat heap on its own (no loop, no sockets): who is visited when, and what it leaves behind."""

from __future__ import annotations

from typing import Any

from tether.protocol.connection import Connection, State, Timer, Transport
from tether.protocol.parsers import SocketIOParser
from tether.server.heartbeat import Heartbeat


class FakeClient:
    """What the heartbeat touches of a Client: its connection and its box."""

    def __init__(self, sid: str) -> None:
        self.conn = Connection(
            sid, SocketIOParser(), Transport.WEBSOCKET, now=0.0, ping_interval=25.0, ping_timeout=20.0
        )
        self.hb_box: list[Any] | None = None


def connected(sid: str) -> Any:
    client = FakeClient(sid)
    # Past the Socket.IO connect: no connect deadline left, only the heartbeat's.
    client.conn._connect_deadline = 0.0
    return client


def test_one_ping_per_interval_and_a_pong_deadline_that_does_nothing() -> None:
    hb = Heartbeat()
    clients = [connected(f"s{i}") for i in range(3)]
    for c in clients:
        hb.schedule(c)
    seen: list[tuple[str, Timer]] = []

    def act(client: Any, action: Timer) -> None:
        seen.append((client.conn.sid, action))

    assert hb.run(24.9, act) == 0
    assert hb.run(25.0, act) == 3  # each due for its first ping
    assert seen == [(c.conn.sid, Timer.PING) for c in clients]
    for c in clients:
        c.conn.receive_pong()
    seen.clear()
    assert hb.run(45.0, act) == 3  # the pong deadlines surface: answered, so nothing to do
    assert seen == []
    assert hb.run(50.0, act) == 3  # the next pings
    assert [a for _, a in seen] == [Timer.PING] * 3
    assert len(hb) == 3  # one live entry each, nothing piling up


def test_unanswered_ping_times_out_once() -> None:
    hb = Heartbeat()
    c = connected("s")
    hb.schedule(c)
    seen: list[Timer] = []

    def act(client: Any, action: Timer) -> None:
        seen.append(action)
        if action is Timer.TIMEOUT:
            client.conn.close("ping timeout")
            Heartbeat.cancel(client)  # what Server.close_client does

    hb.run(25.0, act)
    assert hb.run(44.99, act) == 0
    hb.run(45.0, act)
    assert seen == [Timer.PING, Timer.TIMEOUT]
    assert c.hb_box is None
    assert len(hb) == 0
    assert hb.run(1000.0, act) == 0


def test_closed_or_cancelled_clients_are_dropped_and_released() -> None:
    hb = Heartbeat()
    a, b = connected("a"), connected("b")
    hb.schedule(a)
    hb.schedule(b)
    box_b = b.hb_box
    Heartbeat.cancel(a)
    b.conn.state = State.CLOSED  # closed without cancel: the entry still lets go of it
    assert hb.run(25.0, lambda c, t: None) == 0
    assert len(hb) == 0
    assert box_b == [None] and b.hb_box is None


def test_act_that_reschedules_leaves_one_live_entry() -> None:
    hb = Heartbeat()
    c = connected("c")
    hb.schedule(c)

    def act(client: Any, action: Timer) -> None:
        hb.schedule(client)  # e.g. a handler that resets timers while the heartbeat runs

    hb.run(25.0, act)
    live = [entry for entry in hb._heap if entry[2][0] is not None]
    assert len(live) == 1 and live[0][2] is c.hb_box
