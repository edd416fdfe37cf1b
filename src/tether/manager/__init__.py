"""The service manager: ``tether start|stop|restart|reload|infos`` with a master and N workers.

::

    master.py     the master (a facade): startup, signals, stop, ``infos``; wires the parts below
    supervisor.py workers in their slots: spawn, restart with a backoff, stop
    channels.py   the master's end of each worker's channel: hub relay, control messages, requests
    reload.py     the rolling reload, one generation of workers after another
    sampling.py   stats and metrics asked of the workers; the rows of ``infos``
    answers.py    what the master answers on the control socket
    workerproc.py one worker as the master sees it; Launch (how the instance was started)
    worker.py    the worker process (``python -m tether.manager.worker``): one Server on the shared socket
    handoff.py   sticky long-polling: passes a TCP connection to the worker that owns its session
    control.py   the control socket (JSON lines over a Unix socket, mode 0600) between the CLI and the master
    pidfile.py   the pid file, locked while the master runs (stale files are detected by the lock)
    paths.py     where the pid file, log file and sockets of an instance are, from its config
    tcpstates.py TCP states of the listening port, from /proc/net/tcp{,6}
    infos.py     ``tether infos`` as a table or JSON
    commands.py  the CLI subcommands: flags.py (flags -> Config), start.py (``start``), running.py
                 (``stop``, ``restart``, ``reload``, ``infos``: the commands that talk to a running master)

See docs/process-model.md for the design and docs/cli.md for the commands.
"""
