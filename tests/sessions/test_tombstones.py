"""Ended sessions outlive the process (issue 13, item 6): a logged-out token stays refused after a
restart, until the token itself would have expired (after ``tether reload``: tests/manager/test_reload.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import socketio

from tether import Config, Router, run_server
from tether.manager.runfiles import UnsafeRunFile
from tether.sessions import get_manager, issue_token
from tether.sessions import tombstones as tombstones_module
from tether.sessions.tombstones import Tombstone, TombstoneFile, default_path

from .helpers import SECRET, Recorder


def stone(session_id: str, ended_at: float, until: float, reason: str = "logout") -> Tombstone:
    return Tombstone(session_id, ended_at, reason, until)


def test_file_keeps_what_is_still_in_force(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "app.ended")
    file = TombstoneFile(path)
    file.append(stone("a", 100.0, 1000.0))
    file.append(stone("b", 100.0, 150.0))  # its tokens are all expired by 200
    file.append(stone("a", 120.0, 1020.0, "idle"))  # the latest end of a session wins
    file.close()
    with open(path, "ab") as f:
        f.write(b'{"s": "torn", "t": 1')  # a write cut short by a crash
    again = TombstoneFile(path)
    assert again.load(now=200.0) == [stone("a", 120.0, 1020.0, "idle")]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "run").st_mode & 0o777) == "0o700"
    again.close()


def test_a_mostly_dead_file_is_compacted_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tombstones_module, "COMPACT_MIN", 10)
    path = str(tmp_path / "app.ended")
    writer = TombstoneFile(path)  # another process's descriptor, kept open across the compaction
    for i in range(20):
        writer.append(stone(f"old{i}", 1.0, 2.0))
    writer.append(stone("live", 1.0, 500.0))
    inode = os.stat(path).st_ino
    loader = TombstoneFile(path)
    assert loader.load(now=100.0) == [stone("live", 1.0, 500.0)]
    assert os.stat(path).st_ino == inode and len(Path(path).read_bytes().splitlines()) == 1
    writer.append(stone("after", 1.0, 600.0))  # the writer's lines still land in the file everyone reads
    assert {s.session_id for s in loader.load(now=100.0)} == {"live", "after"}
    writer.close()
    loader.close()


def test_planted_files_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    (run / "app.ended").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeRunFile, match="symlink"):
        TombstoneFile(str(run / "app.ended"))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeRunFile, match="writable"):
        TombstoneFile(str(shared / "app.ended"))


def test_where_the_file_is(tmp_path: Path) -> None:
    config_file = tmp_path / "node2.toml"
    config_file.write_text(f'[session]\nsecret = "{SECRET}"\n')
    assert default_path(Config.load(config_file, env={})) == str(tmp_path / "run" / "node2.ended")
    explicit = Config.load(config_file, env={}, overrides={"session": {"ended_file": "state/ended"}})
    assert default_path(explicit) == str(tmp_path / "state" / "ended")
    # A server built in code from defaults keeps them in memory only.
    assert default_path(Config.load(None, env={}, overrides={"session": {"secret": SECRET}})) == ""


async def test_a_restart_does_not_forget_a_logout(tmp_path: Path) -> None:
    config_file = tmp_path / "app.toml"
    config_file.write_text(f'[server]\nport = 0\n[session]\nsecret = "{SECRET}"\ntoken_ttl = 600\n')
    token = issue_token("alice", "s-1", secret=SECRET, ttl=600)
    other = issue_token("bob", "s-2", secret=SECRET, ttl=600)

    first = await run_server(Config.load(config_file, env={}), Router())
    try:
        client = Recorder()
        await client.connect(first.url, token)
        get_manager(first).end("s-1")  # the log-out
        await client.close()
    finally:
        await first.shutdown(timeout=2)

    second = await run_server(Config.load(config_file, env={}), Router())
    try:
        refused = Recorder()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(second.url, token)
        assert refused.connect_error["message"] == "Session ended"
        assert get_manager(second).is_ended("s-1") and not get_manager(second).is_ended("s-2")
        welcome = Recorder()
        await welcome.connect(second.url, other)  # another session is not affected
        await welcome.close()
        # A token issued after the end (the same session id, on purpose) is accepted.
        time.sleep(0.01)
        fresh = Recorder()
        await fresh.connect(second.url, issue_token("alice", "s-1", secret=SECRET, ttl=600))
        await fresh.close()
    finally:
        await second.shutdown(timeout=2)
