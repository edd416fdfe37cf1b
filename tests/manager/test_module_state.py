"""``tether start`` warns once about a route file's module-level state when several workers run."""

from __future__ import annotations

from pathlib import Path

from tether.manager.module_state import app_modules, module_state, warning_text

from .conftest import Instance

SOURCE = """
import collections
from collections import defaultdict

__all__ = ["x"]
users = {}
typing: dict[str, int] = dict()
rooms = defaultdict(set)
counts = collections.Counter()
LIMIT = 10
NAME = "chat"
online = 0

def connect(socket):
    global online
    online += 1
"""


def test_module_state_names() -> None:
    assert module_state(SOURCE) == ["users", "typing", "rooms", "counts", "online"]
    assert module_state("LIMIT = 3\nTEXT = 'x'\ndef f():\n    local = {}\n") == []


def test_a_namespace_class_keeps_state_per_worker_too() -> None:
    # A python-socketio app ported with its class-based namespace unchanged: one instance per worker, so
    # its dicts are per worker as a module's are (they were not flagged).
    source = """
import socketio
import tether

class Chat(socketio.AsyncNamespace):
    rooms = {}
    LIMIT = 10

    def __init__(self, namespace):
        super().__init__(namespace)
        self.users: dict[str, str] = {}
        self.name = namespace

    async def on_join(self, sid, room):
        self.seen = []  # not __init__: built per event, not kept state

class Game(tether.Namespace):
    def __init__(self):
        super().__init__("/game")
        self.players = []

class Helper:
    cache = {}  # not a namespace: left alone (it may be built per connection)
"""
    assert module_state(source) == ["Chat.rooms", "Chat.users", "Game.players"]


def test_the_server_kept_by_a_setup_function_is_not_state() -> None:
    # The migration guide's way to a module-level `sio`: a @websocket.setup function keeps the server.
    source = """
from tether import websocket
sio = None
hits = 0

@websocket.setup
def keep(server):
    global sio
    sio = server

@websocket.on("hit")
def hit(socket):
    global hits
    hits += 1
"""
    assert module_state(source) == ["hits"]
    # The same name also rebound by a handler is state again.
    assert module_state(source + "\ndef reset(socket):\n    global sio\n    sio = None\n") == ["hits", "sio"]


def test_warning_only_with_several_workers(tmp_path: Path) -> None:
    routes = tmp_path / "routes.py"
    routes.write_text(SOURCE)
    assert warning_text("routes.py", str(tmp_path), 1) is None
    text = warning_text("routes.py", str(tmp_path), 2)
    assert (
        text is not None
        and "routes.py keeps module-level state (users, typing, rooms, counts, online)" in text
    )
    assert "with 2 workers" in text and "once=True" in text
    assert warning_text("missing.py", str(tmp_path), 2) is None


def test_tether_start_warns_once(instance: Instance) -> None:
    instance.routes.write_text(instance.routes.read_text() + "\nSEEN = []\n")
    proc = instance.start("--workers", "2")
    assert proc.stderr.count("keeps module-level state (SEEN)") == 1, proc.stderr  # once, not per worker


def test_controllers_and_app_modules_the_route_file_leads_to(tmp_path: Path) -> None:
    # The article's layout: routes name controllers (laravel-swoole's `'UserController@checkLogin'`), and
    # the state a PHP developer keeps in a controller or a helper module is per worker here.
    (tmp_path / "controllers").mkdir()
    (tmp_path / "controllers" / "__init__.py").write_text("")
    (tmp_path / "controllers" / "user.py").write_text(
        """
online = set()
TIMEOUT = 900

class UserController:
    cache = {}

    def __init__(self):
        self.sessions: dict[str, str] = {}

    async def check_login(self, socket, data):
        pass

class Plain:
    table = {}  # no route names it: built per use, left alone
"""
    )
    (tmp_path / "shared.py").write_text("users = {}\nLIMIT = 3\n")
    (tmp_path / "untouched.py").write_text("never_imported = {}\n")
    routes = tmp_path / "routes.py"
    routes.write_text(
        """
import json
from collections import defaultdict
from tether import websocket
from shared import users

websocket.on("loginCheck", "controllers.user:UserController@check_login")
websocket.on("missing", "controllers.nowhere:Gone@x")
"""
    )
    assert sorted(
        (p.relative_to(tmp_path).as_posix(), sorted(c)) for p, c in app_modules(routes, str(tmp_path))
    ) == [
        ("controllers/user.py", ["UserController"]),
        ("shared.py", []),
    ]
    text = warning_text("routes.py", str(tmp_path), 2)
    assert text is not None
    # The route file's imports (statements) come before its targets (arguments inside calls).
    assert text.startswith(
        "warning: shared.py keeps module-level state (users); controllers/user.py keeps module-level state "
        "(online, UserController.cache, UserController.sessions): with 2 workers"
    ), text
    assert "never_imported" not in text and "Plain" not in text


def test_modules_outside_the_app_folders_are_not_read(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (tmp_path / "elsewhere.py").write_text("state = {}\n")  # above the app: a library as far as we know
    (app / "routes.py").write_text("import elsewhere\nfrom tether import websocket\n")
    assert app_modules(app / "routes.py", str(app)) == []
    assert warning_text("routes.py", str(app), 4) is None
