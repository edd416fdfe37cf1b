"""The heartbeat's slots on their own (no loop, no sockets): who is visited when, what it leaves behind."""

from __future__ import annotations

import math
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
    live = [box for boxes in hb._slots.values() for box in boxes if box[0] is not None]
    assert len(live) == 1 and live[0] is c.hb_box


class CountingConnection(Connection):
    """A Connection that fails the test past ``limit`` visits instead of letting a loop spin forever."""

    limit = 10
    visits = 0

    def check_timers(self, now: float) -> Timer:
        self.visits += 1
        assert self.visits <= self.limit, "visited again and again in one run"
        return super().check_timers(now)


def test_a_deadline_a_rounding_error_past_its_slot_goes_to_the_next_slot() -> None:
    # ceil(d / 0.1) * 0.1 == 0.9 < d for this d: its slot is due at 0.9, when it is not due yet.
    d = math.nextafter(0.9, math.inf)
    assert math.ceil(d / 0.1) * 0.1 < d
    hb = Heartbeat(resolution=0.1)
    c = FakeClient("s")
    c.conn = CountingConnection(
        "s", SocketIOParser(), Transport.WEBSOCKET, now=0.0, ping_interval=d, ping_timeout=1
    )
    c.conn._connect_deadline = 0.0
    hb.schedule(c)
    seen: list[Timer] = []
    assert hb.run(0.9, lambda client, t: seen.append(t)) == 1  # visited once, nothing to do yet
    assert seen == [] and len(hb) == 1
    assert hb.run(1.0, lambda client, t: seen.append(t)) == 1
    assert seen == [Timer.PING]


def test_a_deadline_is_visited_at_its_slot_time_on_the_grid() -> None:
    # Slot k holds the deadlines in ((k - 1) * resolution, k * resolution]: the timer wakes on the grid.
    hb = Heartbeat(resolution=0.5)
    c = FakeClient("s")
    c.conn = Connection(
        "s", SocketIOParser(), Transport.WEBSOCKET, now=0.1, ping_interval=25.0, ping_timeout=20.0
    )
    c.conn._connect_deadline = 0.0
    hb.schedule(c)  # first ping due at 25.1: slot time 25.5
    assert hb.wake_time(0.0) == 0.5  # nothing due before TICK: wake after TICK
    assert hb.wake_time(25.2) == 25.5
    assert hb.run(25.49, lambda client, t: None) == 0
    assert hb.run(25.5, lambda client, t: None) == 1


def test_many_clients_each_visited_once_per_deadline() -> None:
    hb = Heartbeat(resolution=0.5)
    clients = []
    for i in range(2000):
        c = FakeClient(f"s{i}")
        # Handshakes spread over 10 s: deadlines in every slot, several per slot.
        c.conn = Connection(
            c.conn.sid,
            SocketIOParser(),
            Transport.WEBSOCKET,
            now=i * 0.005,
            ping_interval=25.0,
            ping_timeout=20.0,
        )
        c.conn._connect_deadline = 0.0
        hb.schedule(c)
        clients.append(c)
    pinged: list[str] = []

    def act(client: Any, action: Timer) -> None:
        assert action is Timer.PING
        pinged.append(client.conn.sid)
        client.conn.receive_pong()

    t = 0.0
    for _ in range(200):  # bounded: 36 s of 0.5 s slots is 72 wake-ups
        hb.run(t, act)
        t = hb.wake_time(t)  # as the timer would wake, up to past the last first ping (35 s)
        if t > 36.0:
            break
    assert sorted(pinged) == sorted(c.conn.sid for c in clients)  # each pinged once
    assert len(hb) == 2000  # one entry each (the pong deadline's), nothing piling up
