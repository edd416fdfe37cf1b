"""The official npm socket.io-client, run by node, with its default options (polling, then the upgrade to
WebSocket) and with ``transports: ["websocket"]``.

tests/js/scenarios.mjs runs every scenario and prints what the client observed as JSON lines; the
assertions are here. The node process is bounded by a timeout and killed if it overstays.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.apps.basic_routes import build_router
from tests.conftest import make_config
from tests.helpers import Recorder, scaled
from tether import Server, run_server

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


async def run_node(script: str, *args: str, timeout: float = 90.0) -> dict[str, dict[str, Any]]:
    """Run ``node tests/js/<script> args...``; return its JSON lines by ``step``. Fails loudly if node or
    socket.io-client is missing (``make test`` installs them) or if it does not finish in time."""
    node = shutil.which("node")
    assert node is not None, "node is not installed: run `make test` (scripts/ensure-system-deps.sh)"
    assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), "run `cd tests/js && npm install`"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / script),
        *args,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TETHER_TESTS_TIMEOUT_FACTOR": os.environ.get("TETHER_TESTS_TIMEOUT_FACTOR", "1")},
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), scaled(timeout))
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"node {script} did not finish within {scaled(timeout):g}s") from None
    steps = {}
    for line in stdout.decode().splitlines():
        record = _decode(json.loads(line))
        steps[record.pop("step")] = record
    errors = {name: r["error"] for name, r in steps.items() if "error" in r}
    assert not errors, f"node steps failed: {json.dumps(errors, indent=1)}\nstderr: {stderr.decode()[-2000:]}"
    assert "done" in steps, f"node ended early (rc={proc.returncode}): {stderr.decode()[-2000:]}"
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return steps


class JsRun:
    """One node run of every scenario on its own server: what the client saw and what the server recorded."""

    def __init__(self, mode: str, steps: dict[str, dict[str, Any]], server: Server, rec: Recorder) -> None:
        self.mode = mode
        self.steps = steps
        self.server = server
        self.rec = rec

    def __getitem__(self, step: str) -> dict[str, Any]:
        return self.steps[step]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["default", "websocket"])
async def js(request: pytest.FixtureRequest) -> AsyncIterator[JsRun]:
    """node runs once per mode (it takes a few seconds); each test below checks one scenario of that run."""
    rec = Recorder()
    server = await run_server(make_config(), build_router(rec))
    try:
        steps = await run_node("scenarios.mjs", server.url, request.param)
        # Disconnects are recorded when the server sees them, which may be a moment after node exits.
        for step in ("disconnect_client", "disconnect_server"):
            await rec.wait_disconnect(steps[step]["sid"])
        yield JsRun(request.param, steps, server, rec)
    finally:
        await server.shutdown(timeout=scaled(5))


def test_connect_with_auth_and_transport(js: JsRun) -> None:
    step = js["connect"]
    assert step["welcome"] == {"sid": step["sid"], "user": "js"}
    assert ("/", step["sid"], {"token": "secret", "user": "js"}) in js.rec.connects
    if js.mode == "default":
        assert step["initial"] == "polling"
        assert step["upgraded"] == step["transport"] == "websocket"  # it really upgraded
    else:
        assert step["initial"] == step["transport"] == "websocket"
        assert step["upgraded"] is None


def test_reject(js: JsRun) -> None:
    step = js["reject"]
    assert step["message"] == "bad token"
    assert step["data"] == {"code": 401, "message": "bad token"}
    assert step["connected"] is False
    assert js.server.state.rejected >= 1


def test_emit_and_ack_both_ways(js: JsRun) -> None:
    step = js["emit"]
    assert step["echoAck"] == {"a": [1, 2]}
    assert step["echoEvent"] == {"a": [1, 2]}
    assert step["addAck"] == [5, 6]  # a returned tuple answers with two arguments
    assert step["noAckEvent"] == ["no ack"]
    assert step["askAck"] == {"answer": 21, "from": "js"}  # the server awaited the client's ack
    assert step["answer"] == [{"answer": 21, "from": "js"}]


def test_rooms(js: JsRun) -> None:
    step = js["rooms"]
    assert (step["joinA"], step["joinB"], step["joinB2"], step["leaveB"]) == (
        ["red"],
        ["red"],
        ["blue", "red"],
        ["blue"],
    )
    assert step["gotB"] == step["gotC"] == ["hi red"]
    assert step["gotA"] == ["second"]
    assert step["pending"] == [0, 0, 0]


def test_broadcast_and_server_emit(js: JsRun) -> None:
    step = js["broadcast"]
    assert step["gotB"] == step["gotC"] == [{"from": "a"}]
    assert step["pendingA"] == 0
    assert step["shouts"] == [["all"]] * 3


def test_binary(js: JsRun) -> None:
    step = js["binary"]
    blob = bytes((i * 7) % 256 for i in range(1000))
    assert step["sent"] == blob
    assert step["ack"] == {"orig": blob, "rev": blob[::-1], "len": 1000}
    assert step["event"] == step["ack"]
    assert step["isBuffer"] is True
    assert step["nested"] == {"list": [b"\x00", {"x": b"\xff"}]}


def test_second_namespace(js: JsRun) -> None:
    step = js["namespace"]
    assert step["sameEngine"] is True  # both namespaces over one connection
    assert step["welcome"] == {"ns": "/chat"}
    assert step["ack"] == step["event"] == {"ns": "/chat", "args": ["x"]}
    assert step["chatPendingEcho"] == 0
    assert step["nope"] == "Invalid namespace"
    assert ("/chat", step["chatSid"], {"token": "secret"}) in js.rec.connects
    assert step["rootSid"] != step["chatSid"]


def test_handler_that_raises(js: JsRun) -> None:
    step = js["boom"]
    assert step["acked"] == "operation has timed out"  # no ack from a handler that raised
    assert step["connected"] is True
    assert js.server.state.handler_errors == 2


def test_disconnect_reasons(js: JsRun) -> None:
    client = js["disconnect_client"]
    assert client["reason"] == "io client disconnect"
    assert js.rec.reasons(client["sid"]) == ["client namespace disconnect"]
    kicked = js["disconnect_server"]
    assert kicked["reason"] == "io server disconnect"
    assert kicked["connected"] is False
    assert js.rec.reasons(kicked["sid"]) == ["server namespace disconnect"]
