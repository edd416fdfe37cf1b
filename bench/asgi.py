"""Benchmarks of issue 14, run by ``make bench`` (bench/run.py, workload ``A``) or alone:

* A1: HTTP requests/s of a hello-world FastAPI app (bench/apps/fastapi_hello.py) under ``tether start
  --app`` (one worker) against the same app under uvicorn (httptools, uvloop), keep-alive connections
  from :func:`http_load`;
* A2: Socket.IO echo round trips/s (loadgen ``echo``, WebSocket) under ``tether.asgi.ASGIApp`` in
  uvicorn (bench/apps/tether_asgi_server.py) against python-socketio's ``ASGIApp`` in uvicorn
  (bench/apps/psio_server.py), same uvicorn options;
* A3: W1 echo on Tether's own server without and with that FastAPI app mounted (goal: unchanged).

Servers pinned to CPU 0, load on CPU 1, as the rest of bench/run.py. Usage:
``python bench/asgi.py [--quick] [--duration S] [--clients N]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import LOADGEN_CPU, OUT, PY, Ports, loadavg, log, run_loadgen, start_server  # noqa: E402
from loadgen import process_tree, tree_cpu  # noqa: E402 - the generator's CPU accounting, one definition

__all__ = ["http_load", "run_asgi"]

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _http_client(port: int, deadline: float, counts: list[int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            counts[0] += 1
    finally:
        writer.close()


async def _http_load(port: int, connections: int, duration: float, warmup: float) -> dict[str, Any]:
    counts = [0]
    lat: list[float] = []
    await asyncio.gather(
        *(_http_client(port, time.monotonic() + warmup, [0], []) for _ in range(connections))
    )
    deadline = time.monotonic() + duration
    start = time.monotonic()
    await asyncio.gather(*(_http_client(port, deadline, counts, lat) for _ in range(connections)))
    elapsed = time.monotonic() - start
    lat.sort()
    return {
        "rps": counts[0] / elapsed,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
        "requests": counts[0],
    }


def _server_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (a Tether master and its worker)."""
    return sum(tree_cpu(process_tree([pid])).values())


def http_load(port: int, connections: int, duration: float, warmup: float, server_pid: int) -> dict[str, Any]:
    """Keep-alive ``GET /`` from ``connections`` clients for ``duration`` s (after ``warmup``), in a process
    pinned to the load generator's CPU; adds the server's CPU µs per request."""
    code = (
        f"import json, sys, uvloop; sys.path.insert(0, {str(BENCH)!r}); import asgi; "
        f"print(json.dumps(uvloop.run(asgi._http_load({port}, {connections}, {duration!r}, {warmup!r}))))"
    )
    cpu0 = _server_cpu(server_pid)
    proc = subprocess.run(
        ["taskset", "-c", LOADGEN_CPU, PY, "-c", code], capture_output=True, text=True, timeout=duration + 120
    )
    cpu1 = _server_cpu(server_pid)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["no output"]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # The server's CPU over warm-up and measure both; per request of the measured window it overstates a
    # little, the same for both servers.
    if result["requests"]:
        result["server_us_per_req"] = (cpu1 - cpu0) * 1e6 / result["requests"]
    return result


def _fastapi_http(ports: Ports, duration: float, connections: int, warmup: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    apps = BENCH / "apps"
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as run_dir:
        for name in ("tether_app", "uvicorn"):
            port = ports.take()
            if name == "tether_app":
                config = Path(run_dir) / "tether.toml"
                config.write_text(
                    f'[server]\nport = {port}\nworkers = 1\npid_file = "{run_dir}/t.pid"\n'
                    f'control_socket = "{run_dir}/t.sock"\nlog_file = "{run_dir}/t.log"\n'
                    f'[app]\nasgi = "fastapi_hello:app"\n'
                )
                command = [PY, "-m", "tether", "start", "--config", str(config)]
                env = {"PYTHONPATH": str(apps)}
                ready = "tether serving on"
            else:
                command = [
                    PY, "-m", "uvicorn", "fastapi_hello:app", "--app-dir", str(apps), "--port", str(port),
                    "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
                ]  # fmt: skip
                env = {}
                ready = ""
            log(f"A1 {name}: FastAPI hello world (load {loadavg()})")
            server = start_server(name, port, "fastapi", command=command, env=env, ready_text=ready)
            try:
                out[name] = http_load(port, connections, duration, warmup, server.pid)
            finally:
                server.stop()
            log(f"A1 {name}: {out[name]}")
    return out


def _asgi_echo(ports: Ports, duration: float, clients: int, warmup: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    apps = BENCH / "apps"
    commands = {
        "tether_asgi": lambda port: [PY, str(apps / "tether_asgi_server.py"), "--port", str(port)],
        "psio": lambda port: [PY, "-W", "ignore", str(apps / "psio_server.py"), "--port", str(port)],
    }
    for name, command in commands.items():
        port = ports.take()
        log(f"A2 {name}: Socket.IO echo under uvicorn (load {loadavg()})")
        server = start_server(name, port, "asgi-echo", command=command(port))
        try:
            args = ["echo", "--url", f"ws://127.0.0.1:{port}", "--server-pid", str(server.pid)]
            args += ["--warmup", str(warmup), "--duration", str(duration), "--clients", str(clients)]
            out[name] = run_loadgen(args, duration + 120)
        finally:
            server.stop()
        log(f"A2 {name}: {out[name]}")
    return out


def _realtime_with_app(ports: Ports, duration: float, clients: int, warmup: float) -> dict[str, Any]:
    """W1 echo on Tether's own server without and with the FastAPI app mounted (``TETHER_APP_ASGI``):
    the realtime path must not notice the app."""
    out: dict[str, Any] = {}
    for label, env in (
        ("no_app", {}),
        ("with_app", {"TETHER_APP_ASGI": "fastapi_hello:app", "PYTHONPATH": str(BENCH / "apps")}),
    ):
        port = ports.take()
        log(f"A3 tether {label}: Socket.IO echo (load {loadavg()})")
        server = start_server("tether", port, f"app-{label}", env=env)
        try:
            args = ["echo", "--url", f"ws://127.0.0.1:{port}", "--server-pid", str(server.pid)]
            args += ["--warmup", str(warmup), "--duration", str(duration), "--clients", str(clients)]
            out[label] = run_loadgen(args, duration + 120)
        finally:
            server.stop()
        log(f"A3 tether {label}: {out[label]}")
    return out


def run_asgi(
    quick: bool, ports: Ports, duration: float | None = None, clients: int | None = None
) -> dict[str, Any]:
    """A1 and A2; figures as :func:`http_load` and loadgen ``echo`` report them, with the ratios."""
    duration = duration if duration is not None else (2.0 if quick else 5.0)
    warmup = 0.5 if quick else 1.0
    a1 = _fastapi_http(ports, duration, clients or 50, warmup)
    a2 = _asgi_echo(ports, duration, clients or 100, warmup)
    a3 = _realtime_with_app(ports, duration, clients or 100, warmup)
    result: dict[str, Any] = {"A1": a1, "A2": a2, "A3": a3}
    try:
        result["A1_tether_vs_uvicorn"] = a1["tether_app"]["rps"] / a1["uvicorn"]["rps"]
        result["A2_tether_asgi_vs_psio"] = a2["tether_asgi"]["rps"] / a2["psio"]["rps"]
        result["A3_with_app_vs_without"] = a3["with_app"]["rps"] / a3["no_app"]["rps"]
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/asgi.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--clients", type=int)
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    print(json.dumps(run_asgi(args.quick, Ports(), args.duration, args.clients)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
