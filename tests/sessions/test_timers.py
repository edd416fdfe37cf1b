"""The sans-I/O deadline heap: no event loop, times passed in."""

from __future__ import annotations

import random

from tether.sessions.timers import Deadlines


def test_expiry_order_is_deadline_order() -> None:
    d: Deadlines[str] = Deadlines()
    for key, when in [("c", 3.0), ("a", 1.0), ("d", 4.0), ("b", 2.0)]:
        d.schedule(key, when)
    assert d.next_wakeup() == 1.0
    assert d.pop_expired(0.5) == []
    assert d.pop_expired(2.5) == [("a", 1.0), ("b", 2.0)]
    assert len(d) == 2
    assert d.pop_expired(10) == [("c", 3.0), ("d", 4.0)]
    assert len(d) == 0
    assert d.next_wakeup() is None


def test_deadline_exactly_now_expires() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 5.0)
    assert d.pop_expired(5.0) == [("a", 5.0)]


def test_touch_moves_a_deadline_later() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 1.0)
    d.schedule("b", 2.0)
    assert d.touch("a", 5.0)
    assert d.deadline("a") == 5.0
    # The wake-up is a lower bound: "a"'s old entry still says 1.0; waking then finds nothing due.
    assert d.next_wakeup() == 1.0
    assert d.pop_expired(1.5) == []
    assert d.next_wakeup() == 2.0
    assert d.pop_expired(3.0) == [("b", 2.0)]
    assert d.pop_expired(4.9) == []
    assert d.pop_expired(5.0) == [("a", 5.0)]


def test_touch_moves_a_deadline_earlier() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 10.0)
    d.schedule("b", 5.0)
    d.schedule("a", 1.0)
    assert d.next_wakeup() == 1.0
    assert d.pop_expired(2.0) == [("a", 1.0)]
    # The stale entry at 10.0 must not bring "a" back.
    assert d.pop_expired(20.0) == [("b", 5.0)]
    assert len(d) == 0


def test_touch_of_unknown_key_adds_nothing() -> None:
    d: Deadlines[str] = Deadlines()
    assert not d.touch("nope", 3.0)
    assert "nope" not in d
    assert d.next_wakeup() is None


def test_postponed_past_now_comes_out_in_true_deadline_order() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 1.0)
    d.schedule("b", 2.0)
    d.schedule("a", 3.0)  # postponed, but still before now below
    assert d.pop_expired(10.0) == [("b", 2.0), ("a", 3.0)]


def test_cancel() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 1.0)
    d.schedule("b", 2.0)
    assert d.cancel("a")
    assert not d.cancel("a")
    assert d.deadline("a") is None
    assert d.next_wakeup() == 2.0
    assert d.pop_expired(5.0) == [("b", 2.0)]


def test_reschedule_after_expiry() -> None:
    d: Deadlines[str] = Deadlines()
    d.schedule("a", 1.0)
    assert d.pop_expired(1.0) == [("a", 1.0)]
    d.schedule("a", 2.0)
    assert d.pop_expired(3.0) == [("a", 2.0)]


def test_stale_entries_are_compacted() -> None:
    d: Deadlines[int] = Deadlines()
    for i in range(5000):
        d.schedule(i, 1000.0 + i)
    for i in range(4000):
        d.cancel(i)
    # Rebuilt once stale entries outnumbered live ones.
    assert d.heap_size <= 2 * len(d) + 1
    assert [k for k, _ in d.pop_expired(10_000.0)] == list(range(4000, 5000))


def test_100k_sessions_one_wakeup_per_batch() -> None:
    """100,000 sessions: touches cost no heap growth; expiry comes out complete and ordered."""
    rng = random.Random(7)
    d: Deadlines[int] = Deadlines()
    n = 100_000
    for i in range(n):
        d.schedule(i, 900.0 + rng.random() * 10)
    # Every session active twice: deadlines move later, the heap does not grow.
    for step in range(2):
        now = 10.0 * (step + 1)
        for i in range(n):
            d.schedule(i, now + 900.0 + (i % 7))
    assert len(d) == n
    assert d.heap_size == n
    # Nothing is due before the original deadlines, and waking at them re-queues without expiring.
    assert d.pop_expired(905.0) == []
    assert d.heap_size == n
    expired = d.pop_expired(920.0 + 6)
    assert len(expired) == n
    times = [t for _, t in expired]
    assert times == sorted(times)
    assert sorted(k for k, _ in expired) == list(range(n))
    assert len(d) == 0
    assert d.next_wakeup() is None


def test_random_operations_match_a_reference_model() -> None:
    rng = random.Random(1)
    d: Deadlines[int] = Deadlines()
    model: dict[int, float] = {}
    now = 0.0
    for _ in range(20_000):
        op = rng.random()
        key = rng.randrange(200)
        if op < 0.5:
            when = now + rng.random() * 50
            d.schedule(key, when)
            model[key] = when
        elif op < 0.6:
            assert d.cancel(key) == (key in model)
            model.pop(key, None)
        elif op < 0.7:
            touched = d.touch(key, now + 10)
            assert touched == (key in model)
            if touched:
                model[key] = now + 10
        else:
            now += rng.random() * 5
            got = d.pop_expired(now)
            want = sorted(((k, t) for k, t in model.items() if t <= now), key=lambda kv: kv[1])
            assert [t for _, t in got] == [t for _, t in want]
            assert {k for k, _ in got} == {k for k, _ in want}
            for k, _ in want:
                del model[k]
        assert len(d) == len(model)
        wake = d.next_wakeup()
        if model:
            assert wake is not None and wake <= min(model.values())
        else:
            assert wake is None


def test_pop_expired_with_a_limit_leaves_the_rest_due() -> None:
    d: Deadlines[int] = Deadlines()
    for i in range(10):
        d.schedule(i, float(i))
    assert [k for k, _ in d.pop_expired(100.0, limit=4)] == [0, 1, 2, 3]
    assert d.next_wakeup() == 4.0
    assert [k for k, _ in d.pop_expired(100.0, limit=4)] == [4, 5, 6, 7]
    assert [k for k, _ in d.pop_expired(100.0, limit=4)] == [8, 9]
    assert d.pop_expired(100.0, limit=4) == []
