"""Finds the module-level state of a route file, which several workers would each keep a copy of.

With the default of one worker per core, ``users = {}`` at the top of a route file is one dict per worker:
a chat's user count read 1, 1, 2, 3, 1... by clients on different workers. ``tether start`` warns once
when a route file has such state and more than one worker runs (see docs/scaling.md, "What is per
worker"). The check reads the source (``ast``): it runs nothing.

Flagged: a module-level name bound to a ``dict``, ``list``, ``set`` (literal, comprehension or
constructor: ``dict()``, ``defaultdict(...)``, ``Counter()``, ``deque()``...), and a name a function
declares ``global`` (a counter it rebinds), unless only ``@websocket.setup`` functions declare it (the
server kept for later). Dunder names are not state. A constant table is flagged too:
the warning says so.

Also flagged, as ``Class.name``: the same kinds of value kept by a namespace class of the route file (a
class whose base is named ``...Namespace``: python-socketio's ``AsyncNamespace``, ``tether.Namespace``),
in its body or set on ``self`` in its ``__init__``. A namespace is built once per worker, so
``self.users = {}`` there is one dict per worker too, the usual shape of a ported class-based app.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

__all__ = ["module_state", "route_file_path", "warning_text"]

_MUTABLE_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "bytearray",
        "defaultdict",
        "Counter",
        "deque",
        "OrderedDict",
        "WeakValueDictionary",
    }
)
_MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def _is_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, _MUTABLE_NODES):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in _MUTABLE_CALLS
    return False


def _names_setup(decorator: ast.expr) -> bool:
    """``@websocket.setup``, ``@router.setup`` or ``@setup``."""
    return (isinstance(decorator, ast.Attribute) and decorator.attr == "setup") or (
        isinstance(decorator, ast.Name) and decorator.id == "setup"
    )


def module_state(source: str) -> list[str]:
    """The names of mutable module-level state in ``source``, in the order they appear.

    Raises:
        SyntaxError: ``source`` is not Python.
    """
    tree = ast.parse(source)
    names: dict[str, None] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign) and _is_mutable(node.value):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign) and _is_mutable(node.value):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                names[target.id] = None
    # A name declared global only in a `@websocket.setup` function is the server handle kept for later
    # (`sio = server`, python-socketio's module-level `sio`): set once per worker at start, not state.
    for inner in ast.walk(tree):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)) and not any(
            _names_setup(d) for d in inner.decorator_list
        ):
            for name in (n for g in ast.walk(inner) if isinstance(g, ast.Global) for n in g.names):
                names[name] = None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_base_name(b).endswith("Namespace") for b in node.bases):
            for attr in _namespace_state(node):
                names[f"{node.name}.{attr}"] = None
    return [n for n in names if not (n.startswith("__") and n.endswith("__"))]


def _base_name(base: ast.expr) -> str:
    return base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""


def _namespace_state(cls: ast.ClassDef) -> list[str]:
    """Mutable attributes of a namespace class: in its body, or ``self.X = ...`` in its ``__init__``."""
    found = []
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and _is_mutable(stmt.value):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            found += [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
            for inner in ast.walk(stmt):
                if isinstance(inner, ast.Assign | ast.AnnAssign) and _is_mutable(inner.value):
                    targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                    found += [
                        t.attr
                        for t in targets
                        if isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id == "self"
                    ]
    return found


def route_file_path(route_file: str, base_dir: str) -> Path | None:
    """The source file of ``[websocket] route_file`` (a path or a dotted module); None if not found."""
    if route_file.endswith(".py") or "/" in route_file:
        path = Path(route_file)
        return path if path.is_absolute() else Path(base_dir) / path
    try:
        spec = importlib.util.find_spec(route_file)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def warning_text(route_file: str, base_dir: str, workers: int) -> str | None:
    """The warning ``tether start`` prints, or None when there is nothing to say."""
    if workers <= 1 or not route_file:
        return None
    path = route_file_path(route_file, base_dir)
    if path is None:
        return None
    try:
        names = module_state(path.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    if not names:
        return None
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return (
        f"warning: {path.name} keeps module-level state ({shown}): with {workers} workers each worker has "
        "its own copy. Keep shared state in Redis or a database, count with `await server.count(room)`, run "
        "periodic work with `server.start_background_task(fn, once=True)`; if these are constants, ignore "
        'this (docs/scaling.md, "What is per worker").'
    )
