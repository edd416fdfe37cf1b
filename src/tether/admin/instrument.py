"""The admin UI's server side in one process: what it reports, and the commands it obeys.

Theory of operation. Every process (worker or node) reports about its own sockets only, by emitting to
the admin namespace; an emit to a namespace reaches every process through the adapter, so an admin UI
connected to any one worker sees every worker's sockets, events and ``server_stats`` (one entry per
process, named by ``serverId``). Questions about the whole cluster (``all_sockets`` when the UI connects)
and the UI's commands (join, leave, disconnect) go through the adapter's cluster-wide operations
(``fetch_sockets``, ``sockets_join``...), as the reference server's ``instrument()`` does with
``io.fetchSockets()`` / ``io.socketsJoin()``.

Server -> UI events (``mode = "development"`` unless marked *)::

    session(sessionId)                               after a log-in with the password
    config({"supportedFeatures": [...]}) *           right after connect
    all_sockets([socket, ...])                       right after connect: every socket of the cluster
    server_stats({serverId, hostname, pid, uptime, clientsCount, pollingClientsCount,
                  aggregatedEvents, namespaces}) *   every [admin] stats_interval seconds, per process
    socket_connected(socket, time)  socket_updated({id, nsp, transport})
    socket_disconnected(nsp, id, reason, time)
    room_joined(nsp, room, id, time)  room_left(nsp, room, id, time)
    event_received(nsp, id, [event, *args], time)    event_sent(nsp, id, [event, *args], time)

UI -> server commands (refused with ``read_only``)::

    emit(nsp, filter, event, *args)   join(nsp, room, filter)   leave(nsp, room, filter)
    _disconnect(nsp, close, filter)   filter: a room or a socket id; None or "": every socket

A *socket* is ``{id, clientId, transport, nsp, data, handshake, rooms}``; ``clientId`` and ``transport``
travel in ``socket.data["_admin"]`` (as the reference keeps them) so that ``fetch_sockets`` carries them
from other nodes, and are taken out of ``data`` when shown. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket as socket_module
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ..broadcast import BroadcastOperator
from ..cluster.base import SocketInfo, socket_info
from ..errors import Reject, TetherError
from ..protocol.connection import Transport
from .auth import AdminAuth

if TYPE_CHECKING:
    from ..context import Socket
    from ..server.server import Server

__all__ = ["COMMAND_FEATURES", "Instrument"]

log = logging.getLogger("tether.admin")

COMMAND_FEATURES = ("EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT")
"""The UI's command features (``@socket.io/admin-ui`` ``Feature``); none with ``read_only``."""

ADMIN_DATA = "_admin"


def now_iso(t: float | None = None) -> str:
    """``t`` (default: now) as JavaScript's ``Date.toJSON()`` writes it: what the UI parses."""
    moment = datetime.fromtimestamp(time.time() if t is None else t, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """``value`` as JSON data: ``socket.data`` may hold anything, and one odd value must not stop a report."""
    return orjson.loads(orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS))


class Instrument:
    """The admin UI's view of one server. Built and wired by :func:`tether.admin.install`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config.admin
        self.namespace = self.config.namespace
        self.development = self.config.mode == "development"
        self.auth = AdminAuth(self.config)
        hostname = socket_module.gethostname()
        self.hostname = hostname
        self.server_id = self.config.server_id or f"{hostname}#{os.getpid()}"
        features = [] if self.config.read_only else list(COMMAND_FEATURES)
        features.append("AGGREGATED_EVENTS")
        if self.development:
            features.append("ALL_EVENTS")
        self.features = features
        self._started = time.monotonic()
        self._timer: asyncio.Handle | None = None
        self._last_counts: tuple[int, int, int, dict[str, int]] | None = None
        self._transports: dict[tuple[str, str], str] = {}
        """``(namespace, sid)`` -> the transport last reported, to tell the UI about upgrades."""

    # -- reporting ------------------------------------------------------------------------------------

    def report(self, event: str, *args: Any) -> None:
        """Emit ``event`` to every admin UI (every process's admin sockets, through the adapter)."""
        try:
            self.server.broadcast(self.namespace, event, args)
        except TetherError as exc:  # an argument the parser cannot encode: lose the report, not the caller
            log.warning("! admin report %s not sent: %s", event, exc)

    def serialize(self, sock: Socket) -> dict[str, Any]:
        """A local socket as the UI shows it."""
        return self.serialize_info(socket_info(sock))

    def serialize_info(self, info: SocketInfo) -> dict[str, Any]:
        """A socket of any process (from ``fetch_sockets``) as the UI shows it."""
        data = dict(info.data)
        admin = data.pop(ADMIN_DATA, None)
        admin = admin if isinstance(admin, dict) else {}
        hs = info.handshake
        headers = hs.get("headers", {})
        issued = admin.get("issued", 0)
        return {
            "id": info.id,
            "clientId": admin.get("clientId", ""),
            "transport": admin.get("transport", ""),
            "nsp": info.namespace,
            "data": _plain(data),
            "handshake": {
                "address": headers.get("cf-connecting-ip")
                or headers.get("x-forwarded-for")
                or hs.get("address"),
                "headers": headers,
                "query": hs.get("query", {}),
                "issued": issued,
                "secure": hs.get("secure", False),
                "time": now_iso(issued / 1000) if issued else "",
                "url": hs.get("url", ""),
                "xdomain": hs.get("xdomain", False),
            },
            "rooms": list(info.rooms),
        }

    # -- hooks (installed on the server by tether.admin.install) --------------------------------------

    def on_accept(self, sock: Socket) -> None:
        transport = _transport_name(sock)
        sock.data[ADMIN_DATA] = {
            "clientId": sock.client.sid[:12],
            "transport": transport,
            "issued": int(time.time() * 1000),
        }
        if self.development:
            self._transports[(sock.namespace, sock.sid)] = transport
            self.report("socket_connected", self.serialize(sock), now_iso())
        if sock.namespace == self.namespace:
            # Now, right after the CONNECT reply, as node's admin server sends it in its connection handler:
            # a report (server_stats every stats_interval) must not reach the UI before its config.
            sock.emit("config", {"supportedFeatures": self.features})
            if self.development:
                self.server.spawn(self._send_all_sockets(sock))

    def on_disconnect(self, sock: Socket, reason: str) -> None:
        if self._transports.pop((sock.namespace, sock.sid), None) is not None:
            self.report("socket_disconnected", sock.namespace, sock.sid, reason, now_iso())

    def on_event(self, sock: Socket, event: str, args: list[Any]) -> None:
        if sock.namespace != self.namespace:
            self.report("event_received", sock.namespace, sock.sid, [event, *args], now_iso())

    def on_room(self, sock: Socket, room: str, joined: bool) -> None:
        if (sock.namespace, sock.sid) in self._transports:  # once connected (the connect handler's joins
            # come before socket_connected, which lists them in ``rooms``)
            self.report("room_joined" if joined else "room_left", sock.namespace, room, sock.sid, now_iso())

    def on_outgoing(
        self,
        namespace: str,
        event: str,
        args: tuple[Any, ...],
        rooms: tuple[str, ...],
        except_rooms: tuple[str, ...],
    ) -> None:
        if namespace == self.namespace:
            return  # the admin's own reports
        stamp = now_iso()
        payload = [event, *args]
        for sock in list(self.server.local_sockets(namespace, rooms, except_rooms)):
            self.report("event_sent", namespace, sock.sid, payload, stamp)

    # -- the admin namespace --------------------------------------------------------------------------

    async def on_admin_connect(self, sock: Socket, auth: Any) -> None:
        """The admin namespace's ``connect`` route: log-in or session id, else ``invalid credentials``."""
        session = await self.auth.check(auth)
        if session is None:
            log.warning("! admin UI log-in refused from %s", sock.client.remote)
            raise Reject({"message": "invalid credentials"})
        if session:
            await sock.emit("session", session)

    async def _send_all_sockets(self, sock: Socket) -> None:
        sockets = await self.all_sockets()
        if sock.connected:
            await sock.emit("all_sockets", sockets)

    async def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of every namespace on every process (the adapter's ``fetch_sockets``)."""
        server = self.server
        names = dict.fromkeys(["/", *server.router.namespaces(), *server.namespaces])
        out: list[dict[str, Any]] = []
        for name in names:
            for info in await server.adapter.fetch_sockets(name):
                out.append(self.serialize_info(info))
        return out

    def command(self, name: str, nsp: Any, value: Any, room_filter: Any) -> None:
        """Run the UI's ``join``/``leave`` (``value``: the room) or ``_disconnect`` (``value``: close)."""
        if (
            not isinstance(nsp, str)
            or not nsp.startswith("/")
            or not (room_filter is None or isinstance(room_filter, str))
        ):
            log.warning("! admin %s: bad arguments %r", name, (nsp, value, room_filter))
            return
        target = BroadcastOperator(self.server, nsp, (room_filter,) if room_filter else ())
        log.info("= admin UI: %s %r in %s (filter %r)", name, value, nsp, room_filter)
        if name == "_disconnect":
            target.disconnect_sockets(close=bool(value))
        elif not isinstance(value, str) or not value:
            log.warning("! admin %s: bad room %r", name, value)
        elif name == "join":
            target.sockets_join(value)
        else:
            target.sockets_leave(value)

    def emit_command(self, nsp: Any, room_filter: Any, event: Any, *args: Any) -> None:
        """The UI's ``emit``: ``event`` with ``args`` to a namespace, or a room / socket of it."""
        if not isinstance(nsp, str) or not nsp.startswith("/") or not isinstance(event, str) or not event:
            log.warning("! admin emit: bad arguments %r", (nsp, room_filter, event))
            return
        target = BroadcastOperator(self.server, nsp)
        if isinstance(room_filter, str) and room_filter:
            target = target.to(room_filter)
        target.emit(event, *args)

    # -- server_stats ---------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report now and every ``stats_interval`` until the server drains (a timer, not a task: nothing
        for shutdown to wait for)."""
        if self._timer is None:
            self._timer = loop.call_soon(self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        server = self.server
        if server.state.draining:
            self._timer = None
            return
        try:
            if self.development:
                self._report_upgrades()
            self.report("server_stats", self.stats())
        finally:
            self._timer = asyncio.get_running_loop().call_later(self.config.stats_interval, self._tick)

    def stats(self) -> dict[str, Any]:
        """This process's ``server_stats``: counts now and what happened since the last report."""
        server = self.server
        polling = sum(1 for c in server.clients.values() if c.ws is None)
        return {
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "uptime": time.monotonic() - self._started,
            "clientsCount": len(server.clients),
            "pollingClientsCount": polling,
            "aggregatedEvents": self._aggregated_events(),
            "namespaces": [
                {"name": name, "socketsCount": len(ns.rooms)}
                for name, ns in sorted(server.namespaces.items())
            ],
        }

    def _aggregated_events(self) -> list[dict[str, Any]]:
        """What the dashboard charts, from the server's own counters (nothing added to the hot path):
        connections, disconnections by reason, events in and deliveries out since the last report."""
        state = self.server.state
        now = (state.connections_total, state.events_in, state.events_out, dict(state.disconnects))
        last = self._last_counts
        self._last_counts = now
        if last is None:
            return []
        stamp = int(time.time()) * 1000
        out: list[dict[str, Any]] = []
        for kind, n in (("rawConnection", now[0] - last[0]), ("packetsIn", now[1] - last[1])):
            if n > 0:
                out.append({"timestamp": stamp, "type": kind, "count": n})
        if now[2] - last[2] > 0:
            out.append({"timestamp": stamp, "type": "packetsOut", "count": now[2] - last[2]})
        for reason, n in now[3].items():
            delta = n - last[3].get(reason, 0)
            if delta > 0:
                out.append(
                    {"timestamp": stamp, "type": "rawDisconnection", "subType": reason, "count": delta}
                )
        return out

    def _report_upgrades(self) -> None:
        for key, reported in list(self._transports.items()):
            sock = self.server.get_socket(key[1], key[0])
            if sock is None:
                continue
            transport = _transport_name(sock)
            if transport != reported:
                self._transports[key] = transport
                admin = sock.data.get(ADMIN_DATA)
                if isinstance(admin, dict):
                    admin["transport"] = transport
                self.report("socket_updated", {"id": sock.sid, "nsp": sock.namespace, "transport": transport})


def _transport_name(sock: Socket) -> str:
    transport = sock.client.conn.transport
    return "polling" if transport is Transport.POLLING else "websocket"
