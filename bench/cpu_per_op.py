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
of ``--repeat`` runs, in µs. What it leaves out, the write(2) per frame, the loop and picows' parsing, is
the same for every version of Tether and for raw picows: compare these figures between commits, and read
``make bench`` for the whole. Usage: ``taskset -c 1 .venv/bin/python bench/cpu_per_op.py [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
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
    """Stands in for picows' WSTransport: accepts every write and drops it."""

    is_close_frame_sent = False
    sent = 0

    def send(self, _msg_type: Any, _data: Any) -> None:
        NullTransport.sent += 1

    def send_ping(self) -> None:
        NullTransport.sent += 1


class Frame:
    """Stands in for picows' WSFrame: what ``on_ws_frame`` reads."""

    __slots__ = ("_payload", "fin", "msg_type")

    def __init__(self, payload: bytes) -> None:
        self.msg_type = TEXT
        self.fin = True
        self._payload = payload

    def get_payload_as_bytes(self) -> bytes:
        return self._payload


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


async def measure(clients: int, number: int, repeat: int) -> dict[str, float]:
    config = Config.load(HERE / "apps" / "tether.toml", overrides={"server": {"port": 0}})
    server = await run_server(config)
    peers = []
    real: list[tuple[Any, Any]] = []
    try:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        for _ in range(clients):
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            transport, _listener = await ws_connect(lambda r=ready: Peer(r), url)
            peers.append(transport)
            await asyncio.wait_for(ready, 10)
        deadline = time.monotonic() + 10
        while len(server.clients) < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stub = NullTransport()
        listeners = []
        for client in server.clients.values():
            real.append((client, client.ws))
            client.attach_websocket(stub)
            listener = WebSocketListener(server, client, upgrading=False)
            listener.transport = stub  # type: ignore[assignment]
            listeners.append(listener)
        one = listeners[0]
        echo = Frame(b'42["echo","hello, tether benchmark"]')
        echoack = Frame(b'421["echoack","hello, tether benchmark"]')
        bcast = Frame(b'42["bcast",1000]')
        pong = Frame(b"3")
        out: dict[str, float] = {}
        out["W1 echo, µs per round trip"] = best(lambda: one.on_ws_frame(stub, echo), number, repeat)  # type: ignore[arg-type]
        out["W1ack echoack, µs per round trip"] = best(
            lambda: one.on_ws_frame(stub, echoack),  # type: ignore[arg-type]
            number,
            repeat,
        )
        per_bcast = best(lambda: one.on_ws_frame(stub, bcast), max(1, number // clients), repeat)  # type: ignore[arg-type]
        out[f"W2 broadcast to {clients}, µs per delivery"] = per_bcast / len(listeners)

        heartbeat = server.heartbeat
        interval = config.websocket.ping_interval
        clock = [time.monotonic() + interval + 1]

        def ping_all() -> None:
            # Every client due now: the heartbeat pings each (into the stub) and reschedules it; then each
            # answers. The clock moves one interval per call, so every call finds all of them due.
            heartbeat.run(clock[0], server._on_timer)
            for listener in listeners:
                listener.on_ws_frame(stub, pong)  # type: ignore[arg-type]
            clock[0] += interval

        out["W6 heartbeat, µs per ping + pong"] = best(ping_all, max(1, number // clients), repeat) / len(
            listeners
        )
        return out
    finally:
        for client, ws in real:
            client.attach_websocket(ws)
        for p in peers:
            p.disconnect()
        await server.shutdown(timeout=1.0)


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
        for k, v in out.items():
            print(f"{k:45s} {v:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
