"""The admin UI with two workers behind one port (``tether start --workers 2``, the master hub, no Redis):
one admin connection sees both workers' stats, sockets and live reports, and its commands reach either
worker."""

from __future__ import annotations

import bcrypt
import socketio

from tests.admin.test_admin import PASSWORD, Watcher
from tests.helpers import scaled, wait_until
from tests.manager.conftest import Instance
from tests.manager.test_workers import _clients_on_two_workers

ADMIN = """
[admin]
password = "{hash}"
stats_interval = 0.3
"""


async def test_one_admin_ui_sees_both_workers(instance: Instance) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    instance.config.write_text(instance.config.read_text() + ADMIN.format(hash=hashed))
    instance.start("--workers", "2")
    by_pid = await _clients_on_two_workers(instance.url, per_worker=1)
    users: list[socketio.AsyncClient] = [c for clients in by_pid.values() for c in clients]
    admin = await Watcher(instance.url, "/admin", {"username": "admin", "password": PASSWORD}).connect()
    try:
        # server_stats from each worker, through the hub: one serverId per worker pid.
        await wait_until(
            lambda: {s[0]["pid"] for s in admin.got("server_stats")} == set(by_pid),
            10,
            "server_stats from both workers",
        )
        # Live reports from both workers: rooms joined, events received, and a room broadcast's event_sent
        # (its arguments carried to the other worker by the hub).
        sids = [u.get_sid("/") for u in users]
        for user in users:
            assert await user.call("join", "both", timeout=scaled(5)) is True
        for sid in sids:
            await admin.wait("room_joined", lambda a, sid=sid: a[:3] == ["/", "both", sid], timeout=10)
        assert await users[0].call("say", ("both", "hi all"), timeout=scaled(5)) is True
        for sid in sids:
            await admin.wait(
                "event_sent", lambda a, sid=sid: a[:3] == ["/", sid, ["said", "hi all"]], timeout=10
            )
        await admin.wait("event_received", lambda a: a[:3] == ["/", sids[0], ["say", "both", "hi all"]])
        # all_sockets (the hub's fetch_sockets) lists the sockets of both workers, and the UI's commands
        # (the hub's sockets_join / disconnect_sockets) reach a socket on either worker.
        again = await Watcher(instance.url, "/admin", {"username": "admin", "password": PASSWORD}).connect()
        (sockets,) = await again.wait("all_sockets", timeout=10)
        await again.close()
        listed = {s["id"]: s for s in sockets}
        assert set(sids) <= set(listed) and all("both" in listed[sid]["rooms"] for sid in sids)
        for sid in sids:
            await admin.emit("join", "/", "vip", sid)
            await admin.wait("room_joined", lambda a, sid=sid: a[:3] == ["/", "vip", sid], timeout=10)
        for user, sid in zip(users, sids, strict=True):
            await admin.emit("_disconnect", "/", False, sid)
            await wait_until(lambda user=user: not user.namespaces, 10, f"{sid} to be disconnected")
            await admin.wait("socket_disconnected", lambda a, sid=sid: a[1] == sid, timeout=10)
    finally:
        await admin.close()
        for user in users:
            await user.disconnect()
            await user.shutdown()
