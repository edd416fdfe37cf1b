"""bench/limits.py and the growth curve's top point (bench/run.py ``growth_top``): how far the benchmark's
processes can go in open files, and the largest client count the growth curve asks for within that."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("nofile", "top"),
    [(20_000, 19_000), (12_000, 11_000), (12_999, 11_000), (1_048_576, 50_000), (52_000, 50_000)],
)
def test_growth_top_leaves_a_thousand_files_and_stops_at_fifty_thousand(nofile: int, top: int) -> None:
    assert bench_module("run").growth_top(nofile) == top


@pytest.mark.parametrize("nofile", [11_999, 11_000, 1024])
def test_growth_top_refuses_a_limit_with_no_point_past_the_idle_group(nofile: int) -> None:
    with pytest.raises(ValueError, match="too low"):
        bench_module("run").growth_top(nofile)


def _in_child(limit: str) -> tuple[int, int, int, int]:
    """(soft before, returned, soft after, hard after) of ``raise_nofile(limit)`` in a child process, so this
    test process keeps its own limit. ``limit`` is an expression over ``soft`` and ``hard``."""
    code = (
        "import resource, sys; sys.path.insert(0, 'bench'); from limits import raise_nofile;"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE);"
        f"got = raise_nofile({limit});"
        "print(soft, got, *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, got, soft, hard = (int(x) for x in out.stdout.split())
    return before, got, soft, hard


def test_raise_nofile_past_the_hard_limit_goes_as_far_as_allowed() -> None:
    _, got, soft, hard = _in_child("min(hard + 1000, 1 << 20)")
    assert got == soft
    if hard != resource.RLIM_INFINITY:
        assert soft == hard  # the hard limit raised with it (root) or the soft one up to it (not root)


def test_raise_nofile_never_lowers_the_limit() -> None:
    before, got, soft, _ = _in_child("64")
    assert got == soft == before
