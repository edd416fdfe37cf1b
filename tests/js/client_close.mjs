// The official socket.io-client closing its own connection over WebSocket: run by
// tests/server/test_js_client_close.py.
//
//   node client_close.mjs <server url>
//
// Two closes: socket.disconnect() and socket.io.engine.close(). For each, prints one JSON line
// {"step": <how>, "sid", "errors": [...]} listing every error anything reported: the socket's "error" and
// "connect_error", the Manager's "error", the Engine.IO socket's "error", and uncaught exceptions /
// unhandled rejections of the process (what a `ws` error nobody listens to becomes). Waits bounded.
import { io } from "socket.io-client";

const [url] = process.argv.slice(2);
import { scaled as T } from "./timeouts.mjs";
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const processErrors = [];
process.on("uncaughtException", (err) => processErrors.push(`uncaughtException: ${err && err.stack}`));
process.on("unhandledRejection", (err) => processErrors.push(`unhandledRejection: ${err && err.stack}`));
setTimeout(() => {
  out({ step: "watchdog", error: "the run took too long" });
  process.exit(1);
}, T(20000)).unref();

async function run(step, close) {
  const errors = [];
  const socket = io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: T(5000),
    auth: { token: "secret" },
  });
  socket.on("connect_error", (err) => errors.push(`connect_error: ${err.message}`));
  socket.on("error", (err) => errors.push(`socket error: ${err}`));
  socket.io.on("error", (err) => errors.push(`manager error: ${err && err.message}`));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connect")), T(5000));
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const engine = socket.io.engine;
  engine.on("error", (err) => errors.push(`engine error: ${err && err.message}`));
  const sid = socket.id;
  const reason = new Promise((resolve) => socket.once("disconnect", resolve));
  const engineClosed = new Promise((resolve) => engine.once("close", (why) => resolve(why)));
  close(socket);
  const clientReason = await reason;
  const engineReason = await engineClosed;
  // Give a late error (a ws "error" after the close frame) time to show up before reporting.
  await new Promise((resolve) => setTimeout(resolve, T(300)));
  out({ step, sid, clientReason, engineReason, errors: [...errors, ...processErrors.splice(0)] });
}

try {
  await run("disconnect", (socket) => socket.disconnect());
  await run("engine.close", (socket) => socket.io.engine.close());
  out({ step: "done" });
} catch (err) {
  out({ step: "failed", error: String(err && err.stack) });
}
