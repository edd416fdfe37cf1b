"""The real ``tether`` CLI as a subprocess: start, infos, stop, restart, refusals, failures, signals."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest
import socketio

from tests.helpers import scaled
from tether.manager.start import listen_problem

from .conftest import Instance, alive


async def _client(url: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=["websocket"], wait_timeout=scaled(5))
    return client


async def test_start_infos_stop(instance: Instance) -> None:
    proc = instance.start("--workers", "2")
    assert f"pid file:       {instance.pid_file}" in proc.stdout
    assert f"log file:       {instance.log_file}" in proc.stdout
    assert instance.url.startswith("http://127.0.0.1:")
    master = instance.master_pid()
    assert alive(master)

    clients = [await _client(instance.url) for _ in range(5)]
    for c in clients:
        await c.call("join", "room-a", timeout=scaled(5))
    info = instance.infos(cli=True)
    assert info["pid"] == master
    assert info["config"] == str(instance.config)
    assert info["listen"] == instance.url
    assert len(info["workers"]) == 2
    assert all(w["state"] == "ready" and w["rss"] > 1_000_000 for w in info["workers"])
    assert all(alive(w["pid"]) for w in info["workers"])
    assert info["totals"]["connections"] == 5
    assert sum(w["connections"] for w in info["workers"]) == 5
    assert info["totals"]["sockets"] == 5
    assert 1 <= info["totals"]["rooms"] <= 2  # room-a, counted once per worker that has members in it
    assert info["totals"]["events_in"] >= 5
    assert info["tcp"]["LISTEN"] == 1
    assert info["tcp"]["ESTABLISHED"] >= 5

    table = instance.cli("infos", check=True).stdout
    assert f"master pid {master}" in table
    assert "SLOT" in table and "CONN" in table and "RSS" in table and "RESTARTS" in table
    for w in info["workers"]:
        assert str(w["pid"]) in table
    assert re.search(r"TCP port \d+: .*ESTABLISHED \d+", table), table
    assert re.search(r"^total\s+2 up\s+5\s", table, re.M), table
    # Metrics are off the public port by default: the table says so, and how to turn them on.
    assert info["metrics"] is None and info["metrics_on_port"] is None
    assert "metrics   not served ([metrics] listen or key serves them" in table

    for c in clients:
        await c.disconnect()
    workers = [w["pid"] for w in info["workers"]]
    proc = instance.cli("stop", check=True)
    assert f"tether stopped (pid {master})" in proc.stdout
    assert not instance.pid_file.exists()
    assert not instance.control_socket.exists()
    assert not any(alive(pid) for pid in [master, *workers])
    assert not list(instance.run_dir.glob("tether.sock*"))

    proc = instance.cli("stop")
    assert proc.returncode == 1 and "not running" in proc.stderr
    proc = instance.cli("infos")
    assert proc.returncode == 1 and "not running" in proc.stderr


def test_start_twice_is_refused_and_a_stale_pid_file_is_replaced(instance: Instance) -> None:
    instance.start("--workers", "1")
    master = instance.master_pid()
    proc = instance.cli("start", "-d")
    assert proc.returncode == 1
    assert f"already running (pid {master}" in proc.stderr and "tether stop" in proc.stderr
    assert instance.master_pid() == master
    instance.cli("stop", check=True)

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    instance.run_dir.mkdir(exist_ok=True)
    instance.pid_file.write_text(f"{dead.pid}\n")
    proc = instance.start("--workers", "1")
    assert f"replaced a stale pid file ({instance.pid_file}: pid {dead.pid} is not running)" in proc.stdout
    assert instance.master_pid() != dead.pid


def test_start_fails_before_forking(instance: Instance) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = instance.cli("start", "-d", "--port", str(port))
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert f"`ss -ltnp 'sport = :{port}'` names it" in proc.stderr, proc.stderr
    assert not instance.pid_file.exists()

    instance.config.write_text(instance.config.read_text() + "\n[limits]\nmax_conections = 5\n")
    proc = instance.cli("start", "-d")
    assert proc.returncode == 2
    assert "limits.max_conections: unknown key" in proc.stderr
    assert not instance.pid_file.exists()

    instance.config.write_text(instance.config.read_text().replace("max_conections", "max_connections"))
    instance.routes.write_text("from tether import websocket\nraise RuntimeError('the database is down')\n")
    proc = instance.cli("start", "-d")
    assert proc.returncode == 2
    assert "RuntimeError: the database is down" in proc.stderr
    assert not instance.pid_file.exists()
    assert not instance.log_file.exists()  # nothing was forked, nothing logged


def test_workers_stop_when_the_master_is_killed(instance: Instance) -> None:
    instance.start()
    info = instance.infos()
    os.kill(info["pid"], signal.SIGKILL)
    workers = [w["pid"] for w in info["workers"]]
    instance.wait_for(lambda: not any(alive(pid) for pid in workers), 10, "orphaned workers to exit")
    assert "the master is gone" in instance.log()
    proc = instance.start()  # the pid file is stale now, and the port is free again
    assert "replaced a stale pid file" in proc.stdout


async def test_restart_uses_the_same_arguments(instance: Instance) -> None:
    instance.start("--workers", "1")
    old = instance.infos()
    proc = instance.cli("restart", check=True)
    assert "start -d --workers 1" in proc.stdout
    assert not alive(old["pid"])
    new = instance.infos()
    instance.pids.add(new["pid"])
    assert new["pid"] != old["pid"]
    assert len(new["workers"]) == 1
    client = await _client(new["listen"])
    assert await client.call("echo", "after restart", timeout=scaled(5)) == "after restart"
    await client.disconnect()


async def test_restart_checks_the_new_start_before_stopping(instance: Instance) -> None:
    """A config or route file broken since the start: ``restart`` stopped the instance, then its start
    failed, leaving nothing serving. It now runs ``start --check`` first and keeps the old one."""
    instance.start("--workers", "1")
    old = instance.infos()
    good = instance.cli("start", "--check")
    assert good.returncode == 0 and "check passed" in good.stdout, good.stderr
    assert instance.infos()["pid"] == old["pid"]  # --check started nothing and took no run file
    text = instance.config.read_text()
    instance.config.write_text(text + "\n[limits]\nmax_conections = 1\n")
    try:
        bad = instance.cli("start", "--check")
        assert bad.returncode == 2 and "limits.max_conections: unknown key" in bad.stderr, bad.stderr
        refused = instance.cli("restart")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "limits.max_conections: unknown key" in refused.stderr
        expected = (
            f"not restarting: the new start would fail (above); the running instance (pid {old['pid']})"
        )
        assert f"{expected} keeps serving" in refused.stderr and "stopping" not in refused.stdout
        assert alive(old["pid"]) and instance.infos()["pid"] == old["pid"]
    finally:
        instance.config.write_text(text)
    routes = instance.routes.read_text()
    instance.routes.write_text(routes + "\nraise RuntimeError('broken since the start')\n")
    try:
        refused = instance.cli("restart")
        assert refused.returncode == 2 and "broken since the start" in refused.stderr, refused.stderr
        assert alive(old["pid"])
    finally:
        instance.routes.write_text(routes)
    client = await _client(old["listen"])
    assert await client.call("echo", "still serving", timeout=scaled(5)) == "still serving"
    await client.disconnect()


async def test_restart_checks_the_new_port_before_stopping(instance: Instance) -> None:
    """The config now names a port another program holds: the start after the stop failed on it, leaving
    nothing serving. ``start --check`` now tries binding it (unless the running instance holds it)."""
    instance.start("--workers", "1")
    old = instance.infos()
    text = instance.config.read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        instance.config.write_text(text.replace("port = 0", f"port = {port}"))
        try:
            bad = instance.cli("start", "--check")
            assert bad.returncode == 2, bad.stdout + bad.stderr
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in bad.stderr
            refused = instance.cli("restart")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in refused.stderr
            assert "stop it, or choose another port: [server] port, --port" in refused.stderr, refused.stderr
            expected = f"the running instance (pid {old['pid']}) keeps serving"
            assert expected in refused.stderr and "stopping" not in refused.stdout, refused.stderr
            assert alive(old["pid"]) and instance.infos()["pid"] == old["pid"]
            # The port the running instance holds is no problem: a restart frees it before the start.
            instance.config.write_text(text.replace("port = 0", f"port = {old['port']}"))
            own = instance.cli("start", "--check")
            assert own.returncode == 0 and "check passed" in own.stdout, own.stderr
        finally:
            instance.config.write_text(text)
    instance.config.write_text(text.replace("port = 0", f"port = {port}"))  # free again: the check passes
    try:
        freed = instance.cli("start", "--check")
        assert freed.returncode == 0 and "check passed" in freed.stdout, freed.stderr
    finally:
        instance.config.write_text(text)
    client = await _client(old["listen"])
    assert await client.call("echo", "still serving", timeout=scaled(5)) == "still serving"
    await client.disconnect()


def test_reload_and_restart_say_which_variables_they_do_not_apply(instance: Instance) -> None:
    """``TETHER_WEBSOCKET_PING_INTERVAL=7 tether reload`` reloaded with the start's environment, silently."""
    instance.start("--workers", "1")

    def run(command: str, **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tether", command, "--config", str(instance.config)],
            cwd=instance.folder,
            env={**instance.env(), **variables},
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )

    secret = "s" * 40
    # logrotate's copytruncate (docs/cli.md): the daemon's log written after a truncation starts at the
    # new end (O_APPEND), not at the old offset after a hole of NULs.
    assert instance.log_file.stat().st_size > 0
    instance.log_file.write_bytes(b"")
    reloaded = run("reload", TETHER_WEBSOCKET_PING_INTERVAL="7", TETHER_API_KEY=secret)
    assert reloaded.returncode == 0, reloaded.stderr
    rotated = instance.log_file.read_bytes()
    assert rotated and b"\0" not in rotated and b"reload" in rotated, rotated[:200]
    expected = (
        "warning: not applied: TETHER_API_KEY, TETHER_WEBSOCKET_PING_INTERVAL (set here, not so at the start)"
    )
    assert expected in reloaded.stderr and secret not in reloaded.stderr, reloaded.stderr
    assert "not applied" not in run("reload", TETHER_SERVER_PORT="0").stderr  # a pointer, not config
    restarted = run("restart", TETHER_WEBSOCKET_PING_INTERVAL="7")
    assert restarted.returncode == 0, restarted.stderr
    assert "not applied: TETHER_WEBSOCKET_PING_INTERVAL (set here" in restarted.stderr
    instance.pids.add(instance.master_pid())


async def test_restart_starts_a_stopped_instance(app_folder) -> None:  # type: ignore[no-untyped-def]
    """``restart`` of an instance that is not running starts it (systemd's and laravel-swoole's restart),
    in the background, with the flags that named it, and says it was not running."""
    instance = Instance(app_folder, workers=1)
    try:
        proc = instance.cli("restart", check=True)
        assert f"not running (no live master holds {instance.pid_file}): starting it" in proc.stdout
        assert f"tether start -d --config {instance.config}" in proc.stdout
        match = re.search(r"started on (http://\S+)", proc.stdout)
        assert match, proc.stdout
        instance.pids.add(instance.master_pid())
        assert len(instance.infos()["workers"]) == 1
        client = await _client(match.group(1))
        assert await client.call("echo", "started by restart", timeout=scaled(5)) == "started by restart"
        await client.disconnect()
    finally:
        instance.cleanup()


async def test_stop_waits_for_handlers_and_a_second_stop_forces(app_folder) -> None:  # type: ignore[no-untyped-def]
    instance = Instance(app_folder, workers=1, stop_timeout=30)
    try:
        instance.start()
        workers = instance.worker_pids()
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(instance.url, transports=["websocket"], wait_timeout=scaled(5))
        await client.emit("slow", 60)  # a handler that outlives any patience
        await client.call("echo", 1, timeout=scaled(5))
        proc = instance.cli("stop", "--wait", "1.5")
        assert proc.returncode == 1 and "still running" in proc.stderr and "again to force" in proc.stderr
        assert alive(instance.master_pid())
        started = time.monotonic()
        proc = instance.cli("stop", check=True)
        assert "forcing" in proc.stdout
        # Far below what a graceful stop would take (the 30 s stop_timeout, the 60 s handler); the time
        # includes the CLI's own interpreter start, which took 5.5 s on a loaded machine.
        assert time.monotonic() - started < scaled(15)
        assert not any(alive(pid) for pid in workers)
        assert not instance.pid_file.exists()
        assert "forced stop" in instance.log()
        await client.disconnect()
    finally:
        instance.cleanup()


async def test_foreground_signals(instance: Instance) -> None:
    env = instance.env()
    # Metrics on their own listener (port 0: a free one, read back from infos), off the service port.
    instance.config.write_text(instance.config.read_text() + '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "start", "--workers", "1", "--config", str(instance.config)],
        cwd=instance.folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    instance.pids.add(proc.pid)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "tether serving on http://127.0.0.1:" in line, line + (
            proc.stderr.read() if proc.stderr else ""
        )
        url = line.split()[3]
        assert instance.master_pid() == proc.pid
        first = instance.infos()

        def done(generation: int) -> bool:
            # Done, not just started: a signal during a reload is refused ("a reload is already in progress").
            info = instance.infos()
            return bool(info["generation"] == generation and not info["reloading"])

        proc.send_signal(signal.SIGHUP)
        instance.wait_for(lambda: done(2), 20, "SIGHUP reload")
        proc.send_signal(signal.SIGUSR1)
        instance.wait_for(lambda: done(3), 20, "SIGUSR1 reload")
        third = instance.infos()
        assert not {w["pid"] for w in first["workers"]} & {w["pid"] for w in third["workers"]}
        metrics_url = third["metrics"]
        assert metrics_url.startswith("http://127.0.0.1:") and metrics_url.endswith("/metrics")
        assert f"metrics   {metrics_url}" in instance.cli("infos", check=True).stdout
        async with aiohttp.ClientSession() as http:
            async with http.get(metrics_url) as resp:
                assert resp.status == 200 and "tether_reloads_total 2.0" in await resp.text()
            async with http.get(url + "/metrics") as resp:
                assert resp.status == 404  # not on the service port
        proc.send_signal(signal.SIGINT)
        assert proc.wait(scaled(20)) == 0
        assert not instance.pid_file.exists()
        assert not any(alive(w["pid"]) for w in third["workers"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_not_running_and_bad_requests(instance: Instance) -> None:
    for command in ("stop", "reload", "infos"):
        proc = instance.cli(command)
        assert proc.returncode == 1, command
        assert "not running" in proc.stderr, (command, proc.stderr)
    # `tether infos --json | jq .ok`: an answer a script can parse, exit status 1 as without --json.
    proc = instance.cli("infos", "--json")
    assert proc.returncode == 1 and "not running" in proc.stderr
    assert json.loads(proc.stdout) == {
        "ok": False,
        "state": "not running",
        "pid_file": str(instance.pid_file),
    }
    env = dict(instance.env(), TETHER_SERVER_WORKERS="-1")
    proc = subprocess.run(
        [sys.executable, "-m", "tether", "start", "--config", str(instance.config)],
        cwd=instance.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert proc.returncode == 2 and "TETHER_SERVER_WORKERS: server.workers: must be >= 0" in proc.stderr
    assert not os.path.exists(instance.pid_file)


def test_listen_problem_says_what_to_do() -> None:
    """The bind failures an operator can act on carry how; others are the system's reason alone."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as second, pytest.raises(OSError) as in_use:
            second.bind(("127.0.0.1", port))
    line = listen_problem("127.0.0.1", port, in_use.value)
    assert line.startswith(f"cannot listen on 127.0.0.1:{port}: Address already in use (another program")
    assert f"`ss -ltnp 'sport = :{port}'`" in line and "`tether infos --all`" in line
    # 192.0.2.1 (TEST-NET-1) is no interface's address: the reason alone, no advice that does not apply.
    with socket.socket() as nowhere, pytest.raises(OSError) as not_here:
        nowhere.bind(("192.0.2.1", 0))
    assert listen_problem("192.0.2.1", 9501, not_here.value) == (
        f"cannot listen on 192.0.2.1:9501: {not_here.value.strerror}"
    )
    # EACCES as an unprivileged user gets it below 1024 (this test may run as root, which never does).
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES))
    assert "CAP_NET_BIND_SERVICE" in listen_problem("0.0.0.0", 1023, denied)
    assert listen_problem("0.0.0.0", 1024, denied) == "cannot listen on 0.0.0.0:1024: Permission denied"


# What the commands that only talk to a running instance must not import: the server and its transports,
# the cluster, asyncio (0.3 s of a 0.4 s `import tether.cli` when the package imported them all).
SERVER_STACK = (
    "asyncio",
    "picows",
    "httptools",
    "orjson",
    "prometheus_client",
    "tether.server",
    "tether.cluster",
    "tether.namespace",
    "tether.context",
    "tether.manager.master",
    "tether.manager.start",
)

# `tether ARGS` as `python -m tether` runs it, then the modules it imported, as JSON, into the file argv[1].
_CLI_THEN_MODULES = """
import json, sys
from tether.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(sorted(sys.modules), f)
raise SystemExit(code)
"""


def _cli_modules(instance: Instance, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    out = instance.folder / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_THEN_MODULES, str(out), *args, "--config", str(instance.config)],
        cwd=instance.folder,
        env=instance.env(),
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    loaded: list[str] = json.loads(out.read_text())
    out.unlink()
    return proc, loaded


def _server_stack(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m in SERVER_STACK or m.startswith(tuple(f"{s}." for s in SERVER_STACK))]


def test_commands_that_do_not_serve_do_not_import_the_server(instance: Instance) -> None:
    proc, loaded = _cli_modules(instance, "infos")
    assert proc.returncode == 1 and "not running" in proc.stderr
    assert _server_stack(loaded) == []
    instance.start("--workers", "1")
    master = instance.master_pid()
    proc, loaded = _cli_modules(instance, "infos", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pid"] == master
    assert _server_stack(loaded) == []
    proc, loaded = _cli_modules(instance, "reload")
    assert proc.returncode == 0, proc.stderr + instance.log()
    assert _server_stack(loaded) == []
    proc, loaded = _cli_modules(instance, "stop")
    assert proc.returncode == 0 and f"tether stopped (pid {master})" in proc.stdout, proc.stderr
    assert _server_stack(loaded) == []
    assert not alive(master)
    # The check is not empty-handed: `start --check` loads the app, and imports them all.
    proc, loaded = _cli_modules(instance, "start", "--check")
    assert proc.returncode == 0, proc.stderr
    served = {"asyncio", "picows", "tether.server.server", "tether.manager.master"}
    assert served <= set(_server_stack(loaded))
