"""Log output that a client cannot forge: one record, one line.

Tether logs strings a client chose (a request path, an event name, a reason in an exception). A CR or LF
among them would start a new line that reads like a record of its own (``... failed\\n2026-11-30 INFO
user admin logged in``). :class:`EscapingFormatter` escapes every non-printable character of a record's
message, where the handlers write, so that no call site can forget it. A traceback is many lines by
nature, and its last one holds the exception's message, which may quote a client: each of its lines is
escaped the same way and starts with ``| ``, so that no line of it can pass for a record of its own (a
record starts with its time). Call sites still use ``%r`` for client strings where a quoted value reads
better.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

__all__ = ["EscapingFormatter", "configure", "escape"]


def escape(text: str) -> str:
    """``text`` with each non-printable character (CR, LF, ESC, U+2028...) written as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class EscapingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` that escapes the message (see the module docstring)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if not message.isprintable():
            record.message = escape(message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _quoted_block(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _quoted_block(super().formatStack(stack_info))


def _quoted_block(text: str) -> str:
    # split("\n"), not splitlines(): a CR (or U+2028) inside a line is escaped, not taken as a line end.
    return "\n".join("| " + escape(line) for line in text.rstrip("\n").split("\n"))


def configure(level: str, fmt: str, stream: TextIO, force: bool = False) -> None:
    """``logging.basicConfig`` with one stream handler using :class:`EscapingFormatter`."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=force)
