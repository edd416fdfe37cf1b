// The official socket.io-client against a Tether server: run by tests/server/test_js_client.py.
//
//   node scenarios.mjs <server url> <default|websocket>
//
// Prints one JSON line per step with what the client observed; the Python test asserts on them.
// Binary values are printed as {"$bin": "<hex>"}. Every wait is bounded (TETHER_TESTS_TIMEOUT_FACTOR
// stretches them), and a watchdog ends the process if the whole run takes too long.
import { io, Manager } from "socket.io-client";

const [url, mode] = process.argv.slice(2);
import { scaled as T } from "./timeouts.mjs";
const base = mode === "websocket" ? { transports: ["websocket"] } : {}; // default: polling, then upgrade
const AUTH = { token: "secret" };
const opened = [];

function opts(extra = {}) {
  return { ...base, forceNew: true, reconnection: false, timeout: T(5000), ...extra };
}

function out(obj) {
  const replacer = (_k, v) =>
    v && v.type === "Buffer" && Array.isArray(v.data) ? { $bin: Buffer.from(v.data).toString("hex") } : v;
  process.stdout.write(JSON.stringify(obj, replacer) + "\n");
}

function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${T(ms)} ms`)), T(ms));
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// Records every event a socket receives, in order, per event name; next() waits for one.
class Rec {
  constructor(socket) {
    this.socket = socket;
    this.events = new Map();
    this.waiters = new Map();
    opened.push(socket);
    socket.on("question", (data, ack) => ack({ answer: data, from: "js" }));
    socket.onAny((event, ...args) => {
      const waiting = this.waiters.get(event);
      if (waiting && waiting.length) waiting.shift()(args);
      else this.queue(event).push(args);
    });
  }
  queue(event) {
    if (!this.events.has(event)) this.events.set(event, []);
    return this.events.get(event);
  }
  pending(event) {
    return this.queue(event).length;
  }
  next(event, ms = 5000) {
    const queued = this.queue(event);
    if (queued.length) return Promise.resolve(queued.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} within ${T(ms)} ms`)), T(ms));
      if (!this.waiters.has(event)) this.waiters.set(event, []);
      this.waiters.get(event).push((args) => {
        clearTimeout(timer);
        resolve(args);
      });
    });
  }
}

async function connect(extra = {}) {
  const socket = io(url, opts({ auth: AUTH, ...extra }));
  const rec = new Rec(socket);
  await once(socket, "connect");
  await rec.next("welcome");
  return [socket, rec];
}

let counter = 0;
async function echoWorks(socket, rec) {
  const token = `alive-${counter++}`;
  const ack = await socket.timeout(T(5000)).emitWithAck("echo", token);
  const [event] = await rec.next("echo");
  if (ack !== token || event !== token) throw new Error(`echo broken: ${ack} ${event}`);
}

// The transport the Engine.IO session opened on and whether it upgraded since, from the manager's "open".
function watchTransport(socket) {
  const seen = { initial: null, upgraded: null };
  socket.io.once("open", () => {
    seen.initial = socket.io.engine.transport.name;
    socket.io.engine.once("upgrade", (transport) => (seen.upgraded = transport.name));
  });
  return seen;
}

async function waitUpgrade(socket) {
  const engine = socket.io.engine;
  if (mode === "websocket" || engine.transport.name === "websocket") return;
  await once(engine, "upgrade");
}

const steps = {
  async connect() {
    const socket = io(url, opts({ auth: { token: "secret", user: "js" } }));
    const seen = watchTransport(socket);
    const rec = new Rec(socket);
    await once(socket, "connect");
    const [welcome] = await rec.next("welcome");
    await waitUpgrade(socket);
    await echoWorks(socket, rec);
    return { sid: socket.id, welcome, ...seen, transport: socket.io.engine.transport.name };
  },

  async reject() {
    const socket = io(url, opts({ auth: { token: "wrong" } }));
    opened.push(socket);
    const [err] = await once(socket, "connect_error");
    return { message: err.message, data: err.data, connected: socket.connected };
  },

  async emit() {
    const [socket, rec] = await connect();
    const echoAck = await socket.timeout(T(5000)).emitWithAck("echo", { a: [1, 2] });
    const [echoEvent] = await rec.next("echo");
    const addAck = await new Promise((resolve) => socket.emit("add", 2, 3, (...args) => resolve(args)));
    socket.emit("echo", "no ack");
    const noAckEvent = await rec.next("echo");
    const askAck = await socket.timeout(T(5000)).emitWithAck("ask", 21);
    const answer = await rec.next("answer");
    return { echoAck, echoEvent, addAck, noAckEvent, askAck, answer };
  },

  async rooms() {
    const [a, ra] = await connect();
    const [b, rb] = await connect();
    const [c, rc] = await connect({ auth: { ...AUTH, room: "red" } });
    const joinA = await a.emitWithAck("join", "red");
    const joinB = await b.emitWithAck("join", "red");
    const joinB2 = await b.emitWithAck("join", "blue");
    await a.emitWithAck("room_emit", { room: "red", msg: "hi red" });
    const gotB = await rb.next("room_msg");
    const gotC = await rc.next("room_msg");
    const leaveB = await b.emitWithAck("leave", "red");
    await c.emitWithAck("room_emit", { room: "red", msg: "second" });
    const gotA = await ra.next("room_msg");
    for (const [s, r] of [[a, ra], [b, rb], [c, rc]]) await echoWorks(s, r);
    return {
      joinA, joinB, joinB2, gotB, gotC, leaveB, gotA,
      pending: [ra.pending("room_msg"), rb.pending("room_msg"), rc.pending("room_msg")],
    };
  },

  async broadcast() {
    const [a, ra] = await connect();
    const [b, rb] = await connect();
    const [c, rc] = await connect();
    await a.emitWithAck("broadcast", { from: "a" });
    const gotB = await rb.next("broadcast");
    const gotC = await rc.next("broadcast");
    await echoWorks(a, ra);
    const pendingA = ra.pending("broadcast");
    await b.emitWithAck("shout", "all");
    const shouts = [await ra.next("shout"), await rb.next("shout"), await rc.next("shout")];
    return { gotB, gotC, pendingA, shouts };
  },

  async binary() {
    const [socket, rec] = await connect();
    await waitUpgrade(socket);
    const blob = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
    const ack = await socket.timeout(T(5000)).emitWithAck("bin", blob);
    const [event] = await rec.next("bin");
    const nested = await socket.timeout(T(5000)).emitWithAck("echo", { list: [Buffer.from([0]), { x: Buffer.from([255]) }] });
    return { sent: blob, ack, event, nested, isBuffer: Buffer.isBuffer(ack.orig) };
  },

  async namespace() {
    const manager = new Manager(url, { ...base, reconnection: false, timeout: T(5000) });
    const root = manager.socket("/", { auth: AUTH });
    const chat = manager.socket("/chat", { auth: AUTH });
    const rroot = new Rec(root);
    const rchat = new Rec(chat);
    root.connect();
    chat.connect();
    await Promise.all([once(root, "connect"), once(chat, "connect")]);
    const [welcome] = await rchat.next("welcome");
    const ack = await chat.timeout(T(5000)).emitWithAck("echo", "x");
    const [event] = await rchat.next("echo");
    await echoWorks(root, rroot);
    const nope = manager.socket("/nope");
    opened.push(nope);
    nope.connect();
    const [err] = await once(nope, "connect_error");
    await echoWorks(root, rroot); // the other namespaces of the connection go on
    return {
      welcome, ack, event, chatPendingEcho: rchat.pending("echo"), nope: err.message, nopeData: err.data,
      sameEngine: root.io === chat.io, rootSid: root.id, chatSid: chat.id,
    };
  },

  async boom() {
    const [socket, rec] = await connect();
    socket.emit("boom", 1);
    await echoWorks(socket, rec);
    let acked = "no";
    try {
      await socket.timeout(T(300)).emitWithAck("boom");
      acked = "yes";
    } catch (err) {
      acked = err.message;
    }
    await echoWorks(socket, rec);
    return { acked, connected: socket.connected };
  },

  async disconnect_client() {
    const [socket] = await connect();
    await waitUpgrade(socket);
    const sid = socket.id;
    const reason = new Promise((resolve) => socket.once("disconnect", (r) => resolve(r)));
    socket.disconnect();
    return { sid, reason: await reason };
  },

  async disconnect_server() {
    const [socket] = await connect();
    await waitUpgrade(socket);
    const sid = socket.id;
    const reason = once(socket, "disconnect");
    socket.emit("kick");
    const [why] = await reason;
    return { sid, reason: why, connected: socket.connected };
  },
};

const watchdog = setTimeout(() => {
  out({ step: "watchdog", error: "scenarios did not finish in time" });
  process.exit(3);
}, T(60000));

let failed = 0;
for (const [name, step] of Object.entries(steps)) {
  try {
    out({ step: name, ...(await step()) });
  } catch (err) {
    failed++;
    out({ step: name, error: String(err && err.stack ? err.stack : err) });
  }
}
for (const socket of opened) socket.disconnect();
clearTimeout(watchdog);
out({ step: "done", failed });
process.exit(failed ? 1 : 0);
