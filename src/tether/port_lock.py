"""Is another process serving the same listening address? An exclusive ``flock`` per address says so.

``uvicorn --workers N``, ``hypercorn -w N`` and gunicorn's uvicorn workers run N processes on one port,
each with its own :class:`tether.asgi.ASGIApp`. With ``[room] driver = "memory"`` each process then has
rooms and sessions of its own: a broadcast reaches a quarter of the clients and a polling session breaks
when its next request lands in another process. Nothing fails loudly, so each ASGIApp takes, at its first
request, an exclusive non-blocking lock on a file named for the address it serves (ASGI's
``scope["server"]``); a process that cannot get it is not alone on that address.

Why a lock and not a file of PIDs: the kernel drops a lock when its process ends however it ends, so a
file left by a killed server never makes the next start warn. The files stay (empty, one per address
ever served) in a per-user folder: removing one while another process opens it would let two processes
each lock a file of that name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["lock_folder", "release", "shares_address"]

_held: dict[str, list[int]] = {}
"""Lock file -> [its open descriptor, how many apps of this process took it], held until the last
:func:`release` (the apps' shutdown) or the process ends (two apps of one process are one process)."""


def lock_folder() -> Path:
    """``$XDG_RUNTIME_DIR/tether`` (per user, emptied at log-out), else ``<tmp>/tether-<uid>``; mode 0700."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "tether" if runtime else Path(tempfile.gettempdir()) / f"tether-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def shares_address(server: tuple[str, int | None] | list[object] | None) -> bool:
    """Whether another live process holds the lock of ``server`` (ASGI's ``scope["server"]``: ``(host,
    port)``, or ``(path, None)`` for a Unix socket); takes it when free, until :func:`release`. ``None``
    (the server did not say) and a folder that cannot be written: ``False``, nothing is known.

    Returns:
        ``True`` when another process took the lock first (and still runs).
    """
    path = _lock_path(server)
    if path is None:
        return False
    if path in _held:
        _held[path][1] += 1
        return False
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    except OSError:
        os.close(fd)
        return False
    _held[path] = [fd, 1]
    return False


def release(server: tuple[str, int | None] | list[object] | None) -> None:
    """Drop this process's lock of ``server``, if it holds it (the app stopped serving there: a later
    server on that port, in any process, is alone again)."""
    path = _lock_path(server)
    held = _held.get(path) if path is not None else None
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _held[path]  # type: ignore[arg-type]
        os.close(held[0])  # closing the only descriptor of the open file drops its flock


def _lock_path(server: tuple[str, int | None] | list[object] | None) -> str | None:
    if not server:
        return None
    host, port = str(server[0]), server[1]
    name = (
        f"asgi-{host}-{port}" if port is not None else "asgi-unix-" + hashlib.sha1(host.encode()).hexdigest()
    )
    try:
        return str(lock_folder() / (name.replace("/", "_").replace(":", "_") + ".lock"))
    except OSError:
        return None
