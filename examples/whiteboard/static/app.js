// Whiteboard page: draw with mouse, pen or finger; strokes go out in batches and come in from the others.
(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("board");
  const ctx = canvas.getContext("2d");
  const socket = io({ transports: ["websocket", "polling"] });
  const drawing = []; // every segment on the board, to redraw after a resize
  let outbox = []; // segments drawn here and not sent yet
  let last = null; // the previous pointer position while drawing, in board fractions
  const SEND_EVERY = 33; // ms: about 30 batches per second at most

  function paint(s) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(s.x0 * canvas.width, s.y0 * canvas.height);
    ctx.lineTo(s.x1 * canvas.width, s.y1 * canvas.height);
    ctx.stroke();
  }
  function add(segments) {
    for (const s of segments) {
      drawing.push(s);
      paint(s);
    }
  }
  function fit() {
    const box = canvas.getBoundingClientRect();
    canvas.width = Math.round(box.width);
    canvas.height = Math.round(box.height);
    drawing.forEach(paint);
  }
  function at(event) {
    const box = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return { x: clamp((event.clientX - box.left) / box.width), y: clamp((event.clientY - box.top) / box.height) };
  }

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const p = at(event);
    const s = { x0: last.x, y0: last.y, x1: p.x, y1: p.y, color: $("color").value, width: Number($("width").value) };
    last = p;
    add([s]);
    outbox.push(s);
  });
  const stop = () => (last = null);
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  setInterval(() => {
    if (outbox.length && socket.connected) {
      socket.emit("draw", outbox);
      outbox = [];
    }
  }, SEND_EVERY);

  $("clear").addEventListener("click", () => socket.emit("clear"));
  socket.on("board", (segments) => {
    drawing.length = 0;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    add(segments);
  });
  socket.on("draw", add);
  socket.on("clear", () => {
    drawing.length = 0;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
  });
  socket.on("connect", () => ($("status").textContent = "connected"));
  socket.on("disconnect", () => ($("status").textContent = "disconnected: reconnecting…"));
  window.addEventListener("resize", fit);
  fit();
})();
