"""The FastAPI side of examples/fastapi_chat: pages, a log-in, and a JSON API of its own; the chat itself is
Tether's (routes.py), on the same port: `tether start -c examples/fastapi_chat/tether.toml`.

DEMO log-in: any name is accepted (no password); a real app checks credentials here. The session is
Starlette's signed cookie, which routes.py reads to know who each socket belongs to.
"""

from __future__ import annotations

import html
import os
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

# DEMO secret: a real deployment sets CHAT_SESSION_SECRET (a long random string).
SESSION_SECRET = os.environ.get("CHAT_SESSION_SECRET", "demo-secret-not-for-production")

HISTORY: deque[dict[str, Any]] = deque(maxlen=50)
"""The last messages, kept by this process (the example runs one worker)."""

app = FastAPI(title="Tether FastAPI chat")
app.add_middleware(SessionMiddleware, secret_key=SESSION_SECRET, same_site="lax")


def current_user_id(request: Request) -> str | None:
    """Who is logged in: used by the pages below and, through tether.contrib.starlette, by the sockets."""
    user = request.session.get("user")
    return str(user) if user else None


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
<style>body{{font:16px system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
#messages{{list-style:none;padding:0}} .who{{font-weight:bold;margin-right:.5rem}}
input{{font-size:1rem;padding:.4rem}}</style></head>
<body><main>{body}</main></body></html>"""


@app.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Any:
    if current_user_id(request):
        return RedirectResponse("/chat", status_code=303)
    body = """<h1>Log in to the chat</h1>
<form method="post" action="/login"><label for="name">Your name</label>
<input id="name" name="name" required maxlength="32" autocomplete="username">
<button type="submit">Log in</button></form>"""
    return PAGE.format(title="Log in", body=body)


@app.post("/login")
async def login(request: Request, name: str = Form(...)) -> Any:
    request.session["user"] = name.strip()[:32] or "anonymous"
    return RedirectResponse("/chat", status_code=303)


@app.post("/logout")
async def logout(request: Request) -> Any:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@app.get("/chat", response_class=HTMLResponse)
async def chat(request: Request) -> Any:
    user = current_user_id(request)
    if not user:
        return RedirectResponse("/", status_code=303)
    body = f"""<h1>Chat</h1><p id="status" role="status">connecting as {html.escape(user)}...</p>
<ul id="messages" aria-live="polite"></ul>
<form id="send"><label for="text">Message</label> <input id="text" autocomplete="off" required>
<button type="submit">Send</button></form>
<form method="post" action="/logout"><button type="submit">Log out</button></form>
<script src="/socket.io/socket.io.js"></script>
<script>
const socket = io();  // same origin: the session cookie goes along, routes.py knows the user
const list = document.getElementById("messages");
function show(m) {{
  const li = document.createElement("li");
  const who = document.createElement("span"); who.className = "who"; who.textContent = m.user;
  const text = document.createElement("span"); text.className = "text"; text.textContent = m.text;
  li.append(who, text); list.append(li);
}}
socket.on("connect", async () => {{
  document.getElementById("status").textContent = "connected as " + {user!r};
  list.replaceChildren();
  for (const m of await (await fetch("/history")).json()) show(m);
}});
socket.on("connect_error", (err) => document.getElementById("status").textContent = "error: " + err.message);
socket.on("chat message", show);
document.getElementById("send").addEventListener("submit", (e) => {{
  e.preventDefault();
  const input = document.getElementById("text");
  socket.emit("chat message", input.value);
  input.value = "";
}});
</script>"""
    return PAGE.format(title="Chat", body=body)


@app.get("/history")
async def history() -> list[dict[str, Any]]:
    """The app's own JSON API: the last messages."""
    return list(HISTORY)


def record(user: str, text: str) -> dict[str, Any]:
    message = {"user": user, "text": text, "at": time.time()}
    HISTORY.append(message)
    return message
