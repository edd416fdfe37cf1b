"""``tether start``: check the config and the app, take the pid file, bind, then run the master
(in the foreground, or as a daemon that says when it is ready)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import socket
import sys
import time

from .. import logs
from ..config import Config
from ..errors import ConfigError
from ..router import describe_import_error
from . import control
from .flags import CONFIG_HERE, config_path, err, flag_overrides, load_config
from .master import Launch, Master, n_workers, worker_count
from .module_state import warning_text
from .paths import RunPaths
from .pidfile import AlreadyRunning, PidFile, describe, running_pid
from .runfiles import UnsafeRunFile, check_folder, open_run_file

__all__ = ["LOG_FORMAT", "cmd_start"]

LOG_FORMAT = "%(asctime)s %(levelname)s [master pid %(process)d] %(name)s: %(message)s"


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


def _app_error(config: Config) -> str | None:
    """What :func:`_validate_app` found, as the line to print (None: the app loads)."""
    try:
        _validate_app(config)
    except ConfigError as exc:
        return f"config error: {exc}"
    except Exception as exc:
        return f"cannot load the application: {describe_import_error(exc)}"
    return None


def _held_by_instance(config: Config) -> bool:
    """Whether the running instance this config names (its control socket) listens on the config's port:
    a restart stops it before binding, so its own port is no problem."""
    paths = RunPaths.from_config(config)
    try:
        for folder in paths.folders:
            check_folder(folder)  # a socket planted in a folder others can write must not vouch for a port
        reply = control.request(paths.control_socket, "launch", timeout=5.0)
    except (OSError, control.ControlError):
        return False
    return bool(reply.get("ok")) and reply.get("port") == config.server.port


def _port_problem(config: Config) -> str | None:
    """Whether the start could bind ``[server] host:port``: the line to print, or None.

    Binds (SO_REUSEADDR, as the start does) and closes at once, without ``listen()``: nothing is accepted.
    Port 0 (any free port) is not checked, nor a port that the instance this config names holds (a restart
    frees it first). It proves the port free now, not at the start: another program may take it between.
    """
    cfg = config.server
    if cfg.port == 0:
        return None
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((cfg.host, cfg.port))
    except OSError as exc:
        if _held_by_instance(config):
            return None
        return listen_problem(cfg.host, cfg.port, exc)
    return None


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """The line for a failed bind of ``host:port``: the address and the system's reason, and for the two
    reasons an operator can act on, how. EADDRINUSE: how to find the program that listens (``ss``, or
    ``tether infos --all`` for Tether's own) and the two ways out; EACCES on a port below 1024: the privilege
    it takes."""
    line = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        line += (
            f" (another program listens there: `ss -ltnp 'sport = :{port}'` names it, `tether infos --all`"
            " lists Tether's; stop it, or choose another port: [server] port, --port)"
        )
    elif exc.errno == errno.EACCES and 0 < port < 1024:
        line += " (a port below 1024 takes root or CAP_NET_BIND_SERVICE; or listen above 1023 behind a proxy)"
    return line


def _check_only(config: Config) -> int:
    """``tether start --check`` (``nginx -t``, ``apachectl configtest``): the config loaded; import the app
    as a worker would, try binding the port (unless the running instance holds it), say whether it would
    start, and start nothing (no pid file, no listening socket). ``restart`` runs it before it stops the
    running instance."""
    problem = _app_error(config) or _port_problem(config)
    if problem is not None:
        err(problem)
        return 2
    print(f"tether: check passed: config {config.source}, routes {config.websocket.route_file or '(none)'}")
    return 0


def cmd_start(args: argparse.Namespace, argv: list[str]) -> int:
    if config_path(args) is None and os.path.isfile(CONFIG_HERE):
        # Not read implicitly (a command must find the instance from the same arguments), but say so: a
        # user who wrote tether.toml next to the routes expects it to count.
        err(
            f"warning: not reading ./{CONFIG_HERE}: a config file is read only when named "
            f"(`tether start -c {CONFIG_HERE}`, or TETHER_CONFIG); starting on the defaults and the flags"
        )
    try:
        config = load_config(args)
    except ConfigError as exc:
        err(f"config error: {exc}")
        return 2
    if getattr(args, "check", False):
        return _check_only(config)
    paths = RunPaths.from_config(config)
    try:
        paths.make_dirs()
    except UnsafeRunFile as exc:
        err(f"refusing an unsafe run folder: {exc}")
        return 1
    except OSError as exc:
        err(f"cannot create the run folder: {exc}")
        return 1
    pidfile = PidFile(paths.pid_file)
    try:
        pidfile.acquire()
    except AlreadyRunning as exc:
        # The flags that find this instance again, as it was started: an instance without a config file is
        # named for its port, and "(with the same --config)" sent its users looking for a file they never had.
        run_files = "its own --pid-file and --control-socket"
        if config_path(args) is not None:
            same, second = f"-c {config_path(args)}", f"its own config file or {run_files}"
        elif args.pid_file:
            same, second = f"--pid-file {paths.pid_file} --control-socket {paths.control_socket}", run_files
        else:
            same, second = f"--port {config.server.port}", "its own --port or config file"
        err(
            f"already running ({describe(exc.pid)}, pid file {exc.path}); use `tether stop {same}` or "
            f"`tether restart {same}`; a second instance needs {second}"
        )
        return 1
    except UnsafeRunFile as exc:
        err(f"refusing an unsafe pid file: {exc}")
        return 1
    except OSError as exc:
        err(f"cannot write the pid file {paths.pid_file}: {exc}")
        return 1
    problem = _app_error(config)
    if problem is not None:
        pidfile.close()
        err(problem)
        return 2
    state_warning = warning_text(config.websocket.route_file, config.base_dir, worker_count(config))
    if state_warning is not None:
        err(state_warning)
    try:
        sock = _bind(config)
    except OSError as exc:
        pidfile.close()
        err(listen_problem(config.server.host, config.server.port, exc))
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
        config_path=os.path.abspath(p) if (p := config_path(args)) else None,
        overrides=flag_overrides(args),
        daemon=bool(args.daemon),
    )
    if args.daemon:
        try:
            # The daemon's output goes there: find out now, while there is a terminal to say so.
            os.close(open_run_file(paths.log_file, os.O_WRONLY | os.O_APPEND, 0o644))
        except OSError as exc:
            pidfile.close()
            sock.close()
            err(f"cannot write the log file {paths.log_file}: {exc.strerror or exc}")
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
            err(text)

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
        err(f"start failed: {reason} (log file {paths.log_file})")
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
