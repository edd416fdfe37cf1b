"""The official npm socket.io-client closing its own connection over WebSocket (``socket.disconnect()`` and
``socket.io.engine.close()``) sees no error at all, and the server records the client's reason.

tests/js/client_close.mjs listens to every error source: the socket's "error" and "connect_error", the
Manager's and the Engine.IO socket's "error", and the process's uncaught exceptions (a `ws` error nobody
handles). The reasons are node socket.io 4.8's for the same closes: "client namespace disconnect" for a
DISCONNECT packet, "transport close" for a closed WebSocket.
"""

from __future__ import annotations

from tests.helpers import Recorder
from tests.server.test_js_client import run_node
from tether import Server


async def test_client_close_over_websocket_raises_nothing(server: Server, rec: Recorder) -> None:
    steps = await run_node("client_close.mjs", server.url, timeout=30)
    # (how, the client's own "disconnect" reason, the reason the server recorded)
    expected = [
        ("disconnect", "io client disconnect", "client namespace disconnect"),
        ("engine.close", "forced close", "transport close"),
    ]
    for how, client_reason, server_reason in expected:
        step = steps[how]
        assert step["errors"] == [], step
        assert step["clientReason"] == client_reason, step
        assert step["engineReason"] == "forced close", step
        assert await rec.wait_disconnect(step["sid"]) == server_reason, how
