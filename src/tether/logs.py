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

__all__ = ["EscapingFormatter", "configure", "escape", "follow_server_logging"]


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


# -- under another server's logging (tether.asgi.ASGIApp in uvicorn, hypercorn, gunicorn) -------------

SERVER_LOGGERS = ("uvicorn.error", "hypercorn.error", "gunicorn.error")
"""The error loggers of the ASGI servers, in the order they are looked for: the first with a handler is
the one Tether's records follow (gunicorn's uvicorn workers write ``uvicorn.error`` to gunicorn's)."""


class _Relay(logging.Handler):
    """Hands each record of the ``tether`` logger to the handlers of an ASGI server's error logger: the
    server's stream, format and level; the message escaped and prefixed with the logger's name (the
    servers' formats have no ``%(name)s``). Silent once the root logger has a handler of its own (the
    app configured logging after Tether started): the root prints the record then, and once is enough."""

    def __init__(self, server_logger: logging.Logger, handlers: list[logging.Handler]) -> None:
        super().__init__()
        self.server_logger = server_logger
        self.handlers = handlers

    def emit(self, record: logging.LogRecord) -> None:
        if logging.root.handlers:
            return
        copy = logging.makeLogRecord(record.__dict__)
        copy.msg = f"{record.name}: {escape(record.getMessage())}"
        copy.args = None
        if record.exc_info:
            copy.exc_text = _quoted_block(logging.Formatter().formatException(record.exc_info))
            copy.exc_info = None
        if record.stack_info:
            copy.stack_info = _quoted_block(record.stack_info)
        for handler in self.handlers:
            if copy.levelno >= handler.level:
                handler.handle(copy)


def follow_server_logging(fmt: str, stream: TextIO) -> str:
    """Show the ``tether`` logger's records where the ASGI server running Tether shows its own.

    uvicorn, hypercorn and gunicorn configure only their own loggers, so without this Tether's INFO
    records (startup, protocol errors, slow consumers) were lost under them (Python's last resort
    prints WARNING and above, without a format). Nothing is done when a handler already sees Tether's
    records (the app called ``logging.basicConfig`` or ``dictConfig``, ``tether start`` configured the
    process, or this ran before): records are never printed twice.

    Args:
        fmt: the format of the fallback handler, when no server logger has a handler.
        stream: the fallback handler's stream.

    Returns:
        What was done, for the caller's log and tests: ``"configured"`` (left alone), the server
        logger's name (``"uvicorn.error"``..., followed at its effective level), or ``"fallback"``
        (Tether's own format on ``stream`` at INFO).
    """
    tether = logging.getLogger("tether")
    if tether.hasHandlers():
        return "configured"
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        handlers = _handlers_of(server_logger)
        if handlers:
            tether.addHandler(_Relay(server_logger, handlers))
            if tether.level == logging.NOTSET:
                tether.setLevel(server_logger.getEffectiveLevel())
            return name
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter(fmt))
    handler.addFilter(lambda record: not logging.root.handlers)  # as _Relay: the root's, once configured
    tether.addHandler(handler)
    if tether.level == logging.NOTSET:
        tether.setLevel(logging.INFO)
    return "fallback"


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``logger`` reaches, as :meth:`logging.Logger.callHandlers` walks them."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return found
