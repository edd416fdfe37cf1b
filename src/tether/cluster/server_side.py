"""Server-side events: an event one node sends to the other nodes of its cluster, not to any client.

This is node's ``io.serverSideEmit(event, ...args)`` (socket.io ``namespace.ts``; the carrying is
``socket.io-adapter`` ``cluster-adapter.ts`` ``serverSideEmit`` / ``onMessage`` case
``SERVER_SIDE_EMIT``). The sender never gets its own event; every other node calls the handler registered
with :meth:`tether.Router.on_server_side` (node: ``io.on(event, ...)``). With acks, each of those nodes
answers once, with the handler's return value (node's handler calls its callback, which takes one value);
the sender waits for as many answers as there are other nodes, or its timeout, and gets them all in an
:class:`~tether.Answers` (``timed_out`` and ``missing`` say how many nodes did not answer in time; node
rejects with an error that carries the same answers).

This module holds what does not depend on the carrier: finding and running the handler
(:func:`run_server_side`). Every carrier sends the events as requests of :mod:`.requests` (a change when
no ack is wanted, a question answered once per peer when one is): the workers' hub and the pub/sub
adapter in ``@socket.io/redis-adapter``'s request type 6, the Streams adapter as ``ClusterAdapter``'s
SERVER_SIDE_EMIT on pub/sub (:mod:`.cluster_messages`). One process alone has nobody to tell.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import LocalNode

__all__ = ["Reply", "run_server_side"]

log = logging.getLogger("tether.cluster")

Reply = Callable[[Any], None]
"""``reply(value)``: send a handler's answer back to the node that asked for acks."""


def run_server_side(
    server: LocalNode, namespace: str, event: str, args: list[Any], reply: Reply | None
) -> bool:
    """Run the server-side handler of ``event`` in ``namespace`` with ``args``, in a task; its return
    value goes to ``reply`` (None: the sender asked for no ack).

    An event without a handler is not answered, as in node (its callback is never called, so the sender
    times out waiting for this node). A handler that raises is logged and not answered either.

    Returns:
        Whether a handler was found.
    """
    handler = server.router.server_side(namespace, event)
    if handler is None:
        if server.debug:
            log.debug("= server-side event %r in %s: no handler here", event, namespace)
        return False
    if server.debug:
        log.debug("< server-side event %r in %s", event, namespace)
    server.spawn(_run(server, handler, event, args, reply))
    return True


async def _run(
    server: LocalNode, handler: Callable[..., Any], event: str, args: list[Any], reply: Reply | None
) -> None:
    try:
        if inspect.iscoroutinefunction(handler):
            result = await handler(*args)
        else:
            # A `def` handler runs in the server's thread pool, as a socket's `def` handler does.
            pool = getattr(server, "handler_pool", None)
            result = await pool.run(handler, tuple(args)) if pool is not None else handler(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        log.exception("! server-side handler for %r failed (not answered)", event)
        return
    if reply is not None:
        reply(result)
