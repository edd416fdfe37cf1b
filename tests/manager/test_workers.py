"""Several workers behind one port: crash restarts, cross-worker delivery, sticky polling, /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import scaled, wait_until, wait_until_async

from .conftest import Instance, alive

JS_DIR = Path(__file__).resolve().parents[1] / "js"


async def _clients_on_two_workers(url: str, per_worker: int = 1) -> dict[int, list[socketio.AsyncClient]]:
    """Connect clients until ``per_worker`` of them sit on each of two workers (known by the worker's pid)."""
    by_pid: dict[int, list[socketio.AsyncClient]] = {}
    extra: list[socketio.AsyncClient] = []
    for _ in range(60):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, transports=["websocket"], wait_timeout=scaled(5))
        pid = (await client.call("whoami", timeout=scaled(5)))["pid"]
        bucket = by_pid.setdefault(pid, [])
        (bucket if len(bucket) < per_worker else extra).append(client)
        if len(by_pid) == 2 and all(len(v) == per_worker for v in by_pid.values()):
            break
    for client in extra:
        await client.disconnect()
    assert len(by_pid) == 2, "the kernel never gave a connection to the second worker"
    return by_pid


def test_a_killed_worker_is_replaced(instance: Instance) -> None:
    instance.start("--workers", "2")
    before = instance.infos()
    victim = before["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> dict[str, Any] | None:
        info = instance.infos()
        slot = [w for w in info["workers"] if w["slot"] == victim["slot"]]
        ok = (
            slot
            and slot[0]["pid"] != victim["pid"]
            and slot[0]["state"] == "ready"
            and len(info["workers"]) == 2
        )
        return info if ok else None

    after = instance.wait_for(replaced, 10, "a new worker in the killed one's slot")
    assert after["pid"] == before["pid"] and alive(before["pid"])  # the master survived
    new = next(w for w in after["workers"] if w["slot"] == victim["slot"])
    assert new["restarts"] == 1 and after["restarts"] == 1
    other = next(w for w in after["workers"] if w["slot"] != victim["slot"])
    assert other["pid"] == next(w["pid"] for w in before["workers"] if w["slot"] != victim["slot"])
    log = instance.log()
    assert f"(pid {victim['pid']}, slot {victim['slot']}) exited unexpectedly: killed by SIGKILL" in log
    assert "restarting in 0.1s" in log


def _handoffs(instance: Instance) -> tuple[int, int]:
    """(sent, received) handoffs so far, summed over the workers."""
    workers = instance.infos()["workers"]
    return sum(w["handoffs_sent"] for w in workers), sum(w["handoffs_received"] for w in workers)


async def test_rooms_and_users_across_workers(two_workers: Instance) -> None:
    instance = two_workers
    handoffs = _handoffs(instance)
    by_pid = await _clients_on_two_workers(instance.url, per_worker=1)
    (pid_a, [a]), (pid_b, [b]) = by_pid.items()
    assert pid_a != pid_b
    said: dict[str, list[Any]] = {"a": [], "b": []}
    a.on("said", lambda m: said["a"].append(m))
    b.on("said", lambda m: said["b"].append(m))
    notified: list[Any] = []
    b.on("notified", lambda m: notified.append(m))

    assert await a.call("join", "lobby", timeout=scaled(5))
    assert await b.call("join", "lobby", timeout=scaled(5))
    payload = {"text": "hi", "blob": b"\x00\x01\xff"}  # binary survives the hub
    assert await a.call("say", ("lobby", payload), timeout=scaled(5))

    await wait_until(lambda: bool(said["a"] and said["b"]), what="both clients to hear it")
    assert said == {"a": [payload], "b": [payload]}

    # A server-side event from worker A: worker B's handler answers through the master (the hub).
    asked = await a.call("ask_workers", "t", timeout=scaled(10))
    assert asked == {"answers": [["t", pid_b]], "expected": 1}
    # And without an ack: worker B's handler hears it, worker A's own does not (node's rule). Its handler
    # would have run before the ack of tell_workers, so a's "heard" would have come before that ack.
    heard: dict[str, list[Any]] = {"a": [], "b": []}
    a.on("heard", lambda tag: heard["a"].append(tag))
    b.on("heard", lambda tag: heard["b"].append(tag))
    await a.call("tell_workers", "fire", timeout=scaled(5))
    await wait_until(lambda: bool(heard["b"]), what="worker B's clients to hear the server-side event")
    assert await a.call("echo", "barrier", timeout=scaled(5)) == "barrier"
    assert heard == {"a": [], "b": ["fire"]}

    # A user logged in on worker B: online and reachable from worker A.
    assert await a.call("online", "alice", timeout=scaled(5)) is False
    assert await b.call("login", "alice", timeout=scaled(5))
    await wait_until_async(lambda: a.call("online", "alice", timeout=scaled(5)), True)
    assert await a.call("notify", ("alice", "ping"), timeout=scaled(5)) is True
    await wait_until(lambda: bool(notified), what="the notification")
    assert notified == ["ping"]
    await b.disconnect()
    await wait_until_async(lambda: a.call("online", "alice", timeout=scaled(5)), False)
    await a.disconnect()

    assert _handoffs(instance) == handoffs  # all WebSocket: nothing to hand off


NODE_CLIENTS = r"""
import { io } from "socket.io-client";
const [url, n] = [process.argv[1], parseInt(process.argv[2])];  // node -e SCRIPT URL N
// Clients arrive 40 ms apart, as users do: a burst of simultaneous connects is accepted by one worker.
const later = (ms) => new Promise((r) => setTimeout(r, ms));
const client = (i) => new Promise((resolve, reject) => {
  const s = io(url, { reconnection: false });  // default options otherwise: polling, then upgrade
  const timer = setTimeout(() => reject(new Error("client " + i + " timed out")), 15000);
  s.on("connect_error", (e) => { clearTimeout(timer); reject(e); });
  s.on("connect", async () => {
    try {
      const first = await s.emitWithAck("whoami");
      const echoed = await s.timeout(5000).emitWithAck("echo", { i, bin: Buffer.from([i, 255]) });
      await new Promise((r) => setTimeout(r, 400));  // let the upgrade finish
      const again = await s.timeout(5000).emitWithAck("whoami");
      clearTimeout(timer);
      const transport = s.io.engine.transport.name;
      resolve({ i, first, again, transport, echoed: [echoed.i, [...echoed.bin]] });
      s.close();
    } catch (e) { clearTimeout(timer); reject(e); }
  });
});
const out = await Promise.all(Array.from({ length: n }, (_, i) => later(40 * i).then(() => client(i))));
console.log(JSON.stringify(out));
"""


async def test_node_client_default_options_with_two_workers(two_workers: Instance) -> None:
    instance = two_workers
    sent, received = _handoffs(instance)
    # Run from tests/js so that the import resolves to its node_modules.
    proc = await asyncio.to_thread(
        subprocess.run,
        ["node", "--input-type=module", "-e", NODE_CLIENTS, instance.url, "12"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert proc.returncode == 0, proc.stderr + instance.log()[-3000:]
    results = json.loads(proc.stdout)
    assert len(results) == 12
    for r in results:
        assert r["echoed"] == [r["i"], [r["i"], 255]]
        assert r["transport"] == "websocket"  # upgraded, even when the upgrade reached the other worker
        assert r["first"]["pid"] == r["again"]["pid"]  # one session, one worker, polling and WebSocket
        assert r["first"]["sid"] == r["again"]["sid"]
    assert len({r["first"]["pid"] for r in results}) == 2  # sessions on both workers
    sent_now, received_now = _handoffs(instance)
    assert sent_now > sent  # requests reached the wrong worker and were handed over
    assert sent_now - sent == received_now - received


async def test_python_polling_client_with_two_workers(two_workers: Instance) -> None:
    instance = two_workers
    # Nothing left from the module's earlier tests (their clients are gone), so that the count below is ours.
    instance.wait_for(lambda: instance.infos()["totals"]["connections"] == 0, 5, "no connection left")
    clients = []
    for _i in range(6):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(instance.url, transports=["polling"], wait_timeout=scaled(5))
        clients.append(client)
    for round_ in range(5):
        answers = await asyncio.gather(
            *(c.call("echo", [i, round_], timeout=scaled(5)) for i, c in enumerate(clients))
        )
        assert answers == [[i, round_] for i in range(len(clients))]
    whoami = await asyncio.gather(*(c.call("whoami", timeout=scaled(5)) for c in clients))
    assert {w["transport"] for w in whoami} == {"polling"}
    info = instance.infos()
    assert info["totals"]["connections"] == 6
    for client in clients:
        await client.disconnect()


async def test_a_raw_request_for_another_workers_session_is_handed_over(two_workers: Instance) -> None:
    """New TCP connection per request (no keep-alive): half of them land on the other worker."""
    instance = two_workers
    sent, _ = _handoffs(instance)
    base = instance.url + "/socket.io/?EIO=4&transport=polling"
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(base) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        owner = int(sid.split(".")[0])
        async with http.post(f"{base}&sid={sid}", data="40") as resp:
            assert await resp.text() == "ok"
        for n in range(10):
            async with http.post(f"{base}&sid={sid}", data=f'42{n}["echo","x{n}"]') as resp:
                assert resp.status == 200 and await resp.text() == "ok"
        received = ""
        while received.count("43") < 10:
            async with http.get(f"{base}&sid={sid}", timeout=aiohttp.ClientTimeout(total=scaled(5))) as resp:
                assert resp.status == 200
                received += await resp.text()
        assert all(f'43{n}["x{n}"]' in received for n in range(10))
        async with http.get(base + "&sid=999.nosuchsession") as resp:
            assert resp.status == 400 and json.loads(await resp.text())["message"] == "Session ID unknown"
    info = instance.infos()
    assert any(w["id"] == owner for w in info["workers"])
    assert sum(w["handoffs_sent"] for w in info["workers"]) > sent


METRICS_KEY = "metrics-key-for-tests-0123456789abcdef"


async def test_metrics_aggregate_every_worker(instance: Instance) -> None:
    instance.config.write_text(instance.config.read_text() + f'\n[metrics]\nkey = "{METRICS_KEY}"\n')
    instance.start("--workers", "2")
    auth = {"Authorization": f"Bearer {METRICS_KEY}"}
    by_pid = await _clients_on_two_workers(instance.url, per_worker=2)
    clients = [c for group in by_pid.values() for c in group]
    instance.wait_for(lambda: instance.infos()["totals"]["connections"] == 4, 5, "the extra clients to leave")
    for c in clients:
        await c.call("echo", "x", timeout=scaled(5))
    await clients[0].call("join", "r", timeout=scaled(5))
    await clients[0].call("say", ("r", "m"), timeout=scaled(5))
    async with aiohttp.ClientSession() as http:
        for _ in range(4):  # whichever worker answers the scrape, it counts all of them
            async with http.get(instance.url + "/metrics", headers=auth) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
            assert "tether_connections 4.0" in text
            assert "tether_workers 2.0" in text
            assert 'tether_events_in_total{event="echo"} 4.0' in text
            assert 'tether_events_out_total{event="said"} 1.0' in text
            assert 'tether_handler_seconds_count{event="echo"} 4.0' in text
            assert "tether_handshakes_total" in text and "tether_queued_messages" in text
        victim = next(iter(by_pid))
        for c in by_pid[victim]:
            await c.disconnect()
        os.kill(victim, signal.SIGKILL)
        instance.wait_for(
            lambda: len([w for w in instance.infos()["workers"] if w["state"] == "ready"]) == 2, 10, "restart"
        )
        async with http.get(instance.url + "/metrics", headers=auth) as resp:
            text = await resp.text()
        # The dead worker's counters stay in the totals: counters never go down.
        assert 'tether_events_in_total{event="echo"} 4.0' in text
        assert "tether_connections 2.0" in text
        assert "tether_worker_restarts_total 1.0" in text
        # As Prometheus reads it: what only counts up is a counter, so that rate() applies (it was a gauge).
        types = {f.name: f.type for f in text_string_to_metric_families(text)}
        for name in (
            "tether_worker_restarts",
            "tether_reloads",
            "tether_hub_frames_relayed",
            "tether_handshakes",
        ):
            assert types[name] == "counter", (name, types)
        assert types["tether_workers"] == types["tether_uptime_seconds"] == "gauge"
    for group in by_pid.values():
        for c in group:
            if c.connected:
                await c.disconnect()


async def test_session_activity_on_one_worker_keeps_tabs_on_another_alive(instance: Instance) -> None:
    """One session, a tab on each worker: activity in one tab must count for the other (the hub relays it)."""
    from tether.sessions import issue_token

    secret = "workers-test-secret-0123456789abcdef"
    with instance.config.open("a") as f:
        f.write(f'\n[session]\nidle_timeout = 3\nsecret = "{secret}"\n')
    instance.start("--workers", "2")
    token = issue_token("alice", "s-shared", secret=secret, ttl=300)
    by_pid: dict[int, socketio.AsyncClient] = {}
    extra: list[socketio.AsyncClient] = []
    expired: dict[int, list[float]] = {}
    for _ in range(60):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            instance.url, transports=["websocket"], auth={"token": token}, wait_timeout=scaled(5)
        )
        pid = (await client.call("whoami", timeout=scaled(5)))["pid"]
        if pid in by_pid:
            extra.append(client)
        else:
            by_pid[pid] = client
            marks = expired.setdefault(pid, [])

            def on_expired(*_args: Any, marks: list[float] = marks) -> None:
                marks.append(asyncio.get_running_loop().time())

            client.on("session:expired", on_expired)
        if len(by_pid) == 2:
            break
    for client in extra:
        await client.disconnect()
    assert len(by_pid) == 2, "the kernel never gave a connection to the second worker"
    active = next(iter(by_pid.values()))  # the other tab, on the other worker, stays idle

    loop = asyncio.get_running_loop()
    busy_until = loop.time() + 6  # twice the idle timeout, activity in the first tab only
    while loop.time() < busy_until:
        await active.emit("activity")
        await asyncio.sleep(0.5)
    assert all(not marks for marks in expired.values()), "a tab expired while its session was active"

    stopped = loop.time()
    await wait_until(
        lambda: all(expired.values()), 8, "both tabs to hear session:expired once the session is idle"
    )
    # Not before the idle timeout, give or take how activity is shared: at most one touch a second per session
    # (SHARE_INTERVAL) after the last event, which came up to 0.5 s before ``stopped``.
    assert all(marks[0] - stopped >= 3 - 1.0 - 0.5 - 0.2 for marks in expired.values())
    for client in by_pid.values():
        if client.connected:
            await client.disconnect()
