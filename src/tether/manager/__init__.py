"""The service manager: ``tether start|stop|restart|reload|infos`` with a master and N workers.

::

    master.py    the supervisor: binds the port, spawns and restarts workers, relays the hub, serves control
    worker.py    the worker process (``python -m tether.manager.worker``): one Server on the shared socket
    handoff.py   sticky long-polling: passes a TCP connection to the worker that owns its session
    control.py   the control socket (JSON lines over a Unix socket, mode 0600) between the CLI and the master
    pidfile.py   the pid file, locked while the master runs (stale files are detected by the lock)
    paths.py     where the pid file, log file and sockets of an instance are, from its config
    tcpstates.py TCP states of the listening port, from /proc/net/tcp{,6}
    infos.py     ``tether infos`` as a table or JSON
    commands.py  the CLI subcommands

See docs/process-model.md for the design and docs/cli.md for the commands.
"""
