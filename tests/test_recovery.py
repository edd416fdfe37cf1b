"""The recovery log (tether.recovery): offsets, sessions, every bound at its value and one past. No I/O."""

from __future__ import annotations

import time

import pytest

from tether.recovery import ENTRY_OVERHEAD, RecoveryLog, SavedSession, parse_offset, selects

E = 10 + ENTRY_OVERHEAD
"""What an emit() of this module counts: 10 bytes of packet and the entry's overhead."""

NS = "/"


def saved(
    pid: str = "p1", rooms: tuple[str, ...] = ("s1", "room"), base: int = 0, at: float = 0.0
) -> SavedSession:
    return SavedSession(pid, "s1", NS, rooms, {"k": 1}, "alice", None, base, at)


def emit(
    log: RecoveryLog, rooms: tuple[str, ...] = ("room",), now: float = 0.0, size: int = 10, **kw: str
) -> int:
    seq = log.take_offset()
    log.append(
        seq, now, kw.get("namespace", NS), rooms, tuple(kw.get("except_", "").split() or ()), [b"x" * size]
    )
    return seq


def test_offsets_are_consecutive_and_replay_follows_the_client_offset() -> None:
    log = RecoveryLog(120)
    seqs = [emit(log, size=i + 1) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5] and log.first_seq == 1 and log.last_seq == 5
    log.persist(saved())
    restored = log.restore("p1", "2", now=1.0)
    assert restored is not None
    assert restored.packets == [b"x" * 3, b"x" * 4, b"x" * 5]
    assert restored.session.data == {"k": 1} and restored.session.user_id == "alice"
    assert restored.last_offset == 5


def test_rooms_select_what_is_replayed() -> None:
    log = RecoveryLog(120)
    emit(log, rooms=("room",))  # 1: in
    emit(log, rooms=("other",))  # 2: out
    emit(log, rooms=())  # 3: everyone
    emit(log, rooms=(), except_="room")  # 4: excluded
    emit(log, rooms=("s1",))  # 5: to the socket itself
    emit(log, rooms=("room",), namespace="/chat")  # 6: other namespace
    log.persist(saved())
    restored = log.restore("p1", "0", now=1.0)
    assert restored is not None and len(restored.packets) == 3
    assert selects({"a"}, (), ()) and not selects({"a"}, ("b",), ()) and not selects({"a"}, (), ("a",))


def test_no_offset_replays_from_the_connect() -> None:
    log = RecoveryLog(120)
    emit(log)
    base = log.last_seq
    emit(log, size=2)
    log.persist(saved(base=base))
    restored = log.restore("p1", None, now=0.0)
    assert restored is not None and restored.packets == [b"xx"]


@pytest.mark.parametrize(
    "pid, offset",
    [
        ("nope", "1"),  # unknown pid
        (123, "1"),  # not a string
        ("p1", "9"),  # offset in the future
        ("p1", "-1"),
        ("p1", "1.0"),
        ("p1", "\uff11"),  # not ASCII digits (a full-width one)
        ("p1", 1),  # a number, not an offset string
        ("p1", "9" * 21),  # too long to parse
        ("p1", ["1"]),
    ],
)
def test_forged_pid_or_offset_is_refused_and_the_pid_gets_one_try(pid: object, offset: object) -> None:
    log = RecoveryLog(120)
    emit(log)
    emit(log)
    log.persist(saved())
    assert log.restore(pid, offset, now=0.0) is None
    if pid == "p1":
        assert log.restore("p1", "1", now=0.0) is None  # consumed by the failed attempt
    assert log.counters["refused"] >= 1 and log.counters["recovered"] == 0


def test_parse_offset() -> None:
    assert parse_offset("0") == 0 and parse_offset("9" * 20) == int("9" * 20)
    assert parse_offset("") is None and parse_offset(None) is None and parse_offset(" 1") is None


def test_session_of_another_namespace_is_refused() -> None:
    log = RecoveryLog(120)
    log.persist(saved())
    assert log.restore("p1", "0", now=0.0, namespace="/chat") is None


def test_time_bound_at_its_value_and_one_past() -> None:
    log = RecoveryLog(10)
    emit(log, now=0.0)
    log.persist(saved(at=0.0))
    assert log.restore("p1", "0", now=10.0) is not None  # exactly the window: recovered
    log.persist(saved(at=0.0))
    assert log.restore("p1", "0", now=10.001) is None  # one past: connects as new
    log.persist(saved(at=0.0))
    log.expire(10.0)
    assert len(log) == 1 and "p1" in log.sessions
    log.expire(10.001)
    assert len(log) == 0 and not log.sessions and log.bytes == 0
    assert log.counters["expired"] == 2


def test_buffer_bytes_bound_drops_oldest_and_refuses_offsets_before_it() -> None:
    log = RecoveryLog(120, max_buffer_bytes=3 * E)  # three entries
    for _ in range(3):
        emit(log)
    assert len(log) == 3 and log.bytes == 3 * E
    emit(log)  # one past: the oldest goes
    assert len(log) == 3 and log.first_seq == 2
    log.persist(saved())
    assert log.restore("p1", "0", now=0.0) is None  # entry 1 is gone: never half-recovered
    log.persist(saved())
    restored = log.restore("p1", "1", now=0.0)
    assert restored is not None and len(restored.packets) == 3


def test_session_bytes_bound_at_its_value_and_one_past() -> None:
    log = RecoveryLog(120, max_session_bytes=2 * E)
    emit(log)
    emit(log)
    log.persist(saved())
    assert log.restore("p1", "0", now=0.0) is not None  # exactly the limit
    emit(log)
    log.persist(saved())
    assert log.restore("p1", "0", now=0.0) is None  # one entry past it


def test_sessions_bound_evicts_the_oldest() -> None:
    log = RecoveryLog(120, max_sessions=2)
    log.persist(saved("a"))
    log.persist(saved("b"))
    assert set(log.sessions) == {"a", "b"}
    log.persist(saved("c"))
    assert set(log.sessions) == {"b", "c"} and log.counters["evicted"] == 1


def test_log_compacts_and_keeps_offsets_right() -> None:
    log = RecoveryLog(120, max_buffer_bytes=100 * E)
    for _ in range(5000):
        emit(log)
    assert len(log) == 100 and log.first_seq == 4901 and len(log._entries) < 2 * 1024 + 100
    log.persist(saved())
    restored = log.restore("p1", "4990", now=0.0)
    assert restored is not None and len(restored.packets) == 10


def test_forged_restores_are_cheap() -> None:
    """A flood of forged pids costs a dict lookup each, however big the log and the session table."""
    log = RecoveryLog(120)
    for i in range(5_000):
        emit(log)
        log.persist(saved(f"p{i}"))
    started = time.perf_counter()
    for i in range(20_000):
        assert log.restore(f"forged{i}", "1", now=0.0) is None
    assert time.perf_counter() - started < 1.0  # ~10 ms here; a scan of the log per attempt would be minutes
