"""Tether inside uvicorn (``tether.asgi.ASGIApp``) for bench/asgi.py: the same routes as ``tether start``
(bench/apps/tether_routes.py) and the same uvicorn options as python-socketio's bench server.

Usage: ``python bench/apps/tether_asgi_server.py --port 24003``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from tether import Config
from tether.asgi import ASGIApp

ROUTES = Path(__file__).with_name("tether_routes.py")

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=24003)
    args = parser.parse_args()
    # Unthrottled, as bench/apps/tether.toml: every client is 127.0.0.1, pushing past the default rate.
    limits = {"event_rate": 0, "max_connections_per_ip": 0}
    config = Config.load(None, env={}, overrides={"websocket": {"allowed_origins": ["*"]}, "limits": limits})
    app = ASGIApp(str(ROUTES), config=config)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
