"""The official socket.io-client driven across connection cuts (tests/js/recovery_client.mjs), for every
recovery test: one worker, two workers, reloads, slow consumers, Redis Streams nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tests.helpers import scaled

JS_DIR = Path(__file__).resolve().parent / "js"


class NodeClient:
    """One ``node recovery_client.mjs`` process: its JSON lines as they come, bounded waits on them."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> NodeClient:
        node = shutil.which("node")
        assert node is not None, "node is not installed: run `make test` (scripts/ensure-system-deps.sh)"
        assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), "run `cd tests/js && npm install`"
        self.proc = await asyncio.create_subprocess_exec(
            node,
            str(JS_DIR / "recovery_client.mjs"),
            self.url,
            json.dumps(self.options),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "TETHER_TESTS_TIMEOUT_FACTOR": os.environ.get("TETHER_TESTS_TIMEOUT_FACTOR", "1"),
            },
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(json.loads(line))
            self._new.set()

    def steps(self, step: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["step"] == step]

    async def wait_step(self, step: str, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The ``count``-th line of ``step``, waiting for it at most ``scaled(timeout)`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(timeout)
        while len(self.steps(step)) < count:
            left = deadline - loop.time()
            if left <= 0 or (self._reader is not None and self._reader.done()):
                raise AssertionError(
                    f"node client: no {step!r} #{count}; saw {self.lines[-10:]}: {await self._stderr()}"
                )
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)
        return self.steps(step)[count - 1]

    async def finish(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the client to stop (if it has not) and return its ``done`` line."""
        if not self.steps("done") and self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(b"finish\n")
        return await self.wait_step("done", timeout=timeout)

    async def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.returncode is None:
            return ""
        return (await self.proc.stderr.read()).decode()[-2000:]

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


def gaps_and_duplicates(received: list[int], count: int) -> tuple[list[int], list[int]]:
    """The numbers of 1..count missing from ``received``, and those received more than once."""
    seen: set[int] = set()
    duplicates = []
    for n in received:
        if n in seen:
            duplicates.append(n)
        seen.add(n)
    return sorted(set(range(1, count + 1)) - seen), duplicates
