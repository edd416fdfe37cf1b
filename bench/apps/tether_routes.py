"""The benchmark app for Tether: ``echo``, ``echoack`` and ``bcast``, the same as the peers'."""

from tether import websocket


@websocket.on("echo")
def echo(socket, data=None):
    # A sync handler: the peers' echo does no I/O either, and Tether runs both kinds eagerly.
    socket.emit("echo", data)


@websocket.on("echoack")
def echoack(socket, data=None):
    return data


@websocket.on("bcast")
def bcast(socket, data=None):
    socket.server.emit("bcast", data)
