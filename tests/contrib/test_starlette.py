"""tether.contrib.starlette: a FastAPI app on Tether's port (``app=``), its signed session cookie (Starlette's
SessionMiddleware) and a bearer token, through the app's own lookup function, to socket.login_using."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.sessions import SessionMiddleware

from tests.conftest import make_config
from tests.helpers import scaled
from tether import Router, Server, run_server
from tether.contrib.starlette import login_with

SECRET = "test-only-secret"
TOKENS = {"tok-bob": "bob"}


def current_user_id(request: Request) -> str | None:
    """The app's own lookup: the one its FastAPI dependency uses too."""
    if "user_id" in request.session:
        return str(request.session["user_id"])
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if token not in TOKENS:
            raise HTTPException(status_code=401, detail="bad token")
        return TOKENS[token]
    return None


def build_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.post("/login")
    async def login(request: Request, body: dict[str, str]) -> dict[str, bool]:
        request.session["user_id"] = body["user"]
        return {"ok": True}

    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    router = Router()
    router.on("connect", login_with(current_user_id, session_secret=SECRET))  # the one line of the recipe

    @router.on("whoami")
    def whoami(socket: Any) -> Any:
        return socket.user_id

    srv = await run_server(make_config(), router, app=build_app())
    try:
        yield srv
    finally:
        await srv.shutdown(timeout=scaled(5))


async def _whoami(server: Server, **connect: Any) -> tuple[Any, list[Any]]:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data))
    try:
        await sio.connect(server.url, transports=["websocket"], wait_timeout=scaled(5), **connect)
        return await sio.call("whoami", timeout=scaled(5)), errors
    except socketio.exceptions.ConnectionError:
        return None, errors
    finally:
        await sio.disconnect()


async def test_session_cookie_of_the_app(server: Server) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/login", json={"user": "ann"}) as resp,
    ):
        assert resp.status == 200
        cookie = resp.cookies["session"].value
    user, errors = await _whoami(server, headers={"Cookie": f"session={cookie}"})
    assert (user, errors) == ("ann", [])


async def test_bearer_token_from_auth(server: Server) -> None:
    user, errors = await _whoami(server, auth={"token": "tok-bob"})
    assert (user, errors) == ("bob", [])


@pytest.mark.parametrize(
    ("connect", "message"),
    [
        ({}, "not logged in"),
        ({"headers": {"Cookie": "session=forged.value.sig"}}, "not logged in"),
        ({"auth": {"token": "stolen"}}, "bad token"),
    ],
)
async def test_refused(server: Server, connect: dict[str, Any], message: str) -> None:
    user, errors = await _whoami(server, **connect)
    assert user is None
    assert [(e["code"], e["message"]) for e in errors] == [(401, message)]
