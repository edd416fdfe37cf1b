"""The pid file: written by the master and locked (``flock``) for as long as it runs.

The lock, not the pid, says whether an instance runs: the kernel drops it when the master exits, however it
exits, so a pid file left by a killed master is stale by construction, and a recycled pid cannot make a dead
instance look alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

__all__ = ["AlreadyRunning", "PidFile", "read_pid", "running_pid"]


class AlreadyRunning(Exception):
    """Another master holds the pid file."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"already running (pid {pid if pid is not None else '?'}, pid file {path})")


def read_pid(path: str) -> int | None:
    """The pid written in ``path``, or None when there is no file or no number in it."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def running_pid(path: str) -> int | None:
    """The pid of the master holding ``path``'s lock, or None when no master runs (no file, or stale)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return read_pid(path) or -1
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


class PidFile:
    """The master's pid file: :meth:`acquire` locks it, :meth:`write` fills it, :meth:`release` removes it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.stale_pid: int | None = None
        """The pid a stale file held when :meth:`acquire` replaced it."""

    def acquire(self) -> None:
        """Lock the pid file (creating it), or fail because a live master holds it.

        The lock is kept by the open file description, so it survives ``fork`` (daemonizing) and ends with
        the last process holding it.

        Raises:
            AlreadyRunning: a live master holds the lock.
            OSError: the file cannot be created.
        """
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path, read_pid(self.path)) from None
        self.fd = fd
        self.stale_pid = read_pid(self.path)

    def write(self, pid: int) -> None:
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Remove the file (only if it still holds our pid) and drop the lock."""
        if self.fd is None:
            return
        if read_pid(self.path) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def close(self) -> None:
        """Drop the lock without removing the file (the start failed before it was written)."""
        if self.fd is None:
            return
        if os.fstat(self.fd).st_size == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None
