// A chat page for socket.io's chat protocol (the events of socket.io's examples/chat), without jQuery.
(() => {
  const loginPage = document.getElementById("login");
  const chatPage = document.getElementById("chat");
  const usernameInput = document.getElementById("username");
  const messageInput = document.getElementById("message");
  const messages = document.getElementById("messages");
  let username = "";
  let connected = false;
  let typing = false;

  const socket = io();

  function line(className, ...parts) {
    const li = document.createElement("li");
    li.className = className;
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    messages.append(li);
    messages.scrollTop = messages.scrollHeight;
    return li;
  }
  const log = (text) => line("log", ["text", text]);
  const participants = (data) =>
    log(data.numUsers === 1 ? "there's 1 participant" : `there are ${data.numUsers} participants`);
  const chat = (data) => line("message", ["username", data.username], ["messageBody", data.message]);
  const typingLine = (name) => [...messages.querySelectorAll(".typing")].find((li) => li.dataset.user === name);

  usernameInput.focus();
  usernameInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !usernameInput.value.trim()) return;
    username = usernameInput.value.trim();
    loginPage.hidden = true;
    chatPage.hidden = false;
    messageInput.focus();
    socket.emit("add user", username);
  });
  messageInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const message = messageInput.value.trim();
    if (message && connected) {
      messageInput.value = "";
      chat({ username, message });
      socket.emit("new message", message);
      socket.emit("stop typing");
      typing = false;
    }
  });
  messageInput.addEventListener("input", () => {
    if (connected && !typing) {
      typing = true;
      socket.emit("typing");
    }
  });

  socket.on("login", (data) => {
    connected = true;
    log("Welcome to Socket.IO Chat on Tether");
    participants(data);
  });
  socket.on("new message", (data) => {
    typingLine(data.username)?.remove();
    chat(data);
  });
  socket.on("user joined", (data) => {
    log(`${data.username} joined`);
    participants(data);
  });
  socket.on("user left", (data) => {
    log(`${data.username} left`);
    participants(data);
    typingLine(data.username)?.remove();
  });
  socket.on("typing", (data) => {
    if (!typingLine(data.username)) {
      const li = chat({ username: data.username, message: "is typing" });
      li.classList.add("typing");
      li.dataset.user = data.username;
    }
  });
  socket.on("stop typing", (data) => typingLine(data.username)?.remove());
})();
