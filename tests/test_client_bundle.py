"""The official client served at /socket.io/socket.io.js (tether.client_bundle), compared with what node's
socket.io 4.8 ``serveClient`` sends: the same files, ``ETag: "<version>"``, 304 on a match, gzip."""

from __future__ import annotations

import gzip
import logging
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ServerFactory
from tether import client_bundle

NPM_CLIENT = Path(__file__).resolve().parent / "js" / "node_modules" / "socket.io-client"


def _version() -> str:
    import json

    return str(json.loads((NPM_CLIENT / "package.json").read_text())["version"])


async def test_serves_every_client_file_with_etag(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket={"client_dir": str(NPM_CLIENT / "dist")})
    etag = f'"{_version()}"'
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for name in client_bundle.CLIENT_FILES:
            async with http.get(server.url + "/socket.io/" + name, headers={"Accept-Encoding": ""}) as resp:
                assert resp.status == 200, name
                assert resp.headers["ETag"] == etag
                assert resp.headers["Cache-Control"] == "public, max-age=0"
                kind = "json" if name.endswith(".map") else "javascript"
                assert resp.headers["Content-Type"] == f"application/{kind}; charset=utf-8"
                assert await resp.read() == (NPM_CLIENT / "dist" / name).read_bytes()
        url = server.url + "/socket.io/socket.io.min.js"
        for tag in (etag, "W/" + etag):
            async with http.get(url, headers={"If-None-Match": tag}) as resp:
                assert resp.status == 304 and await resp.read() == b""
        async with http.get(url, headers={"If-None-Match": '"0.0.1"'}) as resp:
            assert resp.status == 200
        async with http.get(url, headers={"Accept-Encoding": "gzip, br"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            unzipped = gzip.decompress(await resp.read())
            assert unzipped == (NPM_CLIENT / "dist" / "socket.io.min.js").read_bytes()
        async with http.get(server.url + "/socket.io/socket.io.other.js") as resp:
            assert resp.status != 200  # only the reference server's file names


async def test_missing_bundle_warns_once_and_answers_404_with_the_hint(
    server_factory: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tether.client_bundle"):
        server = await server_factory(websocket={"client_dir": str(tmp_path)})
        await server_factory(websocket={"client_dir": str(tmp_path)})
    warnings = [r.getMessage() for r in caplog.records if r.name == "tether.client_bundle"]
    assert len(warnings) == 1 and client_bundle.INSTALL_COMMAND in warnings[0]
    async with aiohttp.ClientSession() as http, http.get(server.url + "/socket.io/socket.io.js") as resp:
        assert resp.status == 404
        assert client_bundle.INSTALL_COMMAND in await resp.text()


async def test_serve_client_off(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket={"client_dir": str(NPM_CLIENT / "dist"), "serve_client": False})
    async with aiohttp.ClientSession() as http, http.get(server.url + "/socket.io/socket.io.js") as resp:
        assert resp.status == 404


async def test_install_copies_the_files_and_the_licence(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    target = tmp_path / "client"
    cmd = [sys.executable, "-m", "tether.client_bundle", "install", "--from", str(NPM_CLIENT)]
    proc = subprocess.run([*cmd, "--target", str(target)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (target / "LICENSE").read_text() == (NPM_CLIENT / "LICENSE").read_text()
    server = await server_factory(websocket={"client_dir": str(target)})
    async with aiohttp.ClientSession() as http, http.get(server.url + "/socket.io/socket.io.js") as resp:
        assert resp.status == 200 and resp.headers["ETag"] == f'"{_version()}"'


def test_install_from_a_folder_that_is_not_the_package(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tether.client_bundle", "install", "--from", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--target", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "not an npm socket.io-client package folder" in proc.stderr


def test_gzip_forms_are_made_once_at_the_first_gzip_request() -> None:
    bundle = client_bundle.ClientBundle(NPM_CLIENT / "dist")
    assert set(bundle.files) == set(client_bundle.CLIENT_FILES)
    zipped = bundle.gzipped("socket.io.js.map")
    assert gzip.decompress(zipped) == (NPM_CLIENT / "dist" / "socket.io.js.map").read_bytes()
    assert bundle.gzipped("socket.io.js.map") is zipped  # kept, not compressed again
    with pytest.raises(KeyError):
        bundle.gzipped("socket.io.other.js")
