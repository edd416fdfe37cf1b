"""tether.asgi.ASGIApp in real ASGI server processes (``uvicorn tests.apps.asgi_main:app``, ``hypercorn``,
``gunicorn -k uvicorn_worker.UvicornWorker``), their stderr captured: Tether's log lines under the server's
logging, the warning for several worker processes with the memory driver (tether.port_lock), and a
python-socketio client served by gunicorn's workers."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import scaled, wait_until
from tests.server.clients import SioClient

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent
STARTED = "tether started inside the ASGI server"
SHARED = "another process serves 127.0.0.1:"
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) ")
"""gunicorn's line for the address it bound (``-b 127.0.0.1:0``: the port the kernel chose)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, stderr: Path) -> None:
        self.proc = proc
        self.port = port
        self.stderr_path = stderr

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@asynccontextmanager
async def run(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    name: str = "server",
) -> AsyncIterator[Proc]:
    """Run ``python -m <args>`` (uvicorn or hypercorn) with ``{port}`` filled in; yield once it answers.

    ``port=0``: the server binds port 0 itself (gunicorn ``-b 127.0.0.1:0``) and its :data:`LISTENING`
    line says which port it got."""
    port = free_port() if port is None else port
    out = tmp_path / f"{name}.stderr"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "PYTHONPATH": str(ROOT),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        **(env or {}),
    }
    (tmp_path / "runtime").mkdir(exist_ok=True)
    with out.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *(a.format(port=port) for a in args),
            cwd=ROOT,
            env=full_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
    p = Proc(proc, port, out)
    try:
        if port == 0:
            await wait_until(
                lambda: proc.returncode is not None or LISTENING.search(p.stderr()) is not None,
                20,
                "the server's listening line",
            )
            found = LISTENING.search(p.stderr())
            assert found is not None, p.stderr()
            port = p.port = int(found[1])
        for _ in range(400):  # bounded: up to 20 s (scaled) for the port to answer
            if proc.returncode is not None:
                break
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(scaled(0.05))
                continue
            writer.close()
            break
        assert proc.returncode is None, p.stderr()
        yield p
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), scaled(15))
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def get(url: str, times: int = 1) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(times):
            async with http.get(url + "/socket.io/?EIO=4&transport=polling") as response:
                assert response.status == 200
                await response.read()


# -- logs -----------------------------------------------------------------------------------------------


async def test_info_lines_in_uvicorns_format_once(tmp_path: Path) -> None:
    async with run(tmp_path, "uvicorn", "tests.apps.asgi_main:app", "--port", "{port}") as p:
        await get(p.url)
        await wait_until(lambda: STARTED in p.stderr(), 10, "the startup line")
    text = p.stderr()
    lines = [line for line in text.splitlines() if STARTED in line]
    # uvicorn's own format ("INFO:     ..."), the logger named, once.
    assert len(lines) == 1, text
    assert lines[0].startswith("INFO:     tether.asgi: tether started inside the ASGI server"), text
    assert "Application startup complete." in text  # uvicorn's own line, next to it


async def test_uvicorn_log_level_applies(tmp_path: Path) -> None:
    # --log-level warning: Tether's INFO lines are hidden as uvicorn's are; its warnings still shown.
    args = ("uvicorn", "tests.apps.asgi_main:app", "--port", "{port}", "--log-level", "warning")
    env = {"TETHER_METRICS_LISTEN": "127.0.0.1:9"}  # warned about at startup: no master serves it here
    async with run(tmp_path, *args, env=env) as p:
        await get(p.url)
        await wait_until(lambda: "metrics.listen" in p.stderr(), 10, "the metrics.listen warning")
    text = p.stderr()
    assert STARTED not in text and "Application startup complete" not in text, text
    warnings = [line for line in text.splitlines() if "metrics.listen" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING:  tether.asgi: ! metrics.listen"), text


async def test_app_configured_logging_prints_once(tmp_path: Path) -> None:
    env = {"TETHER_TEST_BASICCONFIG": "1"}
    async with run(tmp_path, "uvicorn", "tests.apps.asgi_main:app", "--port", "{port}", env=env) as p:
        await get(p.url)
    text = p.stderr()
    lines = [line for line in text.splitlines() if STARTED in line]
    assert len(lines) == 1, text
    assert lines[0].startswith("APP INFO tether.asgi: tether started"), (
        text
    )  # the app's format, not uvicorn's


async def test_hypercorn_format(tmp_path: Path) -> None:
    async with run(tmp_path, "hypercorn", "tests.apps.asgi_main:app", "--bind", "127.0.0.1:{port}") as p:
        await get(p.url)
    text = p.stderr()
    lines = [line for line in text.splitlines() if STARTED in line]
    assert len(lines) == 1, text
    # hypercorn creates its logger after the app's lifespan startup: Tether's own format, at INFO.
    assert " INFO [pid " in lines[0] and "] tether.asgi: tether started" in lines[0], text


# -- several processes on one address ------------------------------------------------------------------


async def test_two_workers_with_the_memory_driver_warn(tmp_path: Path) -> None:
    args = ("uvicorn", "tests.apps.asgi_main:app", "--port", "{port}", "--workers", "2")
    async with run(tmp_path, *args) as p:
        await wait_until(lambda: p.stderr().count(STARTED) == 2, 20, "both workers started")
        # The kernel spreads connections over the two workers: new connections until the second answers.
        for _ in range(200):
            await get(p.url)
            if SHARED in p.stderr():
                break
        text = p.stderr()
        assert text.count(SHARED) == 1, text  # one process warns, once
        warning = next(line for line in text.splitlines() if SHARED in line)
        assert warning.startswith("WARNING:  tether.asgi: ! another process serves"), warning
        assert '[room] driver = "redis"' in warning and "tether start --app" in warning
        await get(p.url, 20)
        assert p.stderr().count(SHARED) == 1


async def test_one_worker_restarted_and_another_port_never_warn(tmp_path: Path) -> None:
    args = ("uvicorn", "tests.apps.asgi_main:app", "--port", "{port}")
    port = free_port()
    async with run(tmp_path, *args, port=port, name="one") as one:
        async with run(tmp_path, *args, name="other") as other:  # another app, another port: alone
            await get(one.url, 3)
            await get(other.url, 3)
        one.proc.kill()  # no clean exit: the lock file stays behind
        await one.proc.wait()
    assert list((tmp_path / "runtime" / "tether").glob("*.lock"))
    async with run(tmp_path, *args, port=port, name="again") as again:  # a restart on the same port
        await get(again.url, 3)
    for name in ("one", "other", "again"):
        text = (tmp_path / f"{name}.stderr").read_text()
        assert STARTED in text and SHARED not in text, text


# -- gunicorn's uvicorn workers ---------------------------------------------------------------------------

# uvicorn 0.30+ deprecates its own uvicorn.workers (a DeprecationWarning at import, pointing to the
# uvicorn-worker package): the maintained uvicorn_worker.UvicornWorker is what docs/frameworks.md shows.
GUNICORN = ("gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-b", "127.0.0.1:0", "--graceful-timeout", "5")
APP = "tests.apps.gunicorn_app:app"


async def served_by_gunicorn(p: Proc, transports: list[str]) -> int:
    """A python-socketio client's whole session (connect, emit both ways, ack, disconnect); the pid of
    the worker that served it, whose stderr line shows the server saw the disconnect."""
    client = SioClient(transports)
    try:
        await client.connect(p.url, wait_welcome=False)
        (welcome,) = await client.next("welcome")
        sid = client.sid
        await client.emit("echo", "no ack")
        assert await client.next("echo") == ("no ack",)
        payload = {"text": "héllo", "n": [1, 2.5, None, True]}
        assert await client.call("echo", payload) == payload  # the ack, through the worker
        assert await client.next("echo") == (payload,)
        await client.sio.disconnect()
    finally:
        await client.close()
    pid = int(welcome["pid"])
    # The reason is the client's to choose: python-engineio's AsyncClient.disconnect() closes a WebSocket
    # without waiting for its write loop, so the DISCONNECT packet it queued may never leave ("transport
    # close", as node would say too); over polling it does ("client namespace disconnect").
    said = re.compile(
        rf"disconnected {re.escape(sid)} (client namespace disconnect|transport close) pid {pid}$"
    )
    await wait_until(
        lambda: any(said.match(line) for line in p.stderr().splitlines()), 5, "the server's disconnect line"
    )
    return pid


async def test_gunicorn_one_uvicorn_worker_serves_and_never_warns(tmp_path: Path) -> None:
    async with run(tmp_path, *GUNICORN, "-w", "1", APP, port=0) as p:
        await wait_until(lambda: STARTED in p.stderr(), 10, "the worker started")
        pid = await served_by_gunicorn(p, ["polling", "websocket"])  # polling, then the upgrade
        assert pid == await served_by_gunicorn(p, ["websocket"])
        await get(p.url, 10)
    text = p.stderr()
    started = [line for line in text.splitlines() if STARTED in line]
    # gunicorn's format (uvicorn_worker hands uvicorn's loggers gunicorn's handlers), once.
    assert len(started) == 1 and f"] [{pid}] [INFO] tether.asgi: tether started" in started[0], text
    assert SHARED not in text, text
    assert "Traceback" not in text and "DeprecationWarning" not in text, text


async def test_gunicorn_two_uvicorn_workers_with_the_memory_driver_warn_once(tmp_path: Path) -> None:
    async with run(tmp_path, *GUNICORN, "-w", "2", APP, port=0) as p:
        await wait_until(lambda: p.stderr().count(STARTED) == 2, 20, "both workers started")
        # Both workers accept on gunicorn's one socket: new connections until the second has answered.
        for _ in range(200):
            await get(p.url)
            if SHARED in p.stderr():
                break
        # WebSocket only: with the memory driver a polling session lives in one worker (docs/frameworks.md).
        pids = {await served_by_gunicorn(p, ["websocket"]) for _ in range(4)}
        await get(p.url, 20)
        text = p.stderr()
    assert text.count(SHARED) == 1, text  # one process warns, once
    warning = next(line for line in text.splitlines() if SHARED in line)
    assert "[WARNING] tether.asgi: ! another process serves 127.0.0.1:" in warning, warning
    assert '[room] driver = "redis"' in warning and "gunicorn workers" in warning, warning
    workers = {int(m) for m in re.findall(r"Booting worker with pid: (\d+)", text)}
    assert len(workers) == 2 and pids <= workers, text
    assert "Traceback" not in text, text
