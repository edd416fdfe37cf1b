"""Security: TLS from config, origins over TLS, auth middleware, secrets out of logs, no code on the wire.

The basic origin and CORS checks are in tests/server/test_malformed.py; here they run over TLS with a
certificate the test makes with ``openssl req`` (installed with the system; a missing openssl fails the
test, it is not skipped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import socketio  # type: ignore[import-untyped]
from websockets.exceptions import InvalidStatus

from tether import Config, ConfigError, Reject, Server

from .support import (
    EioClient,
    PollingClient,
    echo_latencies,
    echo_router,
    poll_url,
    scaled,
    serve,
    upgrade_request,
    wait_until,
    ws_frame,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "tether"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts only the test's certificate (hostname checked: IP SAN 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


def tls_config(certificate: tuple[Path, Path]) -> dict[str, Any]:
    return {"tls_cert": str(certificate[0]), "tls_key": str(certificate[1])}


# -- TLS --------------------------------------------------------------------------------------------------


async def test_wss_and_https_polling(certificate: tuple[Path, Path], client_tls: ssl.SSLContext) -> None:
    async with serve(server=tls_config(certificate)) as server:
        assert server.url.startswith("https://")
        ws = await EioClient.connect(server, ssl_context=client_tls)
        assert await ws.call("echo", "over wss", b"binary".hex()) == ["over wss", "62696e617279"]
        big = "z" * 200_000  # several TLS records
        assert await ws.call("echo", big) == [big]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as session:
            poller = await PollingClient.open(session, server)
            assert await poller.post(b'421["echo","over https"]') == 200
            assert await poller.get() == '431["over https"]'
        await ws.close()


async def test_python_socketio_client_upgrades_to_wss(
    certificate: tuple[Path, Path], client_tls: ssl.SSLContext
) -> None:
    """The real client library: https polling handshake, then the upgrade to wss on the same port."""
    connector = aiohttp.TCPConnector(ssl=client_tls)
    async with (
        serve(server=tls_config(certificate)) as server,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        client = socketio.AsyncClient(http_session=session, reconnection=False)
        await asyncio.wait_for(client.connect(server.url, wait_timeout=scaled(5)), scaled(10))
        try:
            assert await client.call("echo", {"a": 1}, timeout=scaled(5)) == {"a": 1}
            await wait_until(lambda: client.transport() == "websocket", what="the upgrade to wss")
            assert await client.call("echo", "after upgrade", timeout=scaled(5)) == "after upgrade"
        finally:
            await client.disconnect()


async def test_client_that_does_not_trust_the_certificate_is_refused(certificate: tuple[Path, Path]) -> None:
    async with serve(server=tls_config(certificate)) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await EioClient.connect(server, ssl_context=ssl.create_default_context())
        # Plain HTTP on the TLS port: no answer in clear text, and the server carries on.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(1024), scaled(5))
        assert b"HTTP/1.1 200" not in data
        writer.close()
        ok = await EioClient.connect(
            server, ssl_context=ssl.create_default_context(cafile=str(certificate[0]))
        )
        assert await ok.call("echo", 1) == [1]
        await ok.close()


async def test_slow_consumer_over_tls_is_disconnected(
    certificate: tuple[Path, Path], client_tls: ssl.SSLContext
) -> None:
    """The high-water mark is set on the TLS transport too: a wss client that stops reading is bounded."""
    high = 128 * 1024
    limits = {"send_buffer_bytes": high, "slow_consumer_policy": "disconnect"}
    async with serve(server=tls_config(certificate), limits=limits) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=client_tls, server_hostname="127.0.0.1", limit=1024
        )
        writer.write(upgrade_request())
        await asyncio.wait_for(reader.readuntil(b'"maxPayload"'), scaled(5))
        writer.write(ws_frame(b"40"))
        await wait_until(lambda: server.state.sockets == 1)
        slow = next(iter(server.clients.values()))
        ws = slow.ws
        peak = 0
        for i in range(300):  # ~30 MiB offered; the client reads none of it
            for _ in range(100):
                server.emit("bulk", i, "x" * 1024)
            peak = max(peak, ws.underlying_transport.get_write_buffer_size())
            await asyncio.sleep(0)
            if slow.sid not in server.clients:
                break
        assert server.state.slow_consumers == 1
        await wait_until(lambda: bool(ws.is_disconnected), 2, "the TLS slow consumer to be closed")
        assert peak <= high + 4096, peak
        writer.close()


def test_tls_paths_are_relative_to_the_config_file(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    (tmp_path / "certs").mkdir()
    for src in certificate:
        (tmp_path / "certs" / src.name).write_bytes(src.read_bytes())
    (tmp_path / "tether.toml").write_text(
        '[server]\nport = 0\ntls_cert = "certs/cert.pem"\ntls_key = "certs/key.pem"\n'
    )
    config = Config.load(tmp_path / "tether.toml", env={})
    assert Path(config.resolve_path(config.server.tls_cert)) == tmp_path / "certs" / "cert.pem"
    with pytest.raises(ConfigError, match="go together"):
        Config.load(env={}, overrides={"server": {"tls_cert": "cert.pem"}})


# -- origins over TLS -------------------------------------------------------------------------------------


async def test_origin_allowlist_over_tls(certificate: tuple[Path, Path], client_tls: ssl.SSLContext) -> None:
    allowed = "https://app.example"
    async with serve(server=tls_config(certificate), websocket={"allowed_origins": [allowed]}) as server:
        ok = await EioClient.connect(server, ssl_context=client_tls, origin=allowed)
        with pytest.raises(InvalidStatus) as info:
            await EioClient.connect(server, ssl_context=client_tls, origin="https://evil.example")
        assert info.value.response.status_code == 403
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as session:
            async with session.get(poll_url(server), headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
            async with session.get(poll_url(server), headers={"Origin": allowed}) as r:
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == allowed
        await ok.close()


# -- auth middleware ----------------------------------------------------------------------------------------


def guarded_server_router(routed: list[str]) -> Any:
    router = echo_router()

    @router.on("connect")
    def connect(sock: Any, auth: Any) -> None:
        routed.append(sock.data["user"])

    return router


def token_hook(sock: Any, auth: Any) -> None:
    if not isinstance(auth, dict) or auth.get("token") != "good":
        raise Reject({"code": 401, "message": "bad token"})
    sock.data["user"] = "alice"


async def test_connect_hook_is_auth_middleware() -> None:
    routed: list[str] = []
    async with serve(guarded_server_router(routed)) as server:
        server.connect_hooks.append(token_hook)
        denied = await EioClient.connect(server, auth={"token": "bad"})
        error = orjson.loads(denied.connect_reply[2:])
        assert error["message"] == "bad token" and error["data"]["code"] == 401
        anonymous = await EioClient.connect(server)
        assert anonymous.connect_reply.startswith("44")
        assert routed == [] and server.state.sockets == 0 and server.state.rejected == 2
        allowed = await EioClient.connect(server, auth={"token": "good"})
        assert allowed.connect_reply.startswith("40")
        assert routed == ["alice"]
        assert await allowed.call("echo", 1) == [1]
        # The refused ones were never connected: their events go nowhere.
        await denied.emit("echo", 2)
        await asyncio.sleep(0.1)
        assert denied.received == []


async def test_connect_hook_that_fails_refuses_the_client() -> None:
    """Fail closed: a hook with a bug (or an async hook, which cannot run here) never lets a client in."""
    routed: list[str] = []

    def broken(sock: Any, auth: Any) -> None:
        raise KeyError("token")

    async def async_hook(sock: Any, auth: Any) -> None:
        raise Reject("never awaited")

    for hook in (broken, async_hook):
        async with serve(guarded_server_router(routed)) as server:
            server.connect_hooks.append(hook)
            client = await EioClient.connect(server, auth={"token": "good"})
            assert client.connect_reply.startswith("44"), client.connect_reply
            assert server.state.sockets == 0 and server.state.handler_errors == 1
            other = await EioClient.connect(server)  # the server itself is fine
            assert other.connect_reply.startswith("44")
    assert routed == []


# -- secrets ---------------------------------------------------------------------------------------------

SECRET = "S3cr3t-session-8f1e2d-0123456789abcdef"
API_KEY = "K3y-api-77aa41c0-0123456789abcdef0123"


async def test_secrets_never_logged_in_process(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(
        server={"debug": True, "log_level": "debug"}, session={"secret": SECRET}, api={"key": API_KEY}
    ) as server:
        assert server.config.session.secret == SECRET
        logging.getLogger("tether.test").info("config: %s", server.config.redacted())
        await exercise(server)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "< " in text or "= " in text  # debug logging really was on
    assert SECRET not in text and API_KEY not in text


async def exercise(server: Server) -> None:
    client = await EioClient.connect(server, auth={"token": "abc"})
    await echo_latencies(client, 5)
    await client.emit("no-such-event", 1)
    await client.ws.send("43999[]")  # an ack never asked for
    await client.ws.send("4garbage")
    await asyncio.wait_for(client.closed.wait(), scaled(2))
    async with aiohttp.ClientSession() as session:
        poller = await PollingClient.open(session, server)
        await poller.post(b'42["echo"]')
        async with session.get(f"http://127.0.0.1:{server.port}/socket.io/?EIO=3") as r:
            assert r.status == 400


def test_config_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(env={}, overrides={"session": {"secret": [SECRET]}})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        Config.load(env={}, overrides={"api": {"key": {"k": API_KEY}}})
    assert API_KEY not in str(info.value)
    assert (
        Config.load(env={}, overrides={"session": {"secret": SECRET}}).redacted()["session"]["secret"]
        == "***"
    )


@pytest.mark.parametrize("value", ["1e5", "0x1F", "1_000", "true", "2024-01-01", "[1]", "12345"])
def test_secret_from_env_is_taken_verbatim(value: str) -> None:
    """A secret is a string: ``TETHER_API_KEY=1e5`` must not become ``"100000.0"`` (or fail to load)."""
    # Short values load in debug mode only (a real secret is 32 bytes or more: tests/test_config.py).
    config = Config.load(
        env={"TETHER_API_KEY": value, "TETHER_SESSION_SECRET": value, "TETHER_SERVER_DEBUG": "true"}
    )
    assert config.api.key == value and config.session.secret == value


def test_secrets_never_logged_by_the_cli(tmp_path: Path) -> None:
    """The real entry point, debug logging on, secrets from the environment, clients connecting."""
    env = {
        **os.environ,
        "TETHER_SESSION_SECRET": SECRET,
        "TETHER_API_KEY": API_KEY,
        "TETHER_SERVER_DEBUG": "true",
        "TETHER_SERVER_LOG_LEVEL": "debug",
    }
    env.pop("TETHER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "start", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        port = None
        while port is None:
            line = proc.stdout.readline().decode()
            assert line, "".join(lines)
            lines.append(line)
            m = re.search(r"serving on https?://[\d.]+:(\d+)", line)
            if m:
                port = int(m.group(1))

        async def clients() -> None:
            class Addr:  # what the helpers need of a server
                ssl_context = None

            addr: Any = Addr()
            addr.port = port
            client = await EioClient.connect(addr, auth={"token": "x"})
            await client.emit("anything", 1)
            await client.ws.send("4{bad")
            await asyncio.wait_for(client.closed.wait(), scaled(5))

        asyncio.run(clients())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=scaled(15))
    text = "".join(lines) + out.decode()
    assert "DEBUG" in text, text
    assert SECRET not in text and API_KEY not in text


# -- no code on the wire ----------------------------------------------------------------------------------


def test_no_eval_exec_or_pickle_in_src() -> None:
    pattern = re.compile(r"\b(eval|exec)\s*\(|\bpickle\b|\bmarshal\b|\bshelve\b|yaml\.load\b|\bdill\b")
    offenders = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10  # the grep really looked at the package
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == []
