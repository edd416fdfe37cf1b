"""Fixtures for the service manager: a temp app folder and the real ``tether`` CLI run as a subprocess.

Every instance a test starts is stopped in teardown, by pid: ``tether stop`` first, then SIGKILL for any
master or worker still alive (workers are found as the master's children in /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import scaled
from tether.manager import control
from tether.manager.pidfile import running_pid

ROUTES = """
import asyncio
import os

from tether import current_server, websocket


@websocket.on("whoami")
async def whoami(socket):
    return {"pid": os.getpid(), "sid": socket.client.sid, "transport": socket.client.transport}


@websocket.on("join")
async def join(socket, room):
    socket.join(room)
    return True


@websocket.on("say")
async def say(socket, room, message):
    socket.server.to(room).emit("said", message)
    return True


@websocket.on("login")
async def login(socket, user):
    socket.login_using(user)
    return True


@websocket.on("notify")
async def notify(socket, user, message):
    socket.server.to_user(user).emit("notified", message)
    return socket.server.is_user_online(user)


@websocket.on("online")
async def online(socket, user):
    return socket.server.is_user_online(user)


@websocket.on("echo")
async def echo(socket, data):
    return data


@websocket.on("tick")
async def tick(socket, n):
    return n


@websocket.on("slow")
async def slow(socket, seconds):
    await asyncio.sleep(seconds)
    return "done"


@websocket.on_server_side("pid")
async def pid_of(tag):
    return [tag, os.getpid()]


@websocket.on_server_side("note")
async def note(tag):
    # What another worker said, passed on to this worker's own clients (no module state: see SEEN's test).
    for sock in current_server().of("/").sockets():
        sock.emit("heard", tag)


@websocket.on("tell_workers")
async def tell_workers(socket, tag):
    socket.server.server_side_emit("note", tag)  # fire and forget: no ack asked


@websocket.on("ask_workers")
async def ask_workers(socket, tag):
    answers = await socket.server.server_side_emit_with_ack("pid", tag, timeout=5)
    return {"answers": list(answers), "expected": answers.expected}
"""

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
workers = {workers}
stop_timeout = {stop_timeout}

[websocket]
route_file = "routes.py"
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    """True for a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


class Instance:
    """A tether instance in a temp folder, driven through the real CLI."""

    def __init__(self, folder: Path, workers: int = 2, stop_timeout: float = 5.0) -> None:
        self.folder = folder
        self.config = folder / "tether.toml"
        self.routes = folder / "routes.py"
        self.routes.write_text(ROUTES)
        self.config.write_text(CONFIG.format(workers=workers, stop_timeout=stop_timeout))
        self.run_dir = folder / "run"
        self.pid_file = self.run_dir / "tether.pid"
        self.log_file = self.run_dir / "tether.log"
        self.control_socket = self.run_dir / "tether.sock"
        self.pids: set[int] = set()
        self.url = ""

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TETHER_") or k.startswith("TETHER_TESTS_")
        }
        # The per-user list of instances (`tether infos --all`): the test's own, not the real one.
        env["TETHER_RUNTIME_DIR"] = str(self.folder / "runtime")
        return env

    def cli(self, *args: str, wait: float = 30.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``tether ARGS --config tether.toml`` in the app folder."""
        proc = subprocess.run(
            [sys.executable, "-m", "tether", *args, "--config", str(self.config)],
            cwd=self.folder,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=scaled(wait),
        )
        if check:
            assert proc.returncode == 0, f"tether {' '.join(args)}: {proc.stdout}{proc.stderr}\n{self.log()}"
        return proc

    def start(self, *flags: str) -> subprocess.CompletedProcess[str]:
        proc = self.cli("start", "-d", *flags, check=True)
        match = re.search(r"started on (http://\S+)", proc.stdout)
        assert match, proc.stdout
        self.url = match.group(1)
        self.pids.add(self.master_pid())
        return proc

    def master_pid(self) -> int:
        return int(self.pid_file.read_text())

    def infos(self, cli: bool = False) -> dict[str, Any]:
        """``tether infos --json`` through the CLI, or (faster, for polling loops) the same request sent
        to the control socket from this process."""
        if cli:
            info: dict[str, Any] = json.loads(self.cli("infos", "--json", check=True).stdout)
        else:
            info = control.request(str(self.control_socket), "infos", timeout=scaled(10))
            assert info["ok"], info
        self.pids.add(info["pid"])
        self.pids.update(w["pid"] for w in info["workers"])
        return info

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.infos()["workers"]]

    def log(self) -> str:
        try:
            return self.log_file.read_text()
        except FileNotFoundError:
            return "(no log file)"

    def wait_for(self, predicate: Any, seconds: float, what: str) -> Any:
        deadline = time.monotonic() + scaled(seconds)
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log()}")
            time.sleep(0.1)

    def cleanup(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(Exception):
                control.request(str(self.control_socket), "stop", timeout=scaled(5))
                deadline = time.monotonic() + scaled(15)
                while running_pid(str(self.pid_file)) is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.pids.add(self.master_pid())
        for pid in list(self.pids):
            self.pids.update(_children(pid))
        for pid in self.pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def temp_app_folder() -> Iterator[Path]:
    # A short path: Unix socket paths are limited to 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="tether-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app_folder() -> Iterator[Path]:
    with temp_app_folder() as folder:
        yield folder


@pytest.fixture
def instance(app_folder: Path) -> Iterator[Instance]:
    inst = Instance(app_folder)
    yield inst
    inst.cleanup()


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Instance]:
    """One instance with two workers for a whole module, for tests that only connect clients to it and
    compare counters before and after (starting and stopping one takes seconds)."""
    with temp_app_folder() as folder:
        inst = Instance(folder)
        try:
            inst.start("--workers", "2")
            yield inst
        finally:
            inst.cleanup()
