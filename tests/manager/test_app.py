"""``tether start --app``: a FastAPI app and Socket.IO on one port with 2 workers; lifespan once per worker;
``tether reload`` loads the new app code with the new workers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import socketio

from tests.helpers import scaled

from .conftest import Instance

WEBAPP = """
import json
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

VERSION = "{version}"
LOG = Path(__file__).with_name("lifespan.log")


@asynccontextmanager
async def lifespan(app):
    with LOG.open("a") as f:
        f.write(f"startup {{os.getpid()}}\\n")
    yield
    with LOG.open("a") as f:
        f.write(f"shutdown {{os.getpid()}}\\n")


app = FastAPI(lifespan=lifespan)


@app.post("/items")
async def items(item: dict):
    return {{"got": item, "pid": os.getpid(), "version": VERSION}}


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(3):
            yield json.dumps({{"part": i}}) + "\\n"
    return StreamingResponse(parts(), media_type="application/x-ndjson")
"""


def _lifespan(folder: Path) -> list[tuple[str, int]]:
    try:
        lines = (folder / "lifespan.log").read_text().split()
    except FileNotFoundError:
        return []
    return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]


async def _check_serves(url: str, version: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/items", json={"name": "pen", "n": 2}) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["got"] == {"name": "pen", "n": 2} and body["version"] == version
        async with http.get(url + "/stream") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            lines = (await resp.text()).splitlines()
            assert [json.loads(line)["part"] for line in lines] == [0, 1, 2]
    for transports in (["websocket"], ["polling"]):
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, transports=transports, wait_timeout=scaled(10))
        try:
            assert await sio.call("echo", {"x": 1}, timeout=scaled(5)) == {"x": 1}
        finally:
            await sio.disconnect()


def test_app_with_two_workers_lifespan_and_reload(instance: Instance) -> None:
    folder = instance.folder
    (folder / "webapp.py").write_text(WEBAPP.format(version="v1"))
    instance.start("--app", "webapp:app", "--workers", "2")
    first = set(instance.worker_pids())
    assert len(first) == 2
    # Each worker ran the app's startup once, before it said ready.
    assert sorted(_lifespan(folder)) == sorted(("startup", pid) for pid in first)
    asyncio.run(_check_serves(instance.url, "v1"))

    (folder / "webapp.py").write_text(WEBAPP.format(version="v2"))
    instance.cli("reload", check=True)
    instance.wait_for(lambda: set(instance.worker_pids()).isdisjoint(first), 30, "new workers")
    second = set(instance.worker_pids())
    instance.wait_for(lambda: sum(e == "shutdown" for e, _ in _lifespan(folder)) == 2, 30, "old shutdowns")
    asyncio.run(_check_serves(instance.url, "v2"))

    instance.cli("stop", check=True)
    events = _lifespan(folder)
    assert sorted(events) == sorted(
        [("startup", pid) for pid in first | second] + [("shutdown", pid) for pid in first | second]
    )


FAILING = """
from contextlib import asynccontextmanager
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app):
    raise RuntimeError("no database")
    yield


app = FastAPI(lifespan=lifespan)
"""


def test_failed_app_startup_is_reported(instance: Instance) -> None:
    (instance.folder / "webapp.py").write_text(FAILING)
    proc = instance.cli("start", "-d", "--app", "webapp:app", "--workers", "1")
    assert proc.returncode != 0
    assert "no database" in proc.stdout + proc.stderr + instance.log()
