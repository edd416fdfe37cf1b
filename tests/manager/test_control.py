"""The control socket: JSON lines, mode 0600, errors that say what went wrong."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from tether.manager.control import ControlError, ControlServer, request


async def test_request_and_reply(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    seen: list[dict[str, Any]] = []

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        seen.append(req)
        return {"ok": True, "echo": req}

    server = ControlServer(path, handler)
    (tmp_path / "c.sock").write_text("left by a dead master")
    await server.start()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    reply = await asyncio.to_thread(request, path, "infos", 5.0, extra=1)
    assert reply == {"ok": True, "echo": {"cmd": "infos", "extra": 1}}

    def raw(line: bytes) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(line)
            return json.loads(s.makefile().readline())  # type: ignore[no-any-return]

    bad = await asyncio.to_thread(raw, b"not json\n")
    assert bad["ok"] is False and bad["error"].startswith("bad request")
    assert (await asyncio.to_thread(raw, b"[1]\n"))["ok"] is False
    await server.stop()
    assert not os.path.exists(path)


async def test_no_master(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no master answers"):
        await asyncio.to_thread(request, str(tmp_path / "none.sock"), "ping")


async def test_silent_master_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "slow.sock")

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {"ok": True}

    server = ControlServer(path, handler)
    await server.start()
    with pytest.raises(ControlError, match=r"did not answer 'reload' within 0\.2s"):
        await asyncio.to_thread(request, path, "reload", 0.2)
    await server.stop()
