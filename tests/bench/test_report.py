"""bench/report.py renders a recorded run: the RESULTS.md section, the targets' verdicts, the ratios and the
history line, from the run's ``meta`` and ``results`` alone (no server is started).

``data/run-20261130-1542.json`` is ``bench/out/run-20261130-160316.json`` of the run recorded in
bench/RESULTS.md as "2026-11-30 15:42 UTC", with the one note the lead wrote into RESULTS.md by hand put
first in ``meta["notes"]`` (where ``--notes`` puts it); ``data/results-20261130-1542.md`` is that section of
RESULTS.md as recorded.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
RUN = DATA / "run-20261130-1542.json"
SECTION = DATA / "results-20261130-1542.md"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return bench_module("report")


@pytest.fixture
def run() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RUN.read_text())
    return loaded


def servers_of(report: ModuleType, results: dict[str, Any]) -> list[str]:
    return [s for s in report.SERVER_ORDER if s in results]


def table(text: str) -> dict[str, list[str]]:
    """The metrics table of a section: metric -> its cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| metric |"))
    out: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:  # past the head and the |---| line
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = cells[1:]
    return out


def test_renders_the_recorded_section_byte_for_byte(report: ModuleType, run: dict[str, Any]) -> None:
    text = report.render(run["meta"], run["results"], servers_of(report, run["results"]))
    assert text == SECTION.read_text()


def test_the_table_rows_and_ratios(report: ModuleType, run: dict[str, Any]) -> None:
    text = report.render(run["meta"], run["results"], servers_of(report, run["results"]))
    head = next(line for line in text.splitlines() if line.startswith("| metric"))
    assert head == (
        "| metric | raw picows (ceiling) | Tether | node socket.io | python-socketio "
        "| Tether vs node socket.io | Tether vs python-socketio | Tether vs raw picows (ceiling) |"
    )
    rows = table(text)
    assert list(rows) == [label for label, *_ in report.ROWS]  # every row measured in this run, in order
    # Medians with the min-max of the 5 repeats; a rate's ratio is Tether/peer, a cost's is peer/Tether.
    assert rows["W1 echo round trips/s"][1] == "39,683 (29,476 to 43,039)"
    assert rows["W1 echo round trips/s"][4:] == ["2.38x", "16.81x", "0.68x"]
    assert rows["W1 server CPU µs per round trip"][1:3] == ["25.1 (23.0 to 32.5)", "59.9 (49.1 to 74.1)"]
    assert rows["W1 server CPU µs per round trip"][4] == "2.39x"
    # W1ack is not a raw picows workload; W7 and W8 are Tether and node only.
    assert rows["W1ack echoack round trips/s"][0] == "—" and rows["W1ack echoack round trips/s"][6] == "—"
    assert rows["W7 two workers: echo round trips/s"][3:] == ["—", "1.38x", "—", "—"]
    # A broadcast's spread is that of its rounds; a scaled figure (bytes -> KiB) has no spread when run once.
    assert rows["W2 broadcast to all, median ms"][1] == "187.5 (134.4 to 214.4)"
    assert rows["W3 KiB per idle connection"][:4] == ["14.3", "7.7", "15.8", "49.4"]
    results = run["results"]
    assert report.speedup(results, "W1", "server_us_per_msg", "node", False) == pytest.approx(
        results["node"]["W1"]["server_us_per_msg"] / results["tether"]["W1"]["server_us_per_msg"]
    )
    assert report.speedup(results, "W1", "rps", "node", True) == pytest.approx(
        results["tether"]["W1"]["rps"] / results["node"]["W1"]["rps"]
    )
    assert report.speedup(results, "W1ack", "rps", "raw", True) is None


def test_the_targets(report: ModuleType, run: dict[str, Any]) -> None:
    text = report.render(run["meta"], run["results"], servers_of(report, run["results"]))
    targets = text.split("Targets (issue 16, Tether):\n\n")[1].split("\n\nNotes:")[0].splitlines()
    assert len(targets) == len(report.TARGETS)
    assert targets[0] == (
        "- W1 <= 8.5 µs server CPU per echo round trip: NOT MET (25.10 µs; raw picows in this run: 16.52 µs)"
    )
    assert "- W1 server CPU per round trip >= 2.5x better than node: NOT MET (2.39x node)" in targets
    assert "- W3 <= 8 KiB per idle connection: MET (7.7 KiB; raw picows in this run: 14.3 KiB)" in targets
    cross = (
        "- W7 cross-worker broadcast <= 1.3x single-worker CPU per delivery: MET (18.19 / 17.83 µs = 1.02x)"
    )
    assert cross in targets
    assert sum(line.endswith("node)") and ": MET (" in line for line in targets) == 5


@pytest.mark.parametrize(("tether_us", "verdict"), [(8.5, "MET (8.50 µs)"), (8.51, "NOT MET (8.51 µs)")])
def test_an_absolute_target_at_its_bound_and_past_it(
    report: ModuleType, tether_us: float, verdict: str
) -> None:
    results = {"tether": {"W1ack": {"server_us_per_msg": tether_us}}}
    check = dict(report.TARGETS)["W1ack <= 8.5 µs per round trip"]
    assert check(results) == verdict
    assert check({}) == "not measured"


@pytest.mark.parametrize(("node_us", "verdict"), [(25.0, "MET (2.50x node)"), (24.9, "NOT MET (2.49x node)")])
def test_a_ratio_target_at_its_bound_and_past_it(report: ModuleType, node_us: float, verdict: str) -> None:
    results = {"tether": {"W1": {"server_us_per_msg": 10.0}}, "node": {"W1": {"server_us_per_msg": node_us}}}
    check = dict(report.TARGETS)["W1 server CPU per round trip >= 2.5x better than node"]
    assert check(results) == verdict


def test_auto_notes_are_the_recorded_ones(report: ModuleType, run: dict[str, Any]) -> None:
    # The run's notes are the --notes ones (here the lead's) followed by auto_notes of that run.
    assert report.auto_notes(run["results"], run["meta"]) == run["meta"]["notes"][1:]


def test_a_failed_workload_is_a_dash_and_a_note(report: ModuleType, run: dict[str, Any]) -> None:
    results = copy.deepcopy(run["results"])
    results["node"]["W4"] = {"error": "server exited with 1"}
    text = report.render(run["meta"], results, servers_of(report, results))
    row = table(text)["W4 handshakes/s"]
    assert (row[2], row[3], row[4], row[5]) == ("—", "302 (272 to 324)", "—", "4.87x")
    assert "node socket.io W4 failed: server exited with 1" in report.auto_notes(results, run["meta"])


def test_the_history_line_is_the_recorded_one(report: ModuleType, run: dict[str, Any]) -> None:
    meta = run["meta"]
    recorded = [
        json.loads(line)
        for line in (ROOT / "bench" / "history.jsonl").read_text().splitlines()
        if f'"date": "{meta["date"]}", "commit": "{meta["commit"]}"' in line
    ]
    assert len(recorded) == 1
    entry = report.history_entry(meta, run["results"])
    assert json.dumps(entry) == json.dumps(recorded[0])
    assert entry["ratios"]["W1.server_us_per_msg.vs_node"] == 2.3864
    assert entry["ratios"]["W8.aux_us_per_delivery.vs_node"] == 1.5463
