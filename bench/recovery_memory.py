"""What a disconnected session costs while connection state recovery keeps it (issue 11).

    .venv/bin/python bench/recovery_memory.py                 # 10,000 clients, 10 messages while away
    .venv/bin/python bench/recovery_memory.py --clients 50    # smoke test

N clients (hand-written Socket.IO over the ``websockets`` package) connect to a Tether server running in a
subprocess with ``[recovery] max_disconnection_duration = 120``, join a room, then all drop at once (their TCP
connections aborted). While they are away the server emits ``--messages`` to the room. Then every client
comes back with its private id and last offset; the script checks that each one got its sid back and every
missed message. The same run with recovery off gives the baseline.

Reported per disconnected session:

* ``bytes_per_session``: the Python objects the server keeps for it (``SavedSession``, its room tuple, ids,
  data), measured inside the server by walking them with ``sys.getsizeof`` (exact, not noisy);
* ``rss_per_session``: (server RSS with N sessions kept) - (server RSS after the same drop with recovery
  off), divided by N. RSS also holds what the allocator kept from the closed connections, so read it as
  an upper bound.

Prints a human-readable summary to stderr and one JSON object as its last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from limits import raise_nofile
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import asyncio, sys
import uvloop
from tether import Config, Router, run_server
from tether.recovery import SavedSession

def deep_size(obj, seen):
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set)):
        size += sum(deep_size(v, seen) for v in obj)
    elif isinstance(obj, SavedSession):
        size += sum(deep_size(getattr(obj, f), seen) for f in SavedSession.__slots__)
    return size

async def main():
    duration = float(sys.argv[1])
    router = Router()

    @router.on("join")
    def join(socket, room):
        socket.join(room)
        return True

    @router.on("stats")
    def stats(socket):
        rec = socket.server.recovery
        sessions = rec.log.sessions if rec else {}
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        return {
            "clients": len(socket.server.clients),
            "sessions": len(sessions),
            "session_bytes": sum(deep_size(s, set()) for s in sessions.values()),
            "log": rec.log.stats() if rec else {},
            "rss": rss,
        }

    @router.on("burst")
    def burst(socket, room, count):
        for i in range(count):
            socket.server.to(room).emit("n", i)
        return True

    config = Config.load(env={}, overrides={
        "server": {"host": "127.0.0.1", "port": 0},
        "recovery": {"max_disconnection_duration": duration},
        "limits": {"max_connections": 0, "max_connections_per_ip": 0},  # every client is 127.0.0.1
    })
    server = await run_server(config, router)
    print(server.port, flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


class Sio:
    """A Socket.IO client by hand: connect (with auth), emit with ack, collect events."""

    def __init__(self, ws: ClientConnection, reply: dict[str, Any], before: list[list[Any]]) -> None:
        self.ws = ws
        self.sid = reply.get("sid")
        self.pid = reply.get("pid")
        self.before = before
        self.offset: str | None = None

    @classmethod
    async def open(cls, port: int, auth: Any = None) -> Sio:
        ws = await connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", ping_interval=None)
        await ws.recv()
        await ws.send("40" + (orjson.dumps(auth).decode() if auth else ""))
        before: list[list[Any]] = []
        while True:
            message = await ws.recv()
            assert isinstance(message, str)
            if message.startswith("42"):
                before.append(orjson.loads(message[2:]))
                continue
            return cls(ws, orjson.loads(message[2:]), before)

    async def call(self, event: str, *args: Any) -> Any:
        await self.ws.send("421" + orjson.dumps([event, *args]).decode())
        while True:
            message = await self.ws.recv()
            assert isinstance(message, str)
            if message == "2":
                await self.ws.send("3")
            elif message.startswith("431"):
                return orjson.loads(message[3:])[0]
            elif message.startswith("42"):
                self.offset = orjson.loads(message[2:])[-1]


async def run(clients: int, messages: int, duration: float) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(duration)], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        control = await Sio.open(port)
        before = await control.call("stats")
        opened: list[Sio] = []
        for start in range(0, clients, 200):
            batch = await asyncio.gather(*(Sio.open(port) for _ in range(start, min(clients, start + 200))))
            await asyncio.gather(*(c.call("join", "room") for c in batch))
            opened.extend(batch)
        connected = await control.call("stats")
        dropped_at = time.perf_counter()
        for c in opened:
            c.ws.transport.abort()  # every client at once, as when a network segment goes away
        while (stats := await control.call("stats"))["clients"] > 1:
            await asyncio.sleep(0.05)
        drop_seconds = time.perf_counter() - dropped_at
        await control.call("burst", "room", messages)
        kept = await control.call("stats")
        back: list[Sio] = []
        for start in range(0, clients, 200):
            group = opened[start : start + 200]
            back.extend(
                await asyncio.gather(*(Sio.open(port, {"pid": c.pid, "offset": c.offset}) for c in group))
            )
        recovered = sum(1 for old, new in zip(opened, back, strict=True) if new.sid == old.sid)
        complete = sum(1 for new in back if len(new.before) == messages)
        after = await control.call("stats")
        for c in back:
            await c.ws.close()
        await control.ws.close()
        return {
            "clients": clients,
            "rss_before": before["rss"],
            "rss_connected": connected["rss"],
            "rss_kept": kept["rss"],
            "sessions_kept": kept["sessions"],
            "session_bytes": kept["session_bytes"],
            "drop_seconds": round(drop_seconds, 3),
            "recovered": recovered,
            "complete": complete,
            "log_after": after["log"],
            "dropped_stats": stats["sessions"],
        }
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    raise_nofile(2 * args.clients + 100)
    on = asyncio.run(run(args.clients, args.messages, 120.0))
    off = asyncio.run(run(args.clients, args.messages, 0.0))
    n = args.clients
    result = {
        "clients": n,
        "messages_while_away": args.messages,
        "recovered": on["recovered"],
        "complete": on["complete"],
        "bytes_per_session": round(on["session_bytes"] / max(1, on["sessions_kept"])),
        "rss_per_session": round((on["rss_kept"] - off["rss_kept"]) / n),
        "drop_seconds": on["drop_seconds"],
        "off_recovered": off["recovered"],
    }
    print(
        f"{n} clients dropped at once: {on['sessions_kept']} sessions kept, "
        f"{result['bytes_per_session']} B of Python objects each, RSS +{result['rss_per_session']} B each "
        f"against recovery off; {on['recovered']} came back with their sid, {on['complete']} with all "
        f"{args.messages} missed messages (recovery off: {off['recovered']} recovered)",
        file=sys.stderr,
    )
    print(json.dumps(result))
    if on["recovered"] != n or on["complete"] != n or off["recovered"] != 0:
        raise SystemExit("not every client was recovered (or some were with recovery off)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
    main()
