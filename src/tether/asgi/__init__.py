"""Tether inside any ASGI server: ``ASGIApp``, python-socketio's name and signature.

::

    from tether.asgi import ASGIApp
    app = ASGIApp("routes.py", other_asgi_app=fastapi_app)      # uvicorn main:app / hypercorn main:app
    app = ASGIApp("routes.py", fastapi_app, {"/": "index.html", "/static": "public/"})  # static_files

The same route files, ``socket`` API, rooms, adapters (memory in one process; Redis across processes) and
Engine.IO behaviour as ``tether start``: requests for Tether's paths are answered by the very code of
Tether's front door, only fed from ASGI messages instead of a socket.

- HTTP (polling, the client bundle, ``/tether/*``, ``/metrics``...): the request becomes a
  :class:`~tether.handler.Request` and goes through :class:`~.exchange.Exchange`, a front door
  (:class:`~tether.server.http.HttpProtocol`) whose response is captured instead of written. A held
  long-poll GET stays an awaited future; ``http.disconnect`` ends it as a dropped connection would.
- WebSocket: the upgrade is checked by the same listener factory picows uses (Origin, ``EIO``, sid,
  admission), then frames go to the same :class:`~tether.server.websocket.WebSocketListener` through
  :class:`~.websocket.AsgiWebSocket`, an object with the few calls of picows' ``WSTransport`` that
  Tether makes. Outgoing messages are queued and written by one task; past ``[limits]
  send_buffer_bytes`` queued the client is a slow consumer, as with picows. Pings are the ASGI
  server's business (ASGI has no ping).
- ``static_files`` (python-socketio's, :mod:`tether.static_files`): a GET or HEAD for a mapped path whose
  file exists is answered with the file; other methods get 405. Files (these, ``[server] static_dir`` and
  ``/tether/*``) are streamed in :data:`CHUNK` bytes with ``Content-Length``; the client bundle is served
  from memory (read once per process, as with ``tether start``).
- Anything else goes to ``other_asgi_app``, else to ``[server] static_dir`` as with ``tether start``
  (GET and HEAD), else 404. Lifespan: Tether starts on ``lifespan.startup`` (or
  on the first request when the server runs no lifespan) and stops on ``lifespan.shutdown``; the other
  app's lifespan runs inside.

Logs: at startup the ``tether`` logger follows the ASGI server's (:func:`tether.logs.follow_server_logging`).
With ``[room] driver = "memory"``, a second process serving the same address (``uvicorn --workers 2``) warns
once at its first request (:mod:`tether.port_lock`).

The package: ``app.py`` (:class:`ASGIApp`: lifecycle, where each request goes, logs), ``exchange.py`` (the
front door with its answer captured), ``websocket.py`` (picows' transport and frames, stood in for),
``files.py`` (files streamed, plain answers), ``spec.py`` (ASGI's types).

What several processes of another server need (Tether's own workers do it for you): Redis
(``[room] driver = "redis"``) so that emits and rooms reach every process, and either sticky sessions at
the load balancer or WebSocket only (``transports: ["websocket"]`` in the client), because a polling
session lives in the process that opened it.
"""

from .app import LOG_FORMAT as LOG_FORMAT
from .app import ASGIApp
from .files import CHUNK as CHUNK

__all__ = ["ASGIApp"]
