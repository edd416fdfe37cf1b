"""Files and short answers written as ASGI messages: static files streamed in :data:`CHUNK` bytes.

What :class:`~tether.asgi.ASGIApp` answers without the front door: python-socketio's ``static_files``
(GET and HEAD only: other methods 405), the files the front door found (``[server] static_dir``,
``/tether/*``), and plain-text errors. A file is never held whole: ``Content-Length`` from its size when
opened, then one ``http.response.body`` message per chunk, each read in a thread.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .spec import Scope, Send

__all__ = ["CHUNK", "plain", "send_file", "static_file"]

CHUNK = 64 * 1024
"""Bytes per ``http.response.body`` message of a static file: files are streamed, never held whole."""


async def plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def static_file(scope: Scope, send: Send, filename: str, content_type: str) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain"), (b"content-length", b"18")]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": b"Method Not Allowed"})
        return
    await send_file(scope, send, Path(filename), {"Content-Type": content_type})


async def send_file(scope: Scope, send: Send, path: Path, headers: dict[str, str]) -> None:
    """Answer with the file at ``path``: ``Content-Length`` from its size when opened, then ``CHUNK``
    bytes per body message, each read in a thread (the loop never waits on the disk, and memory holds
    one chunk per response, not the file). A file that cannot be opened (gone, a folder, no
    permission): 404. One that shrinks while sent ends the response short (the server then closes the
    connection); one that grows is sent up to the announced length."""
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except OSError:
        await plain(send, 404, b"Not Found")
        return
    try:
        size = os.fstat(f.fileno()).st_size
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        if scope["method"] == "HEAD" or size == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
            if not chunk:
                return  # shrunk: the ASGI server sees a short body
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
    finally:
        f.close()
