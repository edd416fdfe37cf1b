// Rooms page: join, leave, close a room, talk to it, disconnect.
(() => {
  const $ = (id) => document.getElementById(id);
  const socket = io({ transports: ["websocket", "polling"] });
  let myRooms = [];

  function log(text, className = "") {
    const li = document.createElement("li");
    li.className = className;
    li.textContent = text;
    $("log").append(li);
    li.scrollIntoView({ block: "end" });
  }
  function showRooms(rooms) {
    myRooms = rooms;
    $("my-rooms").textContent = rooms.length ? rooms.join(", ") : "none";
  }
  const room = () => $("room").value.trim();
  const who = (sid) => (sid === socket.id ? "you" : sid);

  async function ask(event, ...args) {
    const reply = await socket.emitWithAck(event, ...args);
    if (!reply.ok) log(`${event}: ${reply.error}`, "error");
    return reply;
  }

  $("room-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await ask("join room", room());
    if (reply.ok) showRooms(reply.rooms);
  });
  $("leave").addEventListener("click", async () => {
    const name = room();
    const reply = await ask("leave room", name);
    if (reply.ok) {
      showRooms(reply.rooms);
      log(`you left ${name}`);
    }
  });
  $("close").addEventListener("click", () => ask("close room", room()));
  $("say-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await ask("say", { room: room(), text: $("text").value });
    if (reply.ok) $("text").value = "";
  });
  $("disconnect").addEventListener("click", () => ask("bye"));

  socket.on("connect", () => {
    $("status").textContent = "connected";
    $("sid").textContent = `as ${socket.id}`;
    $("disconnect").disabled = false;
  });
  socket.on("disconnect", (reason) => {
    $("status").textContent = "disconnected";
    $("disconnect").disabled = true;
    showRooms([]);
    log(`disconnected (${reason})`);
  });
  socket.on("joined", ({ room, sid, size }) => log(`${who(sid)} joined ${room} (${size} in it)`));
  socket.on("left", ({ room, sid, size }) => log(`${who(sid)} left ${room} (${size} in it)`));
  socket.on("closed", ({ room, by }) => {
    showRooms(myRooms.filter((r) => r !== room));
    log(`${room} was closed by ${who(by)}`);
  });
  socket.on("said", ({ room, sid, text }) => log(`[${room}] ${who(sid)}: ${text}`, "said"));
})();
