"""The raw-socket floor on Tether's own transports: raw picows and Tether, each on uvloop's transports and on
aiofastnet's, in one interleaved run.

``make bench``'s floor is the raw picows server as picows runs by default, on aiofastnet's transports
(picows uses them when installed); Tether runs on uvloop's by default (``[server] net``), which keep less
per connection. This script measures the four combinations in turn, ``--repeat`` times, on the same
generator as ``make bench``: W1 (server CPU µs per echo round trip, 100 clients), then, on ``--clients``
idle clients, W3 (KiB per connection) and W2 (server CPU µs per broadcast delivery). It prints medians and
the spread, and records nothing: read its output on a quiet machine (load average below 0.5), as any
benchmark. What it tells: how much of Tether's distance to ``make bench``'s floor is the transport, and how
much is Tether.

Usage: ``python bench/transports.py [--repeat 3] [--clients 5000]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, Ports, RunningServer, idle_args, loadavg, log, raise_nofile, run_loadgen

SETUPS = {
    "raw picows, aiofastnet (make bench's floor)": ("raw", {}, ["--transport", "aiofastnet"]),
    "raw picows, uvloop": ("raw", {}, ["--transport", "uvloop"]),
    "Tether, uvloop (default)": ("tether", {"TETHER_SERVER_NET": "uvloop"}, []),
    "Tether, aiofastnet": ("tether", {"TETHER_SERVER_NET": "aiofastnet"}, []),
}


def measure(label: str, clients: int, ports: Ports) -> dict[str, float]:
    name, env, extra = SETUPS[label]
    raw = ["--raw"] if name == "raw" else []
    out: dict[str, float] = {}
    server = RunningServer(name, ports.take(), "transports", extra, env=env)
    try:
        server.wait_ready()
        url = f"ws://127.0.0.1:{server.port}"
        w1 = run_loadgen(
            ["echo", "--url", url, "--server-pid", str(server.pid), "--warmup", "1", "--duration", "5", *raw],
            120,
        )
        out["W1 µs/round trip"] = w1.get("server_us_per_msg", float("nan"))
    finally:
        server.stop()
    server = RunningServer(name, ports.take(), "transports-idle", extra, env=env)
    try:
        server.wait_ready()
        idle = run_loadgen(idle_args(server.port, server.pid, clients, 0.0, 5, *raw), 600)
        out["W3 KiB/conn"] = idle.get("W3", {}).get("bytes_per_conn", float("nan")) / 1024
        out["W2 µs/delivery"] = idle.get("W2", {}).get("server_us_per_delivery", float("nan"))
    finally:
        server.stop()
    log(f"{label}: {json.dumps({k: round(v, 2) for k, v in out.items()})}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5000)
    args = parser.parse_args()
    raise_nofile()
    OUT.mkdir(exist_ok=True)
    ports = Ports()
    log(f"load average at start: {loadavg()}")
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in SETUPS}
    for rep in range(args.repeat):
        for label in SETUPS:
            log(f"repeat {rep + 1}/{args.repeat}: {label}")
            runs[label].append(measure(label, args.clients, ports))
    log(f"load average at end: {loadavg()}")
    print()
    keys = ["W1 µs/round trip", "W2 µs/delivery", "W3 KiB/conn"]
    print("| setup | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for label, rs in runs.items():
        cells = []
        for k in keys:
            values = [r[k] for r in rs if r.get(k) == r.get(k)]  # NaN is not equal to itself
            cells.append(
                f"{statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})" if values else "—"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
