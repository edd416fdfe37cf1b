"""Engine.IO v4 packets and payload framing.

Wire format (https://socket.io/docs/v4/engine-io-protocol/):

* A text packet is one ASCII digit, the packet type, followed by its data::

      0{"sid":"...","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
      2        ping (server -> client in v4)        2probe   upgrade probe (client -> server, new transport)
      3        pong                                 3probe   probe answer
      4hello   message with text data               5        upgrade   6  noop   1  close

* A binary packet is a message (type 4) whose data are bytes. Over WebSocket it is a binary frame with
  no type prefix; in a polling payload it is ``b`` followed by the base64 of the bytes.
* A polling payload is packets joined by the record separator ``\\x1e``.

Packets are :class:`Packet` values; the hot paths of the transports use :func:`encode_message` directly,
which never allocates a Packet.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass

from ..errors import LocalProtocolError, PayloadTooBig, RemoteProtocolError

__all__ = [
    "RECORD_SEPARATOR",
    "Binary",
    "Packet",
    "PacketType",
    "decode_payload",
    "encode_message",
    "encode_payload",
]

RECORD_SEPARATOR = "\x1e"


class PacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class Binary(bytes):
    """Bytes that travel as a binary Engine.IO message (a binary frame, or ``b<base64>`` when polling).

    Encoded text packets are plain ``bytes`` (UTF-8, type digit included) so that a broadcast can be
    encoded once and written to every WebSocket as is; this subclass is how the two are told apart.
    """

    __slots__ = ()


_TYPE_BY_CHAR = {str(t.value): t for t in PacketType}


@dataclass(frozen=True, slots=True)
class Packet:
    """One Engine.IO packet: a type and, for text, a ``str`` or, for binary messages, ``bytes``."""

    type: PacketType
    data: str | bytes = ""

    @classmethod
    def decode(cls, message: str | bytes) -> Packet:
        """Decode one packet as received in a WebSocket frame (``str`` text frame, ``bytes`` binary frame).

        Raises:
            RemoteProtocolError: empty or unknown packet type.
        """
        if isinstance(message, bytes):
            return cls(PacketType.MESSAGE, message)
        if not message:
            raise RemoteProtocolError("empty Engine.IO packet")
        ptype = _TYPE_BY_CHAR.get(message[0])
        if ptype is None:
            raise RemoteProtocolError(f"unknown Engine.IO packet type {message[0]!r}")
        return cls(ptype, message[1:])

    def encode(self) -> bytes:
        """The packet as one WebSocket message: UTF-8 text (``bytes``), or :class:`Binary`."""
        if isinstance(self.data, bytes):
            if self.type is not PacketType.MESSAGE:
                raise LocalProtocolError(f"only MESSAGE packets carry binary data, not {self.type.name}")
            return Binary(self.data)
        return f"{self.type.value}{self.data}".encode()


def encode_message(text: str) -> bytes:
    """A MESSAGE packet with text data, ready for a WebSocket text frame or a polling payload."""
    return b"4" + text.encode()


def encode_payload(packets: list[bytes]) -> bytes:
    """Join encoded packets (from :meth:`Packet.encode` or :func:`encode_message`) into a polling payload."""
    if len(packets) == 1 and not isinstance(packets[0], Binary):
        return packets[0]
    parts = [b"b" + base64.b64encode(p) if isinstance(p, Binary) else p for p in packets]
    return b"\x1e".join(parts)


def decode_payload(body: bytes, max_payload: int) -> list[Packet]:
    """Split a polling POST body into packets.

    Raises:
        PayloadTooBig: the body is larger than ``max_payload``.
        RemoteProtocolError: not UTF-8, an empty packet, an unknown type or bad base64.
    """
    if len(body) > max_payload:
        raise PayloadTooBig(len(body), max_payload)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("polling payload is not valid UTF-8") from exc
    packets = []
    for part in text.split(RECORD_SEPARATOR):
        if part.startswith("b"):
            try:
                packets.append(Packet(PacketType.MESSAGE, base64.b64decode(part[1:], validate=True)))
            except ValueError as exc:  # binascii.Error, or non-ASCII text, which b64decode refuses
                raise RemoteProtocolError("bad base64 in binary polling packet") from exc
        else:
            packets.append(Packet.decode(part))
    return packets
