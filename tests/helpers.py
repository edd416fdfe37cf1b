"""Shared test helpers: scaled timeouts, bounded waits, and a disconnect recorder.

Every wait in the suite goes through :func:`scaled` so that a slow machine can stretch them all with
``TETHER_TESTS_TIMEOUT_FACTOR`` (websockets does the same with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_FACTOR = float(os.environ.get("TETHER_TESTS_TIMEOUT_FACTOR", "1") or "1")


def scaled(seconds: float) -> float:
    """``seconds`` stretched by ``TETHER_TESTS_TIMEOUT_FACTOR``."""
    return seconds * TIMEOUT_FACTOR


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail the test after ``scaled(timeout)`` seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):g}s waiting for {what}")
        await asyncio.sleep(0.01)


async def within(awaitable: Any, timeout: float = 5.0) -> Any:
    """Await ``awaitable`` for at most ``scaled(timeout)`` seconds."""
    return await asyncio.wait_for(awaitable, scaled(timeout))


@dataclass
class Recorder:
    """What the test app saw: connects and disconnect reasons."""

    connects: list[tuple[str, str, Any]] = field(default_factory=list)
    """(namespace, sid, auth)"""
    disconnects: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, sid, reason)"""

    def reasons(self, sid: str | None = None) -> list[str]:
        return [reason for _ns, s, reason in self.disconnects if sid is None or s == sid]

    async def wait_disconnect(self, sid: str, timeout: float = 5.0) -> str:
        """The reason ``sid`` was disconnected with, waiting for it if need be."""
        await wait_until(lambda: bool(self.reasons(sid)), timeout, f"disconnect of {sid}")
        return self.reasons(sid)[0]
