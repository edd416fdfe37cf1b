"""Cross-worker delivery on one host with no Redis: the master is a hub between its workers.

Three modules: :mod:`.frames` (the channel's frames, sans-I/O), :mod:`.adapter` (the worker side,
:class:`HubAdapter`) and :mod:`.relay` (the master side, :class:`Hub`).

Theory of operation::

    worker 1 ──frame──▶ master (Hub.relay) ──same bytes──▶ worker 2, worker 3, ...
       │                    │
       └ delivers locally   └ keeps who has which user room (presence) and who is alive

Every worker has one Unix socket pair to the master (its *channel*). A broadcast is delivered to the
worker's own sockets first (as with any adapter), then :meth:`HubAdapter.publish` writes one frame to the
channel; the master writes the same bytes, undecoded, to every other worker, which delivers them with
:meth:`Server.deliver_local`. The frame carries the packets already encoded by the sending worker, so a
broadcast is encoded once for the whole host; binary packets keep their :class:`Binary` type through
msgpack's extension type 1. When the workers do not all use the same parser (a reload that changed
``[websocket] parser`` leaves old and new workers side by side for a moment), the master says so and
frames carry the arguments as well, which the receiver re-encodes with its own parser.

User presence (``is_user_online``) is replicated like Swoole's shared tables: a worker reports when its
first socket joins, or its last socket leaves, a user room; the master relays that to the others, which
keep a set of worker ids per ``(namespace, room)`` and answer without a round trip. When a worker dies,
the master tells the others to forget its entries.

Frame layout (one channel carries hub and control frames)::

    !I length of what follows | 1 byte kind | msgpack body
    kind B  broadcast  [version, parser, namespace, event, rooms, except_rooms, packets, args|nil]
    kind P  presence   [namespace, room, online, wid]
    kind G  gone       [wid]
    kind S  session    [type, session id, reason|nil]
    kind Q  request    [sender wid, namespace, request id|nil, request bytes]   relayed to every other worker
    kind N  count      [request id, workers the request went to]                master -> the sender of a Q
    kind A  answer     [to wid, namespace, response bytes]                      master -> worker ``to`` only
    kind C  control    {"t": ..., ...}   (hello, ready, stats, stop...: see tether.manager)

Requests and answers carry the bytes of node's redis-adapter request format (:mod:`.wire`), so the code
that asks and answers cluster-wide questions is the Redis adapter's (:mod:`.requests`): ``fetch_sockets``,
counts, remote join/leave/disconnect and emits with acks work across workers as across nodes. The
master's ``N`` reply plays the part of Redis's ``PUBSUB NUMSUB``: how many answers to wait for.

Connection state recovery (``[recovery]`` on) adds frames that make the master the host's recovery log:
every emit goes through it to get its offset, so that all workers deliver in one order and a client may
come back on any worker (or on a new one after a reload: the master outlives its workers)::

    kind E  emit       [namespace, event, rooms, except_rooms, packets, direct]   worker -> master
    kind D  deliver    [offset, namespace, event, rooms, except_rooms, packets]   master -> workers
    kind K  keep       [pid, sid, namespace, rooms, data, user_id, session_id, base]   worker -> master
    kind R  restore?   [request id, pid, offset, namespace]                       worker -> master
    kind T  restored   [request id, session (as in K) | nil, packets, last offset]   master -> worker
    kind X  take over  [pid]                                                      master -> other workers

The master answers R on the asking worker's channel after every D frame it sent there before: the D
frames up to the answer's last offset reached that worker before the recovered socket existed (they are in
the answer's packets), the later ones reach the socket. Nothing is missed or sent twice. An R for a private
id the master does not hold may be a client back before its worker noticed the old connection die: the
master parks it (:data:`PARK_SECONDS`), asks every other worker to close that pid's connection if it has it
(X), and answers as soon as the K frame that close sends arrives (or None when the time is up).
"""

from __future__ import annotations

from .adapter import RECENT_DELIVERIES, RECENT_SECONDS, HubAdapter
from .frames import (
    ANSWER,
    BROADCAST,
    CONTROL,
    COUNT,
    DELIVER,
    EMIT,
    GONE,
    KEEP,
    MAX_FRAME,
    PRESENCE,
    RELAYED,
    REQUEST,
    RESTORE,
    RESTORED,
    SESSION,
    TAKE_OVER,
    WIRE_VERSION,
    FrameReader,
    body_of,
    decode_broadcast,
    encode_broadcast,
    frame,
    pack,
    session_fields,
    session_from,
    unpack,
)
from .relay import MAX_PARKED, PARK_SECONDS, Hub

__all__ = [
    "ANSWER",
    "BROADCAST",
    "CONTROL",
    "COUNT",
    "DELIVER",
    "EMIT",
    "GONE",
    "KEEP",
    "MAX_FRAME",
    "MAX_PARKED",
    "PARK_SECONDS",
    "PRESENCE",
    "RECENT_DELIVERIES",
    "RECENT_SECONDS",
    "RELAYED",
    "REQUEST",
    "RESTORE",
    "RESTORED",
    "SESSION",
    "TAKE_OVER",
    "WIRE_VERSION",
    "FrameReader",
    "Hub",
    "HubAdapter",
    "body_of",
    "decode_broadcast",
    "encode_broadcast",
    "frame",
    "pack",
    "session_fields",
    "session_from",
    "unpack",
]
