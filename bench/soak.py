"""Soak run: thousands of clients connecting, emitting and leaving against one Tether server, for minutes.

``make soak`` runs it with the defaults (10 minutes, 5,000 concurrent clients); it is not part of
``make test``. What it does:

1. Starts ``tether start`` (the real CLI: uvloop, picows, httptools) on a free port with
   ``bench/soak_routes.py``, ping_interval 10 s and ping_timeout 5 s so that vanished clients are found
   within the run.
2. Measures echo throughput of the fresh server (``--echo-clients`` clients, one ``echo`` with ack in
   flight each, for ``--echo-seconds``).
3. Soaks for ``--minutes``: ``--clients`` slots, each running client lives back to back. A life connects
   (over the WebSocket transport, from one of 16 loopback addresses so that TIME_WAIT never runs out of
   ports), joins one of 1,000 rooms, sends events (echo with ack, room broadcasts), and after 2-20 s
   leaves in one of four ways: a clean close (70 %), a login to a user room first (10 %), a TCP reset
   without a close frame (10 %), or going silent (no reads, no pongs) until the heartbeat drops it
   (10 %). Every ``--sample`` seconds the server's RSS and open file descriptors (``/proc/<pid>/fd``)
   are sampled, with the server's own count of clients, sockets and rooms (the ``stats`` event).
4. Lets the server settle (heartbeat timeouts of the silent clients), samples the end state, tops the
   connection count up to ``--min-churn`` (15,000) with quick connect/close cycles if the soak did not get
   there, and measures echo throughput again.
5. Writes ``docs/soak.md`` (figures) and ``docs/img/soak.png`` (RSS and fds over time).

Every loop is bounded in count and time; the server is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

ROOT = Path(__file__).resolve().parent.parent
TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
SOURCES = [f"127.0.0.{i}" for i in range(1, 17)]


# -- the server process ---------------------------------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    env = {
        **os.environ,
        "TETHER_WEBSOCKET_PING_INTERVAL": "10",
        "TETHER_WEBSOCKET_PING_TIMEOUT": "5",
        "TETHER_SERVER_LOG_LEVEL": "warning",
    }
    env.pop("TETHER_CONFIG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--routes",
            str(ROOT / "bench" / "soak_routes.py"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError("tether exited before listening")
        if "serving on" in line:
            port = int(line.split("serving on ")[1].split()[0].rsplit(":", 1)[1])
            return proc, port
    raise RuntimeError("tether did not start within 30 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- clients ----------------------------------------------------------------------------------------------


@dataclass
class Counters:
    opened: int = 0
    failed: int = 0
    events: int = 0
    acks: int = 0
    broadcasts: int = 0
    endings: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        key = type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1


class Client(WSListener):
    """A Socket.IO client over picows that speaks the protocol by hand, answering pings unless silent."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.acks: dict[int, asyncio.Future[bytes]] = {}
        self.seq = 0
        self.silent = False
        self.closed = asyncio.Event()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.silent:
            return
        if frame.msg_type is CLOSE:
            transport.disconnect()
            return
        if frame.msg_type is not TEXT:
            return
        data = frame.get_payload_as_bytes()
        c = data[:1]
        if c == b"2":
            transport.send(TEXT, b"3")
        elif c == b"0":
            transport.send(TEXT, b"40")
        elif data[:2] == b"40":
            if not self.ready.done():
                self.ready.set_result(None)
        elif data[:2] == b"43":
            i = 2
            while i < len(data) and 48 <= data[i] <= 57:
                i += 1
            fut = self.acks.pop(int(data[2:i]), None)
            if fut is not None and not fut.done():
                fut.set_result(data[i:])
        elif data[:2] == b"42":
            self.counters.broadcasts += 1
        elif data[:2] == b"44" and not self.ready.done():
            self.ready.set_exception(ConnectionRefusedError(data[:80].decode(errors="replace")))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))
        for fut in self.acks.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))

    def emit(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.send(TEXT, b"42" + payload)
        self.counters.events += 1

    async def call(self, payload: bytes, timeout: float = 10.0) -> bytes:
        assert self.transport is not None
        self.seq += 1
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.acks[self.seq] = fut
        self.transport.send(TEXT, b"42" + str(self.seq).encode() + payload)
        self.counters.events += 1
        result = await asyncio.wait_for(fut, timeout)
        self.counters.acks += 1
        return result


async def connect(port: int, counters: Counters, source: str | None = None) -> Client:
    made: list[Client] = []

    def factory() -> Client:
        made.append(Client(counters))
        return made[-1]

    async def go() -> Client:
        await ws_connect(
            factory,
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
            read_buffer_init_size=1024,
            local_addr=(source or random.choice(SOURCES), 0),
            websocket_handshake_timeout=20,
        )
        client = made[-1]
        await client.ready
        return client

    try:
        client = await asyncio.wait_for(go(), 30)
    except BaseException:
        # A timeout may strike after the connection was made: close it, or it lives on as an orphan that
        # answers pings (and the server rightly keeps it).
        for c in made:
            if c.transport is not None:
                c.transport.disconnect(graceful=False)
        raise
    counters.opened += 1
    return client


async def close(client: Client) -> None:
    if client.transport is not None and not client.closed.is_set():
        client.transport.send_close()
        client.transport.disconnect()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.closed.wait(), 5)


async def one_life(port: int, counters: Counters, rng: random.Random, deadline: float) -> None:
    client = await connect(port, counters)
    try:
        room = f"room-{rng.randrange(1000)}".encode()  # ~5 members each at 5,000 clients
        await client.call(b'["join","' + room + b'"]')
        roll = rng.random()
        kind = "close" if roll < 0.7 else "login" if roll < 0.8 else "reset" if roll < 0.9 else "silent"
        if kind == "login":
            await client.call(b'["login","user-' + str(rng.randrange(500)).encode() + b'"]')
        life_end = min(deadline, time.monotonic() + rng.uniform(2, 20))
        while time.monotonic() < life_end:
            if rng.random() < 0.5:
                await client.call(b'["echo","soak",' + str(rng.randrange(10**6)).encode() + b"]")
            else:
                client.emit(b'["say","' + room + b'","hello room"]')
            await asyncio.sleep(rng.uniform(0.5, 3.0))
        counters.endings[kind] = counters.endings.get(kind, 0) + 1
        if kind == "reset":
            assert client.transport is not None
            client.transport.disconnect(graceful=False)  # RST, no close frame
        elif kind == "silent":
            client.silent = True
            assert client.transport is not None
            client.transport.underlying_transport.pause_reading()
            # The server drops it after ping_interval + ping_timeout (15 s); hold the slot at most 25 s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.closed.wait(), 25)
            client.transport.disconnect(graceful=False)
        else:
            await close(client)
    except BaseException:
        if client.transport is not None:
            client.transport.disconnect(graceful=False)
        raise


async def slot(port: int, counters: Counters, seed: int, deadline: float, start_delay: float) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(start_delay)
    while time.monotonic() < deadline:
        try:
            await one_life(port, counters, rng, deadline)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            counters.failed += 1
            counters.error(exc)
            await asyncio.sleep(1)


async def stats(port: int) -> dict[str, Any]:
    counters = Counters()
    client = await connect(port, counters, "127.0.0.200")
    try:
        st: dict[str, Any] = json.loads((await client.call(b'["stats"]'))[1:-1])
        st["clients"] -= 1  # not counting the probe itself
        return st
    finally:
        await close(client)


async def echo_throughput(port: int, pid: int, clients: int, seconds: float) -> tuple[float, float]:
    """Acked echoes per second over ``clients`` clients with one echo in flight each, and the server's CPU
    microseconds per echo (less sensitive than the rate to other work on a shared machine)."""
    counters = Counters()
    conns = [await connect(port, counters) for _ in range(clients)]
    stop = time.monotonic() + seconds
    done = 0

    async def run(c: Client) -> None:
        nonlocal done
        while time.monotonic() < stop:
            await c.call(b'["echo","throughput"]')
            done += 1

    t0 = time.monotonic()
    cpu0 = cpu_seconds(pid)
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    await asyncio.gather(*(close(c) for c in conns))
    return done / elapsed, cpu / done * 1e6


async def compare_echo(
    soaked: tuple[int, int], fresh: tuple[int, int], clients: int, seconds: float, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Alternate rounds on the soaked server and on a fresh one started now, so that both see the same
    background load: on a shared machine, two runs minutes apart differ by more than any leak would."""
    results: dict[str, list[tuple[float, float]]] = {"soaked": [], "fresh": []}
    for _ in range(rounds):
        for name, (port, pid) in (("fresh", fresh), ("soaked", soaked)):
            results[name].append(await echo_throughput(port, pid, clients, seconds))
    return results


async def churn(port: int, target: int, counters: Counters, concurrency: int = 50) -> None:
    """Quick connect/close cycles until ``counters.opened`` reaches ``target`` (bounded: 20 min)."""
    deadline = time.monotonic() + 1200

    async def worker() -> None:
        while counters.opened < target and time.monotonic() < deadline:
            try:
                await close(await connect(port, counters))
            except Exception as exc:
                counters.failed += 1
                counters.error(exc)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- the run ----------------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    clients: int
    rooms: int
    opened: int


async def soak(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    t_start = time.monotonic()
    out: dict[str, Any] = {"samples": []}
    samples: list[Sample] = out["samples"]

    async def sample() -> Sample:
        st = await stats(port)
        s = Sample(
            time.monotonic() - t_start,
            rss_kib(pid),
            fd_count(pid),
            st["clients"],
            st["rooms"],
            counters.opened,
        )
        samples.append(s)
        return s

    counters = Counters()
    out["counters"] = counters
    await asyncio.sleep(1)
    out["idle"] = await sample()
    out["stats_idle"] = await stats(port)
    print(f"idle: RSS {out['idle'].rss_kib / 1024:.1f} MiB, {out['idle'].fds} fds", flush=True)
    out["echo_fresh"] = await echo_throughput(port, pid, args.echo_clients, args.echo_seconds)
    print(f"echo throughput, fresh server: {out['echo_fresh'][0]:.0f}/s", flush=True)
    out["after_echo"] = await sample()

    cpu0 = cpu_seconds(pid)
    soak_start = time.monotonic()
    deadline = soak_start + args.minutes * 60
    ramp = min(60.0, args.clients / 250)  # at most 250 new clients per second while ramping up
    tasks = [
        asyncio.ensure_future(
            slot(port, counters, args.seed * 100_000 + i, deadline, ramp * i / args.clients)
        )
        for i in range(args.clients)
    ]

    sampling = True

    async def sampler() -> None:
        # Also after the deadline: the drain (silent clients timing out) belongs on the plot.
        while sampling:
            await asyncio.sleep(args.sample)
            try:
                s = await sample()
            except Exception as exc:
                counters.error(exc)
                continue
            print(
                f"t={s.t:6.0f}s RSS {s.rss_kib / 1024:7.1f} MiB fds {s.fds:5d} clients {s.clients:5d} "
                f"rooms {s.rooms:4d} opened {s.opened:7d} failed {counters.failed} events {counters.events}",
                flush=True,
            )

    sampler_task = asyncio.ensure_future(sampler())
    await asyncio.wait(tasks, timeout=args.minutes * 60 + 60)
    out["soak_seconds"] = args.minutes * 60
    out["server_cpu"] = cpu_seconds(pid) - cpu0
    out["drain_seconds"] = time.monotonic() - deadline
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # Settle: the silent clients' heartbeats run out, closes finish.
    settle_deadline = time.monotonic() + 60
    while time.monotonic() < settle_deadline:
        st = await stats(port)
        if st["clients"] == 0:
            break
        await asyncio.sleep(2)
    await asyncio.sleep(2)
    sampling = False
    await sampler_task
    out["end"] = await sample()
    out["stats_end"] = await stats(port)
    print(f"after the soak: {out['stats_end']}", flush=True)

    if counters.opened < args.min_churn:
        print(f"churning up to {args.min_churn} connections", flush=True)
        await churn(port, args.min_churn, counters)
    out["echo_after"] = await echo_throughput(port, pid, args.echo_clients, args.echo_seconds)
    print(f"echo throughput after {counters.opened} connections: {out['echo_after'][0]:.0f}/s", flush=True)
    fresh_proc, fresh_port = start_server()
    try:
        out["compare"] = await compare_echo(
            (port, pid), (fresh_port, fresh_proc.pid), args.echo_clients, args.echo_seconds, args.echo_rounds
        )
    finally:
        stop_server(fresh_proc)
    for name, rounds in out["compare"].items():
        print(f"{name}: " + ", ".join(f"{r:.0f}/s ({us:.0f} us CPU/echo)" for r, us in rounds), flush=True)
    await asyncio.sleep(2)
    out["final"] = await sample()
    out["stats_final"] = await stats(port)
    return out


def plot(samples: list[Sample], path: Path, soak_end: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(t, [s.rss_kib / 1024 for s in samples], color="tab:blue")
    ax1.set_ylabel("server RSS (MiB)")
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    ax2.plot(t, [s.fds for s in samples], color="tab:orange", label="server open fds")
    ax2.plot(t, [s.clients for s in samples], color="tab:green", label="connected clients (server's count)")
    ax2.set_ylabel("count")
    ax2.set_xlabel("minutes")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="upper right")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.axvline(soak_end / 60, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("Tether soak: clients connecting, emitting and leaving")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def report(args: argparse.Namespace, out: dict[str, Any], path: Path, img: Path) -> str:
    s: list[Sample] = out["samples"]
    c: Counters = out["counters"]
    soak_samples = [x for x in s if out["after_echo"].t < x.t <= out["after_echo"].t + out["soak_seconds"]]
    loaded = [x for x in soak_samples if x.t > out["after_echo"].t + 90] or soak_samples
    first, last = loaded[: max(1, len(loaded) // 5)], loaded[-max(1, len(loaded) // 5) :]

    def mean_rss(xs: list[Sample]) -> float:
        return sum(x.rss_kib for x in xs) / len(xs) / 1024

    peak = max(s, key=lambda x: x.rss_kib)
    concurrent_mean = sum(x.clients for x in loaded) / len(loaded)
    ratio = median([r for r, _ in out["compare"]["soaked"]]) / median([r for r, _ in out["compare"]["fresh"]])
    cpu_ratio = median([u for _, u in out["compare"]["soaked"]]) / median(
        [u for _, u in out["compare"]["fresh"]]
    )
    lines = [
        "# Soak run",
        "",
        f"`make soak` (bench/soak.py), run on {time.strftime('%Y-%m-%d')}: one Tether server "
        "(`tether start`, "
        f"one worker) on a {os.cpu_count()}-core machine shared with the load generator"
        + (
            f" and with other work (load average {os.getloadavg()[0]:.1f} at the end)"
            if os.getloadavg()[0] > 1.5
            else ""
        )
        + ".",
        "",
        f"- Duration: {out['soak_seconds'] / 60:.1f} min of soak (`--minutes {args.minutes}`), "
        f"{args.clients} client slots (`--clients {args.clients}`), each running client lives back to back: "
        "connect, join one of 1,000 rooms, echo with ack and room broadcasts every 0.5-3 s, leave after "
        "2-20 s by a clean close (70 %), a login to a user room then a close (10 %), a TCP reset with no "
        "close frame (10 %), or by going silent until the heartbeat drops it (10 %; ping_interval 10 s, "
        "ping_timeout 5 s).",
        f"- Connections opened: {c.opened:,} in all; failed lives: {c.failed} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(c.errors.items())) or 'none'}); "
        f"events sent {c.events:,}, acks received {c.acks:,}, room broadcasts received {c.broadcasts:,}.",
        f"- Connected at once, by the server's count once ramped up: mean {concurrent_mean:,.0f}, "
        f"{min(x.clients for x in loaded):,} to {max(x.clients for x in loaded):,} "
        f"for {args.clients:,} slots "
        "(a slot spends part of its time connecting and between lives; on a busy machine the Python load "
        "generator is the bottleneck).",
        f"- Endings: {', '.join(f'{k} {v:,}' for k, v in sorted(c.endings.items()))}. "
        f"Server's disconnect reasons: {out['stats_final']['disconnects']}.",
        f"- Server CPU: {out['server_cpu']:.0f} s over the {out['soak_seconds']:.0f} s of soak and the "
        f"{out['drain_seconds']:.0f} s its last lives took to end.",
        "",
        "| | RSS (MiB) | open fds | clients | rooms |",
        "|---|---|---|---|---|",
        f"| idle, before anything | {out['idle'].rss_kib / 1024:.1f} | {out['idle'].fds} | "
        f"{out['stats_idle']['clients']} | {out['stats_idle']['rooms']} |",
        f"| under load, first fifth (mean) | {mean_rss(first):.1f} | {first[0].fds} | {first[0].clients} | "
        f"{first[0].rooms} |",
        f"| under load, last fifth (mean) | {mean_rss(last):.1f} | {last[-1].fds} | {last[-1].clients} | "
        f"{last[-1].rooms} |",
        f"| peak | {peak.rss_kib / 1024:.1f} | {max(x.fds for x in s)} | {max(x.clients for x in s)} | "
        f"{max(x.rooms for x in s)} |",
        f"| end of soak, clients gone | {out['end'].rss_kib / 1024:.1f} | {out['end'].fds} | "
        f"{out['stats_end']['clients']} | {out['stats_end']['rooms']} |",
        f"| after {c.opened:,} connections and the second echo run | {out['final'].rss_kib / 1024:.1f} | "
        f"{out['final'].fds} | {out['stats_final']['clients']} | {out['stats_final']['rooms']} |",
        "",
        f"Echo throughput ({args.echo_clients} clients, one `echo` with ack in flight each, "
        f"{args.echo_seconds:g} s per measurement; the Python load generator and other work share the "
        "machine, "
        "so only measurements taken side by side compare). At the start, the fresh server did "
        f"{out['echo_fresh'][0]:,.0f}/s ({out['echo_fresh'][1]:.0f} us of server CPU per echo). After "
        f"{c.opened:,} connections had come and gone, the soaked server and a second, fresh server started "
        f"then were measured in {args.echo_rounds} alternating rounds:",
        "",
        "| | " + " | ".join(f"round {i + 1}" for i in range(args.echo_rounds)) + " | median |",
        "|---|" + "---|" * (args.echo_rounds + 1),
        *[
            f"| {name} server | "
            + " | ".join(f"{r:,.0f}/s, {us:.0f} us" for r, us in rounds)
            + f" | **{median([r for r, _ in rounds]):,.0f}/s, {median([us for _, us in rounds]):.0f} us** |"
            for name, rounds in (("fresh", out["compare"]["fresh"]), ("soaked", out["compare"]["soaked"]))
        ],
        "",
        f"Soaked / fresh: **{ratio:.0%}** of the throughput, at {cpu_ratio:.0%} of the server CPU per echo.",
        "",
        f"![RSS and open fds over time]({os.path.relpath(img, path.parent)})",
        "",
        "RSS is the server process's VmRSS; fds are the entries of `/proc/<pid>/fd` (the listening socket, "
        "the event loop's own and one per connection). The dashed line is the end of the soak. CPython keeps "
        "freed memory in its own pools, so RSS after the clients have gone stays near the level it reached "
        "under load; a leak shows as RSS still climbing at a steady load, and as clients, rooms or fds left "
        "behind once every client is gone.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--echo-clients", type=int, default=50)
    parser.add_argument("--echo-seconds", type=float, default=5.0)
    parser.add_argument("--echo-rounds", type=int, default=3, help="alternating rounds, soaked vs fresh")
    parser.add_argument("--min-churn", type=int, default=15_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", default=str(ROOT / "docs" / "soak.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "soak.png"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 1000)), hard))

    proc, port = start_server()
    try:
        out = uvloop.run(soak(args, proc.pid, port))
    finally:
        stop_server(proc)
    report_path, img_path = Path(args.report), Path(args.plot)
    plot(out["samples"], img_path, out["after_echo"].t + out["soak_seconds"])
    report_path.write_text(report(args, out, report_path, img_path))
    print(f"wrote {report_path} and {img_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
