"""Tether under a process supervisor: examples/systemd/tether.service and examples/supervisor/tether.conf,
run as systemd and supervisord would run them (systemd itself cannot run in a container).

Each file is parsed, its paths moved from /srv/app and /run/tether into a temp folder, and then what it says
is done with real processes: the start command in the foreground (the supervisor owns the master), the
reload (ExecReload, or the HUP that ``supervisorctl signal HUP`` sends) must bring a new worker generation,
the stop signal must end the master with status 0 within TimeoutStopSec / stopwaitsecs and leave none of
the workers seen, and a worker crash loop must end the master with status 1, which both files restart on.
Under the unit (``Type=notify``) the test also plays systemd's notify socket: READY=1 once the workers
serve, RELOADING=1 then READY=1 around the reload, STOPPING=1 at the stop (tether.manager.sdnotify).
"""

from __future__ import annotations

import configparser
import os
import re
import resource
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import scaled
from tether.config import Config
from tether.manager import control

from .conftest import ROUTES, alive

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNIT = EXAMPLES / "systemd" / "tether.service"
PROGRAM = EXAMPLES / "supervisor" / "tether.conf"

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
workers = 1

[websocket]
route_file = "routes.py"
"""


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as ``{section: {key: [values in order]}}`` (keys such as Environment= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path}: continuation lines are not parsed here: {line}"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path}: {line} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not Key=Value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_program(path: Path) -> dict[str, str]:
    """The ``[program:tether]`` section of a supervisord file (supervisord reads it with ConfigParser too)."""
    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    return dict(parser["program:tether"])


@dataclass
class Service:
    """What a supervisor runs: the command, where, with which environment, and how it stops and reloads."""

    folder: Path
    command: list[str]
    cwd: Path
    env: dict[str, str]
    control_socket: Path
    pid_file: Path
    stop_signal: signal.Signals
    stop_wait: float
    reload_command: list[str] | None
    nofile: int | None = None
    notify: bool = False
    """``Type=notify``: the master is given a NOTIFY_SOCKET and must report on it."""
    pids: set[int] = field(default_factory=set)

    def popen(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the command as the supervisor does: its own session, the limits set before the exec
        (``prlimit`` execs the command: same pid), stderr (the master's log) to a file, not a pipe that
        nobody reads while the test runs."""
        command = self.command
        if self.nofile is not None:
            # Unprivileged, the test can only raise the soft limit up to the hard one.
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            soft = self.nofile if hard == resource.RLIM_INFINITY else min(self.nofile, hard)
            command = ["prlimit", f"--nofile={soft}:", "--", *command]
        with open(self.folder / "stderr.log", "w") as stderr:
            master = subprocess.Popen(
                command,
                cwd=self.cwd,
                env={**self.env, **(extra_env or {})},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # both supervisors give the service a session (group) of its own
            )
        self.pids.add(master.pid)
        return master

    def log(self) -> str:
        """What the master and its workers wrote to stderr (the journal, or supervisord's log file)."""
        return (self.folder / "stderr.log").read_text()

    def infos(self) -> dict[str, Any]:
        info = control.request(str(self.control_socket), "infos", timeout=scaled(10))
        assert info["ok"], info
        self.pids.update(w["pid"] for w in info["workers"])
        return info


def _moved(text: str, folder: Path) -> str:
    """A path of the example moved into the test's folder (the venv's tether for the app's)."""
    text = text.replace("/srv/app/.venv/bin/tether", str(Path(sys.executable).parent / "tether"))
    text = text.replace("/run/tether", str(folder / "runtime-dir"))
    return text.replace("/srv/app", str(folder))


def _base_env(folder: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TETHER_") or k.startswith("TETHER_TESTS_")
    }
    env["TETHER_RUNTIME_DIR"] = str(folder / "runtime")  # `infos --all`'s list: the test's own
    return env


def systemd_service(folder: Path) -> Service:
    service = parse_unit(UNIT)["Service"]
    env = _base_env(folder)
    for assignment in service.get("Environment", []):
        for pair in shlex.split(assignment):
            key, _, value = pair.partition("=")
            env[key] = _moved(value, folder)
    # RuntimeDirectory=tether: systemd creates /run/tether for User= with RuntimeDirectoryMode.
    (folder / "runtime-dir").mkdir(mode=int(service["RuntimeDirectoryMode"][-1], 8))
    nofile = service["LimitNOFILE"][-1]
    return Service(
        folder=folder,
        command=shlex.split(_moved(service["ExecStart"][-1], folder)),
        cwd=Path(_moved(service["WorkingDirectory"][-1], folder)),
        env=env,
        control_socket=Path(env["TETHER_SERVER_CONTROL_SOCKET"]),
        pid_file=Path(env["TETHER_SERVER_PID_FILE"]),
        stop_signal=signal.Signals[service.get("KillSignal", ["SIGTERM"])[-1]],
        stop_wait=float(service["TimeoutStopSec"][-1]),
        reload_command=shlex.split(_moved(service["ExecReload"][-1], folder)),
        nofile=int(nofile.partition(":")[0]),
        notify=service["Type"][-1] == "notify",
    )


def supervisord_service(folder: Path) -> Service:
    program = parse_program(PROGRAM)
    env = _base_env(folder)
    env.update((k, _moved(v, folder)) for k, v in re.findall(r'(\w+)="([^"]*)"', program["environment"]))
    return Service(
        folder=folder,
        command=shlex.split(_moved(program["command"], folder)),
        cwd=Path(_moved(program["directory"], folder)),
        env=env,
        control_socket=folder / "run" / "tether.sock",
        pid_file=folder / "run" / "tether.pid",
        stop_signal=signal.Signals["SIG" + program["stopsignal"]],
        stop_wait=float(program["stopwaitsecs"]),
        reload_command=None,  # `supervisorctl signal HUP tether`
    )


class NotifySocket:
    """systemd's side of sd_notify(3): a datagram socket at ``path``; each message a dict of its fields."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(scaled(30))

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def close(self) -> None:
        self.sock.close()


def _read_line(master: subprocess.Popen[str], seconds: float) -> str:
    assert master.stdout is not None
    ready, _, _ = select.select([master.stdout], [], [], scaled(seconds))
    return master.stdout.readline() if ready else ""


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + scaled(seconds)
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def app(app_folder: Path) -> Path:
    (app_folder / "routes.py").write_text(ROUTES)
    (app_folder / "tether.toml").write_text(CONFIG)
    return app_folder


def _kill_all(service: Service) -> None:
    for pid in service.pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_systemd_unit_says_what_the_master_does() -> None:
    unit = parse_unit(UNIT)
    service = unit["Service"]
    # The master runs in the foreground and never forks away: systemd's main pid is the master, which says
    # READY=1 when its workers serve.
    assert service["Type"] == ["notify"] and service.get("NotifyAccess", ["main"]) == ["main"]
    assert "-d" not in shlex.split(service["ExecStart"][0]) and "--daemon" not in service["ExecStart"][0]
    # SIGTERM to the master only; the master stops its workers over their channels.
    assert service["KillMode"] == ["mixed"] and "ExecStop" not in service
    defaults = Config.load(env={}).server
    assert float(service["TimeoutStopSec"][0]) > defaults.stop_timeout + defaults.stop_grace
    assert float(service["TimeoutStartSec"][0]) > defaults.worker_start_timeout
    assert service["Restart"] == ["on-failure"] and service["RestartPreventExitStatus"] == ["2"]
    assert service["RuntimeDirectory"] == ["tether"] and service["RuntimeDirectoryMode"] == ["0700"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]

    program = parse_program(PROGRAM)
    assert "-d" not in shlex.split(program["command"])
    assert float(program["stopwaitsecs"]) > defaults.stop_timeout + defaults.stop_grace
    # 1 (restart_max_failures) is unexpected and restarted; 0 (a stop) is not.
    assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0"
    assert program["stopasgroup"] == program["killasgroup"] == "false"


@pytest.mark.parametrize(
    "make_service", [systemd_service, supervisord_service], ids=["systemd", "supervisord"]
)
def test_start_reload_stop_as_the_supervisor_does(app: Path, make_service: Any) -> None:
    service: Service = make_service(app)
    notify = NotifySocket(app / "notify.sock") if service.notify else None
    master = service.popen({"NOTIFY_SOCKET": notify.path} if notify else None)
    try:
        line = _read_line(master, 30)
        assert "tether serving on" in line and "(1 worker," in line, (line, master.poll(), service.log())
        first = service.infos()
        assert first["pid"] == master.pid and first["generation"] == 1 and not first["daemon"]
        old = {w["pid"] for w in first["workers"]}
        if notify is not None:
            ready = notify.receive()
            assert ready["READY"] == "1" and ready["MAINPID"] == str(master.pid), ready
            assert ready["STATUS"].startswith("serving on http://127.0.0.1:"), ready
            assert ready["STATUS"].endswith(": 1 worker, generation 1"), ready
            # The variable was the master's alone: its workers never saw it.
            assert b"NOTIFY_SOCKET=" not in Path(f"/proc/{min(old)}/environ").read_bytes()
        if service.nofile is not None:
            # LimitNOFILE= reaches the workers, which hold the connections.
            limits = Path(f"/proc/{min(old)}/limits").read_text()
            soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
            assert soft == min(service.nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1])

        if service.reload_command is not None:
            reloaded = subprocess.run(
                service.reload_command,
                cwd=service.cwd,
                env=service.env,
                capture_output=True,
                text=True,
                timeout=scaled(60),
            )
            # Synchronous: done when it returns.
            assert reloaded.returncode == 0 and "tether reloaded in" in reloaded.stdout, reloaded
            assert "warning" not in reloaded.stderr, reloaded.stderr
        else:
            os.kill(master.pid, signal.SIGHUP)
        deadline = time.monotonic() + scaled(30)
        while True:
            second = service.infos()
            new = {w["pid"] for w in second["workers"]}
            if second["generation"] == 2 and not second["reloading"] and not new & old:
                break
            assert time.monotonic() < deadline, second
            time.sleep(0.1)
        assert len(new) == 1 and all(w["state"] == "ready" for w in second["workers"])
        assert not _wait_gone(old, 15), "old workers still running after the reload"
        if notify is not None:
            reloading = notify.receive()
            assert reloading["RELOADING"] == "1", reloading
            assert 0 <= time.monotonic_ns() // 1000 - int(reloading["MONOTONIC_USEC"]) < scaled(60) * 1e6
            ready = notify.receive()
            assert ready["READY"] == "1" and ready["STATUS"].endswith("generation 2"), ready

        started = time.monotonic()
        os.kill(master.pid, service.stop_signal)
        code = master.wait(service.stop_wait)
        took = time.monotonic() - started
        assert code == 0, service.log()
        assert took < service.stop_wait
        assert not _wait_gone(service.pids, 5), "a worker outlived its master"
        assert not service.pid_file.exists() and not service.control_socket.exists()
        if notify is not None:
            assert notify.receive() == {"STOPPING": "1", "STATUS": "stopping"}
    finally:
        _kill_all(service)
        master.wait(scaled(5))
        if notify is not None:
            notify.close()


def test_a_crash_loop_ends_with_the_status_systemd_restarts_on(app: Path) -> None:
    marker = app / "database-down"
    (app / "routes.py").write_text(
        f"import os\nif os.path.exists({str(marker)!r}):\n    raise SystemExit(3)\n" + ROUTES
    )
    service = systemd_service(app)
    quick = {
        "TETHER_SERVER_RESTART_MAX_FAILURES": "2",
        "TETHER_SERVER_RESTART_BACKOFF_MIN": "0.05",
        "TETHER_SERVER_RESTART_BACKOFF_MAX": "0.1",
        "TETHER_SERVER_STOP_TIMEOUT": "1",
    }
    master = service.popen(quick)
    try:
        assert "tether serving on" in _read_line(master, 30)
        victim = service.infos()["workers"][0]["pid"]
        marker.write_text("")
        os.kill(victim, signal.SIGKILL)  # then its restart exits at import: two deaths in a row
        code = master.wait(scaled(20))
    finally:
        _kill_all(service)
        master.wait(scaled(5))
    err = service.log()
    assert code == 1, err
    assert "not restarting it (server.restart_max_failures = 2): stopping the instance, exit status 1" in err
    unit = parse_unit(UNIT)["Service"]
    # Restart=on-failure restarts on a non-zero exit status, unless RestartPreventExitStatus names it.
    assert str(code) not in unit["RestartPreventExitStatus"][0].split()
    assert str(code) not in parse_program(PROGRAM)["exitcodes"].split(",")
    assert not _wait_gone(service.pids, 5), "a worker outlived its master"
