// The reference: node socket.io 4.8 configured as the published Engine.IO / Socket.IO test suites configure
// it (pingInterval 300 ms, pingTimeout 200 ms, maxHttpBufferSize 1e6, connectTimeout 1000 ms) with an echo
// app. Prints {"listening": port}, then one JSON line per server-side event: {"connect": socket id, "nsp", "eio"},
// {"disconnect": reason, "nsp", "eio"} (what the `disconnect` listener got) and {"close": reason, "eio"} (the
// Engine.IO session's own close, which comes with no socket when the client never joined a namespace).
// "eio" is the Engine.IO session id. An event "bye" makes the server call socket.disconnect(), ["bye", true] socket.disconnect(true).
// tests/server/test_disconnect_reasons_vs_node.py compares Tether's disconnect reasons with it.
import { createServer } from "node:http";
import { Server } from "socket.io";

const httpServer = createServer();
const io = new Server(httpServer, {
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  connectTimeout: 1000,
});
const log = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
io.engine.on("connection", (conn) => conn.on("close", (reason) => log({ close: reason, eio: conn.id })));
for (const nsp of [io.of("/"), io.of("/custom")]) {
  nsp.on("connection", (socket) => {
    log({ connect: socket.id, nsp: socket.nsp.name, eio: socket.conn.id });
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("echo", (...args) => {
      const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (cb) cb(...args); else socket.emit("echo", ...args);
    });
    socket.on("message-with-ack", (...args) => args.pop()(...args));
    socket.on("bye", (close) => socket.disconnect(close === true));
    socket.on("disconnect", (reason) => log({ disconnect: reason, nsp: socket.nsp.name, eio: socket.conn.id }));
  });
}
httpServer.listen(0, "127.0.0.1", () => log({ listening: httpServer.address().port }));
const stop = () => { io.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
