"""The master hub as the host's recovery log (E, D, K, R, T, X frames), without I/O: frames in, frames out."""

from __future__ import annotations

import asyncio
from typing import Any

from tether.cluster.hub import (
    DELIVER,
    EMIT,
    KEEP,
    PARK_SECONDS,
    RESTORE,
    RESTORED,
    TAKE_OVER,
    FrameReader,
    Hub,
    body_of,
    frame,
)
from tether.recovery import RecoveryLog, with_offset


def hub_with(*wids: int) -> tuple[Hub, dict[int, list[tuple[int, Any]]]]:
    hub = Hub(RecoveryLog(120))
    out: dict[int, list[tuple[int, Any]]] = {}
    for wid in wids:
        reader = FrameReader()
        out[wid] = []

        def write(data: bytes, reader: FrameReader = reader, sink: list[tuple[int, Any]] = out[wid]) -> None:
            sink.extend((kind, body_of(raw)) for kind, raw in reader.feed(data))

        hub.add(wid, write)
    return hub, out


def keep(pid: str, rooms: list[str]) -> bytes:
    return frame(KEEP, [pid, "sid1", "/", rooms, {"k": 1}, "alice", None, 0])


def test_emits_get_offsets_and_reach_every_worker_in_one_order() -> None:
    hub, out = hub_with(1, 2)
    hub.receive_recovery(1, EMIT, frame(EMIT, ["/", "n", ["r"], [], [b'42["n",1]'], False]), 0.0)
    hub.receive_recovery(2, EMIT, frame(EMIT, ["/", "n", ["sid1"], [], [b'42["n",2]'], True]), 0.0)
    assert out[1] == [(DELIVER, [1, "/", "n", ["r"], [], [b'42["n",1,"1"]']])]
    assert out[2] == [
        (DELIVER, [1, "/", "n", ["r"], [], [b'42["n",1,"1"]']]),
        (DELIVER, [2, "/", "n", ["sid1"], [], [b'42["n",2,"2"]']]),  # direct: to its worker only
    ]


def test_with_offset_on_every_event_shape() -> None:
    assert with_offset([b'42["ev"]'], 7) == [b'42["ev","7"]']
    assert with_offset([b'42/chat,["ev",{"a":1}]'], 8) == [b'42/chat,["ev",{"a":1},"8"]']
    assert with_offset([b'451-["ev",{"_placeholder":true,"num":0}]', b"\x00"], 9)[0].endswith(b',"9"]')


def test_a_session_kept_by_one_worker_is_restored_on_another() -> None:
    hub, out = hub_with(1, 2)
    hub.receive_recovery(1, KEEP, keep("p1", ["sid1", "r"]), 0.0)
    hub.receive_recovery(1, EMIT, frame(EMIT, ["/", "n", ["r"], [], [b'42["n",1]'], False]), 1.0)
    out[2].clear()
    parked = hub.receive_recovery(2, RESTORE, frame(RESTORE, [5, "p1", "0", "/"]), 2.0)
    assert parked is False
    ((kind, (rid, session, packets, last)),) = out[2]
    assert (kind, rid, session[:3], last) == (RESTORED, 5, ["p1", "sid1", "/"], 1)
    assert packets == [b'42["n",1,"1"]']


def test_a_client_back_before_its_worker_noticed_is_handed_over() -> None:
    hub, out = hub_with(1, 2, 3)
    assert hub.receive_recovery(2, RESTORE, frame(RESTORE, [6, "p1", "0", "/"]), 0.0) is True
    assert out[1] == [(TAKE_OVER, ["p1"])] and out[3] == [(TAKE_OVER, ["p1"])] and out[2] == []
    hub.receive_recovery(1, KEEP, keep("p1", ["sid1"]), 0.1)  # worker 1 closed it: the answer goes at once
    ((kind, (rid, session, _packets, _last)),) = out[2]
    assert (kind, rid, session[0]) == (RESTORED, 6, "p1") and not hub.parked


def test_a_parked_restore_nobody_hands_over_is_refused_when_time_is_up() -> None:
    hub, out = hub_with(1, 2)
    assert hub.receive_recovery(2, RESTORE, frame(RESTORE, [7, "forged", "0", "/"]), 0.0) is True
    hub.release_parked("forged", PARK_SECONDS - 0.01)  # not yet
    assert out[2] == []
    hub.release_parked("forged", PARK_SECONDS)
    assert out[2] == [(RESTORED, [7, None, [], 0])] and not hub.parked


def test_parked_restores_are_bounded() -> None:
    from tether.cluster.hub import MAX_PARKED

    hub, out = hub_with(1, 2)
    for i in range(MAX_PARKED):
        assert hub.receive_recovery(2, RESTORE, frame(RESTORE, [i, f"forged{i}", "0", "/"]), 0.0) is True
    assert len(out[1]) == MAX_PARKED
    assert hub.receive_recovery(2, RESTORE, frame(RESTORE, [-1, "one-more", "0", "/"]), 0.0) is False
    assert len(out[1]) == MAX_PARKED and out[2] == [(RESTORED, [-1, None, [], 0])]


async def test_deliveries_read_with_the_answer_reach_the_recovered_socket() -> None:
    """A worker reads a T frame and the D frames after it in one read: the T's future calls back at the
    loop's next turn, after those D frames were delivered to a socket that was in no room yet. They must
    still reach it (this lost a message in a rolling reload, once in a CI run)."""
    from tests.conftest import make_config
    from tests.server.test_recovery import raw_connect
    from tether import Router, run_server
    from tether.cluster.hub import HubAdapter

    loop = asyncio.get_running_loop()
    sent: list[bytes] = []
    adapter: HubAdapter

    def master(data: bytes) -> None:  # the worker's frames to the master
        sent.append(data)
        for kind, raw in FrameReader().feed(data):
            if kind == RESTORE:
                rid, pid, _offset, namespace = body_of(raw)
                answer = frame(
                    RESTORED, [rid, [pid, "sidA", namespace, ["sidA", "r"], {}, None, None, 0], [], 5]
                )
                later = frame(DELIVER, [6, "/", "n", ["r"], [], [b'42["n",6,"6"]']])
                elsewhere = frame(DELIVER, [7, "/", "n", ["other"], [], [b'42["n",7,"7"]']])
                # One read on the worker's side: T, then D frames, then nothing until the next turn.
                loop.call_soon(worker_reads, answer + later + elsewhere)

    def worker_reads(data: bytes) -> None:
        for kind, raw in FrameReader().feed(data):
            adapter.receive_frame(kind, raw)

    adapter = HubAdapter(master, 1)
    adapter.sequences_emits = True
    server = await run_server(
        make_config(recovery={"max_disconnection_duration": 120.0}), Router(), adapter=adapter
    )
    try:
        ws, reply, before = await raw_connect(server, {"pid": "a" * 30, "offset": "5"})
        assert reply["sid"] == "sidA"
        assert [e[:2] for e in before] == [["n", 6]]  # not the emit to "other"
        await ws.close()
    finally:
        await server.shutdown(timeout=1)
