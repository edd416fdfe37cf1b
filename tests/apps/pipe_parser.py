"""The custom parser of docs/guide.md, verbatim: the guide's example must work."""

from __future__ import annotations

from typing import Any

from tether import Parser
from tether.protocol.events import ClientEvent, Event


class PipeParser(Parser):
    """Frames like "chat|hello"."""

    def decode(self, message: str | bytes) -> list[ClientEvent]:
        assert isinstance(message, str)
        name, _, text = message.partition("|")
        return [Event("/", name, [text])]

    @staticmethod
    def encode_event(
        namespace: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
    ) -> list[bytes]:
        return [b"4" + f"{event}|{args[0] if args else ''}".encode()]  # "4": an Engine.IO message

    @staticmethod
    def encode_ack(namespace: str, ack_id: int, args: tuple[Any, ...]) -> list[bytes]:
        return PipeParser.encode_event(namespace, "ack", args)
