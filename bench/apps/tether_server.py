"""Tether benchmark server: one worker on uvloop, ``bench/apps/tether.toml`` and its route file.

Usage: ``python bench/apps/tether_server.py --port 24001``. Prints ``READY <port>`` once listening.
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


async def main(port: int) -> None:
    config = Config.load(HERE / "tether.toml", overrides={"server": {"port": port}})
    server = await run_server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.port}", flush=True)
    await stop.wait()
    await server.shutdown(timeout=2.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24001)
    args = parser.parse_args()
    raise_nofile()
    uvloop.run(main(args.port))
