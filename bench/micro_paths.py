"""Micro-benchmarks of Tether's per-message Python paths against the fast paths PROFILE.md proposes.

Times the codec calls alone (no I/O), best of 5, so the suggestions S1-S3 in ``bench/PROFILE.md`` come
with a number. Usage: ``taskset -c 1 .venv/bin/python bench/micro_paths.py``.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import orjson

from tether.protocol.connection import Connection, Transport
from tether.protocol.events import Event
from tether.protocol.parsers import SocketIOParser

N = 200_000
TEXT = '42["echo","hello, tether benchmark"]'
ACK_TEXT = '421["echoack","hello, tether benchmark"]'
ARGS = ("hello, tether benchmark",)

conn = Connection("sid", SocketIOParser(), Transport.WEBSOCKET, now=0.0)
frame = memoryview(TEXT.encode())
ack_frame = ACK_TEXT.encode()


class SlotEvent:
    __slots__ = ("ack_id", "args", "name", "namespace")

    def __init__(self, namespace: str, name: str, args: list[Any], ack_id: int | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.args = args
        self.ack_id = ack_id


def decode_today() -> Any:
    return conn.receive_message(TEXT)


def decode_fused() -> Any:
    # S1: straight from the frame's bytes; orjson validates UTF-8 itself.
    data = orjson.loads(frame[2:])
    if type(data) is not list or not data or type(data[0]) is not str:
        raise ValueError("bad event")
    return data[0], data[1:]


def decode_ack_today() -> Any:
    return conn.receive_message(ACK_TEXT)


def decode_ack_fused() -> Any:
    # S2: "42" + ack id digits + JSON array.
    i = 2
    while 48 <= ack_frame[i] <= 57:
        i += 1
    ack_id = int(ack_frame[2:i])
    data = orjson.loads(memoryview(ack_frame)[i:])
    return data[0], data[1:], ack_id


def event_dataclass() -> Any:
    return Event("/", "echo", ["x"], None)


def event_slots() -> Any:
    return SlotEvent("/", "echo", ["x"], None)


def encode_ack_today() -> Any:
    return SocketIOParser.encode_ack("/", 1, ARGS)


def encode_ack_fast() -> Any:
    # S2: like encode_event's fast path; a TypeError from orjson (bytes) would fall back to Packet.
    return [b"43" + str(1).encode() + orjson.dumps(list(ARGS))]


def main() -> None:
    assert encode_ack_today() == encode_ack_fast()
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("receive_message + decode, echo (today)", decode_today),
        ("fused memoryview decode, echo (S1)", decode_fused),
        ("receive_message + decode, ack (today)", decode_ack_today),
        ("fused decode, ack (S2)", decode_ack_fused),
        ("Event, frozen slotted dataclass (today)", event_dataclass),
        ("Event, plain __slots__ class (S3)", event_slots),
        ("encode_ack (today)", encode_ack_today),
        ("encode_ack fast path (S2)", encode_ack_fast),
    ]
    for name, fn in cases:
        best = min(timeit.repeat(fn, number=N, repeat=5)) / N * 1e6
        print(f"{name:45s} {best:6.2f} µs")


if __name__ == "__main__":
    main()
