"""Fan-out of one emit to many clients: one node, against two nodes joined by Redis.

Starts its own redis-server (``/usr/bin/redis-server``, no persistence, port ``--redis-port``) and Tether
nodes as ``python -m tether start`` subprocesses, opens ``--clients`` WebSocket clients (picows, raw
Engine.IO/Socket.IO: small enough for 10,000 in one process) spread evenly over the nodes, then makes
``--emits`` emits to everyone through ``POST /api/emit`` on the first node, one at a time, and times each
from the POST to the moment the last client has the packet.

Scenarios (``--scenarios``, comma-separated):

* ``one``: one node, ``[room] driver = "memory"`` (no Redis anywhere);
* ``one-redis``: one node on the Redis adapter (the cost of publishing to nobody);
* ``two``: two nodes on the Redis adapter, clients split half and half; the second half is reached through
  Redis.

Prints one line per scenario (median, p95 and max fan-out time, deliveries per second) and, with
``--json FILE``, writes the numbers. The client process shares the machine's cores with the nodes and
Redis, so the figures are for comparing scenarios on one machine, not absolute capacities.

    .venv/bin/python bench/redis_fanout.py --clients 10000 --emits 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # bench/harness.py: the script's folder is on sys.path
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from tests.redis_process import port_free  # harness put the repository on sys.path

API_KEY = "bench-key-0123456789abcdef0123456789"


class FanoutClient(WSListener):
    """One Socket.IO client on a raw WebSocket: connects to ``/``, answers pings, counts ``42`` packets."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.ready = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        head = data[:2]
        if head == b"42":
            self.bench.received()
        elif data[:1] == b"0":
            transport.send(WSMsgType.TEXT, b"40")  # Engine.IO open -> Socket.IO CONNECT to /
        elif head == b"40":
            self.ready = True
            self.bench.connected += 1
        elif data == b"2":
            transport.send(WSMsgType.TEXT, b"3")


class Bench:
    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.connected = 0
        self.count = 0
        self.done: asyncio.Event | None = None

    def received(self) -> None:
        self.count += 1
        if self.count == self.clients and self.done is not None:
            self.done.set()


def start_redis(port: int, folder: str) -> harness.RedisServer:
    if not port_free(port):
        sys.exit(f"bench: port {port} is taken; pick another with --redis-port")
    try:
        return harness.start_redis(port, folder)
    except RuntimeError as exc:
        sys.exit(f"bench: redis-server did not start: {exc}")


def start_node(folder: str, name: str, driver: str, redis_url: str) -> tuple[subprocess.Popen[str], str]:
    config = Path(folder, f"{name}.toml")
    config.write_text(f"""
[server]
port = 0
log_level = "warning"
[websocket]
ping_interval = 300
ping_timeout = 60
[limits]
send_buffer_bytes = 67108864
event_rate = 0
max_connections_per_ip = 0
[room]
driver = "{driver}"
[redis]
url = "{redis_url}"
[api]
key = "{API_KEY}"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "start", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"tether serving on (\S+)", line)
        if m:
            return proc, m.group(1)
    sys.exit(f"bench: node {name} did not start")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def post_emit(url: str, seq: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"event": "tick", "data": seq}).encode()
    writer.write(
        f"POST /api/emit HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise SystemExit(f"bench: emit refused: {status!r}")
    writer.close()


async def run_scenario(urls: list[str], clients: int, emits: int) -> dict[str, Any]:
    bench = Bench(clients)
    transports: list[WSTransport] = []
    t0 = time.perf_counter()
    batch = 250
    for start in range(0, clients, batch):
        n = min(batch, clients - start)
        pairs = await asyncio.gather(
            *(
                ws_connect(
                    lambda: FanoutClient(bench),
                    urls[(start + i) % len(urls)].replace("http", "ws", 1)
                    + "/socket.io/?EIO=4&transport=websocket",
                )
                for i in range(n)
            )
        )
        transports.extend(t for t, _ in pairs)
    deadline = time.monotonic() + 60
    while bench.connected < clients and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if bench.connected < clients:
        raise SystemExit(f"bench: only {bench.connected} of {clients} clients connected")
    connect_time = time.perf_counter() - t0
    times = []
    for seq in range(emits + 1):
        bench.count = 0
        bench.done = asyncio.Event()
        t = time.perf_counter()
        await post_emit(urls[0], seq)
        await asyncio.wait_for(bench.done.wait(), 60)
        if seq:  # the first emit warms up every path
            times.append(time.perf_counter() - t)
        await asyncio.sleep(0.05)
    for tr in transports:
        tr.disconnect()
    times.sort()
    median = statistics.median(times)
    return {
        "clients": clients,
        "nodes": len(urls),
        "emits": emits,
        "connect_s": round(connect_time, 2),
        "median_ms": round(median * 1000, 2),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(times[-1] * 1000, 2),
        "deliveries_per_s": round(clients / median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--emits", type=int, default=20)
    parser.add_argument("--redis-port", type=int, default=23960)
    parser.add_argument("--scenarios", default="one,one-redis,two")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as folder:
        redis = start_redis(args.redis_port, folder)
        redis_url = f"redis://127.0.0.1:{args.redis_port}/0"
        try:
            for scenario in args.scenarios.split(","):
                driver = "memory" if scenario == "one" else "redis"
                count = 2 if scenario == "two" else 1
                nodes = [start_node(folder, f"{scenario}{i}", driver, redis_url) for i in range(count)]
                try:
                    r = asyncio.run(run_scenario([url for _, url in nodes], args.clients, args.emits))
                finally:
                    for proc, _ in nodes:
                        stop(proc)
                results[scenario] = r
                print(
                    f"{scenario:>9}: {r['clients']} clients on {r['nodes']} node(s): "
                    f"fan-out median {r['median_ms']} ms, "
                    f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms, {r['deliveries_per_s']} deliveries/s "
                    f"(connect {r['connect_s']} s)",
                    flush=True,
                )
        finally:
            redis.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
