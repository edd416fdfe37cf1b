"""``tether infos`` rendered for people."""

from __future__ import annotations

from tether.manager.infos import human_bytes, human_duration, render_table

WORKER = {
    "slot": 0,
    "id": 3,
    "pid": 4242,
    "state": "ready",
    "uptime": 3725.0,
    "connections": 120,
    "sockets": 130,
    "rooms": 7,
    "rss": 48 * 1024 * 1024,
    "events_in_per_s": 12.5,
    "events_out_per_s": 300.25,
    "events_in": 1000,
    "events_out": 25000,
    "restarts": 2,
}
INFO = {
    "version": "0.1.0",
    "pid": 4200,
    "uptime": 90061.0,
    "listen": "http://127.0.0.1:9501",
    "config": "/srv/app/tether.toml",
    "pid_file": "/srv/app/run/tether.pid",
    "log_file": "/srv/app/run/tether.log",
    "generation": 3,
    "reloads": 2,
    "restarts": 2,
    "master_rss": 20 * 1024 * 1024,
    "port": 9501,
    "workers": [WORKER, {**WORKER, "slot": 1, "pid": 4243, "state": "draining", "restarts": 0}],
    "totals": {
        "workers": 1,
        "connections": 240,
        "sockets": 260,
        "rooms": 14,
        "rss": 96 * 1024 * 1024,
        "events_in": 2000,
        "events_out": 50000,
        "events_in_per_s": 25.0,
        "events_out_per_s": 600.5,
        "restarts": 2,
    },
    "tcp": {"ESTABLISHED": 240, "TIME_WAIT": 3, "LISTEN": 1},
    "stopping": False,
    "reloading": True,
}


def test_table() -> None:
    text = render_table(INFO)
    lines = text.splitlines()
    assert lines[0] == "tether 0.1.0  master pid 4200  up 1d01h01m  listening on http://127.0.0.1:9501"
    assert "config    /srv/app/tether.toml" in lines
    assert "log file  /srv/app/run/tether.log" in lines
    assert "generation 3 (2 reloads, 2 worker restarts)" in text and "RELOADING" in text
    once = render_table({**INFO, "generation": 2, "reloads": 1, "restarts": 1})
    assert "generation 2 (1 reload, 1 worker restart)" in once  # was "1 reloads, 1 worker restarts"
    header = next(line for line in lines if line.startswith("SLOT"))
    row = next(line for line in lines if line.startswith("0 "))
    assert row.split() == [
        "0",
        "4242",
        "ready",
        "1h02m05s",
        "120",
        "130",
        "7",
        "48.0",
        "MiB",
        "12.5",
        "300.2",
        "1000",
        "25000",
        "2",
    ]
    assert header.index("CONN") == row.index("120")  # columns line up
    assert any(line.startswith("1 ") and "draining" in line for line in lines)
    assert next(line for line in lines if line.startswith("total")).split()[:4] == ["total", "1", "up", "240"]
    assert lines[-1] == "TCP port 9501: ESTABLISHED 240  TIME_WAIT 3  LISTEN 1"


def test_units() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**4) == "5120.0 GiB"
    assert human_duration(4.25) == "4.2s"
    assert human_duration(125) == "2m05s"


def test_metrics_line_says_where_or_how() -> None:
    # The master's listener, the service port behind the key, both, or neither (the default: say how).
    listener = "http://127.0.0.1:9502/metrics"
    on_port = "http://127.0.0.1:9501/metrics"
    lines = render_table({**INFO, "metrics": listener}).splitlines()
    assert [line for line in lines if line.startswith("metrics")] == [f"metrics   {listener}"]
    lines = render_table({**INFO, "metrics_on_port": on_port}).splitlines()
    assert [line for line in lines if line.startswith("metrics")] == [
        f"metrics   {on_port} (with the bearer [metrics] key)"
    ]
    both = render_table({**INFO, "metrics": listener, "metrics_on_port": on_port})
    assert both.count("metrics   ") == 2
    lines = render_table({**INFO, "metrics": None, "metrics_on_port": None}).splitlines()
    assert [line for line in lines if line.startswith("metrics")] == [
        "metrics   not served ([metrics] listen or key serves them: docs/hardening.md)"
    ]
