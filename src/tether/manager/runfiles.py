"""Run files opened safely: the pid file, the daemon's log file, the run folder, and who may be signalled.

Threat (docs/hardening.md, "a local account"): another account that can write to the run folder plants a
symlink named like the pid file or the log file (``tether start -d`` would then truncate or append to the
file it points at, with the operator's rights), or a pid file naming a process of its choice (``tether stop``
would then send it SIGTERM). Hence:

* a run folder must belong to this user (or root) and be writable by nobody else: :func:`check_folder`;
* run files are opened with ``O_NOFOLLOW`` (a symlink is refused, not followed) and created with ``O_EXCL``
  (a file that appears between the check and the creation is refused, never reused), and an existing file
  must be a regular file of this user with one link: :func:`open_run_file`;
* a pid is signalled only when the process is proven to be the master of that pid file: it holds the very
  pid file open (same device and inode, read from ``/proc/PID/fd``) and runs tether (``/proc/PID/cmdline``):
  :func:`is_master`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

__all__ = ["UnsafeRunFile", "check_folder", "is_master", "make_folder", "open_run_file"]


class UnsafeRunFile(OSError):
    """A run file or folder that another account could have planted or can change."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(errno.EPERM, f"unsafe run file {path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _trusted_owner(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def check_folder(folder: str) -> None:
    """Refuse a run folder that another account can write to.

    Raises:
        UnsafeRunFile: ``folder`` is a symlink, not a folder, owned by another user, or writable by group or
            others (sticky or not: a sticky ``/tmp`` still lets others create the names we would use).
        FileNotFoundError: no such folder.
    """
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeRunFile(folder, "the run folder is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRunFile(folder, "not a folder")
    if not _trusted_owner(st.st_uid):
        raise UnsafeRunFile(folder, f"the run folder belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & 0o022:
        raise UnsafeRunFile(
            folder,
            f"the run folder is writable by {'others' if st.st_mode & 0o002 else 'its group'} "
            f"(mode {stat.S_IMODE(st.st_mode):o}); use a folder only this user can write (chmod go-w)",
        )


def make_folder(folder: str) -> None:
    """Create ``folder`` (mode 0700 for the parts created here) and check it (:func:`check_folder`).

    Raises:
        UnsafeRunFile: see :func:`check_folder`.
        OSError: it cannot be created.
    """
    with contextlib.suppress(FileExistsError):
        os.makedirs(folder, mode=0o700)
    check_folder(folder)


def _check_file(path: str, fd: int) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeRunFile(path, "not a regular file")
    if not _trusted_owner(st.st_uid):
        raise UnsafeRunFile(path, f"belongs to uid {st.st_uid}, not to this user")
    if st.st_nlink != 1:
        raise UnsafeRunFile(path, f"has {st.st_nlink} hard links")


def open_run_file(path: str, flags: int, mode: int = 0o600, create: bool = True) -> int:
    """Open the run file ``path`` with ``flags`` (``O_RDWR``, ``O_WRONLY | O_APPEND``...) without following a
    symlink; create it (``O_EXCL``, ``mode``) when missing and ``create`` is true.

    Returns:
        The file descriptor (close-on-exec).

    Raises:
        UnsafeRunFile: ``path`` is a symlink, not a regular file, another user's, or hard-linked.
        FileNotFoundError: missing and ``create`` is false.
        OSError: it cannot be opened or created.
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if not create:
                raise
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                continue  # created meanwhile (by a starting twin, or planted): open it as an existing file
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeRunFile(path, "is a symlink") from None
            raise
        try:
            _check_file(path, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise UnsafeRunFile(path, "appeared and vanished repeatedly while being opened")


def is_master(pid: int, pid_file: str) -> bool:
    """True when process ``pid`` is a tether master holding ``pid_file`` open (the proof needed to signal it).

    The master keeps its pid file open (and locked) for its whole life, so a process that has the same
    device and inode among its open files is that master, whatever pid a planted file names; its command
    line must also run tether (``python -m tether ...`` or the ``tether`` script).
    """
    if pid <= 0:
        return False
    try:
        target = os.stat(pid_file, follow_symlinks=False)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    if not any(b"tether" in os.path.basename(arg) or arg == b"tether" for arg in argv[:3]):
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False
