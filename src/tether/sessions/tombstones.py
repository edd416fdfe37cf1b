"""Ended sessions kept on disk, so that a reload or a restart does not forget a log-out.

A tombstone says "tokens of session S issued before time T are refused until U" (U: the end plus
``token_ttl``, the longest such a token can live). In memory they are :class:`SessionManager`'s
``_ended``; without this file a ``tether reload`` (new workers) or a restart forgot them, and a logged-out
token connected again.

File format, one JSON object per line (appended, never edited in place but for compaction)::

    {"s": "<session id>", "t": <ended at, unix seconds>, "r": "<reason>", "u": <forget after, unix seconds>}

Several processes append to the same file (the workers of one instance): each line is one ``write`` on
an ``O_APPEND`` descriptor under ``flock``, so lines never interleave. Compaction (dropping lines past
their ``u``) happens when a process loads the file and most lines are dead; it rewrites the same file in
place under the lock, so a writer's descriptor stays valid (a rename would leave it writing to a file
nobody reads). The file is opened like the other run files (``O_NOFOLLOW``, created ``O_EXCL`` with mode
0600, in a folder only this user can write: :mod:`tether.manager.runfiles`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from ..manager.runfiles import make_folder, open_run_file

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Tombstone", "TombstoneFile", "default_path"]

log = logging.getLogger("tether.sessions")

COMPACT_MIN = 1024
"""Dead lines a file must hold before a load compacts it (and more dead than live)."""


@dataclass(frozen=True, slots=True)
class Tombstone:
    session_id: str
    ended_at: float
    """Unix time the session ended: tokens issued up to then are refused."""
    reason: str
    until: float
    """Unix time after which no token the tombstone refuses can be valid any more."""


class TombstoneFile:
    """The tombstone file of one instance (see the module docstring)."""

    def __init__(self, path: str) -> None:
        """Open (or create) ``path``.

        Raises:
            UnsafeRunFile: the folder or the file could have been planted by another account.
            OSError: it cannot be created or opened.
        """
        self.path = path
        make_folder(os.path.dirname(path) or ".")
        self._fd = open_run_file(path, os.O_RDWR | os.O_APPEND)
        # Closed with the manager that holds it (servers come and go in tests), or by close().
        self._finalizer = weakref.finalize(self, os.close, self._fd)

    def close(self) -> None:
        self._finalizer()
        self._fd = -1

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def append(self, stone: Tombstone) -> None:
        """Write one tombstone (one line, one ``write``). An I/O error is logged, not raised: the end still
        holds in memory."""
        line = orjson.dumps({"s": stone.session_id, "t": stone.ended_at, "r": stone.reason, "u": stone.until})
        try:
            with self._locked():
                os.write(self._fd, line + b"\n")
        except OSError as exc:
            log.warning("! cannot record the end of a session in %s: %s", self.path, exc)

    def load(self, now: float) -> list[Tombstone]:
        """Every tombstone still in force at ``now`` (the latest per session); compacts a file mostly dead.

        Lines that are not valid tombstones (a torn write after a crash) are skipped.
        """
        with self._locked():
            data = self._read_all()
            live: dict[str, Tombstone] = {}
            lines = 0
            for raw in data.split(b"\n"):
                if not raw:
                    continue
                lines += 1
                stone = _parse(raw)
                if stone is None or stone.until <= now:
                    continue
                known = live.get(stone.session_id)
                if known is None or stone.ended_at >= known.ended_at:
                    live[stone.session_id] = stone
            dead = lines - len(live)
            if dead >= COMPACT_MIN and dead > len(live):
                self._rewrite(live.values())
        return list(live.values())

    def _read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(self._fd, min(1 << 20, size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def _rewrite(self, stones: Iterable[Tombstone]) -> None:
        body = b"".join(
            orjson.dumps({"s": s.session_id, "t": s.ended_at, "r": s.reason, "u": s.until}) + b"\n"
            for s in stones
        )
        os.ftruncate(self._fd, 0)
        os.write(self._fd, body)  # O_APPEND: at the (new) end, i.e. from 0


def default_path(config: Config) -> str:
    """Where an instance keeps its tombstones: ``[session] ended_file``, else ``run/NAME.ended`` beside the
    instance's pid file (:mod:`tether.manager.paths`) when it runs from a config file, else "" (memory
    only: a server built in code from defaults, as in most tests)."""
    from ..manager.paths import RunPaths  # the manager package knows the run folder's rules

    if config.session.ended_file:
        return config.resolve_path(config.session.ended_file)
    if config.source == "<defaults>":
        return ""
    pid_file = RunPaths.from_config(config).pid_file
    return (pid_file[: -len(".pid")] if pid_file.endswith(".pid") else pid_file) + ".ended"


def _parse(raw: bytes) -> Tombstone | None:
    try:
        obj = orjson.loads(raw)
        stone = Tombstone(str(obj["s"]), float(obj["t"]), str(obj["r"]), float(obj["u"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return stone
