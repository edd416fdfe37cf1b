"""Router: callables and ``"module:Class@method"`` strings, resolution order, route files."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.apps import controllers
from tests.helpers import scaled
from tether import ConfigError, Router, websocket
from tether.router import RESERVED, load_route_file


def test_on_as_call_and_decorator() -> None:
    r = Router()

    def a(socket: Any) -> str:
        return "a"

    assert r.on("a", a) is a

    @r.on("b", namespace="/chat")
    async def b(socket: Any) -> str:
        return "b"

    # A plain def comes back wrapped to run in the server's thread pool; async def as it is.
    assert inspect.unwrap(r.get("/", "a")) is a  # type: ignore[arg-type]
    assert r.get("/chat", "b") is b
    assert r.get("/", "b") is None
    assert r.get("/nope", "a") is None
    assert r.namespaces() == ["/", "/chat"]
    assert r.has_namespace("/chat") and not r.has_namespace("/other")
    assert r.events("/chat") == ["b"]
    assert {"connect", "disconnect"} == RESERVED


def test_event_decorator_names_the_event_after_the_function() -> None:
    # python-socketio's @sio.event, bare and with a namespace.
    r = Router()

    @r.event
    async def chat(socket: Any, data: Any) -> Any:
        return data

    @r.event(namespace="/x")
    async def ping(socket: Any) -> str:
        return "pong"

    assert r.get("/", "chat") is chat
    assert r.get("/x", "ping") is ping
    assert r.events("/") == ["chat"] and r.events("/x") == ["ping"]


def test_connect_with_python_socketios_three_arguments_fails_at_start() -> None:
    # connect(sid, environ, auth) called as connect(socket, auth) raised TypeError at every connect,
    # refusing every client with only a server log line; resolve_all (tether start) now says why.
    r = Router()

    @r.on("connect")
    async def connect(socket: Any, environ: Any, auth: Any) -> None: ...

    with pytest.raises(
        ConfigError, match=r"connect: a connect handler takes \(socket, auth\).*socket\.request"
    ):
        r.resolve_all()

    # connect(socket, environ): it would get the auth in `environ`.
    r = Router()

    @r.on("connect")
    async def connect_environ(socket: Any, environ: Any) -> None: ...

    with pytest.raises(ConfigError, match=r"not python-socketio's \(sid, environ, auth\)"):
        r.resolve_all()

    # A third parameter with a default still fits (socket, auth).
    r = Router()

    @r.on("connect")
    async def connect_ok(socket: Any, auth: Any, extra: Any = None) -> None: ...

    r.resolve_all()
    assert r.get("/", "connect") is connect_ok


def test_later_registration_replaces() -> None:
    r = Router()
    r.on("x", lambda s: 1)
    assert r.get("/", "x")(None) == 1  # type: ignore[misc]
    r.on("x", lambda s: 2)
    assert r.get("/", "x")(None) == 2  # type: ignore[misc]


def test_string_target_builds_the_class_once() -> None:
    controllers.UserController.instances = 0
    r = Router()
    r.on("loginCheck", "tests.apps.controllers:UserController@check_login")
    r.on("logout", "tests.apps.controllers:UserController@send_logout")
    check = r.get("/", "loginCheck")
    logout = r.get("/", "logout")
    assert check is not None and logout is not None
    assert controllers.UserController.instances == 1
    assert inspect.unwrap(check).__self__ is inspect.unwrap(logout).__self__  # type: ignore[attr-defined]
    assert logout(None) == "bye"
    assert r.get("/", "loginCheck") is check  # resolved once, then cached
    assert controllers.UserController.instances == 1


def test_string_target_function_and_nested_class() -> None:
    r = Router()
    r.on("f", "tests.apps.controllers:plain_function")
    r.on("n", "tests.apps.controllers:Nested.Inner@hello")
    assert inspect.unwrap(r.get("/", "f")) is controllers.plain_function  # type: ignore[arg-type]
    assert r.get("/", "n")(None) == "inner"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("no_colon_here", "expected 'package.module:Class@method' or 'package.module:function'"),
        (":Class@m", "expected 'package.module:Class@method'"),
        ("module:", "expected 'package.module:Class@method'"),
    ],
)
def test_malformed_target_fails_at_registration(target: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router().on("e", target)
    assert info.value.key == target
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("tests.apps.no_such_module:C@m", "cannot import tests.apps.no_such_module"),
        ("tests.apps.controllers:NoSuch@m", "tests.apps.controllers has no NoSuch"),
        ("tests.apps.controllers:UserController@no_such", "UserController has no method no_such"),
        ("tests.apps.controllers:CONTROLLER_PROBLEM", "is not callable"),
    ],
)
def test_unresolvable_target_fails_on_resolve(target: str, reason: str) -> None:
    r = Router()
    r.on("e", target)  # well-formed: accepted until resolved
    with pytest.raises(ConfigError) as info:
        r.resolve_all()
    assert info.value.key == target
    assert reason in info.value.reason


@pytest.mark.parametrize("event", ["", None, 5])
def test_bad_event_name(event: Any) -> None:
    with pytest.raises(ConfigError, match="event name must be a non-empty string"):
        Router().on(event, lambda s: None)


def test_bad_namespace_and_handler() -> None:
    with pytest.raises(ConfigError, match="namespace must start with '/'"):
        Router().on("e", lambda s: None, namespace="chat")
    with pytest.raises(ConfigError, match="handler must be callable"):
        Router().on("e", 42)  # type: ignore[call-overload]


def test_server_side_handlers(tmp_path: Path) -> None:
    """``on_server_side``: a registry of its own (a socket event of the same name is another handler), node's
    reserved names refused, and a route file's server-side handlers kept by ``load_route_file``."""
    r = Router()

    @r.on_server_side("ping")
    def ping(arg: Any) -> str:
        return f"pong {arg}"

    r.on_server_side("ping", lambda: "chat", namespace="/chat")
    assert r.server_side("/", "ping") is ping and r.server_side("/chat", "ping") is not ping
    assert r.server_side("/", "other") is None and r.get("/", "ping") is None
    assert sorted(r.server_side_namespaces()) == ["/", "/chat"]
    for bad in ("connect", "connection", "new_namespace", ""):
        with pytest.raises(ConfigError, match="not a server-side event name"):
            r.on_server_side(bad, ping)
    with pytest.raises(ConfigError, match="namespace must start with '/'"):
        r.on_server_side("e", ping, namespace="chat")
    with pytest.raises(ConfigError, match="must be callable"):
        r.on_server_side("e", 42)  # type: ignore[arg-type]
    (tmp_path / "sse_routes.py").write_text(
        "from tether import websocket\n@websocket.on_server_side('hello')\ndef hello(x):\n    return x\n"
    )
    loaded = load_route_file("sse_routes.py", base_dir=str(tmp_path))
    handler = loaded.server_side("/", "hello")
    assert handler is not None and handler(3) == 3
    assert websocket.server_side("/", "hello") is None  # moved, as the socket routes are
    r.clear()
    assert r.server_side("/", "ping") is None


def test_load_route_file_from_path(tmp_path: Path) -> None:
    (tmp_path / "my_ctrl_for_router_test.py").write_text(
        "class C:\n    def m(self, socket, d):\n        return d\n"
    )
    (tmp_path / "routes.py").write_text(
        "from tether import websocket\n"
        "websocket.on('m', 'my_ctrl_for_router_test:C@m')\n"
        "@websocket.on('connect')\n"
        "def on_connect(socket, auth):\n    return None\n"
        "websocket.on('x', lambda s: 1, namespace='/chat')\n"
    )
    router = load_route_file("routes.py", base_dir=str(tmp_path))
    assert sorted(router.events("/")) == ["connect", "m"]
    assert router.events("/chat") == ["x"]
    assert router.get("/", "m")(None, 7) == 7  # type: ignore[misc]
    # the module-level router is left empty, so that a reload imports the file afresh
    assert websocket.namespaces() == []


def test_load_route_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_route_file(str(tmp_path / "missing.py"))
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken on import')\n")
    with pytest.raises(ConfigError, match="RuntimeError: broken on import"):
        load_route_file(str(tmp_path / "broken.py"))
    (tmp_path / "badtarget.py").write_text(
        "from tether import websocket\nwebsocket.on('e', 'nowhere_mod:C@m')\n"
    )
    with pytest.raises(ConfigError, match="cannot import nowhere_mod"):
        load_route_file(str(tmp_path / "badtarget.py"))  # resolve_all: a broken controller fails at start


def test_a_missing_package_says_where_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "needs.py").write_text("import not_installed_anywhere.sub\n")
    with pytest.raises(ConfigError) as info:
        load_route_file(str(tmp_path / "needs.py"))
    message = str(info.value)
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere'" in message
    # The Python that runs tether: a package installed in another virtualenv is the usual cause.
    assert f"`{sys.executable} -m pip install not_installed_anywhere`" in message


def test_load_example_route_file() -> None:
    root = Path(__file__).resolve().parent.parent / "examples" / "login_timeout"
    router = load_route_file("routes.py", base_dir=str(root))
    assert "loginCheck" in router.events("/")


def test_register_namespace_without_importing_tether_names_first() -> None:
    # `import tether` no longer imports tether.namespace (tests/test_init.py), which installs how a
    # namespace object becomes routes: the first register_namespace imports it. A fresh interpreter
    # (this one imported it long ago), a python-socketio namespace and the router module alone.
    code = (
        "import sys, socketio\n"
        "from tether.router import websocket\n"
        "assert 'tether.namespace' not in sys.modules\n"
        "class Chat(socketio.AsyncNamespace):\n"
        "    async def on_hello(self, sid, data):\n"
        "        return data\n"
        "websocket.register_namespace(Chat('/chat'))\n"
        "print(sorted(websocket.events('/chat')), websocket.get('/chat', '*') is not None)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(30), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['*', 'connect', 'disconnect'] True"
