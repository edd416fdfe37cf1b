"""W5: what idle sessions cost, and how late ``session:expired`` arrives.

    .venv/bin/python bench/sessions_bench.py            # 100,000 sessions, 10 s idle window, 1,000 sockets
    .venv/bin/python bench/sessions_bench.py --quick    # 100,000 sessions, 2 s idle window, 200 sockets
    .venv/bin/python bench/sessions_bench.py --sessions 200000 --idle 30 --clients 2000 --timeout 15

Three parts, each in a fresh process so that RSS figures are that part's own:

* **track**: a Server with ``[session]`` and the session manager tracking N sessions (no sockets: the
  sockets' own cost is W3's). Reports RSS and CPU time to create them, CPU time and timer wake-ups over
  an idle window, the cost of one activity (``touch``), and the CPU time of the pass that expires them
  all (push to each session's room, tombstone).
* **handles**: the naive design for comparison, one asyncio timer handle per session (``call_later``),
  activity = cancel + new handle. Same N, same loop (uvloop).
* **latency**: ``tether start`` in a subprocess with ``idle_timeout`` = ``--timeout`` seconds; ``--clients``
  bare WebSocket clients (``/ws?token=``), one session each. Once all are connected, each sends one
  ``activity`` (spread over ``--spread`` seconds) and measures from that send + idle_timeout to the
  arrival of ``session:expired``: the push latency as the page sees it, plus the activity's one-way
  trip (tens of microseconds on loopback). The server wakes up to 20 ms after a deadline to handle its
  neighbours in the same wake-up (``SLACK`` in the manager), never before it. Also the server's CPU
  share while the sessions sit idle.

Prints a human-readable summary to stderr and, as its last stdout line, one JSON object (the contract of
``bench/run.py``'s W5 hook).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from limits import raise_nofile

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789"


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- track: the session manager with N idle sessions ---------------------------------------------------


async def scenario_track(n: int, idle_seconds: float) -> dict[str, Any]:
    from tether import Config, Router, Server
    from tether.sessions import Claims, get_manager

    config = Config.load(
        env={}, overrides={"session": {"enabled": True, "secret": SECRET, "idle_timeout": 900}}
    )
    server = Server(config, Router())
    manager = get_manager(server)
    ids = [f"s{i:07d}" for i in range(n)]
    claims = [Claims(f"u{i}", sid) for i, sid in enumerate(ids)]
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)
    rss0 = rss_bytes()
    cpu0 = time.process_time()
    for c in claims:
        manager._open(c)  # what on_connect does for a new session, minus the socket
    create_cpu = time.process_time() - cpu0
    rss1 = rss_bytes()
    del claims

    wakeups0 = manager.counters.wakeups
    cpu0 = time.process_time()
    await asyncio.sleep(idle_seconds)
    idle_cpu = time.process_time() - cpu0
    idle_wakeups = manager.counters.wakeups - wakeups0

    cpu0 = time.process_time()
    for sid in ids:
        manager.touch(sid)
    touch_cpu = time.process_time() - cpu0
    rss2 = rss_bytes()

    # Time passes: every session is due. Batches of EXPIRE_BATCH, as the timer runs them.
    cpu0 = time.process_time()
    batch_times: list[float] = []
    while True:
        t0 = time.perf_counter()
        more = manager.process(loop.time() + 1000)
        batch_times.append(time.perf_counter() - t0)
        if not more:
            break
    expire_cpu = time.process_time() - cpu0
    assert not manager.sessions and manager.counters.expired == n, "not every session expired"
    return {
        "sessions": n,
        "rss_per_session_bytes": round((rss1 - rss0) / n, 1),
        "rss_sessions_mib": round((rss1 - rss0) / 2**20, 1),
        "rss_growth_after_touch_mib": round((rss2 - rss1) / 2**20, 1),
        "create_us_per_session": round(create_cpu / n * 1e6, 2),
        "idle_seconds": idle_seconds,
        "idle_cpu_share": round(idle_cpu / idle_seconds, 5),
        "idle_timer_wakeups": idle_wakeups,
        "touch_us": round(touch_cpu / n * 1e6, 3),
        "expire_all_cpu_s": round(expire_cpu, 3),
        "expire_us_per_session": round(expire_cpu / n * 1e6, 2),
        "expire_batches": len(batch_times),
        "expire_median_batch_ms": round(statistics.median(batch_times) * 1000, 2),
        # The longest batch usually holds a full CPython GC pass over every live object, not expiry work.
        "expire_longest_batch_ms": round(max(batch_times) * 1000, 2),
    }


# -- handles: one asyncio timer per session (the design the heap replaces) ----------------------------


async def scenario_handles(n: int, idle_seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    fired = 0

    def expire(i: int) -> None:
        nonlocal fired
        fired += 1

    await asyncio.sleep(0)
    rss0 = rss_bytes()
    cpu0 = time.process_time()
    handles = [loop.call_later(900, expire, i) for i in range(n)]
    create_cpu = time.process_time() - cpu0
    rss1 = rss_bytes()
    cpu0 = time.process_time()
    await asyncio.sleep(idle_seconds)
    idle_cpu = time.process_time() - cpu0
    cpu0 = time.process_time()
    for i in range(n):  # activity: the old deadline is cancelled, a new handle made
        handles[i].cancel()
        handles[i] = loop.call_later(900, expire, i)
    touch_cpu = time.process_time() - cpu0
    rss2 = rss_bytes()
    for h in handles:
        h.cancel()
    return {
        "sessions": n,
        "rss_per_session_bytes": round((rss1 - rss0) / n, 1),
        "rss_growth_after_touch_mib": round((rss2 - rss1) / 2**20, 1),
        "create_us_per_session": round(create_cpu / n * 1e6, 2),
        "idle_cpu_share": round(idle_cpu / idle_seconds, 5),
        "touch_us": round(touch_cpu / n * 1e6, 3),
        "timer_handles": n,
    }


# -- latency: real server, real WebSocket clients ------------------------------------------------------


def start_server(idle_timeout: float, workdir: Path) -> tuple[subprocess.Popen[str], str]:
    config = workdir / "tether.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        "[limits]\nevent_rate = 0\nmax_connections_per_ip = 0\n"  # every client is 127.0.0.1
        f'[session]\nsecret = "{SECRET}"\nidle_timeout = {idle_timeout}\nwarn_before = 0\ntoken_ttl = 3600\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "start", "--config", str(config), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=workdir,
        preexec_fn=raise_nofile,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("tether serving on "):
            return proc, line.split()[3]
    proc.kill()
    raise RuntimeError(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")


async def scenario_latency(clients: int, idle_timeout: float, spread: float) -> dict[str, Any]:
    import websockets

    from tether.sessions import issue_token

    with tempfile.TemporaryDirectory(prefix="tether-w5-") as tmp:
        proc, url = start_server(idle_timeout, Path(tmp))
        try:
            base = url.replace("http://", "ws://")
            tokens = [issue_token(f"user{i}", secret=SECRET, ttl=3600) for i in range(clients)]
            loop = asyncio.get_running_loop()
            connected: list[asyncio.Future[None]] = [loop.create_future() for _ in range(clients)]
            go = asyncio.Event()
            results: list[float | None] = [None] * clients

            async def client(i: int) -> None:
                await asyncio.sleep(i * 0.002)  # a gentle connect ramp: 500 handshakes/s
                async with websockets.connect(f"{base}/ws?token={tokens[i]}", max_queue=None) as ws:
                    first = await asyncio.wait_for(ws.recv(), 10)
                    assert isinstance(first, str) and first.startswith("40"), first
                    if not connected[i].done():
                        connected[i].set_result(None)
                    await go.wait()
                    # The clock starts at a moment this process knows: the session's last activity.
                    await asyncio.sleep(spread * i / clients)
                    t_activity = time.monotonic()
                    await ws.send('42["activity"]')
                    async for msg in ws:
                        if isinstance(msg, str) and msg.startswith('42["session:expired"'):
                            results[i] = time.monotonic() - (t_activity + idle_timeout)
                            return

            tasks = [loop.create_task(client(i)) for i in range(clients)]
            try:
                # The connect ramp must fit in the idle timeout, or early sessions expire before "go".
                await asyncio.wait_for(asyncio.gather(*connected), idle_timeout * 0.8)
            except TimeoutError:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise RuntimeError(
                    f"{clients} clients did not connect within {idle_timeout * 0.8} s"
                ) from None
            go.set()
            await asyncio.sleep(spread + 0.05)
            # Every session is idle now until its deadline: the server's CPU over that window.
            window = max(0.1, idle_timeout - spread - 0.2)
            cpu0 = proc_cpu_seconds(proc.pid)
            await asyncio.sleep(window)
            idle_cpu_share = (proc_cpu_seconds(proc.pid) - cpu0) / window
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), idle_timeout + spread + 30)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    got = sorted(r for r in results if r is not None)
    if not got:
        raise RuntimeError("no client received session:expired")
    q = statistics.quantiles(got, n=100) if len(got) > 1 else [got[0]] * 99
    return {
        "clients": clients,
        "idle_timeout_s": idle_timeout,
        "connect_spread_s": spread,
        "received": len(got),
        "missing": clients - len(got),
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(got[-1] * 1000, 2),
        "min_ms": round(got[0] * 1000, 2),
        "server_idle_cpu_share": round(idle_cpu_share, 4),
    }


# -- driver --------------------------------------------------------------------------------------------


def run_part(args: argparse.Namespace, part: str) -> dict[str, Any]:
    """Run one part in a fresh interpreter; its last stdout line is its JSON."""
    cmd = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--sessions",
        str(args.sessions),
        "--idle",
        str(args.idle),
        "--clients",
        str(args.clients),
        "--timeout",
        str(args.timeout),
        "--spread",
        str(args.spread),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:] or f"exit {proc.returncode}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s idle window, 200 clients")
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions to track (default 100000)")
    parser.add_argument("--idle", type=float, default=None, help="idle window in seconds (10; quick: 2)")
    parser.add_argument(
        "--clients", type=int, default=None, help="latency: WebSocket clients (1000; quick: 200)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="latency: idle_timeout, s (10; quick: 4)")
    parser.add_argument(
        "--spread", type=float, default=1.0, help="latency: seconds over which deadlines spread"
    )
    parser.add_argument("--part", choices=("track", "handles", "latency"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.idle = args.idle if args.idle is not None else (2.0 if args.quick else 10.0)
    args.clients = args.clients if args.clients is not None else (200 if args.quick else 1000)
    args.timeout = args.timeout if args.timeout is not None else (4.0 if args.quick else 10.0)
    raise_nofile()

    if args.part:
        import uvloop

        if args.part == "track":
            out = uvloop.run(scenario_track(args.sessions, args.idle))
        elif args.part == "handles":
            out = uvloop.run(scenario_handles(args.sessions, args.idle))
        else:
            out = uvloop.run(scenario_latency(args.clients, args.timeout, args.spread))
        print(json.dumps(out))
        return 0

    results = {part: run_part(args, part) for part in ("track", "handles", "latency")}
    track, handles, latency = results["track"], results["handles"], results["latency"]
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    say(f"W5 sessions ({'quick' if args.quick else 'full'})")
    if "error" not in track:
        say(
            f"  track {track['sessions']:,} sessions: {track['rss_sessions_mib']} MiB RSS "
            f"({track['rss_per_session_bytes']} B each), "
            f"{track['create_us_per_session']} us CPU each to create"
        )
        say(
            f"  idle {track['idle_seconds']} s: {track['idle_cpu_share'] * 100:.3f}% of a core, "
            f"{track['idle_timer_wakeups']} timer wake-ups; touch {track['touch_us']} us; "
            f"expire all: {track['expire_all_cpu_s']} s CPU ({track['expire_us_per_session']} us each) in "
            f"{track['expire_batches']} batches of {track['expire_median_batch_ms']} ms "
            f"(longest {track['expire_longest_batch_ms']} ms)"
        )
    else:
        say(f"  track failed: {track['error']}")
    if "error" not in handles:
        say(
            f"  one timer handle per session instead: {handles['rss_per_session_bytes']} B each, "
            f"touch {handles['touch_us']} us, {handles['timer_handles']:,} handles"
        )
    else:
        say(f"  handles failed: {handles['error']}")
    if "error" not in latency:
        say(
            f"  expiry push latency, {latency['received']}/{latency['clients']} sockets: "
            f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms; "
            f"server idle CPU {latency['server_idle_cpu_share'] * 100:.2f}%"
        )
    else:
        say(f"  latency failed: {latency['error']}")
    summary: dict[str, Any] = {
        "sessions": args.sessions,
        "rss_per_session": track.get("rss_per_session_bytes"),
        "cpu_share": track.get("idle_cpu_share"),
        "track": track,
        "handles_baseline": handles,
        "expiry_latency": latency,
    }
    print(json.dumps(summary))
    failed = [p for p, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
