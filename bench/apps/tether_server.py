"""Tether benchmark server: one worker on uvloop, ``bench/apps/tether.toml`` and its route file.

Usage: ``python bench/apps/tether_server.py --port 24001 [--profile out.prof]``; prints ``READY <port>``.
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


async def main(port: int, profile: str) -> None:
    config = Config.load(HERE / "tether.toml", overrides={"server": {"port": port}})
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
    args = parser.parse_args()
    raise_nofile()
    uvloop.run(main(args.port, args.profile))
