"""tether.port_lock: the lock an ASGIApp takes on its address at the first request is seen by another
process while the app serves, and dropped at the app's shutdown (a later server on that port, in any
process, is alone again). The warning itself, with real uvicorn workers: tests/test_asgi_process.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import make_config
from tests.test_asgi import serve
from tether import port_lock
from tether.asgi import ASGIApp
from tether.router import Router

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent


async def other_process_shares(port: int) -> bool:
    """Asks from another process, as a second uvicorn worker would."""
    code = f"from tether.port_lock import shares_address; print(shares_address(('127.0.0.1', {port})))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return {b"True\n": True, b"False\n": False}[out]


async def test_held_while_serving_and_released_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert port_lock.lock_folder() == tmp_path / "tether"
    app = ASGIApp(Router(), config=make_config())
    async with serve(app, "uvicorn") as url:
        port = int(url.rsplit(":", 1)[1])
        assert not await other_process_shares(port)  # nothing served yet: no lock taken
        async with aiohttp.ClientSession() as http, http.get(url + "/nothing") as resp:
            assert resp.status == 404
        assert await other_process_shares(port)
        assert not port_lock.shares_address(("127.0.0.1", port))  # this process: the same process
        port_lock.release(("127.0.0.1", port))  # that second take, given back: the app's still held
        assert await other_process_shares(port)
    assert not await other_process_shares(port)  # shut down: released
    assert (tmp_path / "tether").stat().st_mode & 0o777 == 0o700
