"""Shared whiteboard: strokes drawn in one page appear in every other; a new page gets the drawing so far.

Events::

    client -> server   "draw"  [segment, ...]     segments drawn since the last send (about 30 sends/s)
                       "clear"                    wipe the board for everyone
    server -> client   "draw"  [segment, ...]     to every other page
                       "board" [segment, ...]     on connect: the drawing so far
                       "clear"

A segment is ``{"x0", "y0", "x1", "y1", "color", "width"}``: coordinates are fractions of the board
(0..1) so that boards of different sizes show the same drawing; ``color`` is ``#rrggbb``, ``width`` 1-40
pixels. Anything else in a batch is dropped, and a batch is at most ``MAX_BATCH`` segments.

The drawing so far lives in this process, bounded to ``MAX_SEGMENTS`` (the oldest go first): with
several workers or nodes each would keep its own, which is why tether.toml runs one process. A
multi-process board would keep it in Redis (an ``XADD ... MAXLEN``) instead.
"""

import math
import re
from collections import deque

from tether import websocket

MAX_SEGMENTS = 20_000
MAX_BATCH = 200
COLOR = re.compile(r"#[0-9a-fA-F]{6}")

board: deque[dict] = deque(maxlen=MAX_SEGMENTS)


def _segment(value):
    """A clean copy of a segment, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    try:
        coords = {k: float(value[k]) for k in ("x0", "y0", "x1", "y1")}
        width = float(value["width"])
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in coords.values()) or not 1 <= width <= 40:
        return None
    color = value.get("color")
    if not isinstance(color, str) or not COLOR.fullmatch(color):
        return None
    return {**coords, "color": color, "width": width}


@websocket.on("connect")
async def connect(socket, auth):
    await socket.emit("board", list(board))


@websocket.on("draw")
async def draw(socket, segments=None):
    if not isinstance(segments, list):
        return
    clean = [s for s in map(_segment, segments[:MAX_BATCH]) if s is not None]
    if clean:
        board.extend(clean)
        socket.broadcast.emit("draw", clean)


@websocket.on("clear")
async def clear(socket):
    board.clear()
    socket.server.emit("clear")
