"""tether.contrib.django: a Django session cookie (real Django, db sessions on SQLite, a user logged in by
Django's own test client) -> Django's session engine and auth -> socket.login_using(user.pk)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.conftest import ServerFactory
from tests.helpers import scaled
from tether import Router, Server
from tether.contrib.django import login_from_session


@pytest.fixture(scope="module")
def django_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import django
    from django.conf import settings

    db = Path(tmp_path_factory.mktemp("django")) / "db.sqlite3"
    if not settings.configured:
        settings.configure(
            SECRET_KEY="test-only",
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}},
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            USE_TZ=True,
        )
        django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("ann", password="pw")
    client = Client()
    assert client.login(username="ann", password="pw")
    yield {"pk": user.pk, "sessionid": client.cookies["sessionid"].value}


@pytest.fixture
async def server(server_factory: ServerFactory) -> AsyncIterator[Server]:
    router = Router()
    router.on("connect", login_from_session)  # the one line of the recipe

    @router.on("whoami")
    def whoami(socket: Any) -> Any:
        return socket.user_id

    yield await server_factory(router)


async def _connect(server: Server, cookie: str | None) -> tuple[socketio.AsyncClient, list[Any]]:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data))
    headers = {"Cookie": cookie} if cookie else {}
    with contextlib.suppress(socketio.exceptions.ConnectionError):
        await sio.connect(server.url, headers=headers, transports=["websocket"], wait_timeout=scaled(5))
    return sio, errors


async def test_session_cookie_logs_the_socket_in(server: Server, django_session: dict[str, Any]) -> None:
    # Twice on one server: the second lookup must not trip asgiref's deadlock guard left by the first.
    for _ in range(2):
        sio, errors = await _connect(server, f"csrftoken=x; sessionid={django_session['sessionid']}")
        try:
            assert errors == []
            assert await sio.call("whoami", timeout=scaled(5)) == str(django_session["pk"])
            assert server.is_user_online(django_session["pk"])
        finally:
            await sio.disconnect()


@pytest.mark.parametrize("cookie", [None, "sessionid=forged", "other=1"])
async def test_no_valid_session_is_refused(
    server: Server, django_session: dict[str, Any], cookie: str | None
) -> None:
    sio, errors = await _connect(server, cookie)
    await sio.disconnect()
    assert [(e["code"], e["message"]) for e in errors] == [(401, "not logged in")]
