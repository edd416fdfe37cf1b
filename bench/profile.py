"""Profile one Tether worker under W1 (echo), W2 (broadcast to 10,000) and W6 (idle): where the time goes.

Runs the Tether bench server pinned to CPU 0 and the load generator pinned to CPU 1, samples the server
with py-spy (``pip install py-spy``; non-blocking, so the server is not paused) and, in a second pass,
with cProfile inside the server (exact call counts per message). Prints the top functions by self and
inclusive time, scaled to server CPU µs per message, and writes the raw profiles to ``bench/out/``.

Usage: ``python bench/profile.py [--quick] [--only W1,W1ack,W2,W3,W6] [--no-cprofile]``.
"""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import OUT, PY, ROOT, Ports, RunningServer, idle_args, loadgen_command, raise_nofile  # noqa: E402


def pyspy_path() -> str:
    exe = Path(PY).parent / "py-spy"
    if exe.exists():
        return str(exe)
    found = shutil.which("py-spy")
    if found is None:
        sys.exit("profile: py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def start_loadgen(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        loadgen_command(args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=raise_nofile,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen failed: {err[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def sample(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            pyspy_path(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "400",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_stacks(path: Path, keep: str | None, top: int) -> tuple[int, list[tuple[str, int, int]]]:
    """(samples, [(function, self samples, inclusive samples)]) from py-spy's collapsed stacks.

    ``keep``: only stacks with a frame containing this text (e.g. the broadcast path).
    """
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short_frame(f) for f in stack.split(";")]
        if keep is not None and not any(keep in f for f in frames):
            continue
        n = int(count)
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n
    rows = [(f, self_c[f], incl_c[f]) for f, _ in incl_c.most_common()]
    rows.sort(key=lambda r: (-r[1], -r[2]))
    return total, rows[:top]


def _short_frame(frame: str) -> str:
    # "send (tether/server/client.py:72)" -> "send (tether/server/client.py)": one row per function.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/tether/", "/bench/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def by_function(rows: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Rows sorted by self time."""
    return sorted(rows, key=lambda r: (-r[1], -r[2]))


def table(total: int, rows: list[tuple[str, int, int]], us_per_msg: float | None, top: int) -> str:
    lines = ["| function | self % | incl % | self µs/msg |", "|---|---|---|---|"]
    for f, s, i in rows[:top]:
        per = f"{s / total * us_per_msg:.2f}" if us_per_msg and total else "—"
        lines.append(f"| `{f}` | {s / total * 100:.1f} | {i / total * 100:.1f} | {per} |")
    return "\n".join(lines)


def cprofile_table(path: Path, messages: int, top: int) -> str:
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename
        for marker in ("site-packages/", "src/tether/", "/bench/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        rows.append((f"{func} ({where}:{line})", nc, tt, ct))
    rows.sort(key=lambda r: -r[2])
    out = ["| function | calls/msg | tottime µs/msg | cumtime µs/msg |", "|---|---|---|---|"]
    for f, nc, tt, ct in rows[:top]:
        out.append(f"| `{f}` | {nc / messages:.2f} | {tt / messages * 1e6:.2f} | {ct / messages * 1e6:.2f} |")
    return "\n".join(out)


def profile_w1(quick: bool, cprofile: bool, ports: Ports, top: int, ack: bool = False) -> str:
    duration = 6 if quick else 12
    name, event = ("W1ack", "echoack") if ack else ("W1", "echo")
    report = []
    server = RunningServer("tether", ports.take(), "prof-w1")
    server.wait_ready()
    try:
        lg = start_loadgen(
            [
                "echo",
                *(["--ack"] if ack else []),
                "--url",
                f"ws://127.0.0.1:{server.port}",
                "--server-pid",
                str(server.pid),
                "--warmup",
                "1",
                "--duration",
                str(duration),
            ]
        )
        time.sleep(1.5)
        out = OUT / f"profile-{name}.txt"
        spy = sample(server.pid, duration - 2, out)
        spy.wait(duration + 30)
        res = finish(lg, duration + 60)
    finally:
        server.stop()
    total, rows = summarize_stacks(out, None, 400)
    report.append(
        f"{name} ({event}), py-spy ({total} samples): {res['rps']:,.0f} round trips/s, server "
        f"{res['server_us_per_msg']:.1f} µs CPU per round trip "
        f"(at {res['server_cpu_share'] * 100:.0f}% of a core).\n"
    )
    report.append("By function (self time; incl = with callees):\n")
    report.append(table(total, by_function(rows), res["server_us_per_msg"], top))
    if cprofile:
        report.append(f"\n\n{name} ({event}), cProfile (exact calls; times inflated by the profiler):\n")
        server = RunningServer(
            "tether", ports.take(), "prof-w1c", extra=["--profile", str(OUT / f"cprofile-{name}.prof")]
        )
        server.wait_ready()
        try:
            server.proc.send_signal(signal.SIGUSR1)
            res2 = finish(
                start_loadgen(
                    [
                        "echo",
                        *(["--ack"] if ack else []),
                        *(["--ack"] if ack else []),
                        "--url",
                        f"ws://127.0.0.1:{server.port}",
                        "--warmup",
                        "0",
                        "--duration",
                        str(duration // 2),
                    ]
                ),
                duration + 60,
            )
        finally:
            server.stop()
        # Round trips counted by the generator include the warm-up's: close enough for calls per message.
        report.append(cprofile_table(OUT / f"cprofile-{name}.prof", max(1, res2["round_trips"]), top))
    return "\n".join(report)


def profile_w2(quick: bool, cprofile: bool, ports: Ports, top: int) -> str:
    clients = 2000 if quick else 10_000
    rounds = 10 if quick else 40
    report = []
    server = RunningServer("tether", ports.take(), "prof-w2")
    server.wait_ready()
    try:
        lg = start_loadgen(idle_args(server.port, server.pid, clients, 0, rounds, "--settle", "1"))
        out = OUT / "profile-W2.txt"
        spy = sample(server.pid, 120 if not quick else 40, out)
        res = finish(lg, 300)
        spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
        spy.wait(30)
    finally:
        server.stop()
    w2 = res["W2"]
    total, rows = summarize_stacks(out, "broadcast", 400)
    report.append(
        f"W2 broadcast to {clients}, py-spy, samples inside `Server.broadcast` only ({total}): median "
        f"{w2['median_ms']:.1f} ms, server {w2['server_us_per_delivery']:.2f} µs CPU per delivery.\n"
    )
    report.append(table(total, by_function(rows), w2["server_us_per_delivery"], top))
    if cprofile:
        report.append(f"\n\nW2, cProfile (exact calls per delivery, {clients} clients):\n")
        server = RunningServer(
            "tether", ports.take(), "prof-w2c", extra=["--profile", str(OUT / "cprofile-W2.prof")]
        )
        server.wait_ready()
        try:
            lg2 = start_loadgen(idle_args(server.port, server.pid, clients, 0, rounds // 2, "--settle", "1"))
            # Profile only while all clients are connected: the broadcasts, not the handshakes.
            wait_established(server.port, lambda n: n >= clients, 120)
            server.proc.send_signal(signal.SIGUSR1)
            wait_established(server.port, lambda n: n < clients, 300)
            server.proc.send_signal(signal.SIGUSR2)
            res2 = finish(lg2, 300)
        finally:
            server.stop()
        deliveries = res2["W2"]["complete_rounds"] * clients
        report.append(cprofile_table(OUT / "cprofile-W2.prof", max(1, deliveries), top))
        report.append("\n(cProfile from the moment all clients were in until the first one closed.)")
    return "\n".join(report)


def profile_w6(quick: bool, ports: Ports, top: int) -> str:
    clients = 2000 if quick else 10_000
    hold = 30 if quick else 60
    server = RunningServer("tether", ports.take(), "prof-w6")
    server.wait_ready()
    try:
        lg = start_loadgen(idle_args(server.port, server.pid, clients, hold, 0, "--settle", "1"))
        # Connecting takes a while: sample only the hold, which starts once the clients are in.
        deadline = time.monotonic() + 120
        while _established(server.port) < clients and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        out = OUT / "profile-W6.txt"
        spy = sample(server.pid, hold - 5, out)
        spy.wait(hold + 30)
        res = finish(lg, 300)
    finally:
        server.stop()
    w6 = res["W6"]
    total, rows = summarize_stacks(out, None, 400)
    head = (
        f"W6 {clients} idle clients for {hold} s, py-spy ({total} samples at 400 Hz while busy): server at "
        f"{w6['server_cpu_share'] * 100:.2f}% of a core, {w6['pings_answered']} pings answered.\n"
    )
    lines = ["| function | self % | incl % |", "|---|---|---|"]
    for f, a, i in by_function(rows)[:top]:
        lines.append(f"| `{f}` | {a / total * 100:.1f} | {i / total * 100:.1f} |")
    return head + "\n".join(lines)


def wait_established(port: int, cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond(_established(port)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _established(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    return len(out.splitlines())


def profile_w3(quick: bool, ports: Ports, top: int) -> str:
    """Python allocations per idle connection (tracemalloc), next to the RSS growth per connection."""
    clients = 2000 if quick else 10_000
    out = OUT / "tracemalloc-W3.txt"
    server = RunningServer("tether", ports.take(), "prof-w3", extra=["--tracemalloc", str(out)])
    server.wait_ready()
    try:
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        lg = start_loadgen(idle_args(server.port, server.pid, clients, 0, 0, "--settle", "6"))
        wait_established(server.port, lambda n: n >= clients, 180)
        time.sleep(2)
        server.proc.send_signal(signal.SIGUSR2)
        res = finish(lg, 300)
        time.sleep(0.5)
    finally:
        server.stop()
    rss = res["W3"]["bytes_per_conn"]
    lines = [
        f"W3 with {clients} idle clients: RSS grew {rss / 1024:.1f} KiB per connection "
        "(tracemalloc on, which "
        "adds its own overhead to RSS); Python allocations by line, per connection:\n",
        "| where | bytes/conn | objects/conn |",
        "|---|---|---|",
    ]
    total = 0
    for line in out.read_text().splitlines()[:top]:
        size, count, where = line.split(" ", 2)
        for marker in ("site-packages/", "src/tether/", "/bench/", "lib/python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        total += int(size)
        lines.append(f"| `{where}` | {int(size) / clients:.0f} | {int(count) / clients:.1f} |")
    lines.append(
        f"\nTop {top} lines: {total / clients / 1024:.2f} KiB per connection of Python objects; the rest "
        "of the RSS is native (uvloop transport and libuv handle, picows buffers, malloc overhead)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/profile.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="W1,W1ack,W2,W3,W6")
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    raise_nofile()
    OUT.mkdir(exist_ok=True)
    ports = Ports()
    only = {w.strip().upper() for w in args.only.split(",")}
    parts = []
    if "W1" in only:
        parts.append(profile_w1(args.quick, not args.no_cprofile, ports, args.top))
    if "W1ACK" in only:
        parts.append(profile_w1(args.quick, not args.no_cprofile, ports, args.top, ack=True))
    if "W2" in only:
        parts.append(profile_w2(args.quick, not args.no_cprofile, ports, args.top))
    if "W3" in only:
        parts.append(profile_w3(args.quick, ports, args.top))
    if "W6" in only:
        parts.append(profile_w6(args.quick, ports, args.top))
    text = "\n\n".join(parts)
    (OUT / "profile-summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
