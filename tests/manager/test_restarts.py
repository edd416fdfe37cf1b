"""Restart backoff and giving up: a worker that dies at start-up in a tight loop stops the instance."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import scaled
from tether.config import Config
from tether.errors import ConfigError

from .conftest import ROUTES, Instance, alive

CRASHING_CONFIG = """
[server]
host = "127.0.0.1"
port = 0
workers = 1
stop_timeout = 1
restart_backoff_min = 0.05
restart_backoff_max = 0.2
restart_stable_after = 60
restart_max_failures = 3

[websocket]
route_file = "routes.py"
"""


def test_a_worker_dying_at_start_up_is_given_up_on(instance: Instance) -> None:
    marker = instance.folder / "database-down"
    instance.routes.write_text(
        f"import os\nif os.path.exists({str(marker)!r}):\n    raise SystemExit(3)\n" + ROUTES
    )
    instance.config.write_text(CRASHING_CONFIG)
    master = subprocess.Popen(
        [sys.executable, "-m", "tether", "start", "--config", str(instance.config)],
        cwd=instance.folder,
        env=instance.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    instance.pids.add(master.pid)
    try:
        assert master.stdout is not None
        line = master.stdout.readline()
        assert "tether serving on" in line and "(1 worker," in line, line
        worker = instance.worker_pids()[0]
        instance.pids.add(worker)
        marker.write_text("")
        os.kill(worker, signal.SIGKILL)
        # Killed (1), then two restarts that exit at import (2, 3): given up after the third death.
        code = master.wait(scaled(30))
        _, err = master.communicate()
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    assert code == 1, err
    assert len(re.findall(r"exited unexpectedly: .*restarting in", err)) == 2, err
    assert "restarting in 0.05s" in err and "restarting in 0.1s" in err
    assert (
        "worker slot 0 died 3 times in a row within 60s of its start (last: worker 3, pid " in err
        and "exit status 3" in err
        and "not restarting it (server.restart_max_failures = 3): stopping the instance, exit status 1" in err
    ), err
    assert not instance.pid_file.exists()
    deadline = time.monotonic() + scaled(5)
    while any(alive(pid) for pid in instance.pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in instance.pids)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"restart_backoff_min": 0.0}, "server.restart_backoff_min"),
        ({"restart_backoff_min": 2.0, "restart_backoff_max": 1.0}, "server.restart_backoff_min"),
        ({"restart_max_failures": -1}, "server.restart_max_failures"),
        ({"stop_grace": -1.0}, "server.stop_grace"),
    ],
)
def test_restart_keys_are_checked(values: dict[str, float], key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        Config.load(overrides={"server": values}, env={})
    ok = Config.load(overrides={"server": {"restart_backoff_min": 1.0, "restart_backoff_max": 1.0}}, env={})
    assert ok.server.restart_max_failures == 10 and ok.server.stop_grace == 5.0
