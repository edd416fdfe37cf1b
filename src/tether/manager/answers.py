"""What the master answers on its control socket (see :mod:`tether.manager.control` for the wire format).

Commands: ``ping``, ``infos``, ``reload`` (answers when the reload is over), ``stop`` (answers at once;
``{"force": true}`` or a second stop forces), ``launch`` (the arguments the instance was started with, and
the port it holds, which ``start --check`` does not report as taken).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Protocol

from .. import __version__
from .workerproc import Launch

__all__ = ["Instance", "answer"]


class Instance(Protocol):
    """The running instance, as the control commands drive it (the master implements it)."""

    @property
    def launch(self) -> Launch: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def port(self) -> int: ...

    def spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    async def infos(self) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...

    async def stop(self, force: bool = False) -> None: ...


async def answer(instance: Instance, req: dict[str, Any]) -> dict[str, Any]:
    """The answer to one control request ``{"cmd": ...}``; ``{"ok": False, "error"}`` for an unknown one."""
    cmd = req.get("cmd")
    if cmd == "ping":
        return {"ok": True, "pid": os.getpid(), "version": __version__}
    if cmd == "infos":
        return await instance.infos()
    if cmd == "reload":
        return await instance.reload()
    if cmd == "stop":
        forced = bool(req.get("force")) or instance.stopping
        instance.spawn_task(instance.stop(force=forced))
        return {"ok": True, "pid": os.getpid(), "forced": forced}
    if cmd == "launch":
        launch = instance.launch
        return {
            "ok": True,
            "pid": os.getpid(),
            "argv": launch.argv,
            "cwd": launch.cwd,
            "env": launch.env,
            "daemon": launch.daemon,
            "port": instance.port,
        }
    return {"ok": False, "error": f"unknown command {cmd!r}"}
