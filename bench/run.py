"""``make bench``: Tether against python-socketio and node socket.io on this machine, same run, same app.

Each server runs alone, pinned to CPU 0 (``taskset -c 0``); the load generator (:mod:`loadgen`) runs
pinned to CPU 1. A raw picows echo server (no Socket.IO) is measured first: it is the generator's own
ceiling. Every server is started fresh for each group of workloads:

* echo group: W1 (echo) and W1ack (echoack), then W4 (handshakes/s at concurrency 100); repeated
  ``--repeat`` times (3 in a full run), the servers interleaved, and reported as medians with the spread;
* idle group: W3 (RSS per idle connection), W6 (CPU of idle connections over 60 s), W2 (broadcast to all);
* growth (G): the idle group again at 1,000 and 5,000 clients (the 10,000 point is the idle group's) and
  as far as one process's open-files limit lets the generator and the server go (:func:`growth_top`:
  19,000 clients under this machine's hard limit of 20,000), for W2 per delivery and W6 per connection,
  plotted in ``bench/growth.png``;
* W7, Tether and node only: two workers behind one port (``tether start --workers 2``; node's cluster
  primary with ``@socket.io/sticky`` and ``@socket.io/cluster-adapter``), echo round trips/s (repeated and
  interleaved as the echo group) and a broadcast to 10,000 clients spread over both workers, CPU of every
  process (master/primary included);
* A (bench/asgi.py): a FastAPI hello world under ``tether start --app`` against uvicorn, and Socket.IO
  echo under ``tether.asgi.ASGIApp`` in uvicorn against python-socketio's ``ASGIApp`` in uvicorn;
* W8, Tether and node only: two nodes on one redis-server (Tether's Redis adapter;
  ``@socket.io/redis-adapter``), 10,000 clients split over them, a broadcast from a client of the first.

A run is evidence only on a quiet machine: it refuses to start recording when the 1-minute load average
is 0.5 or more, and at the end it waits for the load of its own processes to decay (up to
``--quiet-wait`` seconds) and records nothing if it stays at 0.5 or more (the figures are still printed and
kept in ``bench/out/``).

W5 (100k idle sessions) is the sessions feature's own script, ``bench/sessions_bench.py``: run when it
exists, reported as "not run" otherwise. The run appends a table to ``bench/RESULTS.md``, a line to
``bench/history.jsonl`` and redraws ``bench/ratios.png``; the raw figures go to ``bench/out/``.

Usage: ``python bench/run.py [--quick] [--only W1,W2,W7] [--servers tether,node,psio] [--notes TEXT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: its scripts import each other by path
    BENCH,
    MULTI_CPUS,
    OUT,
    PY,
    ROOT,
    SERVER_CPU,
    Ports,
    RunningServer,
    idle_args,
    loadavg,
    loadavg1,
    log,
    raise_nofile,
    run_loadgen,
    start_redis,
    start_server,
)
from plots import plot_growth, plot_history
from report import (
    MULTI,
    QUIET_LOAD,
    RESULTS_HEADER,
    SERVER_ORDER,
    auto_notes,
    fmt_num,
    gather_meta,
    render,
    write_history,
)

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "G", "A")


# -- plan -----------------------------------------------------------------------------------------------


class Plan:
    """Durations and sizes of a run. A full run is sized to take about 20 minutes on 2 cores."""

    def __init__(self, quick: bool, repeat: int | None) -> None:
        self.quick = quick
        self.repeat = repeat if repeat is not None else (1 if quick else 3)
        self.w1_duration = 2.0 if quick else 5.0
        self.w1ack_duration = 1.0 if quick else 3.0
        self.w4_duration = 1.0 if quick else 3.0
        self.warmup = 0.5 if quick else 1.0
        self.idle_clients = 1000 if quick else 10_000
        self.hold = 5.0 if quick else 60.0
        self.rounds = 3 if quick else 10
        self.growth_sizes = (200, 500) if quick else (1000, 5000, growth_top(raise_nofile()))
        self.growth_hold = 3.0 if quick else 30.0
        self.growth_rounds = 2 if quick else 5
        self.multi_duration = 2.0 if quick else 5.0
        self.multi_rounds = 3 if quick else 10


def growth_top(nofile: int) -> int:
    """The largest growth point: the open-files limit of one process (``nofile``, see :mod:`limits`) less
    1,000 for the server's and the generator's own files, in whole thousands, at most 50,000 (a generator
    on one core connects ~1,000-1,500 clients a second). 19,000 under a limit of 20,000.

    Raises:
        ValueError: a limit too low for a point beyond the idle group's 10,000 clients.
    """
    top = min(50_000, (nofile - 1000) // 1000 * 1000)
    if top <= 10_000:
        raise ValueError(f"open-files limit {nofile}: too low for a growth point past 10,000 clients")
    return top


def run_echo_group(name: str, only: set[str], plan: Plan, ports: Ports) -> dict[str, Any]:
    """W1, W1ack and W4 on a fresh server."""
    results: dict[str, Any] = {}
    raw = ["--raw"] if name == "raw" else []
    log(f"{name}: echo group (load {loadavg()})")
    server = start_server(name, ports.take(), "echo")
    try:
        url = f"ws://127.0.0.1:{server.port}"
        common = ["--url", url, "--server-pid", str(server.pid), "--warmup", str(plan.warmup), *raw]
        if "W1" in only:
            steal0 = cpu_steal_seconds()
            results["W1"] = run_loadgen(["echo", *common, "--duration", str(plan.w1_duration)], 120)
            results["W1"]["steal_s"] = round(cpu_steal_seconds() - steal0, 2)
            log(f"{name}: W1 {_short(results['W1'], 'rps', 'p50_ms', 'p99_ms', 'server_us_per_msg')}")
            if name != "raw":
                results["W1ack"] = run_loadgen(
                    ["echo", "--ack", *common, "--duration", str(plan.w1ack_duration)], 120
                )
                log(f"{name}: W1ack {_short(results['W1ack'], 'rps', 'p50_ms', 'server_us_per_msg')}")
        if "W4" in only:
            results["W4"] = run_loadgen(["connect", *common, "--duration", str(plan.w4_duration)], 120)
            log(f"{name}: W4 {_short(results['W4'], 'hps', 'p50_ms', 'server_us_per_handshake', 'errors')}")
    finally:
        server.stop()
    return results


def run_idle(name: str, plan: Plan, ports: Ports, clients: int, hold: float, rounds: int) -> dict[str, Any]:
    """W3, then W6 over ``hold`` s, then ``rounds`` broadcasts (W2), on ``clients`` idle clients of a fresh
    single-process server."""
    raw = ["--raw"] if name == "raw" else []
    server = start_server(name, ports.take(), f"idle{clients}")
    try:
        return run_loadgen(idle_args(server.port, server.pid, clients, hold, rounds, *raw), 600)
    finally:
        server.stop()


def run_idle_group(name: str, only: set[str], plan: Plan, ports: Ports) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log(f"{name}: idle group, {plan.idle_clients} clients (load {loadavg()})")
    # The raw server pings every client every 25 s and drops the pongs: its W6 is the floor of a heartbeat.
    hold = plan.hold if "W6" in only else 0.0
    res = run_idle(name, plan, ports, plan.idle_clients, hold, plan.rounds if "W2" in only else 0)
    if "error" in res:
        for w in ("W2", "W3", "W6"):
            if w in only:
                results[w] = res
    else:
        results["connect_10k"] = {
            "connect_s": res["connect_s"],
            "connect_rate": res["connect_rate"],
            "connected": res["connected"],
            "requested": plan.idle_clients,
            "errors": res["connect_errors"],
            "error_samples": res["connect_error_samples"],
        }
        results["W3"] = res["W3"]
        if "W6" in res:
            results["W6"] = res["W6"]
        if "W2" in res:
            results["W2"] = res["W2"]
        results["clients_lost"] = res.get("clients_lost", 0)
    log(
        f"{name}: W3 {_short(results.get('W3', {}), 'bytes_per_conn')} "
        f"W6 {_short(results.get('W6', {}), 'server_cpu_share', 'pings_answered')} "
        f"W2 {_short(results.get('W2', {}), 'median_ms', 'deliveries_per_s', 'server_us_per_delivery')}"
    )
    return results


def run_growth(name: str, plan: Plan, ports: Ports) -> dict[str, Any]:
    """The idle group at each of ``plan.growth_sizes`` (the largest point is the idle group's own)."""
    points: dict[str, Any] = {}
    for n in plan.growth_sizes:
        log(f"{name}: growth, {n} idle clients (load {loadavg()})")
        try:
            res = run_idle(name, plan, ports, n, plan.growth_hold, plan.growth_rounds)
        except Exception as exc:
            res = {"error": str(exc)}
        points[str(n)] = res
        log(
            f"{name}: growth {n}: W2 {_short(res.get('W2', res), 'median_ms', 'server_us_per_delivery')} "
            f"W6 {_short(res.get('W6', res), 'server_cpu_share')}"
        )
    return points


def multi_tether(port: int, workers: int, run_dir: str) -> dict[str, Any]:
    """``tether start`` with ``workers`` workers: its own run folder, ready once the master says so."""
    return {
        "command": [
            PY,
            "-m",
            "tether",
            "start",
            "--config",
            str(BENCH / "apps" / "tether.toml"),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--pid-file",
            os.path.join(run_dir, "tether.pid"),
            "--control-socket",
            os.path.join(run_dir, "tether.sock"),
        ],
        "ready_text": "serving on",
    }


def _w7_server(name: str, port: int, tag: str, run_dir: str) -> RunningServer:
    """Two workers behind ``port``: ``tether start --workers 2``, or node's cluster primary with sticky."""
    if name == "tether":
        kwargs = multi_tether(port, 2, run_dir)
    else:
        kwargs = {
            "command": ["node", str(BENCH / "apps" / "node_cluster.js"), str(port), "2"],
            "ready_text": "READY",
        }
    return start_server(name, port, tag, cpus=MULTI_CPUS, **kwargs)


def run_w7_echo(name: str, plan: Plan, ports: Ports) -> dict[str, Any]:
    """W7 echo: two workers behind one port on the two cores, a fresh server per repetition.

    The server processes may use both cores; the generator is pinned to CPU 1 like everywhere else, so it
    shares a core with whatever the kernel puts there: read the CPU-per-message rows first."""
    log(f"{name}: W7 echo, two workers (load {loadavg()})")
    port = ports.take()
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as run_dir:
        server = _w7_server(name, port, "w7echo", run_dir)
        try:
            url = ["--url", f"ws://127.0.0.1:{port}", "--server-pid", str(server.pid)]
            result = run_loadgen(
                ["echo", *url, "--warmup", str(plan.warmup), "--duration", str(plan.multi_duration)], 120
            )
        finally:
            server.stop()
    log(f"{name}: W7 echo {_short(result, 'rps', 'p50_ms', 'server_us_per_msg')}")
    return {"W7": result}


def run_w7_broadcast(name: str, plan: Plan, ports: Ports) -> dict[str, Any]:
    """W7 broadcast: ``plan.multi_rounds`` broadcasts to every idle client, spread over the two workers."""
    log(f"{name}: W7 broadcast, two workers (load {loadavg()})")
    port = ports.take()
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as run_dir:
        server = _w7_server(name, port, "w7idle", run_dir)
        try:
            res = run_loadgen(idle_args(port, server.pid, plan.idle_clients, 0, plan.multi_rounds), 600)
        finally:
            server.stop()
    result = {**res["W2"], "spread": res["sockets_per_process"]} if "W2" in res else res
    log(f"{name}: W7 broadcast {_short(result, 'median_ms', 'server_us_per_delivery')}")
    return {"W7b": result}


def run_w8(name: str, plan: Plan, ports: Ports) -> dict[str, Any]:
    """Two nodes on one fresh redis-server (node A on CPU 0, node B on CPU 1), the idle clients split over
    them, broadcasts sent by a client of node A. CPU of both nodes; redis-server's apart."""
    log(f"{name}: W8, two nodes on Redis (load {loadavg()})")
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as folder:
        redis_port = ports.take()
        redis = start_redis(redis_port, folder)
        servers: list[RunningServer] = []
        try:
            url = f"redis://127.0.0.1:{redis_port}/0"
            for i, cpu in enumerate(("0", "1")):
                port = ports.take()
                extra = ["--redis", url] if name == "tether" else [url]
                servers.append(start_server(name, port, f"w8{i}", extra=extra, cpus=cpu))
            args = ["idle"]
            for s in servers:
                args += ["--url", f"ws://127.0.0.1:{s.port}", "--server-pid", str(s.pid)]
            args += ["--aux-pid", str(redis.pid), "--clients", str(plan.idle_clients), "--hold", "0"]
            res = run_loadgen([*args, "--rounds", str(plan.multi_rounds)], 600)
        finally:
            for s in servers:
                s.stop()
            redis.stop()
    result = {**res["W2"], "spread": res["sockets_per_process"]} if "W2" in res else res
    log(f"{name}: W8 {_short(result, 'median_ms', 'server_us_per_delivery', 'aux_us_per_delivery')}")
    return {"W8": result}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated runs of a group -> one result per workload: the median of every figure, its min-max."""
    out: dict[str, Any] = {}
    for workload in runs[0]:
        good = [r[workload] for r in runs if isinstance(r.get(workload), dict) and "error" not in r[workload]]
        if not good:
            out[workload] = runs[0][workload]
            continue
        merged: dict[str, Any] = dict(good[0])
        ranges: dict[str, list[float]] = {}
        for key, value in good[0].items():
            values = [g[key] for g in good if isinstance(g.get(key), int | float) and g[key] is not None]
            if isinstance(value, int | float) and not isinstance(value, bool) and values:
                merged[key] = statistics.median(values)
                ranges[key] = [min(values), max(values)]
        merged["repeats"] = len(good)
        merged["range"] = ranges
        out[workload] = merged
    return out


def _short(d: dict[str, Any], *keys: str) -> str:
    if "error" in d:
        return f"ERROR {d['error']}"
    return " ".join(f"{k}={fmt_num(d.get(k))}" for k in keys)


# -- W5 hook --------------------------------------------------------------------------------------------

SESSIONS_BENCH = BENCH / "sessions_bench.py"


def run_w5(quick: bool) -> dict[str, Any]:
    """W5 HOOK: the sessions feature ships ``bench/sessions_bench.py``; run it when it is there.

    Contract: the script runs on its own (it starts what it needs), takes ``--quick``, and prints one
    JSON object as its last stdout line, e.g.
    ``{"sessions": 100000, "rss_per_session": ..., "cpu_share": ...}``.
    """
    if not SESSIONS_BENCH.exists():
        return {"status": "not run", "why": "bench/sessions_bench.py is not on this branch yet"}
    cmd = [PY, str(SESSIONS_BENCH), *(["--quick"] if quick else [])]
    try:
        proc = subprocess.run(
            ["taskset", "-c", SERVER_CPU, *cmd],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=raise_nofile,
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "why": "timed out after 300 s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": "failed", "why": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return {"status": "ok", **json.loads(lines[-1])}


def ensure_node_deps() -> None:
    node_dir = BENCH / "node"
    stamp = node_dir / "node_modules" / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= (node_dir / "package.json").stat().st_mtime:
        return
    log("npm install in bench/node")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=node_dir,
        check=True,
        timeout=300,
    )
    stamp.touch()


# -- main -----------------------------------------------------------------------------------------------


def _cpu_ticks() -> list[int]:
    """``/proc/stat``'s first line: user nice system idle iowait irq softirq steal, in clock ticks."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return [int(x) for x in fields[:8]]


def cpu_busy_seconds() -> float:
    """Seconds of CPU time every core spent running this machine's work since boot (``/proc/stat``: all but
    idle, iowait and steal)."""
    ticks = _cpu_ticks()
    return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / os.sysconf("SC_CLK_TCK")


def cpu_steal_seconds() -> float:
    """Seconds the hypervisor gave this machine's cores to other guests since boot (``/proc/stat`` steal).

    A process's CPU clock does not count them, but a busy host slows what does run (shared caches, memory
    bandwidth): the same code read ±20 % CPU per message between runs on this machine. Reported per run
    and per echo measurement so that a figure can be read against what the host was doing."""
    return _cpu_ticks()[7] / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU of this runner and of every process it started and waited for (servers, generator, redis)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wait_quiet(limit: float) -> float:
    """Wait (at most ``limit`` s) for the 1-minute load average to fall below QUIET_LOAD once this run's own
    processes have stopped (it decays by e^(-t/60)): what is left is other work. Returns the last value."""
    deadline = time.monotonic() + limit
    load = loadavg1()
    while load >= QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(5)
        load = loadavg1()
    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short durations, 1,000 idle clients, echo once (development)"
    )
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2,W7,G")
    parser.add_argument(
        "--servers", default="tether,node,psio", help="tether,node,psio (raw is always measured)"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw picows generator-ceiling server")
    parser.add_argument("--repeat", type=int, help="echo group repeats (default 3, 1 with --quick)")
    parser.add_argument("--notes", action="append", default=[], help="a note for RESULTS.md (repeatable)")
    parser.add_argument(
        "--no-record", action="store_true", help="do not touch RESULTS.md/history.jsonl/the plots"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=180.0,
        help="seconds to wait at the end for the load average to fall below 0.5 (default 180)",
    )
    args = parser.parse_args(argv)

    only = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = only - set(WORKLOADS)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    bad = set(servers) - set(SERVER_ORDER)
    if unknown or bad:
        parser.error(f"unknown workloads {sorted(unknown)} or servers {sorted(bad)}")
    if not args.no_raw and "raw" not in servers:
        servers.insert(0, "raw")
    servers = [s for s in SERVER_ORDER if s in servers]
    record = not args.no_record and not args.quick
    if args.quick and not args.no_record:
        log("--quick: nothing is recorded (a quick run is never evidence)")
    needs = ["taskset"]
    if "node" in servers:
        needs += ["node", "npm"]
    if "W8" in only:
        needs.append("redis-server")
    for tool in needs:
        if shutil.which(tool) is None and not (
            tool == "redis-server" and Path("/usr/bin/redis-server").exists()
        ):
            print(f"bench: {tool} is required and was not found", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 CPU cores (server on CPU 0, load generator on CPU 1)", file=sys.stderr)
        return 2
    if record and loadavg1() >= QUIET_LOAD:
        print(
            f"bench: the 1-minute load average is {loadavg1():.2f} (>= {QUIET_LOAD}): other work is running "
            "and this run would not be evidence, so it is not started. Wait for a quiet machine, or look at "
            "figures without recording them: python bench/run.py --no-record (or --quick).",
            file=sys.stderr,
        )
        return 3
    raise_nofile()
    OUT.mkdir(exist_ok=True)
    if "node" in servers:
        ensure_node_deps()

    t0 = time.monotonic()
    busy0, own0, steal0 = cpu_busy_seconds(), own_cpu_seconds(), cpu_steal_seconds()
    meta = gather_meta(args.quick)
    meta["load_start"] = loadavg()
    meta["load_start_1"] = loadavg1()
    plan = Plan(args.quick, args.repeat)
    meta["repeat"] = plan.repeat
    ports = Ports()
    results: dict[str, Any] = {name: {} for name in servers}

    def guarded(name: str, what: str, fn: Any, *fn_args: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = fn(*fn_args)
            return out
        except Exception as exc:  # one broken server must not lose the others' figures
            log(f"{name}: {what} FAILED {exc}")
            return {"error": str(exc)}

    echo = only & {"W1", "W4"}
    if echo:
        # Interleaved repeats: each server's runs spread over the whole phase, so that a burst of other work
        # does not land on one server's runs only.
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for rep in range(plan.repeat):
            for name in servers:
                log(f"echo group, repeat {rep + 1}/{plan.repeat}")
                res = guarded(name, "echo group", run_echo_group, name, echo, plan, ports)
                runs[name].append(res if "error" not in res else {w: res for w in ("W1", "W1ack", "W4")})
        for name in servers:
            results[name].update(combine(runs[name]))
    if only & {"W2", "W3", "W6"}:
        for name in servers:
            res = guarded(name, "idle group", run_idle_group, name, only, plan, ports)
            results[name].update(res if "error" not in res else {w: res for w in ("W2", "W3", "W6")})
    multi = [name for name in servers if name in MULTI]
    if "G" in only:
        for name in multi:
            results[name]["growth"] = run_growth(name, plan, ports)
    if "W7" in only:
        # The echo interleaved and repeated as the echo group (one 5 s figure per run flipped W7's verdict
        # between runs); the broadcast is already a median of several rounds.
        w7_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in multi}
        for rep in range(plan.repeat):
            for name in multi:
                log(f"W7 echo, repeat {rep + 1}/{plan.repeat}")
                res = guarded(name, "W7 echo", run_w7_echo, name, plan, ports)
                w7_runs[name].append(res if "error" not in res else {"W7": res})
        for name in multi:
            results[name].update(combine(w7_runs[name]))
            res = guarded(name, "W7 broadcast", run_w7_broadcast, name, plan, ports)
            results[name].update(res if "error" not in res else {"W7b": res})
    if "W8" in only:
        for name in multi:
            res = guarded(name, "W8", run_w8, name, plan, ports)
            results[name].update(res if "error" not in res else {"W8": res})
    if "W5" in only:
        log("W5 sessions hook")
        results["W5"] = run_w5(args.quick)
        log(f"W5: {results['W5']}")
    if "A" in only:
        import asgi as asgi_bench  # issue 14's workloads (FastAPI under --app, ASGIApp): bench/asgi.py

        log("A: FastAPI under tether start --app vs uvicorn; ASGIApp vs python-socketio in uvicorn")
        results["asgi"] = guarded("asgi", "A", asgi_bench.run_asgi, args.quick, ports)
    meta["elapsed_s"] = time.monotonic() - t0
    foreign = (cpu_busy_seconds() - busy0) - (own_cpu_seconds() - own0)
    meta["foreign_cpu_s"] = foreign
    meta["steal_s"] = cpu_steal_seconds() - steal0
    log(
        f"measured in {meta['elapsed_s'] / 60:.1f} min; other processes used ~{max(foreign, 0):.0f} s of "
        f"CPU; the hypervisor took {meta['steal_s']:.1f} s (steal)"
    )
    if record:
        log(f"waiting up to {args.quiet_wait:.0f} s for the load average to fall below {QUIET_LOAD}")
        wait_quiet(args.quiet_wait)
    meta["load_end"] = loadavg()
    meta["load_end_1"] = loadavg1()
    quiet = meta["load_start_1"] < QUIET_LOAD and meta["load_end_1"] < QUIET_LOAD
    meta["notes"] = [*args.notes, *auto_notes(results, meta)]
    if meta["elapsed_s"] > 20 * 60 and not args.quick:
        meta["notes"].append(f"The run took {meta['elapsed_s'] / 60:.1f} min, over the 20 min budget.")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    if record and quiet and plot_growth(results, BENCH / "growth.png"):
        meta["growth_plot"] = "growth.png"
    (OUT / f"run-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    table = render(meta, results, servers)
    print()
    print(table)
    if record and not quiet:
        log(
            f"NOT RECORDED: the load average was {meta['load_start_1']:.2f} at start and "
            f"{meta['load_end_1']:.2f} at the end (after waiting up to {args.quiet_wait:.0f} s): other work "
            f"ran, so these figures are not evidence. They are in bench/out/run-{stamp}.json."
        )
    elif record:
        results_md = BENCH / "RESULTS.md"
        if not results_md.exists():
            results_md.write_text(RESULTS_HEADER)
        with open(results_md, "a") as f:
            f.write("\n" + table)
        write_history(meta, results)
        log(plot_history())
    total = time.monotonic() - t0
    log(
        f"done: measuring took {meta['elapsed_s'] / 60:.1f} min, {total / 60:.1f} min in all; raw figures in "
        f"bench/out/run-{stamp}.json"
    )
    return 0 if (quiet or not record) else 4


if __name__ == "__main__":
    sys.exit(main())
