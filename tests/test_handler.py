"""tether.handler: the handshake Request and its cookies."""

from __future__ import annotations

import pytest

from tether.handler import Request, parse_cookies


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
