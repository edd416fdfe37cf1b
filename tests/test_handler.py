"""tether.handler: the handshake Request and its cookies."""

from __future__ import annotations

import pytest

from tether.handler import Headers, Request, parse_cookies


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("", {}),
        ("sessionid=abc", {"sessionid": "abc"}),
        ("a=1; b=2;c=3", {"a": "1", "b": "2", "c": "3"}),
        ('q="quoted value"', {"q": "quoted value"}),
        ("a=1; a=2", {"a": "1"}),  # the first wins, as Django and Starlette read it
        ("novalue; =x; b=", {"b": ""}),
        ("t=a=b", {"t": "a=b"}),
    ],
)
def test_parse_cookies(header: str, cookies: dict[str, str]) -> None:
    assert parse_cookies(header) == cookies


def test_request_cookies() -> None:
    request = Request("GET", "/socket.io/", {}, {"cookie": "sessionid=s1; csrftoken=c"})
    assert request.cookies == {"sessionid": "s1", "csrftoken": "c"}
    assert Request("GET", "/", {}, {}).cookies == {}


def test_headers_are_looked_up_case_insensitively() -> None:
    h = Headers({"content-type": "text/plain"})
    assert h["Content-Type"] == h.get("CONTENT-TYPE") == "text/plain"
    assert h.get("x-missing") is None and h.get("X-Missing", "d") == "d"
    assert "content-TYPE" in h and 1 not in h
    with pytest.raises(KeyError):
        h["X-Missing"]
    assert list(h) == ["content-type"]
