"""The public surface: ``tether.__all__`` lists exactly what a user may import, and every name exists."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import tether

MODULES = [
    "tether.config",
    "tether.config.loading",
    "tether.config.sections",
    "tether.broadcast",
    "tether.context",
    "tether.errors",
    "tether.handler",
    "tether.rooms",
    "tether.router",
    "tether.typing",
    "tether.protocol.engineio",
    "tether.protocol.socketio",
    "tether.protocol.events",
    "tether.protocol.parsers",
    "tether.protocol.connection",
    "tether.server",
    "tether.server.server",
    "tether.server.app_door",
    "tether.server.paths",
    "tether.asgi",
    "tether.client_bundle",
    "tether.contrib.django",
    "tether.contrib.starlette",
]


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(tether.__all__)) == len(tether.__all__)
    for name in tether.__all__:
        assert hasattr(tether, name), name


def test_all_is_sorted_and_matches_public_names() -> None:
    assert tether.__all__ == sorted(tether.__all__)
    for name in tether.__all__:
        getattr(tether, name)  # imported on first use (tests/test_init.py): now in vars(tether)
    public = {
        name
        for name, value in vars(tether).items()
        if not name.startswith("_") and not isinstance(value, type(tether))  # submodules are not API
    }
    assert public == set(tether.__all__) - {"__version__"}


def test_issue_api_is_exported() -> None:
    wanted = {
        "Server", "run_server", "websocket", "Socket", "Reject", "Config", "Router", "Handler",
        "SocketIOParser", "JsonParser", "RawParser", "Parser", "TetherError", "ProtocolError",
        "RemoteProtocolError", "ConfigError",
    }  # fmt: skip
    assert wanted <= set(tether.__all__)


def test_errors_share_one_root() -> None:
    from tether import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), tether.TetherError), name
    assert issubclass(tether.ConfigError, ValueError)
    assert issubclass(tether.AckTimeout, TimeoutError)
    assert issubclass(tether.PayloadTooBig, tether.RemoteProtocolError)


@pytest.mark.parametrize("module_name", MODULES)
def test_module_all_is_honest(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = module.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), f"{module_name}.{name}"
        assert not name.startswith("_")


def test_protocol_imports_no_io() -> None:
    # The sans-I/O core imports no asyncio, sockets or redis, and nothing from the I/O side of tether.
    root = pathlib.Path(tether.__file__).parent / "protocol"
    banned = {"asyncio", "socket", "selectors", "redis", "picows", "httptools", "uvloop"}
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [("." * node.level) + (node.module or "")]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in banned, f"{path.name} imports {module}"
                assert not module.startswith(("..server", "..cluster", "..context")), (
                    f"{path.name} imports {module}"
                )
