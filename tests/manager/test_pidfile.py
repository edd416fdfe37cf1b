"""The pid file: its lock says whether a master runs; a file without a lock is stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.manager.pidfile import AlreadyRunning, PidFile, read_pid, running_pid


def test_acquire_write_release(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "t.pid")
    assert running_pid(path) is None
    pidfile = PidFile(path)
    pidfile.acquire()
    assert pidfile.stale_pid is None
    pidfile.write(os.getpid())
    assert read_pid(path) == os.getpid()
    assert running_pid(path) == os.getpid()
    with pytest.raises(AlreadyRunning) as info:
        PidFile(path).acquire()  # another open file description: the lock conflicts
    assert info.value.pid == os.getpid() and str(os.getpid()) in str(info.value)
    pidfile.release()
    assert not os.path.exists(path)
    assert running_pid(path) is None


def test_stale_file_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "t.pid"
    path.write_text("424242\n")
    assert running_pid(str(path)) is None  # a file nobody locks
    pidfile = PidFile(str(path))
    pidfile.acquire()
    assert pidfile.stale_pid == 424242
    pidfile.write(os.getpid())
    assert read_pid(str(path)) == os.getpid()
    pidfile.release()


def test_lock_dies_with_the_process(tmp_path: Path) -> None:
    path = str(tmp_path / "t.pid")
    code = (
        "import os, sys; from tether.manager.pidfile import PidFile; p = PidFile(sys.argv[1]); p.acquire(); "
        "p.write(os.getpid()); print('locked', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "locked\n"
    assert running_pid(path) == child.pid
    child.kill()  # no clean up at all: the kernel drops the lock
    child.wait()
    assert read_pid(path) == child.pid and running_pid(path) is None
    p = PidFile(path)
    p.acquire()
    assert p.stale_pid == child.pid
    p.close()


def test_close_without_write_removes_the_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "t.pid"
    p = PidFile(str(path))
    p.acquire()
    p.close()
    assert not path.exists()
    assert read_pid(str(tmp_path / "missing")) is None
    (tmp_path / "junk").write_text("not a pid")
    assert read_pid(str(tmp_path / "junk")) is None
