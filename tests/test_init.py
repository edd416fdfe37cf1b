"""The ``tether`` package imports its public names on first use (PEP 562): ``import tether`` is cheap, and
every name of ``tether.__all__`` is the object its home module defines, as the eager package gave."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tether
from tests.helpers import scaled

INIT = Path(tether.__file__)


def _typing_imports() -> dict[str, str]:
    """``name -> module`` of the imports under ``if _typing.TYPE_CHECKING:`` in ``tether/__init__.py``: what
    a type checker believes each public name is."""
    tree = ast.parse(INIT.read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Attribute)
        and node.test.attr == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "one block of imports"
    imports = [node for node in blocks[0].body if isinstance(node, ast.ImportFrom)]
    assert len(imports) == len(blocks[0].body)
    found: dict[str, str] = {}
    for node in imports:
        module = importlib.util.resolve_name("." * node.level + (node.module or ""), "tether")
        for alias in node.names:
            assert alias.asname is None, alias.asname
            found[alias.name] = module
    return found


def _fresh_python(code: str) -> list[str]:
    """Run ``code`` in a new interpreter; it prints JSON on its last line, returned parsed."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(30), check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_every_public_name_is_its_home_modules_object() -> None:
    typed = _typing_imports()
    assert set(typed) == set(tether.__all__) - {"__version__"}
    for name, module in typed.items():
        home = importlib.import_module(module)
        assert getattr(tether, name) is getattr(home, name), name
        # Classes and functions also name where they are defined: the same object there too.
        defined_in = getattr(getattr(home, name), "__module__", None)
        if isinstance(defined_in, str) and defined_in.startswith("tether."):
            assert getattr(importlib.import_module(defined_in), name) is getattr(tether, name), name


def test_import_tether_imports_none_of_its_modules() -> None:
    loaded = _fresh_python("import json, sys, tether; print(json.dumps(sorted(sys.modules)))")
    assert [m for m in loaded if m.startswith("tether.")] == []
    assert not [m for m in loaded if m.split(".")[0] in {"asyncio", "picows", "httptools", "orjson"}]


def test_star_import_in_a_fresh_interpreter_gives_every_name() -> None:
    # What a route file does (`from tether import *` / `from tether import Server`), with nothing
    # imported before: each name is imported on its own first use, the server among them.
    names = _fresh_python(
        "import json, sys\n"
        "from tether import *\n"
        "import tether\n"
        "assert Server is sys.modules['tether.server.server'].Server\n"
        "assert websocket is sys.modules['tether.router'].websocket\n"
        "print(json.dumps(sorted(n for n in tether.__all__ if n in globals())))"
    )
    assert names == sorted(tether.__all__)


def test_dir_lists_the_names_and_an_unknown_name_is_an_attribute_error() -> None:
    assert set(tether.__all__) <= set(dir(tether))
    with pytest.raises(AttributeError, match="module 'tether' has no attribute 'Sever'"):
        _ = tether.Sever  # type: ignore[attr-defined]
    assert not hasattr(tether, "server_stack")
    with pytest.raises(ImportError, match="cannot import name 'Nope' from 'tether'"):
        from tether import Nope  # type: ignore[attr-defined]  # noqa: F401


def test_a_name_once_imported_is_a_plain_module_attribute() -> None:
    tether.Server  # noqa: B018  # resolve it
    assert vars(tether)["Server"] is tether.Server
