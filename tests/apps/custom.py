"""A user-written lifecycle handler and parser, named in config as ``module:Class`` like laravel-swoole's."""

from __future__ import annotations

from typing import Any

import orjson

from tether import Handler, Parser, RemoteProtocolError, Request
from tether.protocol.events import ClientEvent, Event


class RecordingHandler(Handler):
    """Refuses requests with ``?deny=1``; records what it saw (class attributes: one server per test)."""

    opened: list[Request] = []
    closed: list[tuple[str, str]] = []

    def on_open(self, request: Request) -> bool:
        type(self).opened.append(request)
        return request.query.get("deny") != "1"

    def on_close(self, client: Any, reason: str) -> None:
        type(self).closed.append((client.sid, reason))


class PipeParser(Parser):
    """``event|json`` text frames: ``chat|{"text":"hi"}``. One namespace, no acks."""

    name = "pipe"

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        if not isinstance(message, str) or "|" not in message:
            raise RemoteProtocolError("expected 'event|json'")
        event, _, data = message.partition("|")
        try:
            value = orjson.loads(data) if data else None
        except orjson.JSONDecodeError as exc:
            raise RemoteProtocolError(f"bad JSON after '|': {exc}") from exc
        return [Event("/", event, [] if value is None else [value])]

    @staticmethod
    def encode_event(
        namespace: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
    ) -> list[bytes]:
        return [b"4" + event.encode() + b"|" + orjson.dumps(args[0] if len(args) == 1 else list(args))]

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        return []


NOT_A_PARSER = object()
