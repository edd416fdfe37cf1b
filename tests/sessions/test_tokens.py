"""Signed session tokens, the validator hook, and ``tether token``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from tether import Config, ConfigError
from tether.config import SessionConfig
from tether.errors import InvalidToken, TokenExpired
from tether.sessions import Claims, TokenChecker, issue_token, new_session_id, verify_token
from tether.sessions.tokens import SALT

SECRET = "s3cret-for-tests-0123456789abcdef"


def test_round_trip() -> None:
    token = issue_token("alice", "sess-1", secret=SECRET, ttl=60, now=1000.0)
    claims = verify_token(token, secret=SECRET, now=1010.0)
    assert claims == Claims("alice", "sess-1", 1000.0, 1060.0)


def test_new_session_each_time_without_session_id() -> None:
    a = verify_token(issue_token(42, secret=SECRET, ttl=60), secret=SECRET)
    b = verify_token(issue_token(42, secret=SECRET, ttl=60), secret=SECRET)
    assert a.user_id == b.user_id == "42"
    assert a.session_id != b.session_id
    assert len(new_session_id()) == 16


def test_expiry_is_checked() -> None:
    token = issue_token("alice", secret=SECRET, ttl=60, now=1000.0)
    assert verify_token(token, secret=SECRET, now=1059.9).user_id == "alice"
    with pytest.raises(TokenExpired):
        verify_token(token, secret=SECRET, now=1060.0)


def test_max_age_caps_long_tokens() -> None:
    token = issue_token("alice", secret=SECRET, ttl=10_000, now=1000.0)
    verify_token(token, secret=SECRET, max_age=100, now=1099.0)
    with pytest.raises(TokenExpired):
        verify_token(token, secret=SECRET, max_age=100, now=1100.0)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        "x" * 5000,
        issue_token("alice", secret="other-secret", ttl=60),
        # A token of another app using the same secret without Tether's salt.
        URLSafeTimedSerializer(SECRET).dumps({"u": "alice", "s": "s", "t": 0, "e": 1e12}),
    ],
    ids=["empty", "garbage", "dots", "huge", "wrong-secret", "wrong-salt"],
)
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(InvalidToken) as info:
        verify_token(token, secret=SECRET)
    assert not isinstance(info.value, TokenExpired)


@pytest.mark.parametrize(
    "payload",
    [
        ["not", "a", "dict"],
        {"u": "alice"},
        {"u": 1, "s": "s", "t": 0, "e": 1e12},
        {"u": "alice", "s": "has space", "t": 0, "e": 1e12},
        {"u": "alice", "s": "s", "t": "yesterday", "e": 1e12},
    ],
)
def test_signed_but_malformed_payloads(payload: Any) -> None:
    signer = {"digest_method": hashlib.sha256}
    token = URLSafeTimedSerializer(SECRET, salt=SALT, signer_kwargs=signer).dumps(payload)
    with pytest.raises(InvalidToken, match="Malformed"):
        verify_token(token, secret=SECRET)


@pytest.mark.parametrize(("user", "session"), [("", None), ("a b", None), ("x" * 129, None), ("ok", "é")])
def test_bad_ids_are_refused_at_issue(user: str, session: str | None) -> None:
    with pytest.raises(ValueError):
        issue_token(user, session, secret=SECRET, ttl=60)


def test_issue_without_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="secret"):
        issue_token("alice", config=Config.load(env={}))
    with pytest.raises(ValueError):
        issue_token("alice", secret=SECRET, ttl=0)


def test_issue_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_SESSION_SECRET", "from-env-0123456789abcdef0123456789")
    monkeypatch.setenv("TETHER_SESSION_TOKEN_TTL", "30")
    monkeypatch.delenv("TETHER_CONFIG", raising=False)
    token = issue_token("alice", "s", now=time.time())
    claims = verify_token(token, secret="from-env-0123456789abcdef0123456789")
    assert claims.expires_at - claims.issued_at == pytest.approx(30)


def _checker(validator: Any = None, secret: str = SECRET, ttl: float = 3600) -> TokenChecker:
    return TokenChecker(SessionConfig(enabled=True, secret=secret, token_ttl=ttl), validator)


def test_checker_signed_only() -> None:
    checker = _checker()
    assert checker.check(issue_token("u", "s", secret=SECRET, ttl=60)).session_id == "s"
    with pytest.raises(InvalidToken):
        checker.check("cookie")


def test_checker_falls_back_to_the_validator_for_foreign_tokens() -> None:
    seen: list[str] = []

    def validator(token: str) -> Any:
        seen.append(token)
        return {"user_id": 7} if token == "cookie" else None

    checker = _checker(validator)
    signed = issue_token("u", "s", secret=SECRET, ttl=60)
    assert checker.check(signed).user_id == "u"
    claims = checker.check("cookie")
    assert claims.user_id == "7"
    # No session id from the app: one session per token.
    assert claims.session_id == checker.check("cookie").session_id
    assert len(claims.session_id) == 32
    with pytest.raises(InvalidToken):
        checker.check("other")
    assert seen == ["cookie", "cookie", "other"]
    # An expired Tether token is refused as such, not handed to the validator.
    with pytest.raises(TokenExpired):
        checker.check(issue_token("u", secret=SECRET, ttl=1, now=0.0))
    assert seen == ["cookie", "cookie", "other"]


@pytest.mark.parametrize(
    "result", [{"session_id": "x"}, {"user_id": "has space"}, {"user_id": "u", "session_id": ""}, 42]
)
def test_checker_refuses_unusable_validator_answers(result: Any) -> None:
    checker = _checker(lambda token: result, secret="")
    with pytest.raises(InvalidToken):
        checker.check("t")


def test_checker_accepts_claims_from_the_validator() -> None:
    checker = _checker(lambda token: Claims("u", "s"), secret="")
    assert checker.check("t") == Claims("u", "s")


# -- tether token --------------------------------------------------------------------------------------


def _tether(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tether", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env or {"PATH": ""})


def test_cli_token(tmp_path: Path) -> None:
    config = tmp_path / "tether.toml"
    config.write_text('[session]\nsecret = "cli-secret-0123456789abcdef0123456789"\ntoken_ttl = 120\n')
    out = _tether("token", "alice", "--session", "tab-7", "--config", str(config))
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert "\n" not in token
    claims = verify_token(token, secret="cli-secret-0123456789abcdef0123456789")
    assert (claims.user_id, claims.session_id) == ("alice", "tab-7")
    assert claims.expires_at - claims.issued_at == pytest.approx(120)
    with pytest.raises(InvalidToken):
        verify_token(token, secret="another")


def test_cli_token_secret_from_env() -> None:
    secret = "env-secret-0123456789abcdef0123456789"
    out = _tether("token", "bob", env={"TETHER_SESSION_SECRET": secret, "PATH": ""})
    assert out.returncode == 0, out.stderr
    claims = verify_token(out.stdout.strip(), secret=secret)
    assert claims.user_id == "bob" and claims.session_id


def test_cli_token_without_secret_fails_loudly() -> None:
    out = _tether("token", "bob")
    assert out.returncode == 2
    assert "secret" in out.stderr
    assert out.stdout == ""


def test_cli_token_bad_user_id() -> None:
    out = _tether("token", "two words", env={"TETHER_SESSION_SECRET": "x" * 32, "PATH": ""})
    assert out.returncode == 2
    assert "user id" in out.stderr


def test_cli_token_imports_tokens_alone() -> None:
    # A script may run `tether token` once per request: it signs, and must not import the session
    # manager's asyncio, orjson and cluster wire format, nor the server (tether/sessions/__init__.py).
    secret = "env-secret-0123456789abcdef0123456789"
    code = (
        "import json, sys\n"
        "from tether.cli import main\n"
        "code = main(['token', 'carol'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
        "raise SystemExit(code)\n"
    )
    env = {"TETHER_SESSION_SECRET": secret, "PATH": ""}
    if "PYTHONPATH" in os.environ:  # the tether under test, as the other tests of this run import it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    token, modules = out.stdout.splitlines()
    assert verify_token(token, secret=secret).user_id == "carol"
    loaded = json.loads(modules)
    assert "tether.sessions.tokens" in loaded
    heavy = ("asyncio", "orjson", "tether.sessions.manager", "tether.cluster", "tether.server")
    assert [m for m in loaded if m.startswith(heavy)] == []
