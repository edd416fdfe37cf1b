"""The commands that talk to a running instance: ``tether stop|restart|reload|infos``.

Each finds the instance from the same arguments it was started with: the pid file and the control socket
are ``[server] pid_file`` and ``control_socket``, relative to the config file's folder (see
:class:`~tether.manager.paths.RunPaths`), and asks its master over the control socket.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from typing import Any
from urllib.parse import urlsplit

from ..config import DEFAULTS_SOURCE, Config
from ..config.sections import SECTIONS
from ..errors import ConfigError
from . import registry
from .control import ControlError, request
from .flags import CONFIG_HERE, config_path, err, flag_overrides, load_config
from .infos import render_instances, render_table
from .paths import RunPaths, instance_name
from .pidfile import running_pid
from .runfiles import check_folder, is_master

__all__ = ["cmd_infos", "cmd_infos_all", "cmd_reload", "cmd_restart", "cmd_stop"]


def _paths(args: argparse.Namespace) -> tuple[RunPaths, float]:
    """Where the instance of ``--config`` keeps its files, and how long its stop may take (``stop_timeout``
    plus ``stop_grace``, in seconds).

    A config file that no longer loads (edited since the start) must not prevent ``stop``: the paths are
    then read from its ``[server]`` table as is.
    """
    try:
        config = load_config(args)
        return RunPaths.from_config(config), config.server.stop_timeout + config.server.stop_grace
    except ConfigError as exc:
        print(f"tether: warning: {exc}; reading [server] paths only", file=sys.stderr)
    path = config_path(args)
    server: dict[str, Any] = {}
    base = os.getcwd()
    if path:
        base = os.path.dirname(os.path.abspath(path))
        try:
            with open(path, "rb") as f:
                server = dict(tomllib.load(f).get("server", {}))
        except (OSError, tomllib.TOMLDecodeError):
            server = {}
    server.update(flag_overrides(args).get("server", {}))
    defaults = Config().server

    def value(key: str) -> Any:
        return os.environ.get(f"TETHER_SERVER_{key.upper()}") or server.get(key) or getattr(defaults, key)

    try:
        port = int(value("port"))
    except ValueError:
        port = defaults.port
    paths = RunPaths.derive(
        instance_name(path, port),
        base,
        str(value("pid_file")),
        str(value("log_file")),
        str(value("control_socket")),
    )
    timeout = float(server.get("stop_timeout", defaults.stop_timeout))
    return paths, timeout + float(server.get("stop_grace", defaults.stop_grace))


def _not_running(paths: RunPaths, args: argparse.Namespace) -> int:
    """Say where we looked and, when no config was named, how to point at an instance (and which exist)."""
    err(f"not running (no live master holds {paths.pid_file})")
    _where_else(args)
    return 1


def _where_else(args: argparse.Namespace) -> None:
    """When no config was named: how to point at another instance, and which instances of this user run.
    When one was: whether a master serves that config with run files named at its start (a systemd unit's
    ``TETHER_SERVER_PID_FILE``), and the flags that reach it."""
    named = config_path(args)
    if named is not None:
        for entry in _serving_config(named):
            err(
                f"  but pid {entry['pid']} serves {named} with the pid file {entry['pid_file']} (named at "
                f"its start, e.g. in a systemd unit's Environment=): `tether {args.command} -c {named} "
                f"--pid-file {entry['pid_file']} --control-socket {entry['control_socket']}`, or set "
                "[server] pid_file and control_socket in the config file"
            )
    else:
        err(
            f"  no --config given and TETHER_CONFIG is not set, so this looked for an instance started in "
            f"{os.getcwd()} without a config file;\n  point at an instance with `-c FILE` "
            "(or TETHER_CONFIG=FILE)"
        )
        if os.path.isfile(CONFIG_HERE):
            err(
                f"  {CONFIG_HERE} is here, but a config file is read only when named: "
                f"`tether {args.command} -c {CONFIG_HERE}`"
            )
        live = registry.entries()
        if live:
            err("  instances of this user (tether infos --all):")
            for entry in live:
                err(f"    pid {entry['pid']}  {entry['listen']}  {_pointer(entry)}")


def _serving_config(named: str) -> list[dict[str, Any]]:
    """The live instances of this user (the registry) started with the config file ``named``."""
    config = os.path.realpath(named)
    return [e for e in registry.entries() if os.path.realpath(str(e["config"])) == config]


def _pointer(entry: dict[str, Any]) -> str:
    """The flags that point a command at a registry entry: its config file; for an instance started without
    one from the current folder, ``--port P`` as it was started (docs/cli.md); else its pid file and control
    socket (their names depend on the folder and the port it was started with)."""
    if entry["config"] != DEFAULTS_SOURCE:
        return f"-c {entry['config']}"
    try:
        listening = urlsplit(str(entry["listen"])).port
    except ValueError:
        listening = None
    # Started with --port 0 it is named for port 0 (run/tether.pid), not for the port it got.
    for port in (listening, 0):
        if port is None:
            continue
        here = RunPaths.derive(instance_name(None, port), os.getcwd(), "", "", "")
        if (here.pid_file, here.control_socket) == (entry["pid_file"], entry["control_socket"]):
            return f"--port {port}"
    return f"--pid-file {entry['pid_file']} --control-socket {entry['control_socket']}"


def _unanswered(paths: RunPaths, args: argparse.Namespace, exc: ControlError) -> int:
    """The control socket did not answer: say whether nothing runs, a master is starting, or what failed."""
    pid = running_pid(paths.pid_file)
    if pid is None:
        return _not_running(paths, args)
    if pid < 0:
        err(f"a master is starting ({paths.pid_file} is locked, no pid yet); try again in a moment")
    else:
        err(str(exc))
    return 1


def _socket_beside_pid_file(paths: RunPaths, args: argparse.Namespace) -> RunPaths:
    """``--pid-file run/X.pid`` alone points at the instance whose control socket is ``run/X.sock`` (the
    default names go in pairs): used when that socket exists and the one otherwise derived does not, so
    that ``tether stop --pid-file run/tether-9623.pid`` asks that master rather than ``tether-9501.sock``."""
    if not getattr(args, "pid_file", None) or getattr(args, "control_socket", None):
        return paths
    if os.environ.get("TETHER_SERVER_CONTROL_SOCKET"):
        return paths
    beside = os.path.splitext(paths.pid_file)[0] + ".sock"
    if beside == paths.control_socket or os.path.exists(paths.control_socket) or not os.path.exists(beside):
        return paths
    return dataclasses.replace(paths, control_socket=beside)


def _client_paths(args: argparse.Namespace) -> tuple[RunPaths, float] | None:
    """The instance's paths and stop time (see :func:`_paths`), or None (said why) when its run folder is
    unsafe: a folder another account can write to may hold a planted pid file or control socket."""
    paths, stop_timeout = _paths(args)
    paths = _socket_beside_pid_file(paths, args)
    for folder in paths.folders:
        try:
            check_folder(folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            err(f"refusing an unsafe run folder: {exc}")
            return None
    return paths, stop_timeout


def _stop(paths: RunPaths, force: bool, wait: float, args: argparse.Namespace) -> tuple[int, int | None]:
    """Ask the master to stop and wait until it is gone; returns (exit status, master pid)."""
    try:
        reply = request(paths.control_socket, "stop", force=force)
        pid: int | None = int(reply["pid"])
        forced = bool(reply.get("forced"))
    except ControlError as exc:
        pid = running_pid(paths.pid_file)
        if pid is None:
            return _not_running(paths, args), None
        if pid < 0:
            err(f"a master is starting ({paths.pid_file} is locked, no pid yet) and {exc}; try again")
            return 1, None
        if not is_master(pid, paths.pid_file):
            # A pid file naming a process that does not hold it open is no proof: never signal it.
            err(
                f"{exc}; and pid {pid} (from {paths.pid_file}) is not a tether master holding that file: "
                "not signalled"
            )
            return 1, None
        forced = force
        err(f"{exc}; sending {'SIGKILL' if force else 'SIGTERM'} to pid {pid}")
        os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    print(f"tether: {'forcing' if forced else 'stopping'} pid {pid}...", flush=True)
    deadline = time.monotonic() + wait
    while running_pid(paths.pid_file) is not None:
        if time.monotonic() > deadline:
            err(f"pid {pid} still running after {wait:g}s; run `tether stop` again to force it")
            return 1, pid
        time.sleep(0.05)
    print(f"tether stopped (pid {pid})", flush=True)
    return 0, pid


def cmd_stop(args: argparse.Namespace) -> int:
    found = _client_paths(args)
    if found is None:
        return 1
    paths, stop_timeout = found
    wait = args.wait if args.wait is not None else stop_timeout + 5
    return _stop(paths, args.force, wait, args)[0]


# Variables that point a command at an instance (docs/cli.md: `TETHER_SERVER_PORT=9623 tether reload`), not
# config the caller means to change.
_POINTERS = ("TETHER_SERVER_PORT", "TETHER_SERVER_PID_FILE", "TETHER_SERVER_CONTROL_SOCKET")


def _unapplied_variables(started_with: dict[str, str]) -> None:
    """Warn about config variables set here that the instance was not started with.

    ``TETHER_SESSION_IDLE_TIMEOUT=30 tether reload`` reloaded with the start's environment and said nothing:
    reload and restart reuse the ``TETHER_*`` variables of the start (docs/process-model.md), so a value
    set in the caller's shell is not applied. Names only: a value may be a secret.
    """
    names = sorted(
        name
        for name, value in os.environ.items()
        if name.startswith("TETHER_")
        and name[len("TETHER_") :].lower().split("_", 1)[0] in SECTIONS
        and name not in _POINTERS
        and started_with.get(name) != value
    )
    if names:
        err(
            f"warning: not applied: {', '.join(names)} (set here, not so at the start): reload and restart "
            "keep the environment the instance was started with; `tether stop` then `tether start` with "
            "them, or put them in the config file"
        )


def cmd_reload(args: argparse.Namespace) -> int:
    found = _client_paths(args)
    if found is None:
        return 1
    paths, stop_timeout = found
    with contextlib.suppress(ControlError):  # an unreachable instance is reported by the reload request
        _unapplied_variables(request(paths.control_socket, "launch").get("env") or {})
    try:
        # Workers start one by one on a reload: allow for several slow ones, then the old ones' drain.
        reply = request(paths.control_socket, "reload", timeout=stop_timeout + 600)
    except ControlError as exc:
        return _unanswered(paths, args, exc)
    if not reply.get("ok"):
        err(f"reload failed: {reply.get('error')}")
        return 1
    new = ", ".join(map(str, reply["workers"]))
    old = ", ".join(map(str, reply["replaced"]))
    print(
        f"tether reloaded in {reply['seconds']:.2f}s: generation {reply['generation']}, "
        f"workers {new} (replaced {old})"
    )
    for warning in reply.get("warnings", ()):
        err(f"warning: {warning}")
    return 0


def cmd_infos_all(args: argparse.Namespace) -> int:
    """``tether infos --all``: one line per live instance of this user (or a JSON list)."""
    folder = registry.runtime_dir()
    rows: list[dict[str, Any]] = []
    for entry in registry.entries():
        try:
            info = request(str(entry["control_socket"]), "infos", timeout=5)
        except ControlError as exc:
            info = {"ok": False, "error": str(exc)}
        rows.append({**entry, "infos": info})
    if args.json:
        print(json.dumps(rows, indent=2), flush=True)
        return 0
    if not rows:
        print(f"no tether instance of this user is running (looked in {folder})", flush=True)
        return 0
    print(render_instances(rows), flush=True)
    return 0


def cmd_infos(args: argparse.Namespace) -> int:
    if args.all:
        return cmd_infos_all(args)
    found = _client_paths(args)
    if found is None:
        return 1
    paths, _ = found
    try:
        reply = request(paths.control_socket, "infos")
    except ControlError as exc:
        if args.json:
            # `tether infos --json | jq .ok` read nothing: a script gets an answer it can parse (the reasons
            # still go to stderr). "starting": a master holds the pid file but has no pid in it yet.
            pid = running_pid(paths.pid_file)
            state = "not running" if pid is None else "starting" if pid < 0 else "not answering"
            print(json.dumps({"ok": False, "state": state, "pid_file": paths.pid_file}), flush=True)
        return _unanswered(paths, args, exc)
    if args.json:
        print(json.dumps(reply, indent=2), flush=True)
    else:
        print(render_table(reply), flush=True)
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    found = _client_paths(args)
    if found is None:
        return 1
    paths, stop_timeout = found
    try:
        launch = request(paths.control_socket, "launch")
    except ControlError as exc:
        if running_pid(paths.pid_file) is not None:
            return _unanswered(paths, args, exc)  # a master starting, or one that did not answer
        return _start_stopped(paths, args)
    _unapplied_variables(launch.get("env") or {})
    argv = list(launch["argv"])
    if "-d" not in argv and "--daemon" not in argv:
        argv.insert(1, "-d")  # restart returns: the new instance runs in the background
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(launch["env"])
    # A config or route file broken since the start would fail the new start after the stop, leaving no
    # service (apachectl restart checks first too): check it as the new start will, before stopping.
    check = [sys.executable, "-m", "tether", "start", "--check", *argv[1:]]
    checked = subprocess.run(check, cwd=launch["cwd"], env=env, stdout=subprocess.DEVNULL)
    if checked.returncode:
        err(
            f"not restarting: the new start would fail (above); the running instance (pid {launch['pid']}) "
            "keeps serving"
        )
        return checked.returncode
    wait = args.wait if args.wait is not None else stop_timeout + 5
    code, _ = _stop(paths, False, wait, args)
    if code:
        return code
    print(f"tether: starting again: tether {' '.join(argv)}", flush=True)
    return subprocess.call([sys.executable, "-m", "tether", *argv], cwd=launch["cwd"], env=env)


# restart's flags that name the instance, passed on to the start of a stopped one.
_INSTANCE_FLAGS = (("--config", "config"), ("--pid-file", "pid_file"), ("--control-socket", "control_socket"))


def _start_stopped(paths: RunPaths, args: argparse.Namespace) -> int:
    """``restart`` of an instance that is not running starts it, as systemd's ``restart`` and
    laravel-swoole's ``swoole:http restart`` do: ``tether start -d`` with the flags that named the instance
    (its ``TETHER_*`` variables are inherited). Returns start's exit status."""
    named = config_path(args)
    if named is not None and _serving_config(named):
        # Its master runs with other run files: a second start would only fail on the port it holds.
        err(f"not restarting: no live master holds {paths.pid_file}")
        _where_else(args)
        return 1
    argv = ["start", "-d"]
    for flag, attr in _INSTANCE_FLAGS:
        value = getattr(args, attr, None)
        if value is not None:
            argv += [flag, str(value)]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    print(
        f"tether: not running (no live master holds {paths.pid_file}): starting it:"
        f" tether {shlex.join(argv)}",
        flush=True,
    )
    _where_else(args)
    return subprocess.call([sys.executable, "-m", "tether", *argv])
