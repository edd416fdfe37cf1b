"""Two Tether node processes on one real redis-server: emits by room, sid, user and to all arrive once.

Every test uses its own room names and user ids: the two nodes live for the whole session.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from tests.helpers import wait_until
from tests.redis_fixtures import (
    Client,
    Cluster,
    clients,
    running_cluster,
    running_redis,
    scaled,
    settle,
)

_ids = itertools.count(1)


def uniq(name: str) -> str:
    return f"{name}-{next(_ids)}-{time.monotonic_ns()}"


def got(c: Client, event: str) -> list[object]:
    return c.events.get(event, [])


async def test_emit_to_all_reaches_every_client_on_both_nodes_once(cluster: Cluster) -> None:
    event = uniq("all")
    async with clients(cluster.a.url, cluster.a.url, cluster.b.url, cluster.b.url) as cs:
        assert await cs[0].call("emit_to", {"event": event, "args": ["hello", 1]}) == "ok"
        await wait_until(lambda: all(got(c, event) for c in cs), what="every client to get the emit")
        await settle()
        for c in cs:
            assert got(c, event) == [["hello", 1]]


async def test_emit_to_room_reaches_members_on_both_nodes_once(cluster: Cluster) -> None:
    room, event = uniq("room"), uniq("ev")
    async with clients(cluster.a.url, cluster.a.url, cluster.b.url, cluster.b.url) as (sender, a2, b1, b2):
        for member in (a2, b1):
            assert await member.call("join", room) == "ok"
        await sender.call("emit_to", {"event": event, "args": [{"n": 1}], "room": room})
        await wait_until(lambda: got(a2, event) and got(b1, event), what="room members")
        await settle()
        assert got(a2, event) == [{"n": 1}]
        assert got(b1, event) == [{"n": 1}]
        assert got(sender, event) == [] and got(b2, event) == []


async def test_emit_to_several_rooms_reaches_a_member_of_both_once(cluster: Cluster) -> None:
    r1, r2, event = uniq("r1"), uniq("r2"), uniq("ev")
    async with clients(cluster.a.url, cluster.b.url, cluster.b.url) as (sender, both, one):
        await both.call("join", r1)
        await both.call("join", r2)
        await one.call("join", r2)
        await sender.call("emit_to", {"event": event, "args": ["x"], "rooms": [r1, r2]})
        await wait_until(lambda: got(both, event) and got(one, event), what="members of r1 or r2")
        await settle()
        assert got(both, event) == ["x"]
        assert got(one, event) == ["x"]


async def test_except_rooms_are_honoured_on_the_other_node(cluster: Cluster) -> None:
    room, muted, event = uniq("room"), uniq("muted"), uniq("ev")
    async with clients(cluster.a.url, cluster.b.url, cluster.b.url) as (sender, b1, b2):
        for c in (b1, b2):
            await c.call("join", room)
        await b2.call("join", muted)
        await sender.call("emit_to", {"event": event, "args": [1], "room": room, "except": muted})
        await wait_until(lambda: got(b1, event), what="the member not excluded")
        await settle()
        assert got(b1, event) == [1]
        assert got(b2, event) == []


async def test_emit_to_sid_on_the_other_node(cluster: Cluster) -> None:
    event = uniq("ev")
    async with clients(cluster.a.url, cluster.b.url, cluster.b.url) as (sender, target, other):
        await sender.call("emit_to", {"event": event, "args": ["just you"], "sid": target.sid})
        await wait_until(lambda: got(target, event), what="the socket of that sid")
        await settle()
        assert got(target, event) == ["just you"]
        assert got(other, event) == [] and got(sender, event) == []


async def test_emit_to_user_reaches_every_tab_on_every_node_once(cluster: Cluster) -> None:
    user, event = uniq("u"), uniq("ev")
    async with clients(cluster.a.url, cluster.a.url, cluster.b.url, cluster.b.url) as (
        tab1,
        sender,
        tab2,
        stranger,
    ):
        for tab in (tab1, tab2):
            assert await tab.call("login", user) == "ok"
        await sender.call("emit_to", {"event": event, "args": ["logout"], "user": user})
        await wait_until(lambda: got(tab1, event) and got(tab2, event), what="both tabs of the user")
        await settle()
        assert got(tab1, event) == ["logout"] and got(tab2, event) == ["logout"]
        assert got(stranger, event) == [] and got(sender, event) == []


async def test_socket_broadcast_leaves_out_the_sender_only(cluster: Cluster) -> None:
    event = uniq("ev")
    async with clients(cluster.a.url, cluster.a.url, cluster.b.url) as (sender, a2, b1):
        await sender.call("broadcast", event, "hi")
        await wait_until(lambda: got(a2, event) and got(b1, event), what="everyone but the sender")
        await settle()
        assert got(a2, event) == ["hi"] and got(b1, event) == ["hi"] and got(sender, event) == []


async def test_binary_arguments_cross_nodes_as_binary(cluster: Cluster) -> None:
    room = uniq("bin")
    async with clients(cluster.a.url, cluster.b.url) as (sender, receiver):
        await receiver.call("join", room)
        await sender.call("emit_binary", room)
        await wait_until(lambda: got(receiver, "blob"), what="the binary emit")
        assert got(receiver, "blob") == [{"name": "x", "bytes": b"\x00\x01\xff"}]


async def test_namespaces_are_kept_apart(cluster: Cluster) -> None:
    room, event = uniq("ns"), uniq("ev")
    async with clients((cluster.b.url, "/admin"), cluster.b.url, cluster.a.url) as (admin, main, sender):
        await admin.call("join", room)
        await main.call("join", room)
        await sender.call("emit_to", {"event": event, "args": ["main only"], "room": room})
        await wait_until(lambda: got(main, event), what="the / namespace member")
        await settle()
        assert got(admin, event) == []


# -- cluster-wide questions and changes ------------------------------------------------------------------


async def test_user_online_count_and_fetch_sockets_are_cluster_wide(cluster: Cluster) -> None:
    user, room = uniq("u"), uniq("room")
    async with clients(cluster.a.url, cluster.b.url, cluster.b.url) as (asker, b1, b2):
        assert await asker.call("user_online", user) is False
        await b1.call("login", user)
        assert await asker.call("user_online", user) is True
        await b1.call("join", room)
        await b2.call("join", room)
        await asker.call("join", room)
        assert await asker.call("count", room) == 3
        assert await asker.call("server_count") == 2
        fetched = await asker.call("fetch", room)
        assert sorted(s["id"] for s in fetched) == sorted([asker.sid, b1.sid, b2.sid])
        by_id = {s["id"]: s for s in fetched}
        assert by_id[b1.sid]["user_id"] == user and by_id[b1.sid]["local"] is False
        assert by_id[asker.sid]["local"] is True
        assert room in by_id[b2.sid]["rooms"]
        assert room in await asker.call("all_rooms")
    # Once the user's only socket is gone, the other node says so.
    async with clients(cluster.a.url) as (asker,):
        deadline = time.monotonic() + scaled(5)
        while await asker.call("user_online", user) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await asker.call("user_online", user) is False


async def test_sockets_join_leave_and_disconnect_reach_the_other_node(cluster: Cluster) -> None:
    room, extra, event = uniq("room"), uniq("extra"), uniq("ev")
    async with clients(cluster.a.url, cluster.b.url) as (driver, member):
        await member.call("join", room)
        await driver.call("sockets_join", room, extra)
        assert extra in await _rooms_soon(member, extra, present=True)
        await driver.call("emit_to", {"event": event, "args": [1], "room": extra})
        await wait_until(lambda: got(member, event), what="an emit to the room joined remotely")
        await driver.call("sockets_leave", room, extra)
        assert extra not in await _rooms_soon(member, extra, present=False)
        await driver.call("disconnect_room", room)
        await wait_until(lambda: not member.sio.connected, what="the remote disconnect")


async def _rooms_soon(c: Client, room: str, present: bool) -> list[str]:
    deadline = time.monotonic() + scaled(5)
    while True:
        rooms = await c.call("rooms")
        if (room in rooms) == present or time.monotonic() > deadline:
            return list(rooms)
        await asyncio.sleep(0.02)


# -- resilience ------------------------------------------------------------------------------------------


async def test_redis_killed_and_restarted_mid_test_delivery_resumes() -> None:
    """Own redis and nodes: the session's Redis must not go down under the other tests."""
    with running_redis() as redis, running_cluster(redis) as c:
        room = uniq("room")
        async with clients(c.a.url, c.a.url, c.b.url) as (sender, local, remote):
            for member in (local, remote):
                await member.call("join", room)
            await sender.call("emit_to", {"event": "before", "args": [0], "room": room})
            await wait_until(lambda: got(remote, "before"), what="delivery before the crash")

            redis.kill()
            # While Redis is down, emits keep reaching this node's clients and nothing fails in handlers.
            for i in range(3):
                assert await sender.call("emit_to", {"event": "during", "args": [i], "room": room}) == "ok"
            await wait_until(lambda: len(got(local, "during")) == 3, what="local delivery during the outage")
            await wait_until(
                lambda: "unreachable" in c.a.log() and "unreachable" in c.b.log(), what="the log"
            )

            redis.start()
            # Until both nodes have resubscribed an emit may be lost (pub/sub keeps nothing): retry, bounded.
            deadline = time.monotonic() + scaled(15)
            n = 0
            while not got(remote, "after") and time.monotonic() < deadline:
                n += 1
                await sender.call("emit_to", {"event": "after", "args": [n], "room": room})
                await asyncio.sleep(0.1)
            assert got(remote, "after"), "delivery did not resume after redis came back"
            await wait_until(
                lambda: "is back" in c.a.log() and "is back" in c.b.log(), what="the back-online log"
            )
            # Logged once per outage, not once per attempt.
            for node in c.nodes:
                assert node.log().count("unreachable") == 1, node.log()
            # And the cluster answers questions again.
            assert await sender.call("count", room) == 2
