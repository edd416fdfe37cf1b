"""The per-client Engine.IO state machine: feed bytes and the time, assert what comes out. No event loop."""

from __future__ import annotations

import base64

import orjson
import pytest

from tether import JsonParser, RawParser, SocketIOParser
from tether.errors import PayloadTooBig, RemoteProtocolError
from tether.protocol.connection import NOOP, PING, Connection, State, Timer, Transport
from tether.protocol.engineio import Binary, decode_payload
from tether.protocol.events import Connect, Disconnect, Event


def conn_for(
    transport: Transport = Transport.WEBSOCKET, parser: type = SocketIOParser, **kwargs: float | int
) -> Connection:
    options: dict[str, float | int] = {"ping_interval": 25.0, "ping_timeout": 20.0, "connect_timeout": 45.0}
    options.update(kwargs)
    return Connection("SID", parser(), transport, now=1000.0, **options)  # type: ignore[arg-type]


# -- handshake -----------------------------------------------------------------------------------------------


def test_open_packet() -> None:
    conn = conn_for(Transport.POLLING, ping_interval=0.5, ping_timeout=0.25, max_payload=5000)
    packet = conn.open_packet(upgrades=True)
    assert packet[:1] == b"0"
    assert orjson.loads(packet[1:]) == {
        "sid": "SID",
        "upgrades": ["websocket"],
        "pingInterval": 500,
        "pingTimeout": 250,
        "maxPayload": 5000,
    }
    assert orjson.loads(conn.open_packet(upgrades=False)[1:])["upgrades"] == []


# -- receiving one frame -------------------------------------------------------------------------------------


def test_receive_message_types() -> None:
    conn = conn_for()
    assert conn.receive_message('40{"token":"x"}') == [Connect("/", {"token": "x"})]
    assert conn.receive_message('42["a",1]') == [Event("/", "a", [1])]
    assert conn.receive_message("3") == []
    assert conn.receive_message("6") == []
    assert conn.state is State.OPEN
    assert conn.receive_message("1") == [Disconnect(None, "transport close")]
    assert (conn.state, conn.close_reason) == (State.CLOSED, "transport close")


def test_binary_frame_goes_to_the_parser() -> None:
    conn = conn_for()
    assert conn.receive_message('451-["up",{"_placeholder":true,"num":0}]') == []
    assert conn.receive_message(b"\x00\x01") == [Event("/", "up", [b"\x00\x01"])]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "empty Engine.IO packet"),
        ("2", "unexpected Engine.IO packet type '2' from client"),  # a client never pings in v4
        ("5", "unexpected Engine.IO packet type '5' from client"),
        ("0", "unexpected Engine.IO packet type '0' from client"),
        ("x", "unexpected Engine.IO packet type 'x' from client"),
        ("4", "empty Socket.IO packet"),
        ("49", "unknown Socket.IO packet type '9'"),
    ],
)
def test_receive_message_errors(message: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        conn_for().receive_message(message)
    assert str(info.value) == reason


def test_binary_frame_over_max_payload() -> None:
    conn = conn_for(max_payload=100)
    with pytest.raises(PayloadTooBig) as info:
        conn.receive_message(b"x" * 101)
    assert (info.value.size, info.value.max_size) == (101, 100)


def test_bare_endpoint_allows_client_pings() -> None:
    # Pages on /ws may keep their own heartbeat by sending "2"; the shell answers "3".
    assert conn_for(Transport.BARE).receive_message("2") == []


def test_json_and_raw_parsers_behind_the_connection() -> None:
    assert conn_for(parser=JsonParser).receive_message('4{"event":"e","data":1}') == [Event("/", "e", [1])]
    assert conn_for(parser=RawParser).receive_message("4hello") == [Event("/", "message", ["hello"])]
    assert conn_for(parser=RawParser).receive_message(b"\x00") == [Event("/", "message", [b"\x00"])]


# -- receiving a polling body --------------------------------------------------------------------------------


def test_receive_payload() -> None:
    conn = conn_for(Transport.POLLING)
    body = b'40\x1e42["a"]\x1e3\x1e6\x1e451-["b",{"_placeholder":true,"num":0}]\x1eb' + base64.b64encode(
        b"\xff"
    )
    assert conn.receive_payload(body) == [Connect("/", None), Event("/", "a", []), Event("/", "b", [b"\xff"])]


def test_receive_payload_close_stops_there() -> None:
    conn = conn_for(Transport.POLLING)
    events = conn.receive_payload(b'42["a"]\x1e1\x1e42["never"]')
    assert events == [Event("/", "a", []), Disconnect(None, "transport close")]
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"2", "unexpected Engine.IO packet PING in polling body"),
        (b"5", "unexpected Engine.IO packet UPGRADE in polling body"),
        (b'0{"sid":"x"}', "unexpected Engine.IO packet OPEN in polling body"),
        (b"4", "empty Socket.IO packet"),
        (b"", "empty Engine.IO packet"),
        (b"\xc3\x28", "polling payload is not valid UTF-8"),
    ],
)
def test_receive_payload_errors(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        conn_for(Transport.POLLING).receive_payload(body)
    assert str(info.value) == reason


def test_receive_payload_over_max_payload() -> None:
    conn = conn_for(Transport.POLLING, max_payload=64)
    with pytest.raises(PayloadTooBig):
        conn.receive_payload(b"4" + b"x" * 64)


# -- heartbeat and connect timeout ---------------------------------------------------------------------------


def test_ping_then_pong_keeps_the_session() -> None:
    conn = conn_for()
    conn.namespace_connected()
    assert conn.check_timers(1024.9) is Timer.NOTHING
    assert conn.check_timers(1025.0) is Timer.PING
    assert conn.check_timers(1030.0) is Timer.NOTHING  # ping sent once, not on every sweep
    conn.receive_message("3")
    assert conn.check_timers(1045.0) is Timer.NOTHING  # pong cleared the deadline
    assert conn.check_timers(1050.0) is Timer.PING
    conn.receive_message("3")
    assert conn.check_timers(1074.9) is Timer.NOTHING
    assert conn.check_timers(1075.0) is Timer.PING


def test_no_pong_times_out() -> None:
    conn = conn_for()
    conn.namespace_connected()
    assert conn.check_timers(1025.0) is Timer.PING
    assert conn.check_timers(1044.9) is Timer.NOTHING
    assert conn.check_timers(1045.0) is Timer.TIMEOUT
    assert conn.check_timers(2000.0) is Timer.TIMEOUT  # stays due until the shell closes it


def test_late_pong_after_second_ping_keeps_the_first_deadline() -> None:
    conn = conn_for(ping_interval=10.0, ping_timeout=15.0)
    conn.namespace_connected()
    assert conn.check_timers(1010.0) is Timer.PING  # pong due by 1025
    assert conn.check_timers(1020.0) is Timer.PING  # a second ping must not push the deadline to 1035
    assert conn.check_timers(1025.0) is Timer.TIMEOUT


def test_websocket_pong_frame_counts_as_pong() -> None:
    conn = conn_for(Transport.BARE, parser=JsonParser)
    assert conn.check_timers(1025.0) is Timer.PING
    conn.receive_pong()
    assert conn.check_timers(1045.0) is Timer.NOTHING


def test_polling_pong() -> None:
    conn = conn_for(Transport.POLLING)
    conn.namespace_connected()
    assert conn.check_timers(1025.0) is Timer.PING
    conn.receive_payload(b"3")
    assert conn.check_timers(1045.0) is Timer.NOTHING


def test_connect_timeout_until_a_namespace_is_joined() -> None:
    conn = conn_for(connect_timeout=5.0)
    assert conn.check_timers(1004.9) is Timer.NOTHING
    assert conn.check_timers(1005.0) is Timer.CONNECT_TIMEOUT
    conn.namespace_connected()
    assert conn.check_timers(1006.0) is Timer.NOTHING


def test_no_connect_timeout_without_connect_packets() -> None:
    # The json and raw parsers have no CONNECT: the client is connected to "/" when it opens.
    conn = conn_for(parser=JsonParser, connect_timeout=5.0)
    assert conn.check_timers(1010.0) is Timer.NOTHING


# -- upgrade -------------------------------------------------------------------------------------------------


def test_upgrade_probe_sequence() -> None:
    conn = conn_for(Transport.POLLING)
    conn.queue([b'42["before"]'])
    conn.begin_upgrade()
    assert conn.state is State.UPGRADING
    assert conn.transport is Transport.POLLING
    assert conn.receive_probe_message("2probe") == b"3probe"
    # a held GET is answered at once (with what is queued, else a noop) so that the client can send "5";
    # no noop is queued: it would go out on the WebSocket after "5"
    assert conn.take_payload() == b'42["before"]'
    assert conn.take_payload() == b"6"
    conn.queue([b'42["during"]'])  # still queued for polling until "5"
    assert conn.receive_probe_message("5") is None
    assert (conn.state, conn.transport) == (State.OPEN, Transport.WEBSOCKET)
    assert conn.take_queued() == [b'42["during"]']  # the shell flushes these on the WebSocket
    assert conn.take_queued() == []


def test_polls_during_an_upgrade_get_a_noop_at_once() -> None:
    # As engine.io: a GET that arrives after the probe's noop is answered, not held (it would wait for a
    # "5" that the client sends only when that GET has returned).
    conn = conn_for(Transport.POLLING)
    assert conn.take_payload() is None  # on polling, an empty queue holds the GET
    conn.begin_upgrade()
    assert conn.receive_probe_message("2probe") == b"3probe"
    assert conn.take_payload() == b"6"
    assert conn.take_payload() == b"6"
    conn.receive_probe_message("5")
    assert conn.take_payload() is None


def test_upgrade_refused_when_not_on_polling_or_twice() -> None:
    with pytest.raises(RemoteProtocolError, match="upgrade not possible in this state"):
        conn_for(Transport.WEBSOCKET).begin_upgrade()
    conn = conn_for(Transport.POLLING)
    conn.begin_upgrade()
    with pytest.raises(RemoteProtocolError, match="upgrade not possible in this state"):
        conn.begin_upgrade()


@pytest.mark.parametrize("message", ["3probe", "2", '42["x"]', "", "2probex"])
def test_upgrade_wrong_probe(message: str) -> None:
    conn = conn_for(Transport.POLLING)
    conn.begin_upgrade()
    with pytest.raises(RemoteProtocolError, match="during upgrade"):
        conn.receive_probe_message(message)


def test_probe_message_when_not_upgrading() -> None:
    with pytest.raises(RemoteProtocolError, match="not upgrading"):
        conn_for(Transport.POLLING).receive_probe_message("2probe")


def test_cancel_upgrade_stays_on_polling() -> None:
    conn = conn_for(Transport.POLLING)
    conn.begin_upgrade()
    conn.receive_probe_message("2probe")
    conn.cancel_upgrade()
    assert (conn.state, conn.transport) == (State.OPEN, Transport.POLLING)
    conn.begin_upgrade()  # may try again
    conn.cancel_upgrade()
    conn.close("x")
    conn.cancel_upgrade()  # a closed session stays closed
    assert conn.state is State.CLOSED


# -- polling queue -------------------------------------------------------------------------------------------


def test_take_payload_empty_means_wait() -> None:
    assert conn_for(Transport.POLLING).take_payload() is None


def test_queue_and_take_payload() -> None:
    conn = conn_for(Transport.POLLING)
    conn.queue([b"4a", b"4bb"])
    conn.queue([PING])
    assert (conn.queued_messages, conn.queued_bytes) == (3, 6)
    assert conn.take_payload() == b"4a\x1e4bb\x1e2"
    assert (conn.queued_messages, conn.queued_bytes) == (0, 0)
    assert conn.take_payload() is None


def test_take_payload_respects_max_payload() -> None:
    conn = conn_for(Transport.POLLING, max_payload=64)
    packets = [b"4" + bytes([65 + i]) * 29 for i in range(3)]  # 30 bytes each, 31 with the separator
    conn.queue(packets)
    first = conn.take_payload()
    assert first == packets[0] + b"\x1e" + packets[1]
    assert len(first) <= 64
    assert conn.take_payload() == packets[2]
    assert conn.queued_bytes == 0


def test_take_payload_sends_an_oversize_packet_alone() -> None:
    conn = conn_for(Transport.POLLING, max_payload=64)
    big = b"4" + b"x" * 200
    conn.queue([big, b"4small"])
    assert conn.take_payload() == big  # at least one packet per response, or the session would stall
    assert conn.take_payload() == b"4small"


def test_take_payload_counts_binary_as_base64() -> None:
    conn = conn_for(Transport.POLLING, max_payload=64)
    conn.queue([Binary(b"\x00" * 30), Binary(b"\x01" * 30)])  # 30 bytes -> 40 base64 chars + "b"
    first = conn.take_payload()
    assert first is not None
    assert decode_payload(first, 1000)[0].data == b"\x00" * 30
    assert len(first) <= 64
    second = conn.take_payload()
    assert second == b"b" + base64.b64encode(b"\x01" * 30)


def test_noop_and_ping_constants() -> None:
    assert (PING, NOOP) == (b"2", b"6")


def test_close_is_idempotent() -> None:
    conn = conn_for()
    conn.close("ping timeout")
    conn.close("transport close")
    assert (conn.state, conn.close_reason) == (State.CLOSED, "ping timeout")
