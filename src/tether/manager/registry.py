"""Every running instance of this user, in a per-user runtime folder: what ``tether infos --all`` lists.

Each master writes ``<runtime dir>/<pid>.json`` once it serves (its config, pid file, control socket and
address) and removes it when it stops. A master killed without cleaning up leaves its entry behind: an
entry counts only while its pid file is locked by that pid (:func:`~.pidfile.running_pid`), and a stale
one is removed by the next reader.

The folder is ``TETHER_RUNTIME_DIR`` when set, else ``$XDG_RUNTIME_DIR/tether`` (systemd's per-user
``/run/user/UID``), else ``/tmp/tether-UID``; it is created 0700 and refused, like a run folder, when
another account owns it or can write to it (a ``/tmp/tether-UID`` planted by someone else is not used).
The registry is a convenience: failing to write it never stops an instance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

from .pidfile import running_pid
from .runfiles import make_folder, open_run_file

__all__ = ["Entry", "entries", "register", "runtime_dir", "unregister"]

log = logging.getLogger("tether.manager")

Entry = dict[str, Any]
"""``{"pid", "config", "pid_file", "control_socket", "listen", "started_at"}``."""


def runtime_dir() -> str:
    """The per-user folder that lists this user's instances (not created here)."""
    explicit = os.environ.get("TETHER_RUNTIME_DIR")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "tether")
    return f"/tmp/tether-{os.getuid()}"


def register(entry: Entry) -> str | None:
    """Write ``entry`` as ``<pid>.json``; returns the file's path, or None (logged) when it cannot."""
    folder = runtime_dir()
    path = os.path.join(folder, f"{entry['pid']}.json")
    try:
        make_folder(folder)
        fd = open_run_file(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f)
    except OSError as exc:
        log.warning("! not listed for `tether infos --all`: %s", exc)
        return None
    return path


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(runtime_dir(), f"{pid}.json"))


def entries() -> list[Entry]:
    """The live instances of this user, oldest first; stale entries are removed on the way."""
    folder = runtime_dir()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found: list[Entry] = []
    for name in names:
        stem, _, ext = name.partition(".")
        if ext != "json" or not stem.isdigit():
            continue
        path = os.path.join(folder, name)
        try:
            fd = open_run_file(path, os.O_RDONLY, create=False)
            with os.fdopen(fd) as f:
                entry = json.load(f)
            live = isinstance(entry, dict) and running_pid(str(entry["pid_file"])) == int(stem)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable or not ours: neither listed nor removed
        if live:
            found.append(entry)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return sorted(found, key=lambda e: float(e.get("started_at", 0)))
