"""Origin checks on the WebSocket upgrade (403) and polling CORS: same-origin by default, "*", or a list.

Requests without an Origin header (non-browser clients) are always allowed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import ServerFactory
from tests.helpers import TEXT_BODY, scaled
from tether import Server
from tether.server.origins import WARN_INTERVAL, origin_allowed, warn_refused

ALLOWED = "https://app.example"
EVIL = "https://evil.example"


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "h:1", (), True),  # no Origin: not a browser
        ("http://h:1", "h:1", (), True),  # same origin
        ("https://h:1", "h:1", (), True),
        ("http://h:1/", "h:1", (), True),
        ("http://h:2", "h:1", (), False),  # other port
        ("http://other:1", "h:1", (), False),
        ("null", "h:1", (), False),  # sandboxed iframes, file:// pages
        ("ftp://h:1", "h:1", (), False),
        ("http://h:1", None, (), False),  # no Host to compare with
        (EVIL, "h:1", ("*",), True),
        (ALLOWED, "h:1", (ALLOWED,), True),
        (EVIL, "h:1", (ALLOWED,), False),
        ("http://h:1", "h:1", (ALLOWED,), False),  # an explicit list replaces same-origin
        (ALLOWED + ":443", "h:1", (ALLOWED,), False),  # exact match only
    ],
)
def test_origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("https://chat.example", "chat.example", True),
        ("https://CHAT.example:8443", "x", True),  # a name without a port: any port; case-insensitive
        ("http://admin.example:9000", "x", True),
        ("http://admin.example:9001", "admin.example:9001", False),  # name:port: that port only
        # DNS rebinding: evil.example resolved to this server; Origin and Host agree, and are refused.
        ("http://evil.example:9501", "evil.example:9501", False),
        (None, "evil.example", True),  # not a browser
    ],
)
def test_same_origin_against_configured_hosts(origin: str | None, host: str, ok: bool) -> None:
    hosts = ("chat.example", "admin.example:9000")
    assert origin_allowed(origin, host, (), False, hosts) is ok
    assert origin_allowed("http://evil.example:9501", "evil.example:9501", ()) is True  # without hosts


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(10))) as session:
        yield session


def same_origin(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


async def handshake(
    http: aiohttp.ClientSession, server: Server, origin: str | None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Origin": origin} if origin else {}
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling", headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def ws_status(
    server: Server, origin: str | None, path: str = "/socket.io/?EIO=4&transport=websocket"
) -> int:
    """101 when the upgrade is accepted, else the HTTP status of the refusal."""
    try:
        async with connect(f"ws://127.0.0.1:{server.port}{path}", origin=origin, open_timeout=scaled(5)):  # type: ignore[arg-type]
            return 101
    except InvalidStatus as exc:
        if exc.response.status_code == 403:
            assert orjson.loads(exc.response.body or b"") == {"code": 4, "message": "Origin not allowed"}
        return exc.response.status_code


async def test_default_is_same_origin(server: Server, http: aiohttp.ClientSession) -> None:
    status, headers, body = await handshake(http, server, same_origin(server))
    assert status == 200 and body.startswith(b"0{")
    assert headers["Access-Control-Allow-Origin"] == same_origin(server)
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in headers["Vary"]

    status, headers, body = await handshake(http, server, EVIL)
    assert status == 403
    assert orjson.loads(body) == {"code": 4, "message": "Origin not allowed"}
    assert "Access-Control-Allow-Origin" not in headers

    status, headers, _ = await handshake(http, server, None)  # no Origin: a non-browser client
    assert status == 200 and "Access-Control-Allow-Origin" not in headers

    assert await ws_status(server, same_origin(server)) == 101
    assert await ws_status(server, None) == 101
    assert await ws_status(server, EVIL) == 403
    assert await ws_status(server, EVIL, "/ws?token=secret") == 403  # the bare endpoint too


async def test_star_allows_any_origin(server_factory: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await server_factory(websocket={"allowed_origins": ["*"]})
    status, headers, _ = await handshake(http, server, EVIL)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == EVIL
    # Any origin with credentials would let every site act with its visitors' cookies: not with "*"
    # (cors_credentials is true by default).
    assert "Access-Control-Allow-Credentials" not in headers
    assert await ws_status(server, EVIL) == 101
    assert await ws_status(server, "null") == 101


async def test_explicit_list(server_factory: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await server_factory(websocket={"allowed_origins": [ALLOWED, "https://other.example"]})
    status, headers, _ = await handshake(http, server, ALLOWED)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED
    assert (await handshake(http, server, EVIL))[0] == 403
    assert (await handshake(http, server, same_origin(server)))[0] == 403  # the list replaces same-origin
    assert await ws_status(server, ALLOWED) == 101
    assert await ws_status(server, EVIL) == 403


async def test_origin_checked_on_every_polling_request(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await server_factory(websocket={"allowed_origins": [ALLOWED]})
    status, _, body = await handshake(http, server, ALLOWED)
    assert status == 200
    sid = orjson.loads(body[1:])["sid"]
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    async with http.post(url, data=b'40{"token":"secret"}', headers={"Origin": EVIL, **TEXT_BODY}) as r:
        assert r.status == 403
    async with http.post(url, data=b'40{"token":"secret"}', headers={"Origin": ALLOWED, **TEXT_BODY}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_preflight(server_factory: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await server_factory(websocket={"allowed_origins": [ALLOWED]})
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    request_headers = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-custom",
    }
    async with http.options(url, headers=request_headers) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert set(r.headers["Access-Control-Allow-Methods"].replace(" ", "").split(",")) >= {"GET", "POST"}
        assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-custom"
        assert int(r.headers["Access-Control-Max-Age"]) > 0
        assert await r.read() == b""
    async with http.options(url, headers={**request_headers, "Origin": EVIL}) as r:
        assert r.status == 403
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_error_responses_carry_cors_headers(server: Server, http: aiohttp.ClientSession) -> None:
    # A browser page can only read an error body (and so the reason) when CORS headers are on it.
    origin = same_origin(server)
    async with http.get(
        f"{server.url}/socket.io/?EIO=4&transport=polling&sid=nope", headers={"Origin": origin}
    ) as r:
        assert r.status == 400
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert await r.json() == {"code": 1, "message": "Session ID unknown"}


def test_refusal_warning_at_most_once_a_minute_per_origin(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tether.origins"):
        assert warn_refused("https://a.example", "/socket.io/", now=1000.0)
        assert not warn_refused("https://a.example", "/socket.io/", now=1000.0 + WARN_INTERVAL - 0.01)
        assert warn_refused("https://b.example", "/ws", now=1000.0 + 1)
        assert warn_refused("https://a.example", "/socket.io/", now=1000.0 + WARN_INTERVAL)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "'https://a.example'" in messages[0] and "'/socket.io/'" in messages[0]
    assert "[websocket] allowed_origins" in messages[0] and "TETHER_WEBSOCKET_ALLOWED_ORIGINS" in messages[0]
    # A forged line break in the Origin stays on one line.
    with caplog.at_level(logging.WARNING, logger="tether.origins"):
        warn_refused("https://x\n2026 INFO fake", "/ws", now=5000.0)
    assert "\n" not in caplog.records[-1].getMessage()


async def test_refusals_are_logged_for_polling_and_websocket(
    server: Server, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    origin = f"https://refused-{server.port}.example"  # unique: the rate limit is per process
    with caplog.at_level(logging.WARNING, logger="tether.origins"):
        assert (await handshake(http, server, origin))[0] == 403
        assert (await handshake(http, server, origin))[0] == 403
        assert await ws_status(server, origin) == 403
        assert await ws_status(server, origin + ".ws", "/ws?token=secret") == 403
    messages = [r.getMessage() for r in caplog.records if r.name == "tether.origins"]
    assert len(messages) == 2  # once for the first origin (polling and WebSocket), once for the other
    assert "'/socket.io/'" in messages[0] and "'/ws'" in messages[1]


async def test_credentials_only_for_listed_origins(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    server = await server_factory(websocket={"allowed_origins": [ALLOWED]})
    _, headers, _ = await handshake(http, server, ALLOWED)
    assert headers["Access-Control-Allow-Credentials"] == "true"


async def test_allowed_hosts_refuse_a_rebound_name(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    """The page of a name resolved to this server (DNS rebinding) sends its own name as Origin and Host."""
    server = await server_factory(websocket={"allowed_hosts": ["127.0.0.1"]})
    rebound = f"http://rebound.example:{server.port}"
    assert (await handshake(http, server, same_origin(server)))[0] == 200
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with http.get(url, headers={"Origin": rebound, "Host": f"rebound.example:{server.port}"}) as r:
        assert r.status == 403
    assert await ws_status(server, rebound) == 403
