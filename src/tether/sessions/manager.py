"""Idle sessions on a running server: tokens on connect, activity, warnings, expiry and log-out pushes.

Theory of operation
-------------------
A *session* is what a token names: one user, one session id, any number of sockets (tabs, namespaces).
Every socket of session ``S`` is in the room ``session:S`` (and, through ``login_using``, in
``user:<id>``), so a push to the session is a room broadcast: it reaches the session's sockets in this
process and, through the adapter, in every other worker and node.

Each session has one idle deadline. All deadlines of the process live in one
:class:`~tether.sessions.timers.Deadlines` heap and the manager keeps ONE asyncio timer handle, armed for
the earliest of them (``loop.call_at``). Activity moves a deadline later, which costs a dict write and
never re-arms the handle (see the timers module for why). The timer entry of a session stands for the
next thing that happens to it::

    connect/activity ──> [idle] ──(deadline - warn_before)──> session:warning ──> [warned]
         ^                                                                      │
         └──────────── activity (session:extended when warned) <────────────────┤
                                                                 (deadline) ──> session:expired, close

Ended and expired sessions are remembered (a *tombstone*) for ``token_ttl`` seconds, the longest a token
issued before the end can live, so a page cannot revive an expired session by reconnecting with its old
token. A token issued after the end (same session id, explicitly) is accepted.

Several processes (workers, nodes): every process that has sockets of a session tracks it on its own
timer and pushes warnings and expiry to its own sockets only. With an adapter that relays session
commands (Redis, and the master hub of ``workers > 1``: ``Adapter.publish_session``), activity seen in
one process is shared as a ``touch`` (at most once per :data:`SHARE_INTERVAL` per session), so all timers
agree within about that, and a log-out is shared as an ``end``: each process tells and closes its own
sockets, so every socket hears each push exactly once. With an adapter that does not relay them, a
log-out is pushed through the session room instead (every socket hears it; other processes do not
tombstone the session), and each process's timer follows the activity it sees itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..cluster.base import Adapter
from ..cluster.wire import SessionCommand
from ..errors import InvalidToken, Reject, TokenExpired
from .timers import Deadlines
from .tokens import Claims, TokenChecker, issue_token
from .tombstones import Tombstone, TombstoneFile

if TYPE_CHECKING:
    from ..context import Socket
    from ..handler import Request
    from ..server.server import Server

__all__ = [
    "ACTIVITY",
    "ENDED",
    "EXPIRED",
    "EXTENDED",
    "LOGOUT",
    "WARNING",
    "Session",
    "SessionCounters",
    "SessionManager",
    "session_room",
]

log = logging.getLogger("tether.sessions")

WARNING = "session:warning"
"""Pushed ``warn_before`` seconds before expiry: ``{"seconds_left": n}``."""
EXPIRED = "session:expired"
"""Pushed when the idle timeout lapses: ``{"reason": "idle"}``."""
ENDED = "session:ended"
"""Pushed to the other sockets of a session that logged out: ``{"reason": "logout"}``."""
EXTENDED = "session:extended"
"""Pushed when activity follows a warning: ``{"seconds_left": n}`` (lets other tabs hide the warning)."""
ACTIVITY = "activity"
"""The page's throttled "the user is here" event (no arguments needed)."""
LOGOUT = "session:logout"
"""Sent by a page to end its session in every tab."""

PARAMETER_ERROR = {"code": 422, "message": "Parameter error", "data": {"code": 422}}
"""CONNECT_ERROR without a token. ``data`` repeats the code: socket.io-client only exposes ``err.data``."""

SLACK = 0.02
"""Seconds the timer may wake after the earliest deadline, so that deadlines this close together are
handled in one wake-up instead of one each. A session is never expired early, at most this late."""

SHARE_INTERVAL = 1.0
"""Seconds between two ``touch`` commands one session sends to the other processes (relaying adapters)."""

EXPIRE_BATCH = 1000
"""Most warnings or expiries handled per loop iteration. Expiring a session costs about 15 us (push,
close, tombstone); a burst of 100,000 at once is spread over 100 iterations of ~15 ms instead of
blocking the loop for 1.5 s. The rest stay due, so the timer fires again on the next iteration."""


def session_room(session_id: str) -> str:
    """The room every socket of ``session_id`` is in."""
    return f"session:{session_id}"


def _reject(code: int, message: str) -> Reject:
    return Reject({"code": code, "message": message, "data": {"code": code}})


class Session:
    """One tracked session (the deadline itself lives in the manager's heap)."""

    __slots__ = (
        "activity",
        "created_at",
        "deadline",
        "events",
        "id",
        "last_activity",
        "shared_at",
        "user_id",
        "warned",
    )

    def __init__(self, session_id: str, user_id: str, now: float, deadline: float) -> None:
        self.id = session_id
        self.user_id = user_id
        self.created_at = now
        self.last_activity = now
        self.deadline = deadline
        """Loop time (monotonic) at which the session expires."""
        self.warned = False
        self.shared_at = now
        """Loop time of the last ``touch`` shared with the other processes."""
        self.events = 0
        """Events received from the sockets of this session (``activity`` included)."""
        self.activity = 0
        """``activity`` events received."""

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id} events={self.events}>"


@dataclass(slots=True)
class SessionCounters:
    """Totals since start, for metrics and tests."""

    created: int = 0
    warned: int = 0
    extended: int = 0
    expired: int = 0
    ended: int = 0
    rejected_no_token: int = 0
    rejected_invalid: int = 0
    rejected_ended: int = 0
    wakeups: int = 0
    """How often the single timer fired: compare with the number of sessions to see the batching."""


class SessionManager:
    """Sessions of one server process. Installed as ``server.extensions["sessions"]``."""

    def __init__(self, server: Server, checker: TokenChecker | None = None) -> None:
        cfg = server.config.session
        self.server = server
        self.config = cfg
        self.debug = server.debug
        self.checker = checker or TokenChecker.from_config(server.config)
        self.idle_timeout = cfg.idle_timeout
        self.warn_before = cfg.warn_before
        self.sessions: dict[str, Session] = {}
        self.counters = SessionCounters()
        self._timers: Deadlines[str] = Deadlines()
        self._ended: dict[str, tuple[float, str]] = {}
        """Tombstones: session id -> (unix time it ended, reason)."""
        self._ended_timers: Deadlines[str] = Deadlines()
        self._file: TombstoneFile | None = None
        """Where tombstones outlive this process (see :mod:`.tombstones`); None: memory only."""
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    # -- hooks (registered by install) ----------------------------------------------------------------

    def on_connect(self, sock: Socket, auth: Any) -> None:
        """Connect hook: check the token, bind the socket to its user and session.

        Raises:
            Reject: code 422 without a token, 401 for a bad, expired or ended one.
        """
        admin = self.server.config.admin
        if admin.enabled and sock.namespace == admin.namespace:
            return  # the admin UI's namespace has its own log-in (tether.admin), and no user session
        token = auth.get("token") if isinstance(auth, Mapping) else None
        if not isinstance(token, str) or not token:
            self.counters.rejected_no_token += 1
            raise Reject(dict(PARAMETER_ERROR))
        try:
            claims = self.checker.check(token)
        except TokenExpired as exc:
            self.counters.rejected_invalid += 1
            raise _reject(401, str(exc) or "Token expired") from None
        except InvalidToken as exc:
            self.counters.rejected_invalid += 1
            raise _reject(401, str(exc) or "Invalid token") from None
        except Exception as exc:
            log.exception("! session validator failed")
            raise _reject(500, "Token check failed") from exc
        ended = self._ended.get(claims.session_id)
        if ended is not None and (claims.issued_at == 0 or claims.issued_at <= ended[0]):
            self.counters.rejected_ended += 1
            raise _reject(401, "Session expired" if ended[1] == "idle" else "Session ended")
        session = self.sessions.get(claims.session_id)
        if session is None:
            session = self._open(claims)
        elif session.user_id != claims.user_id:
            self.counters.rejected_invalid += 1
            raise _reject(401, "Session belongs to another user")
        sock.login_using(claims.user_id)
        sock.session_id = claims.session_id
        sock.join(session_room(claims.session_id))
        if self.debug:
            log.debug("= %s joined session %s (user %s)", sock.sid, session.id, session.user_id)

    def on_event(self, sock: Socket, name: str) -> None:
        """Event hook: any event from a socket of a session is activity."""
        sid = sock.session_id
        if sid is None:
            return
        session = self.sessions.get(sid)
        if session is None:
            return  # expired or ended: its sockets are closing
        session.events += 1
        if name == ACTIVITY:
            session.activity += 1
        elif name == LOGOUT:
            self.end(sid, "logout", except_sid=sock.sid)
            if self.config.close_on_expire:
                # After the router has run (an app route for the event may still answer its ack).
                asyncio.get_running_loop().call_soon(_disconnect_if_connected, sock)
            return
        now = self._now()
        self._touch(session, now)
        if now - session.shared_at >= SHARE_INTERVAL and self._relays():
            session.shared_at = now
            self.server.adapter.publish_session(SessionCommand("touch", sid))

    # -- Python API -----------------------------------------------------------------------------------

    def touch(self, session_id: str, *, everywhere: bool = False) -> bool:
        """Activity seen by the backend (an HTTP request of that session): restart its idle timeout.

        Args:
            everywhere: also tell the other processes (adapters that relay session commands). The
                adapter itself calls ``touch(session_id)`` for commands from other processes.

        Returns:
            False if this process does not track ``session_id`` (unknown, expired or ended).
        """
        if everywhere and self._relays():
            self.server.adapter.publish_session(SessionCommand("touch", session_id))
        session = self.sessions.get(session_id)
        if session is None:
            return False
        self._touch(session, self._now())
        return True

    def end(
        self,
        session_id: str,
        reason: str = "logout",
        *,
        except_sid: str | None = None,
        everywhere: bool = True,
    ) -> bool:
        """End ``session_id`` now: push ``session:ended`` to its sockets (but ``except_sid``), close them.

        Args:
            everywhere: the other processes too (the default): as an ``end`` command where the adapter
                relays them, else as a push through the session room.

        Returns:
            False if the session was not tracked here (the push is sent anyway, for other processes).
        """
        relay = everywhere and self._relays()
        session = self.sessions.pop(session_id, None)
        self._timers.cancel(session_id)
        self._bury(session_id, reason)
        self.counters.ended += 1
        self._push(session_id, ENDED, {"reason": reason}, except_sid, everywhere=everywhere and not relay)
        if relay:
            self.server.adapter.publish_session(SessionCommand("end", session_id, reason))
        if self.config.close_on_expire:
            self._close_local(session_id, except_sid)
        if self.debug:
            log.debug("= session %s ended: %s", session_id, reason)
        self._arm()
        return session is not None

    def end_session(self, session_id: str, reason: str | None = None) -> bool:
        """What the HTTP API and the adapter call: end ``session_id`` in this process.

        The caller shares it with the other processes where the adapter relays session commands; where it
        does not, the push goes through the session room so that every socket still hears it.
        """
        return self.end(session_id, reason or "logout", everywhere=not self._relays())

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def seconds_left(self, session_id: str) -> float | None:
        """Seconds until ``session_id`` expires if idle from now on; None when not tracked."""
        session = self.sessions.get(session_id)
        return None if session is None else max(0.0, session.deadline - self._now())

    def issue_token(self, user_id: Any, session_id: str | None = None) -> str:
        """A token for ``user_id`` signed with this server's secret and ``token_ttl``."""
        return issue_token(user_id, session_id, secret=self.config.secret, ttl=self.config.token_ttl)

    def is_ended(self, session_id: str) -> bool:
        """True while a tombstone refuses old tokens of ``session_id``."""
        return session_id in self._ended

    def public_settings(self) -> dict[str, float]:
        """What the JS helper may know: served at ``/tether/session-config.json``."""
        return {
            "idle_timeout": self.idle_timeout,
            "warn_before": self.warn_before,
            "activity_interval": self.config.activity_interval,
        }

    async def settings_route(self, request: Request, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache",
            "Access-Control-Allow-Origin": "*",
        }
        return 200, headers, orjson.dumps(self.public_settings())

    def close(self) -> None:
        """Stop the timer (server shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    # -- internals ------------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _open(self, claims: Claims) -> Session:
        now = self._now()
        session = Session(claims.session_id, claims.user_id, now, now + self.idle_timeout)
        self.sessions[session.id] = session
        self._timers.schedule(session.id, self._next_time(session))
        self.counters.created += 1
        self._arm()
        return session

    def _next_time(self, session: Session) -> float:
        if self.warn_before and not session.warned:
            return session.deadline - self.warn_before
        return session.deadline

    def _touch(self, session: Session, now: float) -> None:
        session.last_activity = now
        session.deadline = now + self.idle_timeout
        if not session.warned:
            # Later than before: a dict write in the heap, no re-arm (the armed wake-up is earlier, and when
            # it fires for this session the heap re-queues it at its true time).
            self._timers.schedule(session.id, self._next_time(session))
            return
        session.warned = False
        self.counters.extended += 1
        self._push(session.id, EXTENDED, {"seconds_left": round(self.idle_timeout)})
        # The entry stood for the expiry; the next warning may come earlier (idle_timeout < 2 * warn_before).
        self._timers.schedule(session.id, self._next_time(session))
        self._arm()

    def _arm(self) -> None:
        nexts = [t for t in (self._timers.next_wakeup(), self._ended_timers.next_wakeup()) if t is not None]
        if not nexts:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            return
        when = min(nexts)
        if self._handle is not None:
            if when >= self._armed_at:
                return  # the armed wake-up comes first; it re-arms after
            self._handle.cancel()
        self._armed_at = when
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Due already (the rest of a burst): at once. Otherwise a little late, to gather neighbours.
        self._handle = loop.call_at(now if when <= now else when + SLACK, self._wake)

    def _wake(self) -> None:
        self._handle = None
        if self.server.state.draining:
            return  # shutting down: clients are being closed, the adapter may be gone; nothing to push
        self.counters.wakeups += 1
        try:
            self.process(self._now())
        except Exception:  # pragma: no cover - a bug here must not stop expiry for good
            log.exception("! session timer failed")
        self._arm()

    def process(self, now: float, limit: int = EXPIRE_BATCH) -> bool:
        """Act on deadlines due at ``now``: warnings, expiries, tombstones to forget; at most ``limit`` each.

        Returns:
            True when more may be due (the limit was reached); the timer wakes again at once for them.
        """
        due = self._timers.pop_expired(now, limit)
        for session_id, _ in due:
            session = self.sessions.get(session_id)
            if session is None:
                continue
            if self.warn_before and not session.warned and now < session.deadline:
                session.warned = True
                self.counters.warned += 1
                self._timers.schedule(session_id, session.deadline)
                self._push(session_id, WARNING, {"seconds_left": max(1, round(session.deadline - now))})
                if self.debug:
                    log.debug("> session %s warned", session_id)
                continue
            self._expire(session)
        buried = self._ended_timers.pop_expired(now, limit)
        for session_id, _ in buried:
            self._ended.pop(session_id, None)
        return len(due) >= limit or len(buried) >= limit

    def _expire(self, session: Session) -> None:
        del self.sessions[session.id]
        self._bury(session.id, "idle")
        self.counters.expired += 1
        self._push(session.id, EXPIRED, {"reason": "idle"})
        if self.config.close_on_expire:
            self._close_local(session.id, None)
        if self.debug:
            log.debug("> session %s expired", session.id)

    def _bury(self, session_id: str, reason: str) -> None:
        ended_at = time.time()
        self._ended[session_id] = (ended_at, reason)
        self._ended_timers.schedule(session_id, self._now() + self.config.token_ttl)
        if self._file is not None:
            self._file.append(Tombstone(session_id, ended_at, reason, ended_at + self.config.token_ttl))

    def keep_tombstones(self, file: TombstoneFile) -> int:
        """Remember ended sessions in ``file`` from now on, and take in those it holds (a reload's new
        workers, a restarted instance). Returns how many were taken in."""
        self._file = file
        try:
            mono = self._now()
        except RuntimeError:  # no loop yet (a Server built in sync code): the same clock, near enough
            mono = time.monotonic()
        wall = time.time()
        stones = file.load(wall)
        for stone in stones:
            known = self._ended.get(stone.session_id)
            if known is None or known[0] < stone.ended_at:
                self._ended[stone.session_id] = (stone.ended_at, stone.reason)
                self._ended_timers.schedule(stone.session_id, mono + (stone.until - wall))
        with contextlib.suppress(RuntimeError):  # no loop yet (a Server built in sync code): armed later
            self._arm()
        return len(stones)

    def _push(
        self,
        session_id: str,
        event: str,
        data: dict[str, Any],
        except_sid: str | None = None,
        *,
        everywhere: bool = False,
    ) -> None:
        """``event`` to the sockets of the session in this process, or in every process (``everywhere``)."""
        room = (session_room(session_id),)
        exclude = (except_sid,) if except_sid else ()
        server = self.server
        for namespace in list(server.namespaces):
            if everywhere:
                server.broadcast(namespace, event, (data,), room, exclude)
            else:
                packets = server.parser_cls.encode_event(namespace, event, (data,))
                server.deliver_local(namespace, packets, room, exclude)

    def _relays(self) -> bool:
        """Whether the adapter carries session commands to other processes (checked each time: a worker
        may swap the adapter after install)."""
        adapter = self.server.adapter
        return adapter.remote and type(adapter).publish_session is not Adapter.publish_session

    def _close_local(self, session_id: str, except_sid: str | None) -> None:
        room = session_room(session_id)
        for namespace in list(self.server.namespaces):
            for sock in list(self.server.local_sockets(namespace, (room,))):
                if sock.sid != except_sid:
                    sock.disconnect()


def _disconnect_if_connected(sock: Socket) -> None:
    if sock.connected:
        sock.disconnect()
