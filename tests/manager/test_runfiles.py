"""Run files against a local account: planted symlinks, folders others can write, pid files naming a stranger.

The other account is a second uid (``OTHER``, no entry in /etc/passwd needed) that a forked child of the
test switches to: nothing outside the test's temporary folders is touched. The victims are files the test
creates, and every assertion checks they are unchanged.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import scaled
from tether.manager import registry
from tether.manager.control import ControlError, request
from tether.manager.paths import RunPaths, instance_name
from tether.manager.pidfile import AlreadyRunning, PidFile, running_pid
from tether.manager.runfiles import UnsafeRunFile, check_folder, is_master, make_folder, open_run_file

from .conftest import CONFIG, ROUTES, Instance, alive

OTHER = 54321
"""The uid (and gid) of the second, unprivileged account."""


def as_other_account(action: Callable[[], None]) -> None:
    """Run ``action`` in a forked child that has become ``OTHER`` (the test must run as root to create it)."""
    if os.getuid() != 0:
        pytest.fail("these tests act as a second account: run them as root (as `make test` does in CI)")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(OTHER)
            os.setuid(OTHER)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the other account's action failed"


def victim(folder: Path, name: str) -> Path:
    """A file of the operator's that a planted symlink aims at."""
    path = folder / name
    path.write_text("precious\n")
    path.chmod(0o600)
    return path


# -- the primitives ---------------------------------------------------------------------------------------


def test_open_run_file_refuses_symlinks_other_owners_and_hard_links(tmp_path: Path) -> None:
    target = victim(tmp_path, "target")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeRunFile, match="symlink"):
        open_run_file(str(tmp_path / "link"), os.O_WRONLY | os.O_APPEND)
    (tmp_path / "hard").hardlink_to(target)
    with pytest.raises(UnsafeRunFile, match="2 hard links"):
        open_run_file(str(tmp_path / "hard"), os.O_RDONLY)
    foreign = tmp_path / "foreign"
    foreign.write_text("")
    os.chown(foreign, OTHER, OTHER)
    with pytest.raises(UnsafeRunFile, match=f"uid {OTHER}"):
        open_run_file(str(foreign), os.O_RDWR)
    assert target.read_text() == "precious\n"
    fd = open_run_file(str(tmp_path / "new.log"), os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    assert (tmp_path / "new.log").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError):
        open_run_file(str(tmp_path / "missing"), os.O_RDONLY, create=False)


def test_run_folders_only_this_user_can_write(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_folder(str(run))
    assert run.stat().st_mode & 0o777 == 0o700
    for mode, who in ((0o777, "others"), (0o1777, "others"), (0o775, "its group")):
        run.chmod(mode)
        with pytest.raises(UnsafeRunFile, match=f"writable by {who}"):
            check_folder(str(run))
    run.chmod(0o755)
    check_folder(str(run))
    os.chown(run, OTHER, OTHER)
    with pytest.raises(UnsafeRunFile, match=f"belongs to uid {OTHER}"):
        check_folder(str(run))
    (tmp_path / "alias").symlink_to(run)
    with pytest.raises(UnsafeRunFile, match="symlink"):
        check_folder(str(tmp_path / "alias"))


def test_a_pid_file_locked_but_empty_means_starting(tmp_path: Path) -> None:
    path = str(tmp_path / "t.pid")
    starting = PidFile(path)
    starting.acquire()
    assert running_pid(path) == -1
    with pytest.raises(AlreadyRunning) as info:
        PidFile(path).acquire()
    assert "starting" in str(info.value) and "None" not in str(info.value)
    starting.close()


def test_is_master_needs_the_pid_file_held_open_by_tether(tmp_path: Path) -> None:
    path = tmp_path / "t.pid"
    path.write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1]); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE,
    )
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        assert not is_master(stranger.pid, str(path))  # does not hold the file
        assert not is_master(holder.pid, str(path))  # holds it, but is not tether
        assert not is_master(-1, str(path)) and not is_master(0, str(path))
        assert is_master(os.getpid(), str(path)) is False  # pytest holds nothing
    finally:
        for p in (holder, stranger):
            p.kill()
            p.wait()


# -- the CLI against a planted run folder --------------------------------------------------------------------


def test_start_refuses_planted_symlinks_and_foreign_run_folders(instance: Instance, tmp_path: Path) -> None:
    precious = tmp_path / "system"
    precious.mkdir(mode=0o700)
    pid_victim = victim(precious, "shadow")
    log_victim = victim(precious, "auth.log")
    # The run folder is the other account's to write: it plants the symlinks there.
    instance.folder.chmod(0o711)
    instance.run_dir.mkdir(mode=0o777)
    instance.run_dir.chmod(0o777)

    def plant() -> None:
        os.symlink(pid_victim, instance.pid_file)
        os.symlink(log_victim, instance.log_file)

    as_other_account(plant)
    proc = instance.cli("start", "-d")
    assert proc.returncode == 1
    assert "refusing an unsafe run folder" in proc.stderr and "writable by others" in proc.stderr
    for command in ("stop", "infos", "reload"):
        proc = instance.cli(command)
        assert proc.returncode == 1 and "refusing an unsafe run folder" in proc.stderr, command

    # Even in a folder only the operator can write, a symlink left there is refused, not followed.
    instance.run_dir.chmod(0o700)
    proc = instance.cli("start", "-d")
    assert proc.returncode == 1 and "refusing an unsafe pid file" in proc.stderr and "symlink" in proc.stderr
    instance.pid_file.unlink()
    proc = instance.cli("start", "-d")
    assert proc.returncode == 1 and f"cannot write the log file {instance.log_file}" in proc.stderr
    assert pid_victim.read_text() == "precious\n" and log_victim.read_text() == "precious\n"
    assert not instance.pid_file.exists()

    instance.log_file.unlink()
    os.chown(instance.run_dir, OTHER, OTHER)
    proc = instance.cli("start", "-d")
    assert proc.returncode == 1 and f"belongs to uid {OTHER}" in proc.stderr


def test_stop_never_signals_a_pid_it_cannot_prove(instance: Instance) -> None:
    """A pid file (locked, even) naming another process and no control socket: nothing is signalled."""
    stranger = subprocess.Popen(["sleep", "60"])
    instance.run_dir.mkdir(mode=0o700)
    code = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, sys.argv[2].encode()); print('ok', flush=True); "
        "sys.stdin.read()"
    )
    locker = subprocess.Popen(
        [sys.executable, "-c", code, str(instance.pid_file), str(stranger.pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "ok\n"
        assert running_pid(str(instance.pid_file)) == stranger.pid
        for force in ((), ("--force",)):
            proc = instance.cli("stop", *force)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert f"pid {stranger.pid}" in proc.stderr and "not signalled" in proc.stderr
        assert alive(stranger.pid) and stranger.poll() is None
    finally:
        for p in (locker, stranger):
            p.kill()
            p.wait()


def test_the_cli_does_not_talk_to_a_control_socket_of_another_account(app_folder: Path) -> None:
    app_folder.chmod(0o711)  # the other account may pass through, not list or write
    folder = app_folder / "shared"
    folder.mkdir()
    os.chown(folder, OTHER, OTHER)
    path = str(folder / "tether.sock")
    ready_r, ready_w = os.pipe()

    def serve() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(path)
            os.chmod(path, 0o777)
            server.listen()
            os.write(ready_w, b"x")
            conn, _ = server.accept()
            conn.sendall(b'{"ok": true, "pid": 1}\n')
            conn.close()

    pid = os.fork()
    if pid == 0:  # the other account's fake master, in the background
        try:
            os.setgroups([])
            os.setgid(OTHER)
            os.setuid(OTHER)
            serve()
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        with pytest.raises(ControlError, match=f"served by uid {OTHER}"):
            request(path, "stop")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(ready_r)


# -- two instances in one folder ----------------------------------------------------------------------------


def test_default_run_files_are_named_for_the_instance(tmp_path: Path) -> None:
    assert instance_name(str(tmp_path / "node2.toml"), 0) == "node2"
    assert instance_name(None, 9600) == "tether-9600"
    a = RunPaths.derive("a", str(tmp_path), "", "", "")
    b = RunPaths.derive("b", str(tmp_path), "", "", "")
    assert a.pid_file == str(tmp_path / "run" / "a.pid") and a.control_socket == str(
        tmp_path / "run" / "a.sock"
    )
    assert {a.pid_file, a.log_file, a.control_socket}.isdisjoint({b.pid_file, b.log_file, b.control_socket})
    explicit = RunPaths.derive("a", str(tmp_path), "/var/run/x.pid", "x.log", "")
    assert explicit.pid_file == "/var/run/x.pid" and explicit.log_file == str(tmp_path / "x.log")


def test_two_instances_in_one_folder(app_folder: Path) -> None:
    (app_folder / "routes.py").write_text(ROUTES)
    instances = []
    try:
        for name in ("blue", "green"):
            inst = Instance(app_folder)
            inst.config = app_folder / f"{name}.toml"
            inst.config.write_text(CONFIG.format(workers=1, stop_timeout=2))
            inst.pid_file = inst.run_dir / f"{name}.pid"
            inst.log_file = inst.run_dir / f"{name}.log"
            inst.control_socket = inst.run_dir / f"{name}.sock"
            instances.append(inst)
            proc = inst.start()
            assert f"pid file:       {inst.pid_file} (master pid " in proc.stdout
            assert "(1 worker)" in proc.stdout
        blue, green = instances
        blue_pid = blue.master_pid()
        assert blue_pid != green.master_pid()
        for inst in instances:
            info = inst.infos(cli=True)
            assert info["pid"] == inst.master_pid() and info["config"] == str(inst.config)
        listing = blue.cli("infos", "--all", check=True).stdout
        lines = listing.splitlines()
        assert lines[0].split() == ["PID", "LISTEN", "WORKERS", "CONN", "UPTIME", "CONFIG"]
        assert len(lines) == 3, listing
        for inst in instances:
            assert re.search(rf"^{inst.master_pid()}\s+{inst.url}\s+1\s+0\s+.*{inst.config}$", listing, re.M)
        # From another folder, without -c: where it looked, how to point, and what runs.
        other_folder = app_folder / "elsewhere"
        other_folder.mkdir()
        elsewhere = subprocess.run(
            [sys.executable, "-m", "tether", "infos"],
            cwd=other_folder,
            env=blue.env(),
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )
        assert elsewhere.returncode == 1
        assert f"no live master holds {other_folder}/run/tether-9501.pid" in elsewhere.stderr
        assert "no --config given and TETHER_CONFIG is not set" in elsewhere.stderr
        assert "`-c FILE` (or TETHER_CONFIG=FILE)" in elsewhere.stderr
        for inst in instances:
            assert f"pid {inst.master_pid()}  {inst.url}  -c {inst.config}" in elsewhere.stderr
        proc = blue.cli("stop", check=True)
        assert f"tether stopped (pid {blue_pid})" in proc.stdout
        entries = json.loads(green.cli("infos", "--all", "--json", check=True).stdout)
        assert [e["pid"] for e in entries] == [green.master_pid()]
        assert entries[0]["infos"]["listen"] == green.url
        assert green.infos(cli=True)["pid"] == green.master_pid()  # the other one still runs
        green.cli("stop", check=True)
    finally:
        for inst in instances:
            inst.cleanup()


def test_a_stop_while_starting_says_so(instance: Instance) -> None:
    instance.run_dir.mkdir(mode=0o700)
    starting = PidFile(str(instance.pid_file))
    starting.acquire()  # locked, nothing written: what a daemon looks like before its second fork
    try:
        proc = instance.cli("start", "-d")
        assert proc.returncode == 1 and "already running (starting" in proc.stderr
        assert "None" not in proc.stderr
        for command in ("stop", "infos", "reload", "restart"):
            proc = instance.cli(command)
            assert proc.returncode == 1 and "a master is starting" in proc.stderr, (command, proc.stderr)
            assert "None" not in proc.stderr
    finally:
        starting.close()


def test_stop_signals_a_proven_master_when_its_control_socket_is_gone(instance: Instance) -> None:
    instance.config.write_text(CONFIG.format(workers=1, stop_timeout=1))
    instance.start()
    master = instance.master_pid()
    assert is_master(master, str(instance.pid_file))
    instance.control_socket.unlink()  # the master still runs: only the way to ask it is gone
    proc = instance.cli("stop", check=True)
    assert f"sending SIGTERM to pid {master}" in proc.stderr
    assert f"tether stopped (pid {master})" in proc.stdout
    assert not alive(master)


def test_the_registry_drops_stale_entries_and_ignores_foreign_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("TETHER_RUNTIME_DIR", str(runtime))
    assert registry.runtime_dir() == str(runtime)
    live = PidFile(str(tmp_path / "run" / "live.pid"))
    live.acquire()
    live.write(os.getpid())
    try:
        entry = {
            "pid": os.getpid(),
            "config": "live.toml",
            "pid_file": live.path,
            "control_socket": "x",
            "listen": "http://127.0.0.1:1",
            "started_at": 1.0,
        }
        assert registry.register(entry) == str(runtime / f"{os.getpid()}.json")
        assert runtime.stat().st_mode & 0o777 == 0o700
        stale = runtime / "424242.json"  # a master killed without cleaning up: its pid file is not locked
        stale.write_text(json.dumps({**entry, "pid": 424242, "pid_file": str(tmp_path / "gone.pid")}))
        foreign = runtime / "434343.json"
        foreign.write_text(json.dumps({**entry, "pid": 434343}))
        os.chown(foreign, OTHER, OTHER)
        assert registry.entries() == [entry]
        assert (
            not stale.exists() and foreign.exists()
        )  # another account's file is neither trusted nor removed
        registry.unregister(os.getpid())
        assert registry.entries() == []
        os.chown(runtime, OTHER, OTHER)  # a runtime folder someone else planted is not used
        assert registry.register(entry) is None and registry.entries() == []
    finally:
        live.release()
    monkeypatch.delenv("TETHER_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert registry.runtime_dir() == str(tmp_path / "xdg" / "tether")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert registry.runtime_dir() == f"/tmp/tether-{os.getuid()}"


def test_an_instance_without_a_config_file_is_pointed_at_by_its_run_files(app_folder: Path) -> None:
    inst = Instance(app_folder)  # writes tether.toml here: `tether start` without -c does not read it
    pid_file, control_socket = app_folder / "run" / "tether.pid", app_folder / "run" / "tether.sock"

    def tether(*args: str, cwd: Path = app_folder) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tether", *args],
            cwd=cwd,
            env=inst.env(),
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )

    started = tether("start", "-d", "--routes", "routes.py", "--port", "0", "--workers", "1")
    try:
        assert started.returncode == 0, started.stderr
        assert "warning: not reading ./tether.toml" in started.stderr
        assert "`tether start -c tether.toml`" in started.stderr
        # Without -c: not found (it looks for tether-9501), and the hints say how to point at both.
        lost = tether("infos")
        assert lost.returncode == 1
        assert (
            "tether.toml is here, but a config file is read only when named: `tether infos -c tether.toml`"
            in (lost.stderr)
        )
        # From the folder it was started in, the flag it was started with; from elsewhere, its run files.
        assert "  --port 0\n" in lost.stderr and "--pid-file" not in lost.stderr, lost.stderr
        assert "<defaults>" not in lost.stderr
        elsewhere = app_folder / "elsewhere"
        elsewhere.mkdir()
        away = tether("infos", cwd=elsewhere).stderr
        assert "is here" not in away  # no tether.toml there
        assert f"--pid-file {pid_file} --control-socket {control_socket}" in away and "--port" not in away
        pointed = tether("infos", "--pid-file", str(pid_file), "--control-socket", str(control_socket))
        assert pointed.returncode == 0 and "config    <defaults>" in pointed.stdout, pointed.stderr
        # --port, as it was started with, names the same run files (port 0: run/tether.*), from this folder.
        by_port = tether("infos", "--port", "0")
        assert by_port.returncode == 0 and "config    <defaults>" in by_port.stdout, by_port.stderr
        # Started again the same way: refused, with the flags that find it (it said "with the same --config").
        again = tether("start", "-d", "--routes", "routes.py", "--port", "0", "--workers", "1")
        assert again.returncode == 1 and "already running" in again.stderr, again.stderr
        assert "use `tether stop --port 0` or `tether restart --port 0`" in again.stderr
        assert "--config" not in again.stderr and "its own --port or config file" in again.stderr
        # `tether infos | head -1`: a reader that left is no traceback.
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            piped = subprocess.run(
                [sys.executable, "-m", "tether", "infos", "--port", "0"],
                cwd=app_folder,
                env=inst.env(),
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=scaled(30),
            )
        finally:
            os.close(write_end)
        assert piped.returncode == 1 and piped.stderr == "", piped.stderr
        # The pid file alone: its control socket is the one beside it (run/tether.sock), not tether-9501's.
        by_pid_file = tether("infos", "--pid-file", str(pid_file))
        assert by_pid_file.returncode == 0 and "config    <defaults>" in by_pid_file.stdout, (
            by_pid_file.stderr
        )
    finally:
        stopped = tether("stop", "--pid-file", str(pid_file))
        assert stopped.returncode == 0 and "no master answers" not in stopped.stderr, stopped.stderr


def test_an_instance_started_with_other_run_files_is_pointed_at(instance: Instance) -> None:
    """Under the systemd unit the pid file and control socket are named by the unit's environment
    (/run/tether/...): by hand, ``tether infos -c tether.toml`` looks beside the config and finds nothing.
    It says which master serves that config and the flags that reach it; ``restart`` starts no second one."""
    elsewhere = instance.folder / "sysrun"
    elsewhere.mkdir(mode=0o700)
    instance.pid_file = elsewhere / "tether.pid"
    instance.control_socket = elsewhere / "tether.sock"
    flags = ("--pid-file", str(instance.pid_file), "--control-socket", str(instance.control_socket))
    instance.start("--workers", "1", *flags)
    pid = instance.master_pid()
    lost = instance.cli("infos")
    assert lost.returncode == 1
    assert f"no live master holds {instance.run_dir / 'tether.pid'}" in lost.stderr
    assert f"but pid {pid} serves {instance.config} with the pid file {instance.pid_file}" in lost.stderr
    assert f"`tether infos -c {instance.config} {' '.join(flags)}`" in lost.stderr, lost.stderr
    again = instance.cli("restart")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "not restarting" in again.stderr and "starting it" not in again.stdout, again.stderr
    assert f"`tether restart -c {instance.config} {' '.join(flags)}`" in again.stderr
    found = instance.cli("infos", "--json", *flags, check=True)
    assert json.loads(found.stdout)["pid"] == pid  # the pointer reaches it, and it still serves
