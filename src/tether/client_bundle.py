"""The official Socket.IO client served at ``/socket.io/socket.io.js``, as node's ``serveClient`` does.

The files are the ``dist`` folder of the npm package ``socket.io-client`` (pinned to 4.8.x, MIT, its
``LICENSE`` copied alongside). They are never part of the repository: ``python -m tether.client_bundle
install`` (run by ``make``; it needs npm) copies them into the package (``tether/static/client/``), where a
wheel built afterwards includes them. ``[websocket] client_dir`` points at another copy (for instance a
``node_modules/socket.io-client/dist``).

Serving follows the reference server (socket.io 4.8 ``Server.serve``): the file names of ``CLIENT_FILES``
under ``[websocket] path``, ``ETag: "<client version>"`` with ``If-None-Match`` answered by 304,
``Cache-Control: public, max-age=0``, ``application/javascript`` (``application/json`` for source maps),
gzip when the client accepts it. Where the files are missing Tether still starts: one warning names the
command that installs them and the paths answer 404 with the same hint.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .handler import Request
    from .server.server import Server

__all__ = ["CLIENT_FILES", "INSTALL_COMMAND", "PACKAGE_SPEC", "ClientBundle", "install", "main"]

log = logging.getLogger("tether.client_bundle")

PACKAGE_SPEC = "socket.io-client@~4.8.1"
"""The npm package the bundle comes from: the client that speaks Engine.IO v4 / Socket.IO v5."""

INSTALL_COMMAND = f"{Path(sys.executable).name} -m tether.client_bundle install"
"""The one command that installs the bundle (it runs ``npm install {PACKAGE_SPEC}``)."""

CLIENT_FILES = tuple(
    name + suffix
    for name in ("socket.io.js", "socket.io.min.js", "socket.io.msgpack.min.js", "socket.io.esm.min.js")
    for suffix in ("", ".map")
)
"""The reference server's ``CLIENT_FILES`` (socket.io 4.8 ``lib/index.ts``)."""

BUNDLED_DIR = Path(__file__).resolve().parent / "static" / "client"
"""Where ``install`` puts the files: inside the package, so a wheel built after it carries them."""

_Response = tuple[int, dict[str, str], bytes]


class ClientBundle:
    """The client files of one folder, read once; each one's gzip form made at its first gzip request.

    Args:
        folder: a ``socket.io-client/dist`` folder (or :data:`BUNDLED_DIR`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.version = _version_of(folder)
        self.files: dict[str, bytes] = {}
        """File name -> its bytes, for the files of ``CLIENT_FILES`` the folder has."""
        # Compressed on demand, not here: the eight files (1.2 MB, mostly source maps) took 0.1-0.2 s of CPU
        # to compress at every server start, in every worker and reload, for files few servers ever send.
        self._zipped: dict[str, bytes] = {}
        for name in CLIENT_FILES:
            try:
                self.files[name] = (folder / name).read_bytes()
            except OSError:
                continue

    def gzipped(self, name: str) -> bytes:
        """The gzip form of file ``name`` (``KeyError`` for a file the bundle does not have), made once."""
        zipped = self._zipped.get(name)
        if zipped is None:
            zipped = self._zipped[name] = gzip.compress(self.files[name], 6, mtime=0)
        return zipped

    @property
    def available(self) -> bool:
        return "socket.io.js" in self.files and bool(self.version)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def respond(self, name: str, request: Request) -> _Response:
        """The answer to ``GET <path>/<name>``: 200 (maybe gzip), 304 for a matching ``If-None-Match``, or
        404 with the install hint."""
        data = self.files.get(name)
        if data is None or not self.version:
            hint = f"socket.io-client is not installed; run: {INSTALL_COMMAND}\n"
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, hint.encode()
        etag = self.etag
        if request.headers.get("if-none-match") in (etag, "W/" + etag):
            return 304, {"ETag": etag, "Cache-Control": "public, max-age=0"}, b""
        kind = "json" if name.endswith(".map") else "javascript"
        headers = {
            "Content-Type": f"application/{kind}; charset=utf-8",
            "Cache-Control": "public, max-age=0",
            "ETag": etag,
            "Vary": "Accept-Encoding",
        }
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return 200, headers, self.gzipped(name)
        return 200, headers, data


def _version_of(folder: Path) -> str:
    """The client's version from the ``package.json`` next to ``dist`` (npm) or inside the copied folder."""
    for candidate in (folder / "package.json", folder.parent / "package.json"):
        try:
            meta = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("name") == "socket.io-client" and isinstance(meta.get("version"), str):
            return str(meta["version"])
    return ""


_warned: set[str] = set()


def install(server: Server) -> None:
    """Serve the client files under ``[websocket] path`` when ``[websocket] serve_client`` is on."""
    cfg = server.config.websocket
    if not cfg.serve_client:
        return
    folder = Path(server.config.resolve_path(cfg.client_dir)) if cfg.client_dir else BUNDLED_DIR
    bundle = ClientBundle(folder)
    server.extensions["client_bundle"] = bundle
    if not bundle.available and str(folder) not in _warned:
        _warned.add(str(folder))  # once per process, not once per reload of a test server
        log.warning(
            "! the Socket.IO client bundle is missing in %s: %s/socket.io.js answers 404; install it: %s",
            folder,
            cfg.path.rstrip("/"),
            INSTALL_COMMAND,
        )
    base = cfg.path.rstrip("/")
    for name in CLIENT_FILES:

        async def serve(request: Request, body: bytes, name: str = name) -> _Response:
            return bundle.respond(name, request)

        server.add_http_route("GET", f"{base}/{name}", serve)
        server.add_http_route("HEAD", f"{base}/{name}", serve)


# -- installing the files -----------------------------------------------------------------------------


def copy_from(source: Path, target: Path = BUNDLED_DIR) -> str:
    """Copy ``CLIENT_FILES``, ``package.json`` and ``LICENSE`` of an npm ``socket.io-client`` folder.

    Returns:
        The version copied.

    Raises:
        FileNotFoundError: ``source`` is not a socket.io-client package folder.
    """
    version = _version_of(source / "dist")
    if not version or not (source / "dist" / "socket.io.js").is_file():
        raise FileNotFoundError(f"{source} is not an npm socket.io-client package folder")
    target.mkdir(parents=True, exist_ok=True)
    for name in CLIENT_FILES:
        if (source / "dist" / name).is_file():
            shutil.copyfile(source / "dist" / name, target / name)
    shutil.copyfile(source / "package.json", target / "package.json")
    shutil.copyfile(source / "LICENSE", target / "LICENSE")
    return version


def fetch(cache: Path) -> Path:
    """``npm install`` :data:`PACKAGE_SPEC` into ``cache``; the package folder.

    Raises:
        FileNotFoundError: npm is not installed.
        subprocess.CalledProcessError: npm failed (offline, registry refused).
    """
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not installed (Node.js); the client bundle comes from npm")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(cache), PACKAGE_SPEC],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return cache / "node_modules" / "socket.io-client"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tether" / "socket.io-client"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tether.client_bundle",
        description=f"Install the official Socket.IO client ({PACKAGE_SPEC}) that Tether serves.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="npm install the client and copy its dist files into Tether")
    inst.add_argument("--from", dest="source", help="an existing node_modules/socket.io-client folder")
    inst.add_argument("--target", default=str(BUNDLED_DIR), help="where to copy (default: inside Tether)")
    args = parser.parse_args(argv)
    try:
        source = Path(args.source) if args.source else fetch(_cache_dir())
        version = copy_from(source, Path(args.target))
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"tether: cannot install the client bundle: {exc}", file=sys.stderr)
        return 1
    print(f"socket.io-client {version} installed in {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
