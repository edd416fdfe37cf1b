"""Fixtures shared by the whole suite: real servers on 127.0.0.1:0, run on uvloop like ``tether start``."""

from __future__ import annotations

import compileall
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tests.apps.basic_routes import build_router
from tests.helpers import Recorder, scaled
from tests.redis_fixtures import cluster, redis_server  # noqa: F401 - fixtures: a real redis-server and two nodes
from tether import Config, Router, Server, run_server

ServerFactory = Callable[..., Awaitable[Server]]

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Bytecode, even under PYTHONDONTWRITEBYTECODE=1 (set in many container and CI images). Without it every
    # Python process the suite starts (hundreds: masters, workers, `tether` commands, nodes) compiled all of
    # src/tether again, about 0.3 s of CPU each (a quarter of tests/manager's CPU time), and pytest rewrote
    # every test module on each run (15 s of collection). __pycache__ is git-ignored, and a .pyc is checked
    # against its source's mtime, so a stale one is never used.
    sys.dont_write_bytecode = False
    for folder in (ROOT / "src" / "tether", ROOT / "tests"):
        compileall.compile_dir(folder, quiet=1)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    # The server runs on uvloop in production (cli.py): test it there, not on the stdlib loop.
    return {"uvloop": uvloop.new_event_loop}


def make_config(**sections: dict[str, Any]) -> Config:
    """A config from the embedded defaults only (no file, no ``TETHER_*`` from the environment), port 0."""
    overrides: dict[str, dict[str, Any]] = {"server": {"host": "127.0.0.1", "port": 0}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return Config.load(None, env={}, overrides=overrides)


@pytest.fixture
def rec() -> Recorder:
    """What the test app (tests/apps/basic_routes.py) records: connects and disconnect reasons."""
    return Recorder()


@pytest.fixture
async def server_factory(rec: Recorder) -> AsyncIterator[ServerFactory]:
    """``await server_factory(router=None, *, handler=None, parser=None, **sections)`` -> a started Server.

    ``sections`` are config overrides such as ``websocket={"max_payload": 1000}``. Without a router the
    server runs tests/apps/basic_routes.py recording into the ``rec`` fixture. Every server is shut down
    at the end of the test, whatever happened.
    """
    servers: list[Server] = []

    async def make(router: Router | None = None, **kwargs: Any) -> Server:
        extra = {k: kwargs.pop(k) for k in ("handler", "parser", "adapter") if k in kwargs}
        config = make_config(**kwargs)
        server = await run_server(config, router if router is not None else build_router(rec), **extra)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.shutdown(timeout=scaled(5))


@pytest.fixture
async def server(server_factory: ServerFactory) -> Server:
    """A server with the default config and the basic test routes."""
    return await server_factory()
