"""One record, one line: client strings cannot forge log lines (issue 13, item 10)."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest

from tether import Router, Server
from tether.logs import EscapingFormatter, configure, escape

from .hardening.support import raw_tcp, scaled, serve


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text, unicode é ✓", "plain text, unicode é ✓"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("line\u2028sep", "line\\u2028sep"),
        ("tab\there", "tab\\there"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_formatter_escapes_the_message_not_the_traceback() -> None:
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        record = logging.LogRecord(
            "tether.x", logging.ERROR, __file__, 1, "path %s\nINFO forged", ("/a\r\nb",), None
        )
        record.exc_info = (type(exc), exc, exc.__traceback__)
    out = formatter.format(record)
    first, *rest = out.splitlines()
    assert first == "ERROR path /a\\r\\nb\\nINFO forged"
    assert rest[0].startswith("| Traceback") and rest[-1] == "| ValueError: boom"


def test_a_traceback_cannot_start_a_line_of_its_own() -> None:
    """The exception's message is the client's text as often as not: every traceback line is marked."""
    formatter = EscapingFormatter("%(asctime)s %(levelname)s %(message)s")
    try:
        raise ValueError("bad name\n2026-11-30 00:00:00,000 INFO admin logged in\r")
    except ValueError as exc:
        record = logging.LogRecord("tether.x", logging.ERROR, __file__, 1, "handler failed", (), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    lines = formatter.format(record).splitlines()
    assert all(line.startswith("| ") for line in lines[1:])
    assert lines[-1] == "| 2026-11-30 00:00:00,000 INFO admin logged in\\r"


def test_configure_installs_the_formatter() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure("info", "%(message)s", stream, force=True)
        logging.getLogger("tether.test").info("x %s", "1\n2")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert stream.getvalue() == "x 1\\n2\n"


async def test_a_failing_route_logs_one_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()

    @router.setup
    def routes(server: Server) -> None:
        async def fail(request: Any, body: bytes) -> Any:
            raise RuntimeError("app bug")

        server.add_http_route("GET", "/fail*", fail)

    caplog.set_level(logging.ERROR)
    async with serve(router) as server:
        reader, writer = await raw_tcp(server)
        writer.write(
            b"GET /fail%0D%0A2026-11-30%20INFO%20forged HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), scaled(5))
        writer.close()
    assert answer.startswith(b"HTTP/1.1 500")
    [record] = [r for r in caplog.records if "route" in r.getMessage()]
    assert "\n" not in record.getMessage() and "\\r\\n" in record.getMessage()
