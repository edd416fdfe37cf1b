// The official socket.io-client across connection cuts (connection state recovery): run by
// tests/server/test_recovery.py and the cluster recovery tests.
//
//   node recovery_client.mjs <server url> '<json options>'
//
// options: count (numbered messages expected, event "n"), room (joined with emit("join", room) on the first
// connect), transports (default ["websocket"]), auth, timeout_ms (overall watchdog), nsp (default "/"),
// whoami (emit "whoami" on every connect and print its answer as {"step":"whoami", "n", ...answer}).
// Prints JSON lines: {"step":"connect", "recovered", "id", "n"} on every connect, {"step":"joined"},
// {"step":"disconnect", "reason"}, {"step":"connect_error", "message"}, and at the end {"step":"done",
// "received": [...numbers in arrival order], "offsets": how many messages carried an offset, "offsetList":
// [...those offsets in arrival order], "extra": [...]}
// when `count` distinct numbers arrived, or an "end" event, or when the watchdog fires (the test then sees
// the gap).
import { io } from "socket.io-client";

const [url, raw] = process.argv.slice(2);
const opts = JSON.parse(raw || "{}");
import { scaled } from "./timeouts.mjs";
const count = opts.count ?? 1000;
const received = [];
const seen = new Set();
const extra = [];
let offsets = 0;
const offsetList = [];
let connects = 0;
let finished = false;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const socket = io(url + (opts.nsp && opts.nsp !== "/" ? opts.nsp : ""), {
  transports: opts.transports ?? ["websocket"],
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
  timeout: scaled(5000),
  auth: opts.auth ?? {},
});

function finish(why) {
  if (finished) return;
  finished = true;
  // On the next turn: replayed packets are handed over before the "connect" listeners run, so the last
  // number may arrive before the connect line is printed.
  setImmediate(() => {
    out({ step: "done", why, received, offsets, offsetList, extra, recovered: socket.recovered, id: socket.id });
    socket.disconnect();
    setTimeout(() => process.exit(0), 50);
  });
}

socket.on("connect", () => {
  connects += 1;
  out({ step: "connect", n: connects, recovered: socket.recovered, id: socket.id });
  if (opts.whoami) {
    socket.emit("whoami", (me) => out({ step: "whoami", n: connects, ...me }));
  }
  if (connects === 1 && opts.room) {
    socket.emit("join", opts.room, () => out({ step: "joined" }));
  }
});
socket.on("disconnect", (reason) => out({ step: "disconnect", reason }));
socket.on("connect_error", (err) => out({ step: "connect_error", message: err.message }));
socket.on("n", (i, ...rest) => {
  // With recovery on, the server appends the offset as the last argument (a string), as socket.io does.
  if (rest.length && typeof rest[rest.length - 1] === "string") {
    offsets += 1;
    offsetList.push(rest[rest.length - 1]);
  }
  received.push(i);
  seen.add(i);
  if (seen.size >= count) finish("complete");
});
socket.on("end", () => finish("end"));
socket.onAny((event, ...args) => {
  if (event !== "n") extra.push([event, ...args]);
});
process.stdin.on("data", (data) => {
  if (data.toString().includes("finish")) finish("asked");
});
setTimeout(() => finish("timeout"), scaled(opts.timeout_ms ?? 30000));
