"""A broadcast reaches every kind of client whole: WebSocket clients get the frames written directly,
polling ones through their queue, and binary attachments follow their packet on both."""

from __future__ import annotations

from tests.conftest import ServerFactory
from tests.server.clients import TRANSPORTS, SioClient


async def test_broadcast_with_binary_reaches_websocket_polling_and_upgraded_clients(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory()
    clients = [SioClient(TRANSPORTS[name]) for name in ("websocket", "polling", "upgrade")]
    try:
        for c in clients:
            await c.connect(server.url)
        payload = {"text": "hé", "blob": bytes(range(256)), "n": 3}
        assert await clients[1].call("shout", payload) is True
        for c in clients:
            assert await c.next("shout") == (payload,)
        # And a plain text one after it, in order, to all three again.
        assert await clients[0].call("shout", "second") is True
        for c in clients:
            assert await c.next("shout") == ("second",)
            assert c.pending("shout") == 0
    finally:
        for c in clients:
            await c.close()
