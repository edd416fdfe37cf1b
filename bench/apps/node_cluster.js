// node socket.io 4.8 in its documented multi-process form (W7): node's cluster primary with
// @socket.io/sticky's setupMaster (it accepts every connection and hands it to a worker,
// "least-connection") and @socket.io/cluster-adapter's setupPrimary (it relays broadcasts between the
// workers), and two workers, each a socket.io server with the cluster adapter. The same app as
// node_server.js (echo, echoack, bcast). Usage: node bench/apps/node_cluster.js <port> [workers]
// Prints "READY <port>" once every worker is up.
"use strict";
const path = require("path");
const { createRequire } = require("module");
const requireBench = createRequire(path.join(__dirname, "..", "node", "package.json"));
const cluster = require("cluster");
const http = require("http");
const { setupMaster, setupWorker } = requireBench("@socket.io/sticky");
const { createAdapter, setupPrimary } = requireBench("@socket.io/cluster-adapter");

const port = Number(process.argv[2] || 24004);
const workers = Number(process.argv[3] || 2);

if (cluster.isPrimary) {
  const httpServer = http.createServer();
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
  setupPrimary();
  cluster.setupPrimary({ serialization: "advanced" });
  let ready = 0;
  cluster.on("message", (_worker, msg) => {
    if (msg === "tether-bench-ready" && ++ready === workers) {
      httpServer.listen({ host: "127.0.0.1", port, backlog: 4096 }, () => {
        console.log(`READY ${port}`);
      });
    }
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  // Exit once the workers have: the runner counts the CPU of the processes it waited for (a worker left
  // to init would count as "other work").
  const stop = () => {
    const alive = Object.values(cluster.workers);
    if (alive.length === 0) process.exit(0);
    let left = alive.length;
    cluster.on("exit", () => {
      if (--left === 0) process.exit(0);
    });
    for (const w of alive) w.process.kill("SIGTERM");
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const { Server } = requireBench("socket.io");
  const httpServer = http.createServer();
  const io = new Server(httpServer, { cors: { origin: "*" } });
  io.adapter(createAdapter());
  setupWorker(io);
  io.on("connection", (socket) => {
    socket.on("echo", (data) => socket.emit("echo", data));
    socket.on("echoack", (data, ack) => {
      if (typeof ack === "function") ack(data);
    });
    socket.on("bcast", (data) => io.emit("bcast", data));
  });
  process.send("tether-bench-ready");
  process.on("SIGTERM", () => process.exit(0));
}
