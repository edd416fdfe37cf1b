"""A client's life, from handshake to close, in one place.

Theory of operation. An Engine.IO session (a :class:`~.client.Client`, whose sans-I/O states live in
:mod:`tether.protocol.connection`) carries one :class:`~tether.context.Socket` per Socket.IO namespace it
connected. Everything that creates or ends either of them is here, so that each step of a close runs in a
known order whoever started it (the client, a handler, a timer, a limit, the server shutting down).

Namespace socket states (``sock.connected`` and ``sock._pending``)::

    state        entered by                              left by
    -----------  --------------------------------------  ---------------------------------------------
    CONNECTING   CONNECT (``client.connecting[ns]``);    handler returns -> CONNECTED (reply, then what
                 while the connect handler runs,         it emitted and room traffic); Reject/False/error
                 emits and room traffic wait in          -> REFUSED; the session closes -> ABANDONED;
                 ``_pending``                            a repeated CONNECT is ignored
    CONNECTED    :meth:`Lifecycle._accept`               DISCONNECT packet, ``socket.disconnect()``,
                                                         close of the session -> DISCONNECTED
    REFUSED      :meth:`Lifecycle._refuse`               (final) CONNECT_ERROR sent, rooms undone
    ABANDONED    :meth:`Lifecycle._abandon` (the client  (final) no trace: rooms, user presence, counts;
                 left while CONNECTING)                  no ``disconnect`` route (never connected)
    DISCONNECTED :meth:`Lifecycle.disconnect_socket`     (final) rooms left, acks failed, ``disconnect``
                                                         route run with the reason

Session close (:meth:`Lifecycle.close_client`), in order: forget the client (``clients``, heartbeat,
per-IP count); send the Engine.IO close packet when asked (kept for the next GET when none is held);
close the sans-I/O connection; disconnect every socket with the reason; ``handler.on_close``; close the
WebSocket (code, reason, linger or abort) or answer the held GET.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

from ..context import ClientLink, Namespace, Socket
from ..errors import ConnectionClosed, Reject, reject_of
from ..handler import Request
from ..protocol.connection import CLIENT_CLOSE, PING, Connection, State, Timer, Transport
from ..protocol.events import Connect
from .client import Client
from .core import new_sid
from .dispatch import NOT_DONE, run_handler
from .emit import Emitting
from .membership import USER_ROOM_PREFIX
from .sid_api import CONNECTING

__all__ = ["CLOSE_LINGER", "NO_STATUS", "Lifecycle", "close_reason", "send_empty_close"]

log = logging.getLogger("tether.server")

# Read for every heartbeat action: module constants (see protocol/connection.py on 3.11's enum lookups).
_NOTHING = Timer.NOTHING
_DUE_PING = Timer.PING
_TIMEOUT = Timer.TIMEOUT
_BARE = Transport.BARE
_OPEN = State.OPEN

CLOSE_LINGER = 5.0
"""Seconds a closed WebSocket may take to flush what is still buffered before it is aborted."""

_ABORT_REASONS = frozenset({"slow consumer", "ping timeout"})

_GONE_AT_ONCE = frozenset({"parse error", "forced close", "transport error"})
"""Reasons of a close caused by the client's error: its polling session is not kept for a last GET."""


NO_STATUS = 0
"""``ws_code`` of a close that answers a client's close frame without a status code: the answer has none
either. RFC 6455 §7.4.1 forbids sending 1005 (and 0 is no code at all): node's ``ws`` client fails a
connection whose close frame says 0 with "Invalid WebSocket frame: invalid status code 0"."""


def send_empty_close(ws: Any) -> None:
    """A close frame with no status code (what browsers send for ``close()`` without arguments)."""
    from picows import WSMsgType

    ws.send(WSMsgType.CLOSE, b"")


def close_reason(text: str) -> bytes:
    """``text`` as a WebSocket close reason: at most 123 bytes (RFC 6455 §5.5), cut between characters."""
    return text.encode()[:123].decode("utf-8", "ignore").encode()


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    future.exception()


class Lifecycle(Emitting):
    """Sessions and namespace sockets: open, connect, refuse, disconnect, close (a layer of the server)."""

    def new_connection(self, transport: Transport, request: Request, sid: str | None = None) -> Client:
        """A new Engine.IO session for a handshake on ``transport``."""
        ws = self.config.websocket
        parser = self.parser_cls()
        parser.max_depth = self.config.limits.max_depth
        conn = Connection(
            sid or new_sid(self.sid_prefix),
            parser,
            transport,
            now=time.monotonic(),
            ping_interval=ws.ping_interval,
            ping_timeout=ws.ping_timeout,
            connect_timeout=ws.connect_timeout,
            max_payload=ws.max_payload,
        )
        client = Client(self, conn, request)
        self.clients[conn.sid] = client
        self.heartbeat.schedule(client)
        self._per_ip[request.remote] = self._per_ip.get(request.remote, 0) + 1
        self.state.connections_total += 1
        return client

    def at_capacity(self, request: Request) -> bool:
        """Whether ``[limits] max_connections`` or ``max_connections_per_ip`` refuses this request."""
        limits = self.config.limits
        if limits.max_connections and len(self.clients) >= limits.max_connections:
            return True
        return bool(
            limits.max_connections_per_ip
            and self._per_ip.get(request.remote, 0) >= limits.max_connections_per_ip
        )

    def admit(self, request: Request) -> bool:
        """Limits, then the lifecycle handler's ``on_open``: may this request open a connection?"""
        if self.at_capacity(request):
            self.state.rejected += 1
            return False
        try:
            return bool(self.handler.on_open(request))
        except Exception:
            log.exception("! handler.on_open failed; refusing %s", request.remote)
            return False

    def client_opened(self, client: Client) -> None:
        """The transport is ready: connect to ``/`` when the parser has no CONNECT of its own."""
        if not client.parser.requires_connect or client.conn.transport is Transport.BARE:
            auth = dict(client.request.query)
            self._connect(client, Connect("/", auth), reply=client.parser.requires_connect)

    # -- namespace sockets: CONNECT, refuse, accept ------------------------------------------------

    def _connect(self, client: Client, ev: Connect, reply: bool = True) -> None:
        parser = client.parser
        name = ev.namespace
        existing = client.sockets.get(name)
        if existing is not None:
            # A repeated CONNECT: the same socket again. (Node makes a second socket and keeps the first in
            # its rooms for good.)
            client.send(parser.encode_connect(name, existing.sid, existing.pid))
            return
        if name in client.connecting:
            return  # its reply comes when its connect handler is done
        if len(name) > self._max_name_length:
            self._name_too_long(client, "namespace")
            return
        if name != "/" and not self.router.has_namespace(name):
            client.send(parser.encode_connect_error(name, {"message": "Invalid namespace"}))
            return
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = Namespace(name)
        recovery = self.recovery
        if recovery is not None and recovery.wants_restore(ev.auth):
            # At once with a local log; when the master answers with the hub's (the client sends nothing
            # on this namespace before the CONNECT reply).
            recovery.restore(client, name, ev.auth, lambda r: self._connect_socket(client, ev, reply, ns, r))
            return
        self._connect_socket(client, ev, reply, ns, None)

    def _connect_socket(self, client: Client, ev: Connect, reply: bool, ns: Namespace, restored: Any) -> None:
        """Make the socket of a CONNECT (a recovered one when ``restored``), run the hooks and the handler."""
        name = ns.name
        if client.conn.state is State.CLOSED or name in client.sockets or name in client.connecting:
            return  # gone, or connected (connecting) meanwhile, while the master looked for the session
        recovery = self.recovery
        if restored is not None:
            sock = self._recovered_socket(client, ns, restored)
        else:
            sock = Socket(new_sid(), ns, client, self._host)
            if recovery is not None:
                sock.pid = recovery.new_pid()
        # Until accepted or refused: a repeated CONNECT for this namespace is ignored meanwhile, and a
        # close of the session undoes what the hooks and the handler did (see _abandon).
        client.connecting[name] = sock
        # By sid too: a connect handler written for python-socketio calls server.save_session(sid, ...)
        # or enter_room(sid, ...) with the sid alone, before the socket is in its namespace.
        CONNECTING[sock.sid] = sock
        try:
            for hook in self.connect_hooks:
                result = hook(sock, ev.auth)
                if inspect.isawaitable(result):
                    # Hooks run synchronously: an async one would be skipped unawaited, i.e. let everyone in.
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError(f"connect hook {hook!r} is async; connect hooks must be plain functions")
        except Reject as exc:
            self._refuse(sock, exc.data)
            return
        except Exception as exc:
            # Fail closed: a hook is auth middleware, and a broken check must not let the client in.
            self._handler_failed(sock, "connect hook", exc)
            self._refuse(sock, {"message": "Connection rejected by server"})
            return
        if restored is not None:
            # The hooks (the sessions' token check: a logged-out session stays out) let it in: now the
            # missed packets, before anything new (the socket is in its rooms since _recovered_socket).
            if restored.packets:
                client.send(restored.packets)
            if recovery is not None and recovery.skip_connect_handler:
                self._accept(sock, reply)
                return
        handler = self.router.get(name, "connect")
        if handler is None:
            self._accept(sock, reply)
            return
        sock._pending = []
        result = run_handler(
            handler,
            (sock, ev.auth),
            lambda res: self._connect_result(sock, res, None, reply),
            lambda exc: self._connect_result(sock, None, exc, reply),
            self.config.limits.handler_timeout,
            self._tasks,
            self.block_watcher(handler, "connect"),
            self._block_warning,
        )
        if result is not NOT_DONE:
            self._connect_result(sock, result, None, reply)

    def _name_too_long(self, client: Client, what: str) -> None:
        """A client sent a name longer than ``[limits] max_name_length``: a protocol error (close 1008)."""
        self.state.protocol_errors += 1
        limit = self._max_name_length
        log.info("! %s protocol error from %s: %s over %d characters", client.sid, client.remote, what, limit)
        self.close_client(
            client, "parse error", send_close=True, ws_code=1008, ws_reason=f"{what} over {limit} characters"
        )

    def _recovered_socket(self, client: Client, ns: Namespace, restored: Any) -> Socket:
        """The socket of a recovered session, in its rooms, with its sid, data, user and session.

        The missed packets go right after the connect hooks, before the CONNECT reply, as the reference
        sends them; the socket is in its rooms from here on, so nothing emitted meanwhile is missed.
        """
        saved = restored.session
        sock = Socket(saved.sid, ns, client, self._host)
        sock.pid = saved.pid
        sock.recovered = True
        sock._data = saved.data
        sock.user_id = saved.user_id
        sock.session_id = saved.session_id
        rooms = ns.rooms
        rooms.add(sock.sid, sock)
        for room in saved.rooms:
            if room != sock.sid:
                rooms.join(sock.sid, room)
                if room.startswith(USER_ROOM_PREFIX) and len(rooms.members(room)) == 1:
                    self.adapter.user_online_changed(sock.namespace, room, True)
        if self.adapter.sequences_emits:
            # In its rooms from here on: what the adapter delivered here since the session was read, too.
            restored.packets.extend(self.adapter.recovered(sock, restored))
        if self.debug:
            log.debug("= %s recovered: %d missed packets", sock.sid, len(restored.packets))
        return sock

    def _connect_result(self, sock: Socket, result: Any, exc: BaseException | None, reply: bool) -> None:
        client = sock.client
        if client.conn.state is State.CLOSED or not sock.connected:
            # The client left while the handler ran: whatever the handler did after that is undone too.
            self._abandon(sock)
            return
        if exc is None and result is not False:
            self._accept(sock, reply, connect_handler_ran=True)
            return
        # Reject, or python-socketio's ConnectionRefusedError raised by a handler ported from it.
        reject = reject_of(exc) if exc is not None else None
        if reject is not None:
            data = reject.data
        else:
            if exc is not None:
                self._handler_failed(sock, "connect", exc)
            data = {"message": "Connection rejected by server"}
        self._refuse(sock, data)

    def _refuse(self, sock: Socket, data: dict[str, Any]) -> None:
        """Answer a CONNECT with CONNECT_ERROR ``data``, whichever hook or handler refused it."""
        client = sock.client
        self.state.rejected += 1
        # The socket may have joined rooms inside a hook or the handler: undo that.
        self._abandon(sock)
        client.send(client.parser.encode_connect_error(sock.namespace, data))
        # A bare /ws page has no Engine.IO session to go on with and, with the json or raw parser, no
        # CONNECT_ERROR frame either: refused with nothing else connected, the WebSocket closes (1008).
        if client.conn.transport is Transport.BARE and not client.sockets:
            self.close_session_of(sock, "connect rejected", send_close=False, ws_code=1008)

    def _abandon(self, sock: Socket) -> None:
        """A socket that will never be connected (refused, or its client left while it was connecting)
        leaves no trace: out of its rooms (a user it logged in goes offline, on every node), out of the
        session's connecting sockets, and what was emitted to it dropped. Idempotent."""
        client = sock.client
        _not_connecting(client, sock)
        if CONNECTING.get(sock.sid) is sock:
            del CONNECTING[sock.sid]
        sock.connected = False
        sock._pending = None
        self._remove_from_rooms(sock)

    def _accept(self, sock: Socket, reply: bool, connect_handler_ran: bool = False) -> None:
        client = sock.client
        ns = sock._ns
        if sock.sid not in ns.rooms:
            ns.rooms.add(sock.sid, sock)
        client.sockets[sock.namespace] = sock
        _not_connecting(client, sock)
        if CONNECTING.get(sock.sid) is sock:
            del CONNECTING[sock.sid]
        client.conn.namespace_connected()
        if reply:
            # What the connect handler emitted waits in sock._pending: it goes right after this reply.
            packets = client.parser.encode_connect(sock.namespace, sock.sid, sock.pid)
            if packets:
                client.send(packets)
        pending, sock._pending = sock._pending, None
        if pending:
            client.send(pending)
        self.state.sockets += 1
        if self.recovery is not None:
            self.recovery.accepted(sock)
        for hook in self.accept_hooks:
            try:
                hook(sock)
            except Exception:
                log.exception("! accept hook failed for %s", sock.sid)

    def disconnect_socket(self, sock: Socket, reason: str, notify: bool) -> None:
        """Remove ``sock`` from its namespace; ``notify`` sends the client a DISCONNECT packet."""
        if not sock.connected:
            return
        client = sock.client
        if notify and client.conn.state is not State.CLOSED:
            client.send(client.parser.encode_disconnect(sock.namespace))
        sock.connected = False
        client.sockets.pop(sock.namespace, None)
        if self.recovery is not None:
            self.recovery.socket_closed(sock, reason)  # before it leaves its rooms: they are kept
        rooms = sock._ns.rooms
        if self.adapter.remote:
            user_rooms = [r for r in rooms.rooms_of(sock.sid) if r.startswith(USER_ROOM_PREFIX)]
            rooms.remove(sock.sid)
            for room in user_rooms:
                if not rooms.members(room):
                    self.adapter.user_online_changed(sock.namespace, room, False)
        else:
            rooms.remove(sock.sid)
        self.state.sockets -= 1
        if sock._acks:
            # A handler awaiting this client's ack learns why it will never come, as an exception it can
            # catch; cancelling the future instead looked like the handler itself had been cancelled.
            gone = ConnectionClosed(1000, f"socket {sock.sid} disconnected: {reason}")
            for fut in sock._acks.values():
                if not fut.done():
                    fut.set_exception(gone)
                    fut.add_done_callback(_mark_retrieved)  # an emit nobody awaits is not an error
            sock._acks.clear()
        for hook in self.disconnect_hooks:
            try:
                hook(sock, reason)
            except Exception:
                log.exception("! disconnect hook failed for %s", sock.sid)
        handler = self.router.get(sock.namespace, "disconnect")
        if handler is not None:
            on_error = lambda exc: self._handler_failed(sock, "disconnect", exc)  # noqa: E731
            watch = self.block_watcher(handler, "disconnect")
            run_handler(handler, (sock, reason), None, on_error, 0.0, self._tasks, watch, self._block_warning)
        if notify and client.conn.transport is Transport.BARE and not client.sockets:
            self.close_session_of(sock, reason, send_close=False)

    def close_client(
        self, client: Client, reason: str, send_close: bool, ws_code: int = 1000, ws_reason: str | None = None
    ) -> None:
        """End a client's session: every socket is disconnected with ``reason``, then the transport closes.

        ``ws_code`` and ``ws_reason`` (default: ``reason``) go in the WebSocket close frame, so that a
        protocol error can tell the peer exactly what was wrong while handlers see ``parse error``.
        """
        conn = client.conn
        if self.clients.get(conn.sid) is not client:
            return
        del self.clients[conn.sid]
        client.fast_ws = False
        self.heartbeat.cancel(client)
        remaining = self._per_ip.get(client.remote, 1) - 1
        if remaining > 0:
            self._per_ip[client.remote] = remaining
        else:
            self._per_ip.pop(client.remote, None)
        was_open = conn.state is not State.CLOSED
        if send_close and was_open and not client.strip_prefix:
            if client.ws is not None and conn.transport is not Transport.BARE:
                client.send_raw_frame(b"1")
            elif client.ws is None:
                conn.queue([b"1"])
                client._flush_poll()
                if conn.queued_messages and reason not in _GONE_AT_ONCE:
                    # No GET is held: keep the close for the client's next poll, as engine.io does, or the
                    # client would learn of it only as a 400 for an unknown sid. Not after an error: that
                    # session is gone at once (engine.io's onError), its next GET is 400.
                    deadline = time.monotonic() + self.config.websocket.ping_timeout
                    self._closed_polls[conn.sid] = (client, deadline)
        conn.close(reason)
        for sock in list(client.connecting.values()):
            self._abandon(sock)  # its connect handler may still run: its result will be ignored
        for sock in list(client.sockets.values()):
            self.disconnect_socket(sock, reason, notify=False)
        self.state.disconnects[reason] = self.state.disconnects.get(reason, 0) + 1
        try:
            self.handler.on_close(client, reason)
        except Exception:
            log.exception("! handler.on_close failed for %s", conn.sid)
        ws = client.ws
        if ws is not None:
            self.writes.flush()  # what this iteration wrote to it goes before its close frame
            code = ws_code if reason not in ("ping timeout",) else 1001
            try:
                from picows import WSCloseCode

                if ws.is_close_frame_sent:  # RFC 6455 §5.5.1: one close frame per side
                    pass
                elif code == NO_STATUS:
                    send_empty_close(ws)
                else:
                    ws.send_close(WSCloseCode(code), close_reason(ws_reason or reason))
            except Exception:
                pass
            # A graceful close waits until the peer has read what is buffered. A peer that stopped reading
            # (slow consumer) or answering (ping timeout) never will: it would keep the socket and the buffer
            # for as long as TCP keeps probing a zero window, i.e. forever. Abort those; give the others a
            # bounded linger.
            graceful = reason not in _ABORT_REASONS
            # Asked before closing: a closed TLS transport cannot tell its buffer size any more.
            under = ws.underlying_transport
            linger = graceful and not under.is_closing() and under.get_write_buffer_size()
            ws.disconnect(graceful)
            if linger:
                asyncio.get_running_loop().call_later(CLOSE_LINGER, ws.disconnect, False)
        elif client.poll_waiter is not None:
            waiter, client.poll_waiter = client.poll_waiter, None
            # The session is over whoever ended it: a held GET learns it from a close packet (as engine.io
            # answers it), not a noop that sends the client back for a GET that can only fail. Except when
            # the server goes away (1012, see shutdown): then that failing GET is what makes python-socketio
            # reconnect, where a close packet would make it give up. And when the client closed the session
            # itself (a close packet in a POST): engine.io's polling transport answers the held GET with a
            # noop on close, and the client's next GET learns the session is gone (400).
            waiter.respond_payload(b"6" if ws_code == 1012 or reason == CLIENT_CLOSE else b"1")
        if self.debug:
            log.debug("= %s closed: %s", conn.sid, reason)

    def close_connection(self, sock: Socket, reason: str) -> None:
        """Close the whole session ``sock`` belongs to (every namespace), with an Engine.IO close packet."""
        self.close_session_of(sock, reason, send_close=True)

    def close_session_of(self, sock: Socket, reason: str, send_close: bool, ws_code: int = 1000) -> None:
        """:meth:`close_client` for the session of ``sock``, if it is still open."""
        # A socket knows its session as a ClientLink; the live Client is the one registered under its sid.
        client = self.clients.get(sock.client.sid)
        if client is not None and client is sock.client:
            self.close_client(client, reason, send_close, ws_code)

    def take_closed_poll(self, sid: str) -> bytes | None:
        """The last packets, ending with close, of a polling session closed between two GETs; None if none."""
        entry = self._closed_polls.get(sid)
        if entry is None:
            return None
        conn = entry[0].conn
        body = conn.take_payload()
        if not conn.queued_messages:
            del self._closed_polls[sid]
        return body

    def on_slow_consumer(self, client: Client) -> None:
        """``client`` went over its send buffer's high-water mark: count it and apply the policy.

        Called once per episode (the transport's ``pause_writing``, or a polling queue over its marks);
        the client drops what it is sent until the episode ends. ``disconnect`` closes it on the next loop
        turn, not here: we may be inside a broadcast iterating the rooms the close would change.
        """
        self.state.slow_consumers += 1
        policy = self.config.limits.slow_consumer_policy
        log.info(
            "! %s slow consumer (%s): send buffer over its high-water mark, %s",
            client.sid,
            client.remote,
            policy,
        )
        if policy == "disconnect":
            asyncio.get_running_loop().call_soon(self.close_client, client, "slow consumer", False, 1008)

    def sweep(self, now: float) -> None:
        """Send the pings and enforce the timeouts that are due at ``now``."""
        for sid, (_client, deadline) in list(self._closed_polls.items()):
            if now >= deadline:
                del self._closed_polls[sid]
        self.heartbeat.run(now, self._on_timer)
        if self.recovery is not None and not self.recovery.remote:
            self.recovery.log.expire(now)

    def expire_if_due(self, client: Client) -> bool:
        """Close ``client`` now if a timeout of it has passed, before the heartbeat timer gets to it.

        Returns:
            True when it was closed (its request is answered as for an unknown session).
        """
        action = client.conn.overdue(time.monotonic())
        if action is _NOTHING:
            return False
        self._on_timer(client, action)
        return True

    def _on_timer(self, client: Client, action: Timer) -> None:
        if action is _DUE_PING:
            if client.conn.transport is _BARE:
                if client.ws is not None:
                    client.ws.send_ping()
            elif client.ws is not None and client.conn.state is _OPEN:
                client.send_raw_frame(PING)
            else:
                client.conn.queue([PING])
                client.send([])
        elif action is _TIMEOUT:
            self.close_client(client, "ping timeout", send_close=False)
        else:
            self.close_client(client, "connect timeout", send_close=True)


def _not_connecting(client: ClientLink, sock: Socket) -> None:
    """``sock`` is no longer among ``client``'s connecting sockets (answered, or never will be)."""
    connecting = client.connecting
    if connecting.get(sock.namespace) is sock:
        del connecting[sock.namespace]
        if not connecting:
            # A dict keeps its hash table after its last key is deleted: a fresh one is ~170 bytes less for
            # every idle connection (W3, issue 16).
            client.connecting = {}
