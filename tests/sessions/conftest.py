"""Fixtures of the session tests: servers that are always shut down, clients that are always closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.sessions.helpers import Recorder, ServerFactory, session_config
from tether import Config, Router, Server, run_server


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    servers: list[Server] = []

    async def factory(config: Config | None = None, router: Router | None = None, **session: Any) -> Server:
        server = await run_server(config or session_config(**session), router or Router())
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.shutdown(timeout=2)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[], Recorder]]:
    made: list[Recorder] = []

    def factory() -> Recorder:
        r = Recorder()
        made.append(r)
        return r

    yield factory
    for r in made:
        await r.close()
