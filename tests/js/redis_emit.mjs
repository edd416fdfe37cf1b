// Runs the npm @socket.io/redis-emitter against a Redis: node redis_emit.mjs <redis url> <json steps>
// Each step: {"op": "emit"|"socketsJoin"|"socketsLeave"|"disconnectSockets", "nsp"?, "to"?, "except"?,
// "event"?, "args"?, "rooms"?, "close"?}. {"$bin": "<hex>"} inside args becomes a Buffer.
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";

const [url, stepsJson] = process.argv.slice(2);
const revive = (v) => {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") return Buffer.from(v.$bin, "hex");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
};

const client = createClient({ url });
client.on("error", (err) => { console.error("redis error", err.message); process.exit(3); });
await client.connect();
let emitter = new Emitter(client);
for (const step of JSON.parse(stepsJson)) {
  let target = step.nsp ? emitter.of(step.nsp) : emitter;
  if (step.to) target = target.to(step.to);
  if (step.except) target = target.except(step.except);
  if (step.op === "emit") target.emit(step.event, ...revive(step.args || []));
  else if (step.op === "socketsJoin") target.socketsJoin(step.rooms);
  else if (step.op === "socketsLeave") target.socketsLeave(step.rooms);
  else if (step.op === "disconnectSockets") target.disconnectSockets(!!step.close);
  else { console.error("unknown op", step.op); process.exit(2); }
}
// publish() is fire-and-forget in the emitter: a PING after it returns once Redis has processed them all.
await client.ping();
await client.quit();
console.log("sent");
