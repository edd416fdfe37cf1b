"""The benchmark app for Tether: ``echo``, ``echoack`` and ``bcast``, the same as the peers'.

``async def``: node's and python-socketio's handlers run on their event loop, and so do Tether's
``async def`` handlers (eagerly: one that never awaits finishes inside the frame's callback). A plain
``def`` handler would run in the ``[handlers] threads`` pool (the default for blocking code), which is
not what the peers do.
"""

from tether import websocket


@websocket.on("echo")
async def echo(socket, data=None):
    socket.emit("echo", data)


@websocket.on("echoack")
async def echoack(socket, data=None):
    return data


@websocket.on("bcast")
async def bcast(socket, data=None):
    socket.server.emit("bcast", data)
