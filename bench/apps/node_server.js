// node socket.io 4.8 benchmark server: the same app as Tether's (echo, echoack, bcast), default
// options (websocket via `ws`, pingInterval 25 s). socket.io comes from bench/node/node_modules, which
// bench/run.py installs with `npm install`. Usage: node bench/apps/node_server.js <port> [redis-url]
// With a redis URL (W8), the server uses @socket.io/redis-adapter on that redis-server.
"use strict";
const path = require("path");
const { createRequire } = require("module");
const requireBench = createRequire(path.join(__dirname, "..", "node", "package.json"));
const http = require("http");
const { Server } = requireBench("socket.io");

const port = Number(process.argv[2] || 24003);
const redisUrl = process.argv[3] || "";
const httpServer = http.createServer();
const io = new Server(httpServer, { cors: { origin: "*" } });

io.on("connection", (socket) => {
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("echoack", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
  socket.on("bcast", (data) => io.emit("bcast", data));
});

async function listen() {
  if (redisUrl) {
    const { createClient } = requireBench("redis");
    const { createAdapter } = requireBench("@socket.io/redis-adapter");
    const pubClient = createClient({ url: redisUrl });
    const subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }
  httpServer.listen({ host: "127.0.0.1", port, backlog: 4096 }, () => {
    console.log(`READY ${port}`);
  });
}
listen();

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
