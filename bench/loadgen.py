"""The benchmark load generator: uvloop + picows WebSocket clients speaking raw Engine.IO/Socket.IO frames.

One process, meant to be pinned to its own core (``taskset -c 1``). Each client runs the Socket.IO v5
handshake over the websocket transport by hand: read the ``0{...}`` open packet, send ``40``, wait for
``40{...}``; server pings ``2`` are answered with ``3``. Frames are matched by their first bytes only
(no JSON parsing), so the generator spends as little as possible per message. ``--raw`` skips the
Engine.IO/Socket.IO handshake, for the raw picows echo server that measures the generator's own ceiling.

Commands (each prints one JSON object as its last stdout line):

* ``echo``    W1: ``--clients`` clients, each emit -> wait for the reply -> emit, for ``--duration`` s.
* ``connect`` W4: ``--concurrency`` workers, each connect -> ``40{sid}`` -> close, for ``--duration`` s.
* ``idle``    W3/W6/W2: connect ``--clients`` clients, measure server RSS (W3), hold them ``--hold`` s
  measuring server CPU (W6), then ``--rounds`` broadcasts to all of them (W2).

``--server-pid`` names a server process (repeatable: two nodes); its whole process tree is measured (a
master and its workers, node's cluster primary and its workers). CPU time comes from the kernel's
nanosecond process clock (``clock_getcpuclockid``, every thread), RSS from ``VmRSS``, both read around
each measured window, so that a figure limited by this generator still ranks the servers by CPU per
message. ``--aux-pid`` (redis-server) is measured apart. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import resource
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

import uvloop
from limits import raise_nofile
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"

ECHO_FRAME = b'42["echo","hello, tether benchmark"]'
ECHO_REPLY = ECHO_FRAME
ECHOACK_FRAME = b'421["echoack","hello, tether benchmark"]'
ECHOACK_REPLY = b'431["hello, tether benchmark"]'


# -- process figures ----------------------------------------------------------------------------------


_libc = ctypes.CDLL(None, use_errno=True)


def proc_cpu(pid: int) -> float:
    """CPU time of every thread of ``pid`` in seconds, from the kernel's own nanosecond count (the process
    CPU clock, ``clock_getcpuclockid``); the 10 ms ticks of ``/proc/<pid>/stat`` if that is refused."""
    clock = ctypes.c_int()
    if _libc.clock_getcpuclockid(pid, ctypes.byref(clock)) == 0:
        try:
            return time.clock_gettime(clock.value)
        except OSError:
            pass  # exited meanwhile, or not ours: fall back to procfs, which raises if it is gone
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; the fields after it are fixed.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(roots: list[int]) -> list[int]:
    """``roots`` and every process below them: a master and its workers, node's cluster primary and its
    workers. A single-process server is its own tree."""
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
    tree = [p for p in roots if p]
    for pid in tree:  # grows while iterating: breadth first, bounded by the number of processes
        tree.extend(children.get(pid, ()))
    return tree


def tree_cpu(pids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        try:
            out[pid] = proc_cpu(pid)
        except OSError:
            continue  # exited
    return out


def socket_fds(pid: int) -> int:
    """Open sockets of ``pid`` (its connections, plus a few listening or internal ones)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                continue
    except OSError:
        return 0
    return n


def proc_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tree_rss(roots: list[int]) -> int:
    """VmRSS of every process of the server trees, in bytes."""
    return sum(proc_rss(pid) for pid in process_tree(roots))


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Meter:
    """Server CPU (every process of every server tree), auxiliary CPU (e.g. redis-server) and this
    generator's, over one or more windows."""

    def __init__(self, pids: list[int], aux: list[int] | None = None) -> None:
        self.pids = [p for p in pids if p]
        self.aux = [p for p in aux or [] if p]
        self.server_cpu = 0.0
        self.aux_cpu = 0.0
        self.self_cpu = 0.0
        self.wall = 0.0
        self._t0 = self._g0 = 0.0
        self._s0: dict[int, float] = {}
        self._a0: dict[int, float] = {}

    def start(self) -> None:
        self._s0 = tree_cpu(process_tree(self.pids))
        self._a0 = tree_cpu(self.aux)
        self._t0 = time.perf_counter()
        self._g0 = self_cpu()

    def stop(self) -> None:
        self.wall += time.perf_counter() - self._t0
        self.self_cpu += self_cpu() - self._g0
        s1 = tree_cpu(list(self._s0))
        a1 = tree_cpu(list(self._a0))
        self.server_cpu += sum(s1[p] - self._s0[p] for p in s1)
        self.aux_cpu += sum(a1[p] - self._a0[p] for p in a1)


# -- the client -----------------------------------------------------------------------------------------


class Stats:
    """Counters shared by every client of one run (one process, one loop: no locks)."""

    def __init__(self) -> None:
        self.pings = 0
        self.closed = 0
        self.stray = 0


class Client(WSListener):  # type: ignore[misc]
    """One WebSocket client. ``on_message`` gets every Socket.IO (or raw) message after the handshake."""

    __slots__ = ("closed", "on_message", "raw", "ready", "stats", "t_sent", "transport")

    def __init__(self, raw: bool, stats: Stats, ready: asyncio.Future[None]) -> None:
        self.raw = raw
        self.stats = stats
        self.ready = ready
        self.transport: WSTransport | None = None
        self.on_message: Callable[[Client, bytes], None] = _ignore
        self.t_sent = 0.0
        self.closed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.raw:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            if frame.msg_type is CLOSE:
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        if self.raw:
            if data == b"2":  # the raw server's heartbeat (W6's floor): answered as an Engine.IO client does
                transport.send(TEXT, b"3")
                self.stats.pings += 1
                return
            self.on_message(self, data)
            return
        c = data[0]
        if c == 0x34:  # "4": Engine.IO message
            if self.ready.done():
                self.on_message(self, data)
            elif data[1] == 0x30:  # "40{sid}": connected to "/"
                self.ready.set_result(None)
            else:  # "44": connect error
                self.ready.set_exception(RuntimeError(f"connect refused: {data[:100]!r}"))
        elif c == 0x32:  # "2": ping
            transport.send(TEXT, b"3")
            self.stats.pings += 1
        elif c == 0x30:  # "0{...}": open
            transport.send(TEXT, b"40")
        elif c == 0x31:  # "1": close
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.stats.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))


def _ignore(_client: Client, _data: bytes) -> None:
    pass


async def open_client(url: str, raw: bool, stats: Stats, timeout: float) -> Client:
    """Connect one client and finish its (Socket.IO) handshake within ``timeout`` seconds."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def go() -> Client:
        _transport, client = await ws_connect(
            lambda: Client(raw, stats, ready),
            url,
            websocket_handshake_timeout=timeout,
            read_buffer_init_size=1024,
            enable_auto_pong=True,
        )
        await ready
        return client  # type: ignore[no-any-return]

    return await asyncio.wait_for(go(), timeout)


async def open_many(
    urls: list[str], raw: bool, stats: Stats, n: int, concurrency: int, timeout: float, partial: bool = False
) -> tuple[list[Client], float, list[str]]:
    """``n`` connected clients, ``concurrency`` handshakes in flight: (clients, seconds, errors).

    A failed handshake is retried (a slow server times some out) until ``timeout`` seconds or ``n`` // 10
    + 10 failures; then, with ``partial``, the clients that did connect are returned (the caller reports
    how many), else it raises.
    """
    clients: list[Client] = []
    errors: list[str] = []
    max_errors = n // 10 + 10
    deadline = time.monotonic() + timeout
    started = 0

    async def worker() -> None:
        nonlocal started
        for _ in range(n + max_errors):  # bounded: each pass connects a client or counts an error
            if len(clients) >= n or time.monotonic() > deadline or len(errors) > max_errors:
                return
            url = urls[started % len(urls)]  # several servers (W8): clients split evenly over them
            started += 1
            try:
                clients.append(await open_client(url, raw, stats, 15.0))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    elapsed = time.perf_counter() - t0
    # Workers racing on the last few may overshoot n by up to concurrency - 1: close the extra ones.
    extra = clients[n:]
    del clients[n:]
    await close_all(extra)
    if len(clients) < n and not (partial and clients):
        await close_all(clients)
        raise RuntimeError(f"connected {len(clients)} of {n} clients in {elapsed:.1f}s; errors: {errors[:3]}")
    return clients, elapsed, errors


async def close_all(clients: list[Client], timeout: float = 30.0) -> None:
    for c in clients:
        if c.transport is not None and not c.closed:
            c.transport.disconnect()
    deadline = time.monotonic() + timeout
    while any(not c.closed for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def percentile(sorted_values: array[float] | list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


# -- W1 echo -------------------------------------------------------------------------------------------


async def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    clients, connect_s, _errors = await open_many(args.urls, args.raw, stats, args.clients, 100, 120.0)
    frame, reply = (ECHOACK_FRAME, ECHOACK_REPLY) if args.ack else (ECHO_FRAME, ECHO_REPLY)
    lat = array("d")
    state = {"measuring": False, "sending": True, "count": 0, "bad": 0, "inflight": 0}
    perf = time.perf_counter
    append = lat.append

    def on_message(client: Client, data: bytes) -> None:
        now = perf()
        if data != reply:
            state["bad"] += 1
            return
        if state["measuring"]:
            state["count"] += 1
            append(now - client.t_sent)
        if state["sending"]:
            client.t_sent = now
            client.transport.send(TEXT, frame)  # type: ignore[union-attr]
        else:
            state["inflight"] -= 1

    for c in clients:
        c.on_message = on_message
    meter = Meter(args.server_pid, args.aux_pid)
    for c in clients:
        c.t_sent = perf()
        c.transport.send(TEXT, frame)  # type: ignore[union-attr]
    state["inflight"] = len(clients)
    await asyncio.sleep(args.warmup)
    meter.start()
    state["measuring"] = True
    await asyncio.sleep(args.duration)
    state["measuring"] = False
    meter.stop()
    state["sending"] = False
    deadline = time.monotonic() + 5.0
    while state["inflight"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    lost_clients = sum(1 for c in clients if c.closed)
    await close_all(clients)
    lat_sorted = sorted(lat)
    n = state["count"]
    return {
        "workload": "W1ack" if args.ack else "W1",
        "clients": len(clients),
        "connect_s": connect_s,
        "duration_s": meter.wall,
        "round_trips": n,
        "rps": n / meter.wall,
        "p50_ms": percentile(lat_sorted, 0.50) * 1e3,
        "p99_ms": percentile(lat_sorted, 0.99) * 1e3,
        "server_cpu_s": meter.server_cpu,
        "server_cpu_share": meter.server_cpu / meter.wall,
        "server_us_per_msg": meter.server_cpu / n * 1e6 if n else None,
        "loadgen_cpu_share": meter.self_cpu / meter.wall,
        "bad_replies": state["bad"],
        "unanswered": state["inflight"],
        "clients_lost": lost_clients,
    }


# -- W4 connect ----------------------------------------------------------------------------------------


async def run_connect(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    lat = array("d")
    errors: list[str] = []
    state = {"count": 0, "measuring": False}
    meter = Meter(args.server_pid, args.aux_pid)

    async def worker() -> None:
        for _ in range(10_000_000):  # bounded: the deadline below ends it long before
            if state["stop"]:
                return
            t0 = time.perf_counter()
            try:
                client = await open_client(args.urls[0], args.raw, stats, 10.0)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) > 100:
                    state["stop"] = True
                await asyncio.sleep(0.01)
                continue
            if state["measuring"]:
                state["count"] += 1
                lat.append(time.perf_counter() - t0)
            transport = client.transport
            assert transport is not None
            transport.send_close()
            transport.disconnect()
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 5.0)
            except TimeoutError:
                errors.append("close timed out")

    state["stop"] = False
    tasks = [asyncio.ensure_future(worker()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    meter.start()
    state["measuring"] = True
    await asyncio.sleep(args.duration)
    state["measuring"] = False
    meter.stop()
    state["stop"] = True
    _done, pending = await asyncio.wait(tasks, timeout=15.0)
    for t in pending:
        t.cancel()
    n = state["count"]
    lat_sorted = sorted(lat)
    return {
        "workload": "W4",
        "concurrency": args.concurrency,
        "duration_s": meter.wall,
        "handshakes": n,
        "hps": n / meter.wall,
        "p50_ms": percentile(lat_sorted, 0.50) * 1e3,
        "p99_ms": percentile(lat_sorted, 0.99) * 1e3,
        "server_cpu_share": meter.server_cpu / meter.wall,
        "server_us_per_handshake": meter.server_cpu / n * 1e6 if n else None,
        "loadgen_cpu_share": meter.self_cpu / meter.wall,
        "errors": len(errors),
        "error_samples": errors[:3],
    }


# -- W3 / W6 / W2 on idle clients ----------------------------------------------------------------------


async def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    pids: list[int] = args.server_pid
    stats = Stats()
    out: dict[str, Any] = {"workload": "idle", "clients": args.clients}
    await asyncio.sleep(1.0)
    rss0 = tree_rss(pids)
    clients, connect_s, errors = await open_many(
        args.urls, args.raw, stats, args.clients, args.concurrency, 300.0, partial=True
    )
    stats.closed = 0  # count only the clients lost from here on (not failed handshakes or extras)
    n = len(clients)
    out["connected"] = n
    out["connect_errors"] = len(errors)
    out["connect_error_samples"] = errors[:3]
    out["connect_s"] = connect_s
    out["connect_rate"] = n / connect_s
    await asyncio.sleep(args.settle)
    rss1 = tree_rss(pids)
    out["W3"] = {"rss_none": rss0, "rss_idle": rss1, "bytes_per_conn": (rss1 - rss0) / n, "clients": n}
    # How the clients spread over the processes of the server(s): open sockets of each.
    out["sockets_per_process"] = {str(p): socket_fds(p) for p in process_tree(pids)}

    if args.hold > 0:
        pings0 = stats.pings
        meter = Meter(pids, args.aux_pid)
        meter.start()
        await asyncio.sleep(args.hold)
        meter.stop()
        out["W6"] = {
            "hold_s": meter.wall,
            "server_cpu_s": meter.server_cpu,
            "server_cpu_share": meter.server_cpu / meter.wall,
            "aux_cpu_share": meter.aux_cpu / meter.wall,
            "loadgen_cpu_share": meter.self_cpu / meter.wall,
            "pings_answered": stats.pings - pings0,
            "clients_lost": stats.closed,
        }

    if args.rounds > 0:
        out["W2"] = await fanout(clients, stats, args.rounds, Meter(pids, args.aux_pid))
    out["clients_lost"] = stats.closed
    await close_all(clients)
    return out


async def fanout(clients: list[Client], stats: Stats, rounds: int, meter: Meter) -> dict[str, Any]:
    """One client emits ``bcast``; time until the last of all clients has the broadcast, ``rounds`` times.

    The sender is the first client, connected to the first ``--url`` (with several servers, the others
    get the broadcast through their cluster adapter)."""
    loop = asyncio.get_running_loop()
    n = len(clients)
    st: dict[str, Any] = {"count": 0, "expect": b"", "fut": None, "t_last": 0.0, "t_first": 0.0, "stray": 0}
    perf = time.perf_counter

    def on_message(_client: Client, data: bytes) -> None:
        if data != st["expect"]:
            st["stray"] += 1
            return
        st["count"] += 1
        if st["count"] == 1:
            st["t_first"] = perf()
        if st["count"] == n:
            st["t_last"] = perf()
            if not st["fut"].done():
                st["fut"].set_result(None)

    for c in clients:
        c.on_message = on_message
    sender = clients[0]
    times: list[float] = []
    firsts: list[float] = []
    incomplete: list[int] = []
    for r in range(rounds):
        frame = b'42["bcast",%d]' % (1000 + r)
        st.update(count=0, expect=frame, fut=loop.create_future())
        await asyncio.sleep(0.3)
        meter.start()
        t0 = perf()
        sender.transport.send(TEXT, frame)  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(st["fut"], 15.0)
        except TimeoutError:
            incomplete.append(st["count"])
            meter.stop()
            if stats.closed or len(incomplete) >= 2:
                break  # clients are gone or the server cannot keep up: more rounds would only burn the budget
            continue
        await asyncio.sleep(0.05)  # let the server finish what it does after the last write
        meter.stop()
        times.append(st["t_last"] - t0)
        firsts.append(st["t_first"] - t0)
    deliveries = n * len(times)
    med = sorted(times)[len(times) // 2] if times else float("nan")
    return {
        "rounds": rounds,
        "complete_rounds": len(times),
        "incomplete_counts": incomplete,
        "median_ms": med * 1e3,
        "min_ms": min(times) * 1e3 if times else float("nan"),
        "max_ms": max(times) * 1e3 if times else float("nan"),
        "first_ms": sorted(firsts)[len(firsts) // 2] * 1e3 if firsts else float("nan"),
        "times_ms": [t * 1e3 for t in times],
        "deliveries_per_s": n / med if times else 0.0,
        "server_us_per_delivery": meter.server_cpu / deliveries * 1e6 if deliveries else None,
        "aux_us_per_delivery": meter.aux_cpu / deliveries * 1e6 if deliveries and meter.aux else None,
        "loadgen_cpu_s": meter.self_cpu,
        "stray": st["stray"],
    }


# -- main ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loadgen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("echo", "connect", "idle"):
        s = sub.add_parser(name)
        s.add_argument(
            "--url",
            action="append",
            required=True,
            help="ws://127.0.0.1:PORT (the Socket.IO path is added); repeat for several servers (clients "
            "are split evenly, the first one sends W2's broadcast)",
        )
        s.add_argument(
            "--raw", action="store_true", help="raw WebSocket frames, no Engine.IO/Socket.IO handshake"
        )
        s.add_argument(
            "--server-pid",
            type=int,
            action="append",
            default=[],
            help="a server process; its whole process tree is measured (repeatable)",
        )
        s.add_argument(
            "--aux-pid", type=int, action="append", default=[], help="a helper (redis-server), measured apart"
        )
        s.add_argument("--warmup", type=float, default=1.0)
        s.add_argument("--duration", type=float, default=10.0)
    sub.choices["echo"].add_argument("--clients", type=int, default=100)
    sub.choices["echo"].add_argument(
        "--ack", action="store_true", help="echoack (ack with the data) instead of echo"
    )
    sub.choices["connect"].add_argument("--concurrency", type=int, default=100)
    idle = sub.choices["idle"]
    idle.add_argument("--clients", type=int, default=10_000)
    idle.add_argument("--concurrency", type=int, default=200, help="handshakes in flight while connecting")
    idle.add_argument("--settle", type=float, default=3.0)
    idle.add_argument("--hold", type=float, default=60.0, help="W6 seconds; 0 skips W6")
    idle.add_argument("--rounds", type=int, default=10, help="W2 broadcasts; 0 skips W2")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    nofile = raise_nofile()
    if not all(url.startswith("ws://127.0.0.1:") for url in args.url):
        print("loadgen: only ws://127.0.0.1:PORT targets are allowed", file=sys.stderr)
        return 2
    args.urls = [url.rstrip("/") + ("/" if args.raw else SIO_PATH) for url in args.url]
    runner = {"echo": run_echo, "connect": run_connect, "idle": run_idle}[args.command]
    result = uvloop.run(runner(args))
    result["loadgen_nofile"] = nofile
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
