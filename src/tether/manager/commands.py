"""The service commands: ``tether start|stop|restart|reload|infos``. Flags -> Config -> Master.

Every command takes ``--config FILE`` (env ``TETHER_CONFIG``) and finds a running instance from it: the pid
file and the control socket are ``[server] pid_file`` and ``control_socket``, relative to the config file's
folder. Every other flag has a ``TETHER_*`` variable too (listed in each flag's help and in docs/cli.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from typing import Any

from .. import logs
from ..config import Config
from ..errors import ConfigError
from ..router import describe_import_error
from . import registry
from .control import ControlError, request
from .infos import render_instances, render_table
from .master import Launch, Master, n_workers, worker_count
from .module_state import warning_text
from .paths import RunPaths, instance_name
from .pidfile import AlreadyRunning, PidFile, describe, running_pid
from .runfiles import UnsafeRunFile, check_folder, is_master, open_run_file

__all__ = ["COMMANDS", "add_subcommands", "load_config", "run"]

COMMANDS = ("start", "stop", "restart", "reload", "infos")

LOG_FORMAT = "%(asctime)s %(levelname)s [master pid %(process)d] %(name)s: %(message)s"

# flag -> (section, key): these flags override the config file, like TETHER_SECTION_KEY does.
_FLAG_KEYS = (
    ("host", "server", "host"),
    ("port", "server", "port"),
    ("workers", "server", "workers"),
    ("log_level", "server", "log_level"),
    ("pid_file", "server", "pid_file"),
    ("log_file", "server", "log_file"),
    ("control_socket", "server", "control_socket"),
    ("stop_timeout", "server", "stop_timeout"),
    ("routes", "websocket", "route_file"),
    ("app", "app", "asgi"),
)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="tether.toml of the instance (env TETHER_CONFIG)")


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pid-file", help="pid file (env TETHER_SERVER_PID_FILE)")
    p.add_argument("--control-socket", help="control socket (env TETHER_SERVER_CONTROL_SOCKET)")


def _add_port(p: argparse.ArgumentParser) -> None:
    # What `start --routes r.py --port 9623` was started with names its run files (run/tether-9623.*):
    # the same flag finds it again, from the folder it was started in.
    p.add_argument(
        "--port",
        type=int,
        help="the port of an instance started without a config file, in this folder (env TETHER_SERVER_PORT)",
    )


def add_subcommands(sub: Any) -> None:
    """Register start/stop/restart/reload/infos on the CLI's subparsers."""
    start = sub.add_parser("start", help="start the server: a master and its workers (foreground unless -d)")
    _add_config(start)
    start.add_argument(
        "-d",
        "--daemon",
        action="store_true",
        default=_env_flag("TETHER_DAEMON"),
        help="run in the background; log to the log file (env TETHER_DAEMON=1)",
    )
    start.add_argument("--host", help="listen address (env TETHER_SERVER_HOST)")
    start.add_argument("--port", type=int, help="listen port; 0 picks a free one (env TETHER_SERVER_PORT)")
    start.add_argument(
        "--workers", "-w", type=int, help="worker processes; 0: one per core (env TETHER_SERVER_WORKERS)"
    )
    start.add_argument("--routes", help="route file (env TETHER_WEBSOCKET_ROUTE_FILE)")
    start.add_argument(
        "--app", help="module:attr of an ASGI app served on the same port (env TETHER_APP_ASGI)"
    )
    start.add_argument("--log-level", help="debug, info, warning (env TETHER_SERVER_LOG_LEVEL)")
    start.add_argument("--log-file", help="log file of a daemon (env TETHER_SERVER_LOG_FILE)")
    start.add_argument(
        "--stop-timeout",
        type=float,
        help="seconds stop/reload wait for handlers (env TETHER_SERVER_STOP_TIMEOUT)",
    )
    _add_paths(start)

    stop = sub.add_parser("stop", help="stop gracefully: clients are told to reconnect, handlers finish")
    _add_config(stop)
    _add_paths(stop)
    _add_port(stop)
    stop.add_argument(
        "--force",
        action="store_true",
        default=_env_flag("TETHER_STOP_FORCE"),
        help="kill the workers now (env TETHER_STOP_FORCE=1); a second stop also forces",
    )
    stop.add_argument(
        "--wait", type=float, help="seconds to wait for the exit (default: stop_timeout + stop_grace + 5)"
    )

    restart = sub.add_parser(
        "restart", help="stop, then start again with the arguments the instance was started with"
    )
    _add_config(restart)
    _add_paths(restart)
    _add_port(restart)
    restart.add_argument(
        "--wait", type=float, help="seconds to wait for the stop (default: stop_timeout + stop_grace + 5)"
    )

    reload = sub.add_parser(
        "reload", help="rolling reload: new workers with fresh routes and config, no dropped service"
    )
    _add_config(reload)
    _add_paths(reload)
    _add_port(reload)

    infos = sub.add_parser(
        "infos", help="what the running instance is doing: workers, connections, TCP states"
    )
    _add_config(infos)
    _add_paths(infos)
    _add_port(infos)
    infos.add_argument(
        "--all",
        action="store_true",
        help="every instance of this user on this host (from the per-user runtime folder)",
    )
    infos.add_argument(
        "--json",
        action="store_true",
        default=_env_flag("TETHER_INFOS_JSON"),
        help="JSON for scripts (env TETHER_INFOS_JSON=1)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for flag, section, key in _FLAG_KEYS:
        value = getattr(args, flag, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _config_path(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None) or os.environ.get("TETHER_CONFIG") or None


def load_config(args: argparse.Namespace) -> Config:
    """The config the flags, ``TETHER_*`` variables and the config file describe.

    Raises:
        ConfigError: a bad file, key or value.
    """
    return Config.load(_config_path(args), overrides=_overrides(args))


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
    path = _config_path(args)
    server: dict[str, Any] = {}
    base = os.getcwd()
    if path:
        base = os.path.dirname(os.path.abspath(path))
        try:
            with open(path, "rb") as f:
                server = dict(tomllib.load(f).get("server", {}))
        except (OSError, tomllib.TOMLDecodeError):
            server = {}
    server.update(_overrides(args).get("server", {}))
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


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the subcommand in ``args``; ``argv`` is what the user typed (kept for ``restart``)."""
    command = args.command
    if command == "start":
        return cmd_start(args, list(argv))
    if command == "stop":
        return cmd_stop(args)
    if command == "restart":
        return cmd_restart(args)
    if command == "reload":
        return cmd_reload(args)
    if command == "infos":
        return cmd_infos(args)
    raise AssertionError(command)


CONFIG_HERE = "tether.toml"
"""The config file name the docs use: named in the hints when it lies in the current folder unread."""

DEFAULTS_SOURCE = "<defaults>"
"""``Config.source`` (and a registry entry's ``config``) of an instance started without a config file."""


def _err(message: str) -> None:
    print(f"tether: {message}", file=sys.stderr, flush=True)


# -- start ----------------------------------------------------------------------------------------------


def _bind(config: Config) -> socket.socket:
    cfg = config.server
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)  # only the workers get it, through pass_fds
    return sock


def _validate_app(config: Config) -> None:
    """Import the route file, handler and parser as a worker will, so a broken app fails the start here.

    Raises:
        ConfigError: what a worker would fail on.
    """
    from ..server.server import Server

    Server(config)


def cmd_start(args: argparse.Namespace, argv: list[str]) -> int:
    if _config_path(args) is None and os.path.isfile(CONFIG_HERE):
        # Not read implicitly (a command must find the instance from the same arguments), but say so: a
        # user who wrote tether.toml next to the routes expects it to count.
        _err(
            f"warning: not reading ./{CONFIG_HERE}: a config file is read only when named "
            f"(`tether start -c {CONFIG_HERE}`, or TETHER_CONFIG); starting on the defaults and the flags"
        )
    try:
        config = load_config(args)
    except ConfigError as exc:
        _err(f"config error: {exc}")
        return 2
    paths = RunPaths.from_config(config)
    try:
        paths.make_dirs()
    except UnsafeRunFile as exc:
        _err(f"refusing an unsafe run folder: {exc}")
        return 1
    except OSError as exc:
        _err(f"cannot create the run folder: {exc}")
        return 1
    pidfile = PidFile(paths.pid_file)
    try:
        pidfile.acquire()
    except AlreadyRunning as exc:
        _err(
            f"already running ({describe(exc.pid)}, pid file {exc.path}); "
            "use `tether stop` or `tether restart` (with the same --config); a second instance needs its "
            "own config file or its own --pid-file and --control-socket"
        )
        return 1
    except UnsafeRunFile as exc:
        _err(f"refusing an unsafe pid file: {exc}")
        return 1
    except OSError as exc:
        _err(f"cannot write the pid file {paths.pid_file}: {exc}")
        return 1
    try:
        _validate_app(config)
    except ConfigError as exc:
        pidfile.close()
        _err(f"config error: {exc}")
        return 2
    except Exception as exc:
        pidfile.close()
        _err(f"cannot load the application: {describe_import_error(exc)}")
        return 2
    state_warning = warning_text(config.websocket.route_file, config.base_dir, worker_count(config))
    if state_warning is not None:
        _err(state_warning)
    try:
        sock = _bind(config)
    except OSError as exc:
        pidfile.close()
        _err(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror or exc}")
        return 1
    if pidfile.stale_pid is not None:
        print(
            f"tether: replaced a stale pid file ({paths.pid_file}: pid {pidfile.stale_pid} is not running)",
            flush=True,
        )
    launch = Launch(
        argv=argv,
        cwd=os.getcwd(),
        env={k: v for k, v in os.environ.items() if k.startswith("TETHER_")},
        config_path=os.path.abspath(p) if (p := _config_path(args)) else None,
        overrides=_overrides(args),
        daemon=bool(args.daemon),
    )
    if args.daemon:
        try:
            # The daemon's output goes there: find out now, while there is a terminal to say so.
            os.close(open_run_file(paths.log_file, os.O_WRONLY | os.O_APPEND, 0o644))
        except OSError as exc:
            pidfile.close()
            sock.close()
            _err(f"cannot write the log file {paths.log_file}: {exc.strerror or exc}")
            return 1
        return _start_daemon(config, sock, paths, pidfile, launch)
    logs.configure(config.server.log_level, LOG_FORMAT, sys.stderr)
    pidfile.write(os.getpid())

    def on_ready(ok: bool, text: str) -> None:
        if ok:
            print(
                f"tether serving on {text} ({n_workers(worker_count(config))}, master pid {os.getpid()}, "
                f"config {config.source})",
                flush=True,
            )
        else:
            _err(text)

    return Master(config, sock, paths, pidfile, launch, on_ready).run()


def _start_daemon(
    config: Config, sock: socket.socket, paths: RunPaths, pidfile: PidFile, launch: Launch
) -> int:
    """Double fork; the first process waits until the master says it is ready (or failed), then returns."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(write_end)
        sock.close()
        assert pidfile.fd is not None
        os.close(pidfile.fd)  # the daemon holds the lock now
        pidfile.fd = None
        status = _read_status(read_end, config.server.worker_start_timeout + 30)
        os.waitpid(pid, 0)
        if status.startswith("ok "):
            url = status[3:]
            master_pid = running_pid(paths.pid_file)
            print(f"tether started on {url} ({n_workers(worker_count(config))})")
            print(
                f"  pid file:       {paths.pid_file} ({describe(master_pid).replace('pid', 'master pid', 1)})"
            )
            print(f"  log file:       {paths.log_file}")
            print(f"  control socket: {paths.control_socket}", flush=True)
            return 0
        reason = status[6:] if status.startswith("error ") else "the daemon exited before it was ready"
        _err(f"start failed: {reason} (log file {paths.log_file})")
        return 1
    # First child: a new session without a terminal, then fork again so that it can never get one back.
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        log_fd = open_run_file(paths.log_file, os.O_WRONLY | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's stdout
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        logs.configure(config.server.log_level, LOG_FORMAT, sys.stderr, force=True)
        pidfile.write(os.getpid())

        def on_ready(ok: bool, text: str) -> None:
            try:
                os.write(write_end, f"{'ok' if ok else 'error'} {text}\n".encode())
                os.close(write_end)
            except OSError:
                pass  # the starting command is gone: nobody to tell

        code = Master(config, sock, paths, pidfile, launch, on_ready).run()
    except BaseException:
        logging.getLogger("tether.manager").exception("! the master failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _read_status(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    os.close(fd)
    return buf.decode(errors="replace").strip()


# -- stop, reload, infos, restart ----------------------------------------------------------------------


def _not_running(paths: RunPaths, args: argparse.Namespace) -> int:
    """Say where we looked and, when no config was named, how to point at an instance (and which exist)."""
    _err(f"not running (no live master holds {paths.pid_file})")
    if _config_path(args) is None:
        _err(
            f"  no --config given and TETHER_CONFIG is not set, so this looked for an instance started in "
            f"{os.getcwd()} without a config file;\n  point at an instance with `-c FILE` "
            "(or TETHER_CONFIG=FILE)"
        )
        if os.path.isfile(CONFIG_HERE):
            _err(
                f"  {CONFIG_HERE} is here, but a config file is read only when named: "
                f"`tether {args.command} -c {CONFIG_HERE}`"
            )
        live = registry.entries()
        if live:
            _err("  instances of this user (tether infos --all):")
            for entry in live:
                _err(f"    pid {entry['pid']}  {entry['listen']}  {_pointer(entry)}")
    return 1


def _pointer(entry: dict[str, Any]) -> str:
    """The flags that point a command at a registry entry: its config file, or, for an instance started
    without one, its pid file and control socket (its name depends on the port it was started with)."""
    if entry["config"] != DEFAULTS_SOURCE:
        return f"-c {entry['config']}"
    return f"--pid-file {entry['pid_file']} --control-socket {entry['control_socket']}"


def _unanswered(paths: RunPaths, args: argparse.Namespace, exc: ControlError) -> int:
    """The control socket did not answer: say whether nothing runs, a master is starting, or what failed."""
    pid = running_pid(paths.pid_file)
    if pid is None:
        return _not_running(paths, args)
    if pid < 0:
        _err(f"a master is starting ({paths.pid_file} is locked, no pid yet); try again in a moment")
    else:
        _err(str(exc))
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
            _err(f"refusing an unsafe run folder: {exc}")
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
            _err(f"a master is starting ({paths.pid_file} is locked, no pid yet) and {exc}; try again")
            return 1, None
        if not is_master(pid, paths.pid_file):
            # A pid file naming a process that does not hold it open is no proof: never signal it.
            _err(
                f"{exc}; and pid {pid} (from {paths.pid_file}) is not a tether master holding that file: "
                "not signalled"
            )
            return 1, None
        forced = force
        _err(f"{exc}; sending {'SIGKILL' if force else 'SIGTERM'} to pid {pid}")
        os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    print(f"tether: {'forcing' if forced else 'stopping'} pid {pid}...", flush=True)
    deadline = time.monotonic() + wait
    while running_pid(paths.pid_file) is not None:
        if time.monotonic() > deadline:
            _err(f"pid {pid} still running after {wait:g}s; run `tether stop` again to force it")
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


def cmd_reload(args: argparse.Namespace) -> int:
    found = _client_paths(args)
    if found is None:
        return 1
    paths, stop_timeout = found
    try:
        # Workers start one by one on a reload: allow for several slow ones, then the old ones' drain.
        reply = request(paths.control_socket, "reload", timeout=stop_timeout + 600)
    except ControlError as exc:
        return _unanswered(paths, args, exc)
    if not reply.get("ok"):
        _err(f"reload failed: {reply.get('error')}")
        return 1
    new = ", ".join(map(str, reply["workers"]))
    old = ", ".join(map(str, reply["replaced"]))
    print(
        f"tether reloaded in {reply['seconds']:.2f}s: generation {reply['generation']}, "
        f"workers {new} (replaced {old})"
    )
    for warning in reply.get("warnings", ()):
        _err(f"warning: {warning}")
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
        if _unanswered(paths, args, exc) and running_pid(paths.pid_file) is None:
            _err("use `tether start`")
        return 1
    wait = args.wait if args.wait is not None else stop_timeout + 5
    code, _ = _stop(paths, False, wait, args)
    if code:
        return code
    argv = list(launch["argv"])
    if "-d" not in argv and "--daemon" not in argv:
        argv.insert(1, "-d")  # restart returns: the new instance runs in the background
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(launch["env"])
    print(f"tether: starting again: tether {' '.join(argv)}", flush=True)
    return subprocess.call([sys.executable, "-m", "tether", *argv], cwd=launch["cwd"], env=env)
