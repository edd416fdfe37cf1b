"""The pid file: written by the master and locked (``flock``) for as long as it runs.

The lock, not the pid, says whether an instance runs: the kernel drops it when the master exits, however it
exits, so a pid file left by a killed master is stale by construction, and a recycled pid cannot make a dead
instance look alive. A file that is locked but still empty belongs to a master that is starting (the daemon
writes its pid after the double fork).

The file is opened without following symlinks and must be this user's (:mod:`.runfiles`): a pid file
planted by another account is neither trusted nor written through.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from .runfiles import UnsafeRunFile, make_folder, open_run_file

__all__ = ["AlreadyRunning", "PidFile", "UnsafeRunFile", "describe", "read_pid", "running_pid"]


class AlreadyRunning(Exception):
    """Another master holds the pid file."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"already running ({describe(pid)}, pid file {path})")


def describe(pid: int | None) -> str:
    """``pid 1234``, or ``starting`` for a pid file locked by a master that has not written its pid yet."""
    return f"pid {pid}" if pid is not None and pid > 0 else "starting: its pid is not written yet"


def _read(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def read_pid(path: str) -> int | None:
    """The pid written in ``path``, or None when there is no file, no number in it, or it is not a regular
    file of this user (a symlink or a planted file is never read)."""
    try:
        fd = open_run_file(path, os.O_RDONLY, create=False)
    except OSError:
        return None
    try:
        return _read(fd)
    finally:
        os.close(fd)


def running_pid(path: str) -> int | None:
    """The pid of the master holding ``path``'s lock, -1 for a master still starting (locked, no pid yet),
    or None when no master runs (no file, a stale one, or one that is not this user's regular file)."""
    try:
        fd = open_run_file(path, os.O_RDONLY, create=False)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read(fd)
        os.close(fd)
        return pid or -1
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
            UnsafeRunFile: the path is a symlink or another user's file (see :mod:`.runfiles`).
            OSError: the file cannot be created.
        """
        make_folder(os.path.dirname(os.path.abspath(self.path)))
        fd = open_run_file(self.path, os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        self.fd = fd
        self.stale_pid = _read(fd)

    def write(self, pid: int) -> None:
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Remove the file (only if it still holds our pid) and drop the lock."""
        if self.fd is None:
            return
        if read_pid(self.path) == os.getpid() and self._same_file():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def close(self) -> None:
        """Drop the lock without removing the file (the start failed before it was written)."""
        if self.fd is None:
            return
        if os.fstat(self.fd).st_size == 0 and self._same_file():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def _same_file(self) -> bool:
        """The path still names the file we hold (not one put in its place since)."""
        assert self.fd is not None
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self.fd)
        return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
