// Group chat page: nickname, messages, typing indicators, joins and leaves with the online count.
(() => {
  const $ = (id) => document.getElementById(id);
  const socket = io({ transports: ["websocket", "polling"] });
  const typingNow = new Set(); // nicknames of the others typing right now
  let me = "";
  let typingSent = false;
  let typingTimer = 0;
  const TYPING_IDLE = 2000; // ms after the last key press before "stopped typing"

  function add(className, text, nickname) {
    const li = document.createElement("li");
    li.className = className;
    if (nickname) {
      const who = document.createElement("b");
      who.textContent = nickname;
      li.append(who, " ");
    }
    li.append(text);
    $("messages").append(li);
    li.scrollIntoView({ block: "end" });
  }
  const showOnline = (n) => ($("online").textContent = `${n} online`);
  function showTyping() {
    const names = [...typingNow];
    $("typing").textContent =
      names.length === 0 ? "" :
      names.length === 1 ? `${names[0]} is typing…` :
      names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : "several people are typing…";
  }
  function setTyping(active) {
    if (active !== typingSent) {
      typingSent = active;
      socket.emit("typing", active);
    }
  }

  $("pick").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await socket.emitWithAck("join", $("nickname").value);
    if (!reply.ok) {
      $("pick-error").textContent = reply.error;
      return;
    }
    me = reply.nickname;
    $("pick").hidden = true;
    $("room").hidden = false;
    showOnline(reply.online);
    add("notice", `Welcome, ${me}.`);
    $("text").focus();
  });

  $("text").addEventListener("input", () => {
    setTyping($("text").value !== "");
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE);
  });

  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    clearTimeout(typingTimer);
    setTyping(false);
    const reply = await socket.emitWithAck("message", text);
    if (reply.ok) add("message mine", text, me);
    else add("notice error", reply.error);
  });

  socket.on("message", ({ nickname, text }) => {
    typingNow.delete(nickname);
    showTyping();
    add("message", text, nickname);
  });
  socket.on("typing", ({ nickname, typing }) => {
    if (typing) typingNow.add(nickname); else typingNow.delete(nickname);
    showTyping();
  });
  socket.on("user joined", ({ nickname, online }) => {
    add("notice", `${nickname} joined`);
    showOnline(online);
  });
  socket.on("user left", ({ nickname, online }) => {
    typingNow.delete(nickname);
    showTyping();
    add("notice", `${nickname} left`);
    showOnline(online);
  });
  socket.on("disconnect", () => {
    if (me) add("notice error", "disconnected: reconnecting…");
  });
  socket.io.on("reconnect", async () => {
    // A new connection is a new socket: take the nickname again.
    if (!me) return;
    const reply = await socket.emitWithAck("join", me);
    if (reply.ok) {
      showOnline(reply.online);
      add("notice", "reconnected");
    } else {
      add("notice error", reply.error);
    }
  });
})();
