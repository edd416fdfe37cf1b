"""Finds the module-level state of a route file and its controllers, which several workers would each keep
a copy of.

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
``self.users = {}`` there is one dict per worker too, the usual shape of a ported class-based app. A
controller class a route names (``"controllers.user:UserController@login"``) is built once per worker as
well (:class:`tether.router.Router` keeps one instance per class) and is read the same way.

Besides the route file, the app's own modules it leads to are read (:func:`app_modules`): those its
string targets name and those it imports, when they are files in the route file's folder or in the
config's folder (the two folders :func:`tether.router.load_route_file` puts on ``sys.path``). Library
modules are not read, and neither are the modules those modules import: one level, so the check stays a
glance at the app's front, not a crawl of its tree.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

__all__ = ["app_modules", "module_state", "route_file_path", "warning_text"]

_TARGET = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)(?:@[A-Za-z_]\w*)?")
"""A route's string target: ``package.module:Class@method`` or ``package.module:function``."""

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


def module_state(source: str, controllers: frozenset[str] = frozenset()) -> list[str]:
    """The names of mutable module-level state in ``source``, in the order they appear.

    ``controllers``: names of classes of ``source`` that routes use as controllers (one instance per
    worker): their state is reported as a namespace class's is.

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
        if isinstance(node, ast.ClassDef) and (
            node.name in controllers or any(_base_name(b).endswith("Namespace") for b in node.bases)
        ):
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


def _module_file(dotted: str, folders: list[Path]) -> Path | None:
    """``a.b`` as ``a/b.py`` or ``a/b/__init__.py`` in the first of ``folders`` that has it."""
    parts = dotted.split(".")
    for folder in folders:
        for candidate in (folder.joinpath(*parts).with_suffix(".py"), folder.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def app_modules(route_path: Path, base_dir: str) -> list[tuple[Path, frozenset[str]]]:
    """The app's own modules ``route_path`` leads to, each with the controller classes routes name in it.

    Read from the route file's source (nothing is imported): the modules of its string targets
    (``"pkg.mod:Class@method"`` names class ``Class`` of ``pkg/mod.py``) and of its ``import`` and
    ``from ... import`` statements (``from pkg import mod`` tries ``pkg/mod.py``, then ``pkg``), found as
    files in the route file's folder or in ``base_dir``. The route file itself is not in the list.

    Raises:
        OSError, SyntaxError, UnicodeDecodeError: the route file cannot be read or parsed.
    """
    tree = ast.parse(route_path.read_text())
    folders = [route_path.resolve().parent, Path(base_dir).resolve()]
    found: dict[Path, set[str]] = {}

    def add(dotted: str, cls: str | None = None) -> bool:
        path = _module_file(dotted, folders)
        if path is None or path == route_path.resolve():
            return False
        classes = found.setdefault(path, set())
        if cls is not None:
            classes.add(cls)
        return True

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _TARGET.fullmatch(node.value)
            if match is not None:
                module, name = match.group(1), match.group(2)
                add(module, name if "@" in node.value else None)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if not add(f"{node.module}.{alias.name}"):
                    add(node.module)
    return [(path, frozenset(classes)) for path, classes in found.items()]


def warning_text(route_file: str, base_dir: str, workers: int) -> str | None:
    """The warning ``tether start`` prints, or None when there is nothing to say."""
    if workers <= 1 or not route_file:
        return None
    path = route_file_path(route_file, base_dir)
    if path is None:
        return None
    try:
        sources = [(path, frozenset[str]()), *app_modules(path, base_dir)]
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    kept = []
    for source, controllers in sources:
        try:
            names = module_state(source.read_text(), controllers)
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        if names:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            kept.append(f"{_shown_path(source, path, base_dir)} keeps module-level state ({shown})")
    if not kept:
        return None
    return (
        f"warning: {'; '.join(kept)}: with {workers} workers each worker has "
        "its own copy. Keep shared state in Redis or a database, count with `await server.count(room)`, run "
        "periodic work with `server.start_background_task(fn, once=True)`; if these are constants, ignore "
        'this (docs/scaling.md, "What is per worker").'
    )


def _shown_path(source: Path, route_path: Path, base_dir: str) -> str:
    """``source`` as the user knows it: the route file by its name, the others relative to a folder."""
    if source == route_path:
        return route_path.name
    for folder in (route_path.resolve().parent, Path(base_dir).resolve()):
        if source.is_relative_to(folder):
            return str(source.relative_to(folder))
    return str(source)
