// A Node.js Socket.IO server on @socket.io/redis-streams-adapter with connection state recovery, to run in
// one cluster with Tether nodes (driver = "redis-streams"): node node_streams_server.mjs <redis url> [name]
// [sharded] [streams=<n>] (name: the adapter's streamName and channelPrefix, "socket.io" by default, as
// Tether's [redis] prefix; "sharded": useShardedPubSub, as [redis] sharded_pubsub; "streams=<n>":
// streamCount, as [redis] stream_count).
// Prints "listening <port>". Commands on stdin, one per line, each answered by one line:
//   "burst <room> <first> <last>": emits "n" with first..last to the room; "burst done <last>"
//   "vburst <room> <first> <last>": the same, volatile (io.volatile): "vburst done <last>"
//   "client <room>": a socket.io-client of this server joins <room> and answers "please" acks with
//                    "node:<arg>"; "client <socket id>"
//   "fetch <room>": io.in(room).fetchSockets(); "fetch <JSON [{id, rooms, data}] or {error}>"
//   "ackemit <room> <event>": io.timeout(3000).to(room).emitWithAck(event, "x"); "ackemit <JSON>"
//   "count": the adapter's serverCount(); "count <n>"
//   "sse <event> <arg>": io.serverSideEmit(event, arg); "sse true"
//   "sseack <event> <arg>": io.serverSideEmitWithAck(event, arg); "sseack <JSON answers or {error, responses}>"
//   "bin <room>": emits "b" with {blob: <bytes 0 1 255>, text: "t"} to the room (base64 msgpack in the
//                 stream); "bin true"
//   "got": the "n" events (and "b" ones, as ["b", [bytes], text, offset?]) the last client got, with their arguments: "got <JSON [[n, offset?]]>"
//   "seen": the server-side events this server got ("hello" and "ping"), "seen <JSON [[event, ...args]]>"
// Server-side handlers: "hello" records its arguments; "ping" records them and answers "node:<arg>".
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { io as connectClient } from "socket.io-client";
import { createClient } from "redis";

const [url, name = "socket.io", ...flags] = process.argv.slice(2);
const streamCount = Number((flags.find((f) => f.startsWith("streams=")) || "streams=1").slice(8));
const redis = createClient({ url });
redis.on("error", (err) => console.error("redis error", err.message));
await redis.connect();

const httpServer = createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(redis, { streamName: name, channelPrefix: name, useShardedPubSub: flags.includes("sharded"), streamCount }),
  connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true },
});
io.on("connection", (socket) => {
  socket.data = { server: "node" };
  socket.on("join", (room, cb) => { socket.join(room); cb("ok"); });
  socket.on("whoami", (cb) => cb({ server: "node", id: socket.id, recovered: socket.recovered }));
});
const clients = [];
const seen = [];
io.on("hello", (...args) => seen.push(["hello", ...args]));
io.on("ping", (arg, cb) => { seen.push(["ping", arg]); if (typeof cb === "function") cb(`node:${arg}`); });
createInterface({ input: process.stdin }).on("line", async (line) => {
  const [cmd, room, first, last] = line.trim().split(/\s+/);
  if (cmd === "burst" || cmd === "vburst") {
    const target = cmd === "vburst" ? io.volatile.to(room) : io.to(room);
    for (let i = Number(first); i <= Number(last); i++) target.emit("n", i);
    console.log(`${cmd} done ${last}`);
  } else if (cmd === "client") {
    const client = connectClient(`http://127.0.0.1:${httpServer.address().port}`, { transports: ["websocket"] });
    clients.push(client);
    client.on("please", (arg, cb) => cb(`node:${arg}`));
    client.got = [];
    client.on("n", (...args) => client.got.push(args));
    client.on("b", (data, ...rest) => client.got.push(["b", [...new Uint8Array(data.blob)], data.text, ...rest]));
    await new Promise((resolve) => client.on("connect", resolve));
    await client.emitWithAck("join", room);
    console.log(`client ${client.id}`);
  } else if (cmd === "fetch") {
    try {
      const sockets = await io.in(room).fetchSockets();
      console.log(`fetch ${JSON.stringify(sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data })))}`);
    } catch (err) { console.log(`fetch ${JSON.stringify({ error: String(err) })}`); }
  } else if (cmd === "ackemit") {
    try { console.log(`ackemit ${JSON.stringify(await io.timeout(3000).to(room).emitWithAck(first, "x"))}`); }
    catch (err) { console.log(`ackemit ${JSON.stringify({ error: String(err) })}`); }
  } else if (cmd === "sse") {
    console.log(`sse ${JSON.stringify(io.serverSideEmit(room, first))}`);
  } else if (cmd === "sseack") {
    try { console.log(`sseack ${JSON.stringify(await io.serverSideEmitWithAck(room, first))}`); }
    catch (err) { console.log(`sseack ${JSON.stringify({ error: String(err), responses: err.responses })}`); }
  } else if (cmd === "bin") {
    io.to(room).emit("b", { blob: Buffer.from([0, 1, 255]), text: "t" });
    console.log("bin true");
  } else if (cmd === "got") {
    console.log(`got ${JSON.stringify(clients.at(-1).got)}`);
  } else if (cmd === "seen") {
    console.log(`seen ${JSON.stringify(seen)}`);
  } else if (cmd === "count") {
    console.log(`count ${await io.of("/").adapter.serverCount()}`);
  }
});
httpServer.listen(0, "127.0.0.1", () => console.log(`listening ${httpServer.address().port}`));
const stop = async () => { for (const c of clients) c.close(); io.close(); await redis.quit().catch(() => {}); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
