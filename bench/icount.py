"""Instructions per operation of Tether's Python, counted by valgrind: a figure that does not move with the
machine's load, so a hot-path change can be judged while other work runs (CPU time cannot be).

Usage: ``python bench/icount.py [echo|echoack|bcast|ping] [--clients N]`` (needs Debian's ``valgrind``).

The operation is the one ``bench/cpu_per_op.py`` times, driven the same way (a real server in-process, its
clients' WebSockets swapped for a stub whose ``send`` drops the frame): ``echo`` and ``echoack`` are one
``on_ws_frame`` with the generator's frame, ``bcast`` one broadcast to ``--clients`` sockets, ``ping`` one
heartbeat period of every client (its ping, its pong, the pong deadline's visit). The script runs the
process twice under ``valgrind --tool=callgrind``, with ``--small`` and ``--large`` repetitions of the
operation after the same set-up, and prints (instructions of the large run - of the small run) / the
difference in repetitions: the set-up, imports and shutdown cancel out. ``PYTHONHASHSEED=0`` keeps the
two runs' dict layouts alike. Figures are user-space instructions of the whole process (CPython,
orjson, picows...), not time: an instruction of a cache miss costs more than one of a loop.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def drive(op: str, repetitions: int, clients: int) -> None:
    """Set up ``bench/cpu_per_op.py``'s rig with ``clients`` clients, warm up, then run ``op``
    ``repetitions`` times."""
    sys.path.insert(0, str(HERE))
    from cpu_per_op import Rig

    rig = await Rig.start(clients)
    fn = rig.ops[op]
    for _ in range(200):
        fn()
    for _ in range(repetitions):
        fn()
    os._exit(0)  # no shutdown: the same in both runs, and it would only add noise


def count(op: str, repetitions: int, clients: int) -> int:
    """Instructions of one whole run of this script under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        op,
        "--drive",
        str(repetitions),
        "--clients",
        str(clients),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=["echo", "echoack", "bcast", "ping"])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--small", type=int, default=200, help="repetitions of the first run")
    parser.add_argument("--large", type=int, default=3200, help="repetitions of the second run")
    parser.add_argument("--drive", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive >= 0:
        import uvloop

        uvloop.run(drive(args.op, args.drive, args.clients))
        return 0
    small = count(args.op, args.small, args.clients)
    large = count(args.op, args.large, args.clients)
    per_op = (large - small) / (args.large - args.small)
    per = {"bcast": args.clients, "ping": args.clients}.get(args.op, 1)
    unit = {"bcast": "delivery", "ping": "client (ping + pong)"}.get(args.op, "round trip")
    print(f"{args.op}: {per_op / per:,.0f} instructions per {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
