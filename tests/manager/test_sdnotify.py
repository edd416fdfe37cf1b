"""tether.manager.sdnotify: sd_notify(3) datagrams to a real Unix socket, and what happens without one.

The master's messages in a real start, reload and stop are in tests/manager/test_supervised.py, which runs
examples/systemd/tether.service (``Type=notify``) as systemd would.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.manager.sdnotify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound at a path, as systemd's notify socket is."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            yield sock, path


def fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_reloading_stopping_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    assert notifier.ready("serving on http://127.0.0.1:1: 1 worker, generation 1")
    assert fields(sock) == {
        "READY": "1",
        "MAINPID": str(os.getpid()),
        "STATUS": "serving on http://127.0.0.1:1: 1 worker, generation 1",
    }
    before = time_us()
    assert notifier.reloading()
    got = fields(sock)
    assert got["RELOADING"] == "1" and got["STATUS"] == "reloading"
    assert before <= int(got["MONOTONIC_USEC"]) <= time_us()  # CLOCK_MONOTONIC, in µs
    assert notifier.stopping()
    assert fields(sock) == {"STOPPING": "1", "STATUS": "stopping"}


def time_us() -> int:
    return time.monotonic_ns() // 1000


def test_an_abstract_address_is_written_with_a_leading_at() -> None:
    name = f"tether-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier("@" + name).status("hello")
        assert fields(sock) == {"STATUS": "hello"}


def test_from_environment_takes_the_variable_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    notifier = Notifier.from_environment()
    assert notifier.address == "/run/systemd/notify"
    assert "NOTIFY_SOCKET" not in os.environ  # workers started from here do not inherit it
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier.from_environment().address is None


def test_without_a_service_manager_nothing_is_sent() -> None:
    assert not Notifier(None).ready("x") and not Notifier("").stopping()


def test_a_missing_socket_is_logged_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory() as folder:
        notifier = Notifier(str(Path(folder) / "gone.sock"))
        with caplog.at_level(logging.WARNING, logger="tether.manager"):
            assert not notifier.ready("x")
            assert not notifier.stopping()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "cannot notify the service manager" in warnings[0], warnings


def test_an_address_of_another_family_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tether.manager"):
        assert not Notifier("vsock:2:1234").ready("x")
    assert "unsupported NOTIFY_SOCKET address 'vsock:2:1234'" in caplog.text
