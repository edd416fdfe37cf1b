"""bench/soak.py's verdict: a soak fails when it cannot show a leak, and when it shows one (no I/O)."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import pytest

from tests.bench import bench_module

MASTER, W1, W2 = 100, 101, 102


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    return bench_module("soak")


def make_run(soak: ModuleType, **change: Any) -> tuple[argparse.Namespace, dict[str, Any]]:
    """A sound run: two workers, each holding ~500 connections for 20 samples, all gone at the end."""
    workers = change.get("workers", [W1, W2])
    conns = change.get("conns", 500)

    def sample(t: float, c: int, rss: int = 40_000, workers: list[int] = workers) -> Any:
        procs = {MASTER: soak.ProcSample(30_000, 18, None, None)}
        for w in workers:
            procs[w] = soak.ProcSample(rss, 19 + c, c, c // 5)
        return soak.Sample(t, procs, workers, c * len(workers), c // 5 * len(workers), 0)

    idle = sample(0, 0, 30_000)
    after_echo = sample(1, 0, 30_000)
    loaded = [sample(2 + i, conns, change.get("rss", lambda i: 40_000)(i)) for i in range(20)]
    end = sample(30, change.get("left", 0))
    out = {
        "master": MASTER,
        "samples": [idle, after_echo, *loaded, end],
        "idle": idle,
        "after_echo": after_echo,
        "soak_seconds": 25.0,
        "end": end,
        "final": end,
    }
    if "restart_at" in change:
        out["samples"][change["restart_at"]] = sample(5, conns, workers=[W1, 103])
        out["samples"][change["restart_at"]].procs[103] = soak.ProcSample(30_000, 19 + conns, conns, 0)
    args = argparse.Namespace(clients=1000, max_rss_growth=0.15)
    return args, out


def test_sound_run_passes(soak: ModuleType) -> None:
    assert soak.check(*make_run(soak)) == []


def test_master_only_cannot_show_a_leak(soak: ModuleType) -> None:
    problems = soak.check(*make_run(soak, workers=[]))
    assert any("no worker" in p for p in problems)


def test_idle_workers_cannot_show_a_leak(soak: ModuleType) -> None:
    # 49 is one under the floor of 10 % of 1,000 clients over two workers; 50 is exactly at it.
    problems = soak.check(*make_run(soak, conns=49))
    assert sum("held at most 49 connections" in p for p in problems) == 2
    assert soak.check(*make_run(soak, conns=50)) == []


def test_a_restarted_worker_cannot_show_a_leak(soak: ModuleType) -> None:
    problems = soak.check(*make_run(soak, restart_at=5))
    assert any("restarted" in p for p in problems)


def test_connections_left_behind_fail(soak: ModuleType) -> None:
    problems = soak.check(*make_run(soak, left=1))
    assert any("left with no client" in p for p in problems)
    assert not any("fds" in p for p in problems)  # one fd over idle is within the slack of two
    problems = soak.check(*make_run(soak, left=3))
    assert any("holds 22 fds, 19 when idle" in p for p in problems)


def test_rss_climbing_at_steady_load_fails(soak: ModuleType) -> None:
    problems = soak.check(*make_run(soak, rss=lambda i: 40_000 + 1_000 * i))
    assert sum("still climbs" in p for p in problems) == 2
    assert soak.check(*make_run(soak, rss=lambda i: 40_000 + 100 * i)) == []
