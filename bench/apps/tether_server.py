"""Tether benchmark server: one worker on uvloop, ``bench/apps/tether.toml`` and its route file.

Usage: ``python bench/apps/tether_server.py --port 24001 [--redis URL] [--profile F | --tracemalloc F]``.
With ``--redis`` (W8) the node uses the Redis adapter (``[room] driver = "redis"``) on that redis-server.
Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
from pathlib import Path

import uvloop

from tether import Config, run_server

HERE = Path(__file__).resolve().parent


def raise_nofile(limit: int = 20_000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def main(port: int, profile: str, trace: str, redis: str) -> None:
    overrides: dict[str, dict[str, object]] = {"server": {"port": port}}
    if redis:
        overrides["room"] = {"driver": "redis"}
        overrides["redis"] = {"url": redis}
    config = Config.load(HERE / "tether.toml", overrides=overrides)
    server = await run_server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if profile:
        # cProfile from SIGUSR1 to SIGUSR2 (or to the end): bench/profile.py brackets the measured phase.
        import cProfile

        profiler = cProfile.Profile()
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, lambda: (profiler.disable(), profiler.dump_stats(profile)))
    if trace:
        # Python allocations per line between SIGUSR1 and SIGUSR2 (bench/profile.py: W3's idle connections).
        import tracemalloc

        tracemalloc.start(1)
        snaps: list[tracemalloc.Snapshot] = []

        def take() -> None:
            snaps.append(tracemalloc.take_snapshot())
            if len(snaps) == 2:
                stats = snaps[1].compare_to(snaps[0], "lineno")
                with open(trace, "w") as f:
                    for stat in stats[:40]:
                        f.write(f"{stat.size_diff} {stat.count_diff} {stat.traceback[0]}\n")

        loop.add_signal_handler(signal.SIGUSR1, take)
        loop.add_signal_handler(signal.SIGUSR2, take)
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    if profile:
        profiler.disable()
        profiler.dump_stats(profile)
    await server.shutdown(timeout=2.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24001)
    parser.add_argument("--profile", default="", help="write cProfile stats of the whole run to this file")
    parser.add_argument("--tracemalloc", default="", help="write the allocation diff SIGUSR1..SIGUSR2 here")
    parser.add_argument("--redis", default="", help="redis://... : use the Redis adapter (W8)")
    args = parser.parse_args()
    raise_nofile()
    uvloop.run(main(args.port, args.profile, args.tracemalloc, args.redis))
