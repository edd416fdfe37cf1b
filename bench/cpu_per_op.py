"""Tether's own Python CPU per operation, without the sockets: what a hot-path change moves.

On a shared machine, throughput and even a server's CPU per message move with the neighbours' load
(cache misses, context switches, fewer messages per loop iteration). This script measures the part
Tether's code controls: it runs a real server in this process (``bench/apps/tether.toml``, real picows
connections from in-process clients for the handshakes), then swaps each server-side client's WebSocket
for a stub whose ``send`` does nothing, and drives the real entry points with frames shaped like the
bench generator's:

* ``W1``: ``WebSocketListener.on_ws_frame`` with ``42["echo",...]``: parse, route, handler, emit, encode,
  ``Client.send``, up to the (stubbed) picows ``send``;
* ``W1ack``: the same with ``421["echoack",...]`` (ack id, handler result, ack encode);
* ``W2``: one ``42["bcast",N]`` frame, per delivery to ``--clients`` sockets;
* ``W6``: one heartbeat ping (the due-timer pass of :class:`~tether.server.heartbeat.Heartbeat`) and its
  pong frame (``3``), per client.

Each figure is the process's own CPU time (``time.process_time``) over ``--number`` operations, the best
of ``--repeat`` runs, in µs, and the number of Python and C function calls per operation (counted with
``sys.setprofile``: the same on any machine, busy or not). What it leaves out, the write(2) per frame,
the loop and picows' parsing, is the same for every version of Tether and for raw picows: compare these
figures between commits, and read ``make bench`` for the whole.

Usage: ``taskset -c 1 .venv/bin/python bench/cpu_per_op.py [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from picows import WSListener, WSMsgType, ws_connect

from tether import Config, run_server
from tether.server.websocket import WebSocketListener

HERE = Path(__file__).resolve().parent
TEXT = WSMsgType.TEXT


class NullTransport:
    """Stands in for picows' WSTransport: accepts every write and drops it. Its ``send`` is a C callable,
    as picows' is, so that the call counts are Tether's own plus one C call per frame written."""

    is_close_frame_sent = False

    def __init__(self) -> None:
        nothing: dict[Any, Any] = {}
        self.send = nothing.get  # send(msg_type, data): a built-in method that ignores both
        self.send_ping = nothing.clear


class Frame:
    """Stands in for picows' WSFrame: what ``on_ws_frame`` reads."""

    __slots__ = ("fin", "get_payload_as_bytes", "msg_type")

    def __init__(self, payload: bytes) -> None:
        self.msg_type = TEXT
        self.fin = True
        self.get_payload_as_bytes = payload.__bytes__  # a C callable, as picows' is


class Peer(WSListener):  # type: ignore[misc]
    """An in-process client: answers the Engine.IO open with ``40``, then stays silent."""

    def __init__(self, ready: asyncio.Future[None]) -> None:
        self.ready = ready

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        data = frame.get_payload_as_bytes()
        if data[:1] == b"0":
            transport.send(TEXT, b"40")
        elif data[:2] == b"40" and not self.ready.done():
            self.ready.set_result(None)


def best(fn: Callable[[], None], number: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``number`` calls, in µs of this process's CPU per call."""
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        runs.append((time.process_time() - t0) / number * 1e6)
    return min(runs)


def calls(fn: Callable[[], None], number: int) -> tuple[float, float]:
    """(Python function calls, C function calls) per call of ``fn``, ``fn`` itself excluded: a count that
    does not depend on the machine's load."""
    counts = {"call": 0, "c_call": 0}

    def hook(_frame: Any, event: str, _arg: Any) -> None:
        if event in counts:
            counts[event] += 1

    sys.setprofile(hook)
    try:
        for _ in range(number):
            fn()
    finally:
        sys.setprofile(None)
    return (counts["call"] - number) / number, counts["c_call"] / number


def _as_transport(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` called outside the caller's Task, as a transport's callbacks are: the server runs a handler's
    first step as a stand-in Task (server/dispatch.py), which takes a slower path inside another Task."""
    loop = asyncio.get_running_loop()

    def run() -> None:
        task = asyncio.current_task(loop)
        if task is not None:
            _leave_task(loop, task)
        try:
            fn()
        finally:
            if task is not None:
                _enter_task(loop, task)

    return run


class Rig:
    """A real server in this process with ``clients`` connected clients whose WebSockets are stubbed, and
    the operations to measure on it (each a no-argument callable; see the module docstring).

    Attributes:
        ops: ``"echo"``, ``"echoack"``, ``"bcast"`` (one broadcast to every client), ``"ping"`` (one
            heartbeat period of every client: its ping, its pong, the pong deadline's visit).
        clients: how many clients the server holds (``bcast`` and ``ping`` are per client).
    """

    def __init__(self) -> None:
        self.ops: dict[str, Callable[[], None]] = {}
        self.clients = 0
        self._server: Any = None
        self._peers: list[Any] = []
        self._real: list[tuple[Any, Any]] = []

    @classmethod
    async def start(cls, clients: int) -> Rig:
        rig = cls()
        config = Config.load(HERE / "apps" / "tether.toml", overrides={"server": {"port": 0}})
        server = rig._server = await run_server(config)
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        for _ in range(clients):
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            transport, _listener = await ws_connect(lambda r=ready: Peer(r), url)
            rig._peers.append(transport)
            await asyncio.wait_for(ready, 120)
        deadline = time.monotonic() + 120
        while len(server.clients) < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stub = NullTransport()
        listeners = []
        for client in server.clients.values():
            rig._real.append((client, client.ws))
            client.attach_websocket(stub)
            listener = WebSocketListener(server, client, upgrading=False)
            listener.transport = stub  # type: ignore[assignment]
            listeners.append(listener)
        rig.clients = len(listeners)
        one = listeners[0]

        def frame_op(payload: bytes) -> Callable[[], None]:
            frame = Frame(payload)
            return lambda: one.on_ws_frame(stub, frame)  # type: ignore[arg-type]

        heartbeat = server.heartbeat
        interval = config.websocket.ping_interval
        timeout = config.websocket.ping_timeout
        clock = [time.monotonic() + interval + 1]
        pong = Frame(b"3")

        def ping_all() -> None:
            # One heartbeat period of every client, as it happens: all due for a ping (the heartbeat pings
            # each into the stub), each answers, then the pong deadline passes (ping_timeout later) and the
            # next ping comes due (ping_interval later). The clock moves one interval per call.
            heartbeat.run(clock[0], server._on_timer)
            for listener in listeners:
                listener.on_ws_frame(stub, pong)  # type: ignore[arg-type]
            heartbeat.run(clock[0] + timeout, server._on_timer)
            clock[0] += interval

        rig.ops = {
            "echo": _as_transport(frame_op(b'42["echo","hello, tether benchmark"]')),
            "echoack": _as_transport(frame_op(b'421["echoack","hello, tether benchmark"]')),
            "bcast": _as_transport(frame_op(b'42["bcast",1000]')),
            "ping": _as_transport(ping_all),
        }
        return rig

    async def close(self) -> None:
        for client, ws in self._real:
            client.attach_websocket(ws)
        for p in self._peers:
            p.disconnect()
        if self._server is not None:
            await self._server.shutdown(timeout=1.0)


async def measure(clients: int, number: int, repeat: int) -> dict[str, Any]:
    rig = await Rig.start(clients)
    try:
        out: dict[str, Any] = {}

        def op(name: str, fn: Callable[[], None], n: int, per: int = 1) -> None:
            py, c = calls(fn, max(1, n // 20))
            out[name] = {
                "cpu_us": best(fn, n, repeat) / per,
                "python_calls": py / per,
                "c_calls": c / per,
            }

        op("W1 echo, per round trip", rig.ops["echo"], number)
        op("W1ack echoack, per round trip", rig.ops["echoack"], number)
        many = max(20, number // rig.clients)
        op(f"W2 broadcast to {rig.clients}, per delivery", rig.ops["bcast"], many, rig.clients)
        op("W6 heartbeat, per ping + pong", rig.ops["ping"], many, rig.clients)
        return out
    finally:
        await rig.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--number", type=int, default=4000, help="operations per run")
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    out = uvloop.run(measure(args.clients, args.number, args.repeat))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{'':40s} {'CPU µs':>8s} {'Python calls':>13s} {'C calls':>8s}")
        for k, v in out.items():
            print(f"{k:40s} {v['cpu_us']:8.2f} {v['python_calls']:13.1f} {v['c_calls']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
