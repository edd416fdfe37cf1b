"""Soak run: thousands of clients connecting, emitting and leaving against one Tether instance, for minutes.

``make soak`` runs it with the defaults (10 minutes, 5,000 concurrent clients); it is not part of
``make test``. What it does:

1. Starts ``tether start`` (the real CLI: a master and ``--workers`` workers on uvloop, picows, httptools)
   on a free port with ``bench/soak_routes.py``, ping_interval 10 s and ping_timeout 5 s so that vanished
   clients are found within the run. The instance gets its own run folder (pid file, control socket,
   log) so that the second instance of step 4 cannot collide with it or with anything else running.
2. Measures echo throughput of the fresh instance (``--echo-clients`` clients, one ``echo`` with ack in
   flight each, for ``--echo-seconds``; CPU of every process of the instance).
3. Soaks for ``--minutes``: ``--clients`` slots, each running client lives back to back. A life connects
   (over the WebSocket transport, from one of 16 loopback addresses so that TIME_WAIT never runs out of
   ports), joins one of 1,000 rooms, sends events (echo with ack, room broadcasts), and after 2-20 s
   leaves in one of four ways: a clean close (70 %), a login to a user room first (10 %), a TCP reset
   without a close frame (10 %), or going silent (no reads, no pongs) until the heartbeat drops it
   (10 %). Every ``--sample`` seconds every process of the instance (the master's process tree: the
   master and each worker) is sampled: RSS and open file descriptors (``/proc/<pid>/fd``), with each
   worker's own count of connections and rooms from the master's ``infos`` (control socket).
4. Lets the instance settle (heartbeat timeouts of the silent clients), samples the end state, tops the
   connection count up to ``--min-churn`` (15,000) with quick connect/close cycles if the soak did not get
   there, and measures echo throughput of the soaked instance against a second, fresh one in alternating
   rounds.
5. Checks (exit status 1 on any): that what it measured can show a leak (every worker sampled, none
   restarted, each held connections and its fds followed them, enough samples at steady load), and that
   it shows none (no connection, room or fd left once the clients are gone; no worker's RSS still
   climbing at steady load past ``--max-rss-growth``).
6. Writes ``--report`` (default ``docs/soak.md``) and ``--plot`` (``docs/img/soak.png``).

A smoke run (seconds, not evidence):
``python bench/soak.py --minutes 0.5 --sample 2 --clients 100 --min-churn 300 --echo-seconds 1
--echo-rounds 1 --report /tmp/soak.md --plot /tmp/soak.png``.

Every loop is bounded in count and time; the server is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import uvloop
from limits import NOFILE, raise_nofile
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tether.manager import control

ROOT = Path(__file__).resolve().parent.parent
TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
SOURCES = [f"127.0.0.{i}" for i in range(1, 17)]


# -- the server processes -------------------------------------------------------------------------------


@dataclass
class Instance:
    """One ``tether start`` (a master and its workers) with its own run folder.

    Each instance gets its own pid file, control socket and log file under ``run_dir``: two instances
    started from the same folder must not share run paths (the second one would refuse to start).
    """

    proc: subprocess.Popen[bytes]
    port: int
    run_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def control_socket(self) -> str:
        return str(self.run_dir / "tether.sock")


def start_server(workers: int, name: str) -> Instance:
    run_dir = Path(tempfile.mkdtemp(prefix=f"tether-soak-{name}-"))
    env = {
        **os.environ,
        "TETHER_WEBSOCKET_PING_INTERVAL": "10",
        "TETHER_WEBSOCKET_PING_TIMEOUT": "5",
        "TETHER_SERVER_LOG_LEVEL": "warning",
        "TETHER_SERVER_WORKERS": str(workers),
        "TETHER_SERVER_PID_FILE": str(run_dir / "tether.pid"),
        "TETHER_SERVER_CONTROL_SOCKET": str(run_dir / "tether.sock"),
        "TETHER_SERVER_LOG_FILE": str(run_dir / "tether.log"),
        # Every soak client comes from 127.0.0.1, and echo rounds push past the default event rate.
        "TETHER_LIMITS_MAX_CONNECTIONS_PER_IP": "0",
        "TETHER_LIMITS_EVENT_RATE": "0",
    }
    env.pop("TETHER_CONFIG", None)
    out_path = run_dir / "output.log"
    with open(out_path, "wb") as out:
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
            stdout=out,  # a file, not a pipe: a pipe nobody reads would block the server once full
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = out_path.read_text(errors="replace")
        if "serving on" in text:
            port = int(text.split("serving on ")[1].split()[0].rsplit(":", 1)[1])
            return Instance(proc, port, run_dir)
        if proc.poll() is not None:
            raise RuntimeError(f"tether exited before listening: {text[-600:]}")
        time.sleep(0.1)
    stop_server(Instance(proc, 0, run_dir))
    raise RuntimeError("tether did not start within 30 s")


def stop_server(inst: Instance) -> None:
    inst.proc.send_signal(signal.SIGTERM)
    try:
        inst.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        inst.proc.kill()
        inst.proc.wait()


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it (the master, its workers, anything they started)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
    tree = [root]
    for pid in tree:  # grows while iterating: a breadth-first walk, bounded by the process count
        tree.extend(children.get(pid, ()))
    return tree


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


def tree_cpu_seconds(root: int) -> float:
    """CPU of the whole instance: the master (hub relay) and every worker."""
    total = 0.0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


async def infos(inst: Instance) -> dict[str, Any]:
    """The master's ``infos`` over its control socket: every worker's pid and its own counts."""
    return await asyncio.to_thread(control.request, inst.control_socket, "infos", 10.0)


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
    """The ``stats`` probe of the worker that accepted the probe connection (its pid included)."""
    counters = Counters()
    client = await connect(port, counters, "127.0.0.200")
    try:
        st: dict[str, Any] = json.loads((await client.call(b'["stats"]'))[1:-1])
        st["clients"] -= 1  # not counting the probe itself
        return st
    finally:
        await close(client)


async def stats_of_every_worker(port: int, pids: set[int], tries: int = 40) -> dict[int, dict[str, Any]]:
    """The ``stats`` probe of each worker in ``pids``: the kernel picks which worker accepts, so probe
    until every one has answered (at most ``tries`` probes; the caller reports any worker missing)."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(tries):
        if pids <= seen.keys():
            break
        st = await stats(port)
        seen[st["pid"]] = st
    return seen


async def echo_throughput(port: int, root: int, clients: int, seconds: float) -> tuple[float, float]:
    """Acked echoes per second over ``clients`` clients with one echo in flight each, and the server's CPU
    microseconds per echo (every process of the instance; less sensitive than the rate to other work on a
    shared machine)."""
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
    cpu0 = tree_cpu_seconds(root)
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.monotonic() - t0
    cpu = tree_cpu_seconds(root) - cpu0
    await asyncio.gather(*(close(c) for c in conns))
    return done / elapsed, cpu / max(done, 1) * 1e6


async def compare_echo(
    soaked: Instance, fresh: Instance, clients: int, seconds: float, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Alternate rounds on the soaked server and on a fresh one started now, so that both see the same
    background load: on a shared machine, two runs minutes apart differ by more than any leak would."""
    results: dict[str, list[tuple[float, float]]] = {"soaked": [], "fresh": []}
    for _ in range(rounds):
        for name, inst in (("fresh", fresh), ("soaked", soaked)):
            results[name].append(await echo_throughput(inst.port, inst.pid, clients, seconds))
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
class ProcSample:
    rss_kib: int
    fds: int
    connections: int | None
    """The master's count of this worker's connections; None for a process that is not a worker."""
    rooms: int | None


@dataclass
class Sample:
    t: float
    procs: dict[int, ProcSample]
    """Every process of the instance's tree (master, workers), by pid."""
    workers: list[int]
    """Worker pids as the master reports them."""
    clients: int
    rooms: int
    opened: int

    def rss_kib(self) -> int:
        return sum(p.rss_kib for p in self.procs.values())

    def fds(self) -> int:
        return sum(p.fds for p in self.procs.values())


async def take_sample(inst: Instance, t: float, opened: int) -> Sample:
    info = await infos(inst)
    by_pid = {w["pid"]: w for w in info["workers"] if w["state"] != "draining"}
    procs: dict[int, ProcSample] = {}
    for pid in process_tree(inst.pid):
        w = by_pid.get(pid)
        try:
            procs[pid] = ProcSample(
                rss_kib(pid),
                fd_count(pid),
                w["connections"] if w else None,
                w["rooms"] if w else None,
            )
        except (OSError, RuntimeError):
            continue  # exited between the listing and the read
    return Sample(
        t,
        procs,
        sorted(by_pid),
        sum(w["connections"] for w in by_pid.values()),
        sum(w["rooms"] for w in by_pid.values()),
        opened,
    )


async def soak(args: argparse.Namespace, inst: Instance) -> dict[str, Any]:
    t_start = time.monotonic()
    out: dict[str, Any] = {"samples": [], "master": inst.pid}
    samples: list[Sample] = out["samples"]
    counters = Counters()
    out["counters"] = counters

    async def sample() -> Sample:
        s = await take_sample(inst, time.monotonic() - t_start, counters.opened)
        samples.append(s)
        return s

    await asyncio.sleep(1)
    out["idle"] = await sample()
    print(
        f"idle: {len(out['idle'].workers)} workers, RSS "
        + ", ".join(f"{pid}: {p.rss_kib / 1024:.1f} MiB/{p.fds} fds" for pid, p in out["idle"].procs.items()),
        flush=True,
    )
    out["echo_fresh"] = await echo_throughput(inst.port, inst.pid, args.echo_clients, args.echo_seconds)
    print(f"echo throughput, fresh server: {out['echo_fresh'][0]:.0f}/s", flush=True)
    out["after_echo"] = await sample()

    cpu0 = tree_cpu_seconds(inst.pid)
    soak_start = time.monotonic()
    deadline = soak_start + args.minutes * 60
    ramp = min(60.0, args.clients / 250)  # at most 250 new clients per second while ramping up
    tasks = [
        asyncio.ensure_future(
            slot(inst.port, counters, args.seed * 100_000 + i, deadline, ramp * i / args.clients)
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
            per_worker = " ".join(
                f"w{pid}:{p.rss_kib / 1024:.1f}MiB/{p.fds}fd/{p.connections}c"
                for pid in s.workers
                if (p := s.procs.get(pid)) is not None
            )
            print(
                f"t={s.t:6.0f}s clients {s.clients:5d} rooms {s.rooms:4d} {per_worker} "
                f"opened {s.opened:7d} failed {counters.failed} events {counters.events}",
                flush=True,
            )

    sampler_task = asyncio.ensure_future(sampler())
    await asyncio.wait(tasks, timeout=args.minutes * 60 + 60)
    out["soak_seconds"] = args.minutes * 60
    out["server_cpu"] = tree_cpu_seconds(inst.pid) - cpu0
    out["drain_seconds"] = time.monotonic() - deadline
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # Settle: the silent clients' heartbeats run out, closes finish.
    settle_deadline = time.monotonic() + 60
    while time.monotonic() < settle_deadline:
        if (await take_sample(inst, 0.0, 0)).clients == 0:
            break
        await asyncio.sleep(2)
    await asyncio.sleep(2)
    sampling = False
    await sampler_task
    out["end"] = await sample()
    print(f"after the soak: {out['end'].clients} clients, {out['end'].rooms} rooms", flush=True)

    if counters.opened < args.min_churn:
        print(f"churning up to {args.min_churn} connections", flush=True)
        await churn(inst.port, args.min_churn, counters)
    out["echo_after"] = await echo_throughput(inst.port, inst.pid, args.echo_clients, args.echo_seconds)
    print(f"echo throughput after {counters.opened} connections: {out['echo_after'][0]:.0f}/s", flush=True)
    fresh = start_server(args.workers, "fresh")
    try:
        out["compare"] = await compare_echo(
            inst, fresh, args.echo_clients, args.echo_seconds, args.echo_rounds
        )
    finally:
        stop_server(fresh)
    for name, rounds in out["compare"].items():
        print(f"{name}: " + ", ".join(f"{r:.0f}/s ({us:.0f} us CPU/echo)" for r, us in rounds), flush=True)
    await asyncio.sleep(2)
    out["final"] = await sample()
    out["stats_final"] = await stats_of_every_worker(inst.port, set(out["final"].workers))
    return out


def loaded_samples(out: dict[str, Any]) -> list[Sample]:
    """The samples at steady load: in the soak window, after the first 90 s of ramp-up when it is long."""
    s: list[Sample] = out["samples"]
    t0 = out["after_echo"].t
    window = [x for x in s if t0 < x.t <= t0 + out["soak_seconds"]]
    return [x for x in window if x.t > t0 + 90] if out["soak_seconds"] > 180 else window


def fifths(xs: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    n = max(1, len(xs) // 5)
    return xs[:n], xs[-n:]


def check(args: argparse.Namespace, out: dict[str, Any]) -> list[str]:
    """Why this run cannot show a leak, or shows one: an empty list when it is sound and clean."""
    problems: list[str] = []
    samples: list[Sample] = out["samples"]
    idle: Sample = out["idle"]
    workers = set(idle.workers)
    # What is measured must be the processes that hold the connections, all of them, the same ones.
    if not workers:
        problems.append("the master reported no worker: nothing that holds connections was sampled")
    for s in samples:
        if set(s.workers) != workers:
            problems.append(
                f"at t={s.t:.0f}s the workers were {sorted(s.workers)}, not {sorted(workers)}: a worker "
                "restarted or was replaced, and a restart resets its memory (it would hide a leak)"
            )
            break
    for s in samples:
        missing = [pid for pid in s.workers if pid not in s.procs]
        if missing:
            problems.append(f"at t={s.t:.0f}s worker(s) {missing} were not in the sampled process tree")
            break
    loaded = loaded_samples(out)
    if len(loaded) < 6:
        problems.append(
            f"only {len(loaded)} samples at steady load: too few to tell a climb from noise "
            "(a longer --minutes or a shorter --sample)"
        )
    floor = max(1, int(0.1 * args.clients / max(1, len(workers))))
    for pid in sorted(workers):
        peak = max((s.procs[pid].connections or 0 for s in samples if pid in s.procs), default=0)
        if peak < floor:
            problems.append(
                f"worker {pid} held at most {peak} connections (needed >= {floor}): its samples cannot show "
                "a per-connection leak"
            )
            continue
        fd_rise = max((s.procs[pid].fds for s in samples if pid in s.procs), default=0) - idle.procs[pid].fds
        if fd_rise < peak // 2:
            problems.append(
                f"worker {pid}'s open fds rose by {fd_rise} for {peak} connections: the sampled fds are not "
                "those of the process that holds the connections"
            )
    # What a leak looks like: things left behind once every client is gone, memory still climbing.
    for name in ("end", "final"):
        s = out[name]
        if s.clients or s.rooms:
            problems.append(f"{name}: {s.clients} connections and {s.rooms} rooms left with no client")
        for pid, p in s.procs.items():
            before = idle.procs.get(pid)
            if before is not None and p.fds > before.fds + 2:
                problems.append(f"{name}: process {pid} holds {p.fds} fds, {before.fds} when idle")
    if len(loaded) >= 6:
        first, last = fifths(loaded)
        for pid in sorted(workers):
            a = [s.procs[pid].rss_kib for s in first if pid in s.procs]
            b = [s.procs[pid].rss_kib for s in last if pid in s.procs]
            if a and b and sum(b) / len(b) > sum(a) / len(a) * (1 + args.max_rss_growth):
                problems.append(
                    f"worker {pid}'s RSS still climbs at steady load: "
                    f"{sum(a) / len(a) / 1024:.1f} MiB in the first fifth, {sum(b) / len(b) / 1024:.1f} MiB "
                    "in the last "
                    f"(more than --max-rss-growth {args.max_rss_growth:.0%})"
                )
    return problems


def role(out: dict[str, Any], pid: int) -> str:
    if pid == out["master"]:
        return f"master {pid}"
    if pid in out["idle"].workers:
        return f"worker {pid}"
    return f"process {pid}"


def plot(out: dict[str, Any], path: Path, soak_end: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples: list[Sample] = out["samples"]
    pids = sorted({pid for s in samples for pid in s.procs}, key=lambda p: (p != out["master"], p))
    t = [s.t / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for pid in pids:
        ys = [s.procs[pid].rss_kib / 1024 if pid in s.procs else float("nan") for s in samples]
        ax1.plot(t, ys, label=role(out, pid))
    ax1.set_ylabel("RSS (MiB)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    for pid in pids:
        ys = [s.procs[pid].fds if pid in s.procs else float("nan") for s in samples]
        ax2.plot(t, ys, label=f"open fds, {role(out, pid)}")
    ax2.plot(t, [s.clients for s in samples], color="black", linestyle=":", label="connections (all workers)")
    ax2.set_ylabel("count")
    ax2.set_xlabel("minutes")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="upper right", fontsize=8)
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.axvline(soak_end / 60, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("Tether soak: every process of the instance, clients connecting, emitting and leaving")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def report(args: argparse.Namespace, out: dict[str, Any], problems: list[str], path: Path, img: Path) -> str:
    s: list[Sample] = out["samples"]
    c: Counters = out["counters"]
    loaded = loaded_samples(out) or s
    first, last = fifths(loaded)
    pids = sorted({pid for x in s for pid in x.procs}, key=lambda p: (p != out["master"], p))

    def mean_rss(xs: list[Sample], pid: int) -> str:
        vals = [x.procs[pid].rss_kib for x in xs if pid in x.procs]
        return f"{sum(vals) / len(vals) / 1024:.1f}" if vals else "—"

    def at(x: Sample, pid: int, what: str) -> str:
        p = x.procs.get(pid)
        if p is None:
            return "—"
        return f"{p.rss_kib / 1024:.1f}" if what == "rss" else str(getattr(p, what))

    concurrent_mean = sum(x.clients for x in loaded) / len(loaded)
    ratio = median([r for r, _ in out["compare"]["soaked"]]) / median([r for r, _ in out["compare"]["fresh"]])
    cpu_ratio = median([u for _, u in out["compare"]["soaked"]]) / median(
        [u for _, u in out["compare"]["fresh"]]
    )
    reasons: dict[str, int] = {}
    for st in out["stats_final"].values():
        for k, v in st["disconnects"].items():
            reasons[k] = reasons.get(k, 0) + v
    missing = set(out["final"].workers) - out["stats_final"].keys()
    load = os.getloadavg()[0]
    load_start = out.get("load_start", load)
    lines = [
        "# Soak run",
        "",
        f"`make soak` (bench/soak.py), run on {time.strftime('%Y-%m-%d')}: one Tether instance "
        f"(`tether start`, a master and {len(out['idle'].workers)} workers) on a "
        f"{os.cpu_count()}-core machine shared with the load generator; load average {load_start:.2f} "
        f"before it started and {load:.2f} at the end (the end's is mostly the soak's own processes)"
        # Only the load before the soak says whether other work shared the machine.
        + (" (other work was running: throughput figures are not evidence)" if load_start >= 0.5 else "")
        + ".",
        "",
        "**Verdict: "
        + ("PASSED" if not problems else "FAILED")
        + "**"
        + ("" if not problems else ":\n\n" + "\n".join(f"- {p}" for p in problems)),
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
        f"- Connected at once, by the master's count over all workers at steady load: mean "
        f"{concurrent_mean:,.0f}, {min(x.clients for x in loaded):,} to {max(x.clients for x in loaded):,} "
        f"for {args.clients:,} slots (a slot spends part of its time connecting and between lives).",
        f"- Endings: {', '.join(f'{k} {v:,}' for k, v in sorted(c.endings.items()))}. "
        f"Workers' disconnect reasons: {reasons}"
        + (f" (workers {sorted(missing)} did not answer the probe)" if missing else "")
        + ".",
        f"- Server CPU (every process): {out['server_cpu']:.0f} s over the {out['soak_seconds']:.0f} s "
        f"of soak and the {out['drain_seconds']:.0f} s its last lives took to end.",
        "",
        "Every process of the instance is sampled every "
        f"{args.sample:g} s (the master's process tree, so each worker; connections per worker are the "
        "master's `infos`). RSS in MiB, open fds, connections:",
        "",
        "| process | idle | steady load, first fifth (mean RSS) | last fifth (mean RSS) | peak | "
        "end of soak, clients gone | after the churn and echo runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for pid in pids:
        peak_rss = max((x.procs[pid].rss_kib for x in s if pid in x.procs), default=0) / 1024
        peak_fds = max((x.procs[pid].fds for x in s if pid in x.procs), default=0)
        peak_conns = max((x.procs[pid].connections or 0 for x in s if pid in x.procs), default=0)
        lines.append(
            f"| {role(out, pid)} | {at(out['idle'], pid, 'rss')} MiB, {at(out['idle'], pid, 'fds')} fds | "
            f"{mean_rss(first, pid)} | {mean_rss(last, pid)} | {peak_rss:.1f} MiB, {peak_fds} fds, "
            f"{peak_conns} conns | {at(out['end'], pid, 'rss')} MiB, {at(out['end'], pid, 'fds')} fds | "
            f"{at(out['final'], pid, 'rss')} MiB, {at(out['final'], pid, 'fds')} fds |"
        )
    lines += [
        "",
        f"Echo throughput ({args.echo_clients} clients, one `echo` with ack in flight each, "
        f"{args.echo_seconds:g} s per measurement, CPU of every process of the instance). At the start, "
        f"the fresh instance did {out['echo_fresh'][0]:,.0f}/s ({out['echo_fresh'][1]:.0f} us of server CPU "
        f"per echo). After {c.opened:,} connections had come and gone, the soaked instance and a second, "
        "fresh one started then (its own run folder) were measured in "
        f"{args.echo_rounds} alternating rounds:",
        "",
        "| | " + " | ".join(f"round {i + 1}" for i in range(args.echo_rounds)) + " | median |",
        "|---|" + "---|" * (args.echo_rounds + 1),
        *[
            f"| {name} | "
            + " | ".join(f"{r:,.0f}/s, {us:.0f} us" for r, us in rounds)
            + f" | **{median([r for r, _ in rounds]):,.0f}/s, {median([us for _, us in rounds]):.0f} us** |"
            for name, rounds in (("fresh", out["compare"]["fresh"]), ("soaked", out["compare"]["soaked"]))
        ],
        "",
        f"Soaked / fresh: **{ratio:.0%}** of the throughput, at {cpu_ratio:.0%} of the server CPU per echo.",
        "",
        f"![RSS and open fds of every process over time]({os.path.relpath(img, path.parent)})",
        "",
        "RSS is each process's VmRSS; fds are the entries of its `/proc/<pid>/fd` (a worker: the listening "
        "socket, the event loop's own, its channel to the master and one per connection). The dashed line is "
        "the end of the soak. CPython keeps freed memory in its own pools, so RSS after the clients have "
        "gone stays near the level it reached under load; a leak shows as a worker's RSS still climbing at a "
        "steady load, and as connections, rooms or fds left behind once every client is gone. The run fails "
        "(exit status 1) on either, and also when it cannot show one: a worker missing from the samples, "
        "a worker restarted during the run, a worker that held (almost) no connections or whose fds did not "
        "follow them, or too few samples at steady load.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2, help="workers of the instance (tether start)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--echo-clients", type=int, default=50)
    parser.add_argument("--echo-seconds", type=float, default=5.0)
    parser.add_argument("--echo-rounds", type=int, default=3, help="alternating rounds, soaked vs fresh")
    parser.add_argument("--min-churn", type=int, default=15_000)
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.15,
        help="fail when a worker's mean RSS in the last fifth of steady load exceeds the first's by this",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", default=str(ROOT / "docs" / "soak.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "img" / "soak.png"))
    args = parser.parse_args()
    raise_nofile(max(NOFILE, args.clients * 2 + 1000))

    load_start = os.getloadavg()[0]  # before anything of ours runs: what else the machine is doing
    inst = start_server(args.workers, "soaked")
    try:
        out = uvloop.run(soak(args, inst))
    finally:
        stop_server(inst)
    out["load_start"] = load_start
    problems = check(args, out)
    report_path, img_path = Path(args.report), Path(args.plot)
    plot(out, img_path, out["after_echo"].t + out["soak_seconds"])
    report_path.write_text(report(args, out, problems, report_path, img_path))
    print(f"wrote {report_path} and {img_path}")
    for p in problems:
        print(f"soak: FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
