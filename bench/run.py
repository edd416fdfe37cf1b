"""``make bench``: Tether against python-socketio and node socket.io on this machine, same run, same app.

Each server runs alone, pinned to CPU 0 (``taskset -c 0``); the load generator (:mod:`loadgen`) runs
pinned to CPU 1. A raw picows echo server (no Socket.IO) is measured first: it is the generator's own
ceiling. Every server is started fresh for each group of workloads:

* echo group: W1 (echo) and W1ack (echoack), then W4 (handshakes/s at concurrency 100);
* idle group: W3 (RSS per idle connection), W6 (CPU of idle connections over 60 s), W2 (broadcast to all).

W5 (100k idle sessions) is the sessions feature's own script, ``bench/sessions_bench.py``: run when it
exists, reported as "not run" otherwise. The run appends a table to ``bench/RESULTS.md``, a line to
``bench/history.jsonl`` and redraws ``bench/ratios.png``; the raw figures go to ``bench/out/``.

Usage: ``python bench/run.py [--quick] [--only W1,W2] [--servers tether,node,psio] [--notes TEXT]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PY = sys.executable
SERVER_CPU = "0"
LOADGEN_CPU = "1"
PORT_RANGE = (24100, 24999)
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
SERVER_ORDER = ("raw", "tether", "node", "psio")
PEERS = ("node", "psio")
LABELS = {
    "tether": "Tether",
    "node": "node socket.io",
    "psio": "python-socketio",
    "raw": "raw picows (ceiling)",
}


def raise_nofile(limit: int = 20_000) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def loadavg1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# -- servers --------------------------------------------------------------------------------------------


class Ports:
    """Hands out a fresh port of the range for every server start (no TIME_WAIT surprises)."""

    def __init__(self) -> None:
        self.next = PORT_RANGE[0]

    def take(self) -> int:
        for _ in range(PORT_RANGE[1] - PORT_RANGE[0]):
            port = self.next
            self.next = self.next + 1 if self.next < PORT_RANGE[1] else PORT_RANGE[0]
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in {PORT_RANGE}")


def server_command(name: str, port: int) -> list[str]:
    apps = BENCH / "apps"
    if name == "tether":
        return [PY, str(apps / "tether_server.py"), "--port", str(port)]
    if name == "psio":
        return [PY, "-W", "ignore::DeprecationWarning", str(apps / "psio_server.py"), "--port", str(port)]
    if name == "node":
        return ["node", str(apps / "node_server.js"), str(port)]
    if name == "raw":
        return [PY, str(apps / "raw_picows_echo.py"), "--port", str(port)]
    raise ValueError(name)


class RunningServer:
    def __init__(self, name: str, port: int, tag: str, extra: list[str] | None = None) -> None:
        self.name = name
        self.port = port
        self.log_path = OUT / f"{name}-{tag}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *server_command(name, port), *(extra or [])],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.pid = self.proc.pid  # taskset execs the server: same pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            allowed = _status_field(self.pid, "Cpus_allowed_list")
            if allowed != SERVER_CPU:
                raise RuntimeError(
                    f"{self.name} is not pinned to CPU {SERVER_CPU} (Cpus_allowed_list={allowed})"
                )
            return
        raise RuntimeError(
            f"{self.name} did not listen on port {self.port} within {timeout}s: {self.log_tail()}"
        )

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-600:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def run_loadgen(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = ["taskset", "-c", LOADGEN_CPU, PY, str(BENCH / "loadgen.py"), *args]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_nofile
        )
    except subprocess.TimeoutExpired:
        return {"error": f"loadgen timed out after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return {"error": f"loadgen exit {proc.returncode}: {last[0][:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- plan -----------------------------------------------------------------------------------------------


class Plan:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.w1_duration = 3.0 if quick else 10.0
        self.w1ack_duration = 2.0 if quick else 5.0
        self.w4_duration = 2.0 if quick else 5.0
        self.warmup = 0.5 if quick else 1.0
        self.idle_clients = 1000 if quick else 10_000
        self.hold = 5.0 if quick else 60.0
        self.rounds = 3 if quick else 10


def run_server_groups(name: str, only: set[str], plan: Plan, ports: Ports) -> dict[str, Any]:
    results: dict[str, Any] = {}
    raw = ["--raw"] if name == "raw" else []

    def start(tag: str) -> RunningServer:
        server = RunningServer(name, ports.take(), tag)
        try:
            server.wait_ready()
        except Exception:
            server.stop()
            raise
        return server

    if only & {"W1", "W4"}:
        log(f"{name}: echo group (load {loadavg()})")
        server = start("echo")
        try:
            url = f"ws://127.0.0.1:{server.port}"
            common = ["--url", url, "--server-pid", str(server.pid), "--warmup", str(plan.warmup), *raw]
            if "W1" in only:
                results["W1"] = run_loadgen(["echo", *common, "--duration", str(plan.w1_duration)], 120)
                log(f"{name}: W1 {_short(results['W1'], 'rps', 'p50_ms', 'p99_ms', 'server_us_per_msg')}")
                if name != "raw":
                    results["W1ack"] = run_loadgen(
                        ["echo", "--ack", *common, "--duration", str(plan.w1ack_duration)], 120
                    )
                    log(f"{name}: W1ack {_short(results['W1ack'], 'rps', 'p50_ms', 'server_us_per_msg')}")
            if "W4" in only:
                results["W4"] = run_loadgen(["connect", *common, "--duration", str(plan.w4_duration)], 120)
                log(
                    f"{name}: W4 "
                    f"{_short(results['W4'], 'hps', 'p50_ms', 'server_us_per_handshake', 'errors')}"
                )
        finally:
            server.stop()

    if only & {"W2", "W3", "W6"}:
        log(f"{name}: idle group, {plan.idle_clients} clients (load {loadavg()})")
        server = start("idle")
        try:
            # The raw server sends no heartbeats: W6 means nothing there.
            hold = plan.hold if "W6" in only and name != "raw" else 0.0
            rounds = plan.rounds if "W2" in only else 0
            res = run_loadgen(
                [
                    "idle",
                    "--url",
                    f"ws://127.0.0.1:{server.port}",
                    "--server-pid",
                    str(server.pid),
                    *raw,
                    "--clients",
                    str(plan.idle_clients),
                    "--hold",
                    str(hold),
                    "--rounds",
                    str(rounds),
                ],
                600,
            )
        finally:
            server.stop()
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


def _short(d: dict[str, Any], *keys: str) -> str:
    if "error" in d:
        return f"ERROR {d['error']}"
    return " ".join(f"{k}={_fmt(d.get(k))}" for k in keys)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


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


# -- report ---------------------------------------------------------------------------------------------


def _get(results: dict[str, Any], server: str, workload: str, key: str) -> float | None:
    d = results.get(server, {}).get(workload)
    if not isinstance(d, dict) or "error" in d:
        return None
    v = d.get(key)
    return float(v) if isinstance(v, int | float) else None


# (label, workload, key, scale, higher_is_better, unit format)
ROWS: list[tuple[str, str, str, float, bool, str]] = [
    ("W1 echo round trips/s", "W1", "rps", 1.0, True, "{:,.0f}"),
    ("W1 p50 latency ms", "W1", "p50_ms", 1.0, False, "{:.2f}"),
    ("W1 p99 latency ms", "W1", "p99_ms", 1.0, False, "{:.2f}"),
    ("W1 server CPU µs per round trip", "W1", "server_us_per_msg", 1.0, False, "{:.1f}"),
    ("W1ack echoack round trips/s", "W1ack", "rps", 1.0, True, "{:,.0f}"),
    ("W1ack server CPU µs per round trip", "W1ack", "server_us_per_msg", 1.0, False, "{:.1f}"),
    ("W2 broadcast to all, median ms", "W2", "median_ms", 1.0, False, "{:.1f}"),
    ("W2 deliveries/s", "W2", "deliveries_per_s", 1.0, True, "{:,.0f}"),
    ("W2 server CPU µs per delivery", "W2", "server_us_per_delivery", 1.0, False, "{:.2f}"),
    ("W3 KiB per idle connection", "W3", "bytes_per_conn", 1 / 1024, False, "{:.1f}"),
    ("W4 handshakes/s", "W4", "hps", 1.0, True, "{:,.0f}"),
    ("W4 server CPU µs per handshake", "W4", "server_us_per_handshake", 1.0, False, "{:.0f}"),
    ("W6 idle CPU, % of a core", "W6", "server_cpu_share", 100.0, False, "{:.2f}"),
]

# Targets for one Tether worker (issue 7): (label, check on the results) -> text.
TARGETS = [
    ("W1 >= 2x node round trips/s", "W1", "rps", "ratio_node", 2.0),
    ("W2 10k broadcast >= 1.4x faster than node", "W2", "median_ms", "ratio_node", 1.4),
    ("W3 <= 10 KiB per idle connection", "W3", "bytes_per_conn", "abs_max", 10 * 1024),
    ("W4 >= 1.3x node handshakes/s", "W4", "hps", "ratio_node", 1.3),
    ("W6 <= 1% of a core", "W6", "server_cpu_share", "abs_max", 0.01),
]


def speedup(results: dict[str, Any], workload: str, key: str, peer: str, higher: bool) -> float | None:
    """How many times better Tether is than ``peer`` (> 1: Tether ahead), whatever the metric's direction."""
    t = _get(results, "tether", workload, key)
    p = _get(results, peer, workload, key)
    if t is None or p is None or t <= 0 or p <= 0:
        return None
    return t / p if higher else p / t


def render(meta: dict[str, Any], results: dict[str, Any], servers: list[str]) -> str:
    cols = [s for s in SERVER_ORDER if s in servers]
    peers = [p for p in PEERS if p in servers and "tether" in servers]
    head = ["metric", *(LABELS[s] for s in cols), *(f"Tether vs {p}" for p in peers)]
    lines = [
        f"## {meta['date']} — commit `{meta['commit']}`{' (quick)' if meta['quick'] else ''}",
        "",
        f"CPU: {meta['cpu']} ({meta['cores']} cores); servers pinned to CPU {SERVER_CPU}, "
        f"load generator to CPU {LOADGEN_CPU}; Python {meta['python']}, node {meta['node']}, "
        f"socket.io {meta['socketio_node']}, "
        f"python-socketio {meta['psio']}, uvicorn {meta['uvicorn']}, picows {meta['picows']}; "
        f"load average {meta['load_start']} at start, {meta['load_end']} at end; {meta['elapsed_s']:.0f} s.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, workload, key, scale, higher, fmt in ROWS:
        if not any(_get(results, s, workload, key) is not None for s in cols):
            continue
        cells = [label]
        for s in cols:
            v = _get(results, s, workload, key)
            cells.append(fmt.format(v * scale) if v is not None else "—")
        for p in peers:
            r = speedup(results, workload, key, p, higher)
            cells.append(f"{r:.2f}x" if r is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    w5 = results.get("W5")
    if w5 is not None:
        lines.append("")
        lines.append(f"W5 sessions: {json.dumps(w5)}")
    lines.append("")
    lines.append("Targets (one Tether worker):")
    lines.append("")
    for label, workload, key, kind, bound in TARGETS:
        lines.append(f"- {label}: {target_status(results, workload, key, kind, bound)}")
    lines.append("")
    lines.append("Notes:")
    lines.append("")
    for note in meta["notes"]:
        lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


def target_status(results: dict[str, Any], workload: str, key: str, kind: str, bound: float) -> str:
    if kind == "ratio_node":
        higher = key != "median_ms"
        r = speedup(results, workload, key, "node", higher)
        if r is None:
            return "not measured"
        return f"{'MET' if r >= bound else 'NOT MET'} ({r:.2f}x)"
    v = _get(results, "tether", workload, key)
    if v is None:
        return "not measured"
    shown = f"{v / 1024:.1f} KiB" if workload == "W3" else f"{v * 100:.2f}%"
    return f"{'MET' if v <= bound else 'NOT MET'} ({shown})"


def auto_notes(results: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    notes = [
        "Ratio columns: how many times better Tether is than the peer (> 1 = Tether ahead): peer/Tether "
        "for times, memory and CPU, Tether/peer for rates.",
        "CPU µs per message = server utime+stime (all threads, /proc/<pid>/stat, 10 ms ticks) over the "
        "measured window / messages; it ranks servers even where the generator is the limit.",
    ]
    if max(meta["load_start_1"], meta["load_end_1"]) > 0.8:
        notes.append(
            f"NOISY: the machine was busy (1-min load average {meta['load_start_1']:.2f} at start, "
            f"{meta['load_end_1']:.2f} at end) with other jobs on both cores: rates and latencies are "
            "depressed and ratios less reliable; CPU per message is the steadier figure. "
            "Rerun on a quiet machine."
        )
    raw = results.get("raw", {})
    rps = _get(results, "raw", "W1", "rps")
    if rps is not None:
        lg = raw["W1"].get("loadgen_cpu_share", 0.0)
        notes.append(
            f"Generator ceiling (raw picows echo server, same frames): W1 {rps:,.0f} round trips/s "
            f"(generator at {lg * 100:.0f}% of its core), "
            f"W2 {_fmt(_get(results, 'raw', 'W2', 'median_ms'))} ms, "
            f"W4 {_fmt(_get(results, 'raw', 'W4', 'hps'))} handshakes/s (WebSocket only)."
        )
    for s in SERVER_ORDER:
        r = results.get(s, {})
        for w, d in r.items():
            if isinstance(d, dict) and "error" in d:
                notes.append(f"{LABELS[s]} {w} failed: {d['error'][:200]}")
        if r.get("clients_lost"):
            notes.append(
                f"{LABELS[s]}: {r['clients_lost']} idle clients were disconnected during the idle group."
            )
        w1 = r.get("W1")
        if isinstance(w1, dict) and (w1.get("bad_replies") or w1.get("unanswered")):
            notes.append(
                f"{LABELS[s]} W1: {w1.get('bad_replies')} bad replies, {w1.get('unanswered')} unanswered."
            )
        w2 = r.get("W2")
        if isinstance(w2, dict) and w2.get("incomplete_counts"):
            notes.append(f"{LABELS[s]} W2: incomplete rounds (deliveries seen): {w2['incomplete_counts']}.")
        w4 = r.get("W4")
        if isinstance(w4, dict) and w4.get("errors"):
            notes.append(f"{LABELS[s]} W4: {w4['errors']} failed handshakes, e.g. {w4.get('error_samples')}.")
        c10k = r.get("connect_10k")
        if c10k and c10k["connected"] < c10k["requested"]:
            notes.append(
                f"{LABELS[s]}: only {c10k['connected']:,} of {c10k['requested']:,} idle clients connected "
                f"({c10k['errors']} handshakes failed, e.g. {c10k['error_samples'][:1]}): its W2, W3 and W6 "
                f"figures are for {c10k['connected']:,} clients."
            )
        if s in results and "connect_10k" in r:
            notes.append(
                f"{LABELS[s]}: idle clients connected at {r['connect_10k']['connect_rate']:,.0f}/s "
                "(concurrency 200)."
            )
    return notes


def gather_meta(quick: bool) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    )
    node = (
        subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("node")
        else "-"
    )

    def pkg_version(dist: str) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(dist)
        except PackageNotFoundError:
            return "-"

    sio_pkg = BENCH / "node" / "node_modules" / "socket.io" / "package.json"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "commit": commit.stdout.strip() + ("+dirty-src" if dirty.stdout.strip() else ""),
        "python": platform.python_version(),
        "node": node,
        "socketio_node": json.loads(sio_pkg.read_text())["version"] if sio_pkg.exists() else "-",
        "psio": pkg_version("python-socketio"),
        "uvicorn": pkg_version("uvicorn"),
        "picows": pkg_version("picows"),
        "quick": quick,
    }


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


def write_history(meta: dict[str, Any], results: dict[str, Any]) -> None:
    ratios: dict[str, float] = {}
    for _label, workload, key, _scale, higher, _unit in ROWS:
        for p in PEERS:
            r = speedup(results, workload, key, p, higher)
            if r is not None:
                ratios[f"{workload}.{key}.vs_{p}"] = round(r, 4)
    entry = {"date": meta["date"], "commit": meta["commit"], "quick": meta["quick"], "ratios": ratios}
    with open(BENCH / "history.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def plot_history() -> str:
    """Redraw bench/ratios.png from history.jsonl (full runs only); returns a note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no plot: {exc}"
    entries = [
        json.loads(line) for line in (BENCH / "history.jsonl").read_text().splitlines() if line.strip()
    ]
    entries = [e for e in entries if not e.get("quick")]
    if not entries:
        return "no plot: no full run in history.jsonl yet"
    series = {
        "W1 rate vs node": "W1.rps.vs_node",
        "W1 CPU/msg vs node": "W1.server_us_per_msg.vs_node",
        "W2 time vs node": "W2.median_ms.vs_node",
        "W2 CPU/delivery vs node": "W2.server_us_per_delivery.vs_node",
        "W3 memory vs node": "W3.bytes_per_conn.vs_node",
        "W4 rate vs node": "W4.hps.vs_node",
        "W6 idle CPU vs node": "W6.server_cpu_share.vs_node",
        "W1 rate vs python-socketio": "W1.rps.vs_psio",
    }
    fig, ax = plt.subplots(figsize=(9, 5))
    xs = list(range(len(entries)))
    for label, key in series.items():
        ys = [e["ratios"].get(key) for e in entries]
        if any(y is not None for y in ys):
            ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(xs, [f"{e['date'][:10]}\n{e['commit'][:7]}" for e in entries], fontsize=7)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("times better than the peer (log)")
    ax.set_title("Tether vs peers per run (> 1: Tether ahead)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(BENCH / "ratios.png", dpi=100)
    plt.close(fig)
    return "plot: bench/ratios.png"


# -- main -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short durations, 1,000 idle clients (development)"
    )
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads, e.g. W1,W2")
    parser.add_argument(
        "--servers", default="tether,node,psio", help="tether,node,psio (raw is always measured)"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw picows generator-ceiling server")
    parser.add_argument("--notes", action="append", default=[], help="a note for RESULTS.md (repeatable)")
    parser.add_argument(
        "--no-record", action="store_true", help="do not touch RESULTS.md/history.jsonl/ratios.png"
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
    for tool in ("taskset", *(("node", "npm") if "node" in servers else ())):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is required and was not found", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 CPU cores (server on CPU 0, load generator on CPU 1)", file=sys.stderr)
        return 2
    raise_nofile()
    OUT.mkdir(exist_ok=True)
    if "node" in servers:
        ensure_node_deps()

    t0 = time.monotonic()
    meta = gather_meta(args.quick)
    meta["load_start"] = loadavg()
    meta["load_start_1"] = loadavg1()
    plan = Plan(args.quick)
    ports = Ports()
    results: dict[str, Any] = {}
    socket_workloads = only - {"W5"}
    for name in servers:
        if not socket_workloads:
            break
        try:
            results[name] = run_server_groups(name, socket_workloads, plan, ports)
        except Exception as exc:  # one broken server must not lose the others' figures
            log(f"{name}: FAILED {exc}")
            results[name] = {w: {"error": str(exc)} for w in socket_workloads}
    if "W5" in only:
        log("W5 sessions hook")
        results["W5"] = run_w5(args.quick)
        log(f"W5: {results['W5']}")
    meta["load_end"] = loadavg()
    meta["load_end_1"] = loadavg1()
    meta["elapsed_s"] = time.monotonic() - t0
    meta["notes"] = [*args.notes, *auto_notes(results, meta)]
    if meta["elapsed_s"] > 15 * 60 and not args.quick:
        meta["notes"].append(f"The run took {meta['elapsed_s'] / 60:.1f} min, over the 15 min budget.")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"run-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    table = render(meta, results, servers)
    print()
    print(table)
    if not args.no_record:
        results_md = BENCH / "RESULTS.md"
        if not results_md.exists():
            results_md.write_text(RESULTS_HEADER)
        with open(results_md, "a") as f:
            f.write("\n" + table)
        write_history(meta, results)
        log(plot_history())
    log(f"done in {meta['elapsed_s']:.0f} s; raw figures in bench/out/run-{stamp}.json")
    return 0


RESULTS_HEADER = """# Benchmark results

Appended by `make bench` (`bench/run.py`), one section per run; see `bench/README.md` for what each
workload measures. Each run measures every peer in the same run, on the same machine: compare ratios
within a run, not absolute figures across runs.
"""


if __name__ == "__main__":
    sys.exit(main())
