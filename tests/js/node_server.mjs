// A Node.js Socket.IO server on @socket.io/redis-adapter, to run in one cluster with Tether nodes:
// node node_server.mjs <redis url> [key prefix]. Prints "listening <port>" (port 0: the OS picks one).
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [url, key = "socket.io"] = process.argv.slice(2);
const pub = createClient({ url });
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on("error", (err) => console.error("redis error", err.message));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { key, requestsTimeout: 3000 }) });
io.on("connection", (socket) => {
  socket.on("join", (room, cb) => { socket.join(room); cb("ok"); });
  socket.on("rooms", (cb) => cb([...socket.rooms].sort()));
  socket.on("emit_to", (spec, cb) => {
    let op = io.of("/");
    if (spec.room) op = op.to(spec.room);
    if (spec.except) op = op.except(spec.except);
    op.emit(spec.event, ...(spec.args || []));
    cb("ok");
  });
  socket.on("fetch", async (room, cb) => {
    try {
      const sockets = await io.in(room).fetchSockets();
      cb(sockets.map((s) => ({ id: s.id, rooms: [...s.rooms] })));
    } catch (err) { cb({ error: String(err) }); }
  });
  socket.on("sockets_join", (room, newRoom, cb) => { io.in(room).socketsJoin(newRoom); cb("ok"); });
  socket.on("all_rooms", async (cb) => {
    try { cb([...(await io.of("/").adapter.allRooms())].sort()); } catch (err) { cb({ error: String(err) }); }
  });
  socket.on("emit_with_ack", async (room, event, cb) => {
    try { cb(await io.timeout(3000).to(room).emitWithAck(event, "please ack")); }
    catch (err) { cb({ error: String(err) }); }
  });
  socket.on("server_count", async (cb) => cb(await io.of("/").adapter.serverCount()));
  // Server-side events: send one, with or without acks; list what this server's handlers got.
  socket.on("sse", (event, arg, cb) => cb(io.serverSideEmit(event, arg)));
  socket.on("sse_ack", async (event, arg, cb) => {
    try { cb(await io.serverSideEmitWithAck(event, arg)); }
    catch (err) { cb({ error: String(err), responses: err.responses }); }
  });
  socket.on("sse_seen", (cb) => cb(seen));
});
// Server-side handlers: "hello" records its arguments; "ping" records and answers "node:<arg>".
const seen = [];
io.on("hello", (...args) => seen.push(["hello", ...args]));
io.on("ping", (arg, cb) => { seen.push(["ping", arg]); if (typeof cb === "function") cb(`node:${arg}`); });
httpServer.listen(0, "127.0.0.1", () => console.log(`listening ${httpServer.address().port}`));
const stop = async () => { io.close(); await Promise.allSettled([pub.quit(), sub.quit()]); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
