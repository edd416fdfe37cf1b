"""The socket.io chat example's server (socket.io ``examples/chat/index.js``) as a Tether route file.

The same events with the same payloads, so a page written for the node server works against Tether:
``add user`` -> ``login`` {numUsers} to the sender and ``user joined`` {username, numUsers} to the others;
``new message``, ``typing``, ``stop typing`` broadcast with the sender's username; ``user left`` on
disconnect. Like the node example it counts users in one process (``workers = 1`` in tether.toml); with
several workers, count with ``await socket.server.fetch_sockets()`` or in Redis.
"""

from tether import websocket

num_users = 0


@websocket.on("add user")
async def add_user(socket, username):
    global num_users
    if "username" in socket.data or not isinstance(username, str):
        return
    socket.data["username"] = username
    num_users += 1
    await socket.emit("login", {"numUsers": num_users})
    await socket.broadcast.emit("user joined", {"username": username, "numUsers": num_users})


@websocket.on("new message")
async def new_message(socket, message):
    await socket.broadcast.emit("new message", {"username": socket.data.get("username"), "message": message})


@websocket.on("typing")
async def typing(socket):
    await socket.broadcast.emit("typing", {"username": socket.data.get("username")})


@websocket.on("stop typing")
async def stop_typing(socket):
    await socket.broadcast.emit("stop typing", {"username": socket.data.get("username")})


@websocket.on("disconnect")
async def disconnect(socket, reason):
    global num_users
    if "username" in socket.data:
        num_users -= 1
        await socket.broadcast.emit("user left", {"username": socket.data["username"], "numUsers": num_users})
