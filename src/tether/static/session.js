/*
 * Tether session helper, served at /tether/session.js. No build step, no dependencies.
 *
 *   <script src="/tether/session.js"></script>
 *   <script>
 *     const session = Tether.session({ token, loginUrl: "/login" });
 *     session.onExpired = (data) => console.log("expired", data);   // or pass onExpired in the options
 *   </script>
 *
 * With socket.io-client on the page (window.io) it connects with io(url, {auth: {token}}); without it,
 * it opens a bare WebSocket to /ws?token=... and speaks the 42["event", ...] framing itself.
 *
 * While the user is idle it sends nothing: the server pushes session:warning / session:expired /
 * session:ended. User activity (mouse, keys, touch, wheel, scroll, the tab becoming visible) is
 * reported as an "activity" event at most once per activityInterval seconds (the last activity of an
 * interval is sent at its end, so the server's idle clock is at most one interval behind the user).
 *
 * By default, expiry and log-out elsewhere show an accessible modal (role="dialog", aria-modal, focus
 * moved into it, the page behind made inert) with a log-in button; a warning shows a polite status
 * banner. Set modal: false / warningBanner: false to draw your own from the callbacks.
 */
(function (global) {
  "use strict";

  var script = global.document && global.document.currentScript;
  var SCRIPT_ORIGIN = script && script.src ? new URL(script.src, global.location.href).origin : global.location.origin;

  var DEFAULTS = {
    token: null,
    url: null, // Tether's origin; default: where this script came from
    transport: "auto", // "auto" (socket.io-client if window.io exists), "socket.io" or "websocket"
    io: null, // the io function; default window.io
    ioOptions: {}, // extra options for io(url, options)
    wsPath: "/ws",
    activityInterval: null, // seconds; default: [session] activity_interval from the server, else 30
    activityEvents: ["mousemove", "mousedown", "keydown", "touchstart", "wheel", "scroll"],
    loginUrl: "/",
    modal: true,
    warningBanner: true,
    texts: {
      expiredTitle: "Your session has expired - log in again",
      expiredBody: "You were inactive for too long, so you have been logged out.",
      endedTitle: "You have been logged out - log in again",
      endedBody: "You logged out in another tab or window.",
      loginButton: "Log in",
      warning: function (seconds) {
        return "Your session expires in " + seconds + " s. Move the mouse or press a key to stay logged in.";
      },
    },
    onConnect: null,
    onDisconnect: null,
    onWarning: null,
    onExtended: null,
    onExpired: null,
    onEnded: null,
    onError: null,
    onLogin: null, // replaces the log-in button's default (go to loginUrl)
  };

  var FALLBACK_INTERVAL = 30;
  var MAX_BACKOFF_MS = 30000;

  function Session(options) {
    if (!options || typeof options.token !== "string" || !options.token) {
      throw new Error("Tether.session: options.token (a session token) is required");
    }
    var texts = Object.assign({}, DEFAULTS.texts, options.texts || {});
    this.options = Object.assign({}, DEFAULTS, options, { texts: texts });
    this.url = (this.options.url || SCRIPT_ORIGIN).replace(/\/$/, "");
    this.state = "connecting"; // connecting | active | expired | ended | closed
    this.socket = null; // the socket.io Socket or the WebSocket
    this.mode = null; // "socket.io" | "websocket"
    this.activitySent = 0; // activity events sent (for tests and curious pages)
    ["onConnect", "onDisconnect", "onWarning", "onExtended", "onExpired", "onEnded", "onError", "onLogin"].forEach(
      function (name) {
        this[name] = this.options[name];
      },
      this
    );
    this._listeners = {};
    this._interval = (this.options.activityInterval || FALLBACK_INTERVAL) * 1000;
    this._lastSent = 0;
    this._pending = null;
    this._connectedOnce = false;
    this._backoff = 1000;
    this._reconnectTimer = null;
    this._warnTimer = null;
    this._modal = null;
    this._banner = null;
    this._onActivity = this._userActivity.bind(this);
    this._onVisibility = function () {
      if (global.document.visibilityState === "visible") this._userActivity();
    }.bind(this);
    if (this.options.activityInterval == null) this._fetchInterval();
    this._listen();
    this._connect();
  }

  Session.prototype = {
    /** Listen to any event the server pushes (both transports). */
    on: function (event, fn) {
      (this._listeners[event] = this._listeners[event] || []).push(fn);
      return this;
    },

    /** Send an event (acks only with socket.io-client: pass a callback last). */
    emit: function (event) {
      var args = Array.prototype.slice.call(arguments, 1);
      if (this.mode === "socket.io") {
        this.socket.emit.apply(this.socket, [event].concat(args));
      } else if (this.socket && this.socket.readyState === 1) {
        this.socket.send("42" + JSON.stringify([event].concat(args)));
      }
      return this;
    },

    /** Report activity now, whatever the throttle says (e.g. after an app action with no DOM event). */
    reportActivity: function () {
      this._sendActivity();
    },

    /** End the session in every tab (they get session:ended), then close this connection. */
    logout: function () {
      var self = this;
      if (self.state === "active") self.emit("session:logout");
      self._finish("closed");
      return Promise.resolve();
    },

    /** Close the connection and stop reporting activity, without ending the session. */
    disconnect: function () {
      this._finish("closed");
    },

    // -- connection -----------------------------------------------------------------------------------

    _connect: function () {
      var o = this.options;
      var io = o.io || global.io;
      var useIo = o.transport === "socket.io" || (o.transport === "auto" && typeof io === "function");
      if (useIo) {
        if (typeof io !== "function") throw new Error("Tether.session: transport socket.io needs socket.io-client");
        this.mode = "socket.io";
        this._connectIo(io);
      } else {
        this.mode = "websocket";
        this._connectWs();
      }
    },

    _connectIo: function (io) {
      var self = this;
      var opts = Object.assign({}, self.options.ioOptions, { auth: { token: self.options.token } });
      var socket = (self.socket = io(self.url, opts));
      socket.on("connect", function () {
        self._connected();
      });
      socket.on("connect_error", function (err) {
        var data = err && err.data ? err.data : {};
        if (data.code === undefined && !self._connectedOnce) {
          self._unreachable(err && err.message); // socket.io-client goes on retrying
        } else {
          self._connectError(data.code, err && err.message);
        }
      });
      socket.on("disconnect", function (reason) {
        self._call("onDisconnect", reason);
      });
      socket.onAny(function (event) {
        self._dispatch(event, Array.prototype.slice.call(arguments, 1));
      });
    },

    _connectWs: function () {
      var self = this;
      var base = self.url.replace(/^http/, "ws");
      var ws = (self.socket = new global.WebSocket(
        base + self.options.wsPath + "?token=" + encodeURIComponent(self.options.token)
      ));
      var serverClosed = false;
      var opened = false;
      ws.onopen = function () {
        opened = true;
      };
      ws.onmessage = function (e) {
        if (typeof e.data !== "string") return; // binary attachments are not used by sessions
        var type = e.data.substring(0, 2);
        if (type === "40") {
          self._connected();
        } else if (type === "42") {
          var packet = JSON.parse(e.data.substring(2));
          self._dispatch(packet[0], packet.slice(1));
        } else if (type === "44") {
          serverClosed = true;
          var data = JSON.parse(e.data.substring(2));
          self._connectError(data.code, data.message);
        } else if (type === "41") {
          serverClosed = true;
        }
      };
      ws.onclose = function (e) {
        if (self.socket !== ws) return;
        self._call("onDisconnect", e.reason || "transport close");
        if (serverClosed || self.state === "expired" || self.state === "ended" || self.state === "closed") return;
        if (!opened && !self._connectedOnce) self._unreachable("WebSocket closed with code " + e.code);
        // Network trouble or a server restart: reconnect with backoff (the server refuses an expired session).
        self.state = "connecting";
        self._reconnectTimer = setTimeout(function () {
          self._reconnectTimer = null;
          self._connectWs();
        }, self._backoff * (0.5 + Math.random() / 2));
        self._backoff = Math.min(self._backoff * 2, MAX_BACKOFF_MS);
      };
    },

    _connected: function () {
      this.state = "active";
      this._unreachableReported = false;
      this._backoff = 1000;
      var first = !this._connectedOnce;
      this._connectedOnce = true;
      this._call("onConnect", { first: first });
      // Loading a page is activity; reconnecting after a network blip is not.
      if (first) this._sendActivity();
    },

    // The browser hides why a connection was refused (a 403 on a WebSocket upgrade, a CORS failure on
    // polling). Before the first connect, say what is most likely: from another origin, a refused Origin
    // (the server logs it with the key to set); from the same origin, the server is not reachable.
    // Once per attempt streak, not once per retry.
    _unreachable: function (detail) {
      if (this._unreachableReported) return;
      this._unreachableReported = true;
      var here = global.location.origin;
      if (here !== this.url) {
        this._call("onError", {
          code: "origin",
          message:
            "Cannot connect to " + this.url + " from " + here + " (" + detail + "). If Tether is running, it " +
            "refuses this origin: add " + here + ' to [websocket] allowed_origins (or "*") in tether.toml, ' +
            "or TETHER_WEBSOCKET_ALLOWED_ORIGINS.",
        });
      } else {
        this._call("onError", { code: "unreachable", message: "Cannot connect to " + this.url + " (" + detail + ")." });
      }
    },

    _connectError: function (code, message) {
      if (code === 401) {
        this._expired({ reason: "token", message: message });
      } else {
        this._call("onError", { code: code, message: message });
      }
    },

    _dispatch: function (event, args) {
      var data = args[0];
      if (event === "session:warning") this._warning(data || {});
      else if (event === "session:extended") this._extended(data || {});
      else if (event === "session:expired") this._expired(data || {});
      else if (event === "session:ended") this._ended(data || {});
      var fns = this._listeners[event] || [];
      for (var i = 0; i < fns.length; i++) fns[i].apply(this, args);
    },

    _call: function (name, data) {
      var fn = this[name];
      if (typeof fn === "function") {
        try {
          fn.call(this, data);
        } catch (e) {
          setTimeout(function () {
            throw e;
          });
        }
      }
    },

    // -- session events -------------------------------------------------------------------------------

    _warning: function (data) {
      if (this.state !== "active") return;
      this._warned = true;
      this._call("onWarning", data);
      if (this.options.warningBanner) this._showBanner(data.seconds_left || 0);
    },

    _extended: function (data) {
      this._warned = false;
      this._hideBanner();
      this._call("onExtended", data);
    },

    _expired: function (data) {
      if (this.state === "expired" || this.state === "ended" || this.state === "closed") return;
      this._finish("expired");
      this._call("onExpired", data);
      if (this.options.modal) this._showModal("expired");
    },

    _ended: function (data) {
      if (this.state === "expired" || this.state === "ended" || this.state === "closed") return;
      this._finish("ended");
      this._call("onEnded", data);
      if (this.options.modal) this._showModal("ended");
    },

    _finish: function (state) {
      this.state = state;
      this._unlisten();
      this._hideBanner();
      clearTimeout(this._pending);
      clearTimeout(this._reconnectTimer);
      this._pending = this._reconnectTimer = null;
      var socket = this.socket;
      if (!socket) return;
      if (this.mode === "socket.io") socket.disconnect();
      else if (socket.readyState <= 1) socket.close(1000);
    },

    // -- activity -------------------------------------------------------------------------------------

    _fetchInterval: function () {
      var self = this;
      if (typeof global.fetch !== "function") return;
      global
        .fetch(self.url + "/tether/session-config.json", { credentials: "omit" })
        .then(function (r) {
          return r.ok ? r.json() : null;
        })
        .then(function (cfg) {
          if (cfg && cfg.activity_interval > 0) self._interval = cfg.activity_interval * 1000;
        })
        .catch(function () {}); // keep the fallback interval
    },

    _listen: function () {
      var doc = global.document;
      var self = this;
      this.options.activityEvents.forEach(function (name) {
        doc.addEventListener(name, self._onActivity, { passive: true, capture: true });
      });
      doc.addEventListener("visibilitychange", this._onVisibility);
    },

    _unlisten: function () {
      var doc = global.document;
      var self = this;
      this.options.activityEvents.forEach(function (name) {
        doc.removeEventListener(name, self._onActivity, { capture: true });
      });
      doc.removeEventListener("visibilitychange", this._onVisibility);
    },

    _userActivity: function () {
      if (this.state !== "active") return;
      if (this._warned) {
        // The clock is running out: no throttling, the server must hear it now.
        this._sendActivity();
        return;
      }
      var wait = this._lastSent + this._interval - Date.now();
      if (wait <= 0) {
        this._sendActivity();
      } else if (!this._pending) {
        var self = this;
        this._pending = setTimeout(function () {
          self._pending = null;
          self._sendActivity();
        }, wait);
      }
    },

    _sendActivity: function () {
      if (this.state !== "active") return;
      clearTimeout(this._pending);
      this._pending = null;
      this._lastSent = Date.now();
      // Not socket.volatile: that drops the packet whenever the polling transport is busy (before the
      // upgrade), and a lost report can expire an active user. Only skipped while disconnected, since
      // socket.io-client would otherwise buffer it and send stale activity after a reconnect.
      var open = this.mode === "socket.io" ? this.socket.connected : this.socket.readyState === 1;
      if (!open) return;
      this.activitySent++;
      if (this.mode === "socket.io") this.socket.emit("activity");
      else this.emit("activity");
      if (this._warned) {
        this._warned = false;
        this._hideBanner();
      }
    },

    // -- default UI -----------------------------------------------------------------------------------

    _showBanner: function (seconds) {
      var doc = global.document;
      var t = this.options.texts;
      if (!this._banner) {
        var banner = (this._banner = doc.createElement("div"));
        banner.id = "tether-session-warning";
        banner.setAttribute("role", "status");
        banner.setAttribute("aria-live", "polite");
        banner.style.cssText =
          "position:fixed;left:50%;bottom:1.5rem;transform:translateX(-50%);z-index:2147483646;" +
          "background:#fff8e1;color:#3e2723;border:1px solid #f0c36d;border-radius:6px;" +
          "padding:.75rem 1rem;font:15px/1.4 system-ui,sans-serif;box-shadow:0 2px 10px rgba(0,0,0,.2)";
        doc.body.appendChild(banner);
      }
      var end = Date.now() + seconds * 1000;
      var banner_ = this._banner;
      function render() {
        banner_.textContent = t.warning(Math.max(0, Math.round((end - Date.now()) / 1000)));
      }
      render();
      clearInterval(this._warnTimer);
      this._warnTimer = setInterval(render, 1000); // a local countdown: nothing goes over the network
    },

    _hideBanner: function () {
      clearInterval(this._warnTimer);
      this._warnTimer = null;
      if (this._banner) {
        this._banner.remove();
        this._banner = null;
      }
    },

    _showModal: function (kind) {
      var doc = global.document;
      var t = this.options.texts;
      var self = this;
      if (this._modal) return;
      var overlay = (this._modal = doc.createElement("div"));
      overlay.id = "tether-session-modal";
      overlay.style.cssText =
        "position:fixed;inset:0;z-index:2147483647;background:rgba(20,20,30,.55);" +
        "display:flex;align-items:center;justify-content:center";
      var dialog = doc.createElement("div");
      dialog.setAttribute("role", "dialog");
      dialog.setAttribute("aria-modal", "true");
      dialog.setAttribute("aria-labelledby", "tether-session-title");
      dialog.setAttribute("aria-describedby", "tether-session-body");
      dialog.setAttribute("data-kind", kind);
      dialog.tabIndex = -1;
      dialog.style.cssText =
        "background:#fff;color:#1a1a1a;max-width:26rem;margin:1rem;padding:1.5rem 1.75rem;border-radius:8px;" +
        "font:16px/1.5 system-ui,sans-serif;box-shadow:0 10px 40px rgba(0,0,0,.35)";
      var title = doc.createElement("h2");
      title.id = "tether-session-title";
      title.style.cssText = "margin:0 0 .5rem;font-size:1.25rem";
      title.textContent = kind === "ended" ? t.endedTitle : t.expiredTitle;
      var body = doc.createElement("p");
      body.id = "tether-session-body";
      body.style.cssText = "margin:0 0 1.25rem";
      body.textContent = kind === "ended" ? t.endedBody : t.expiredBody;
      var button = doc.createElement("button");
      button.type = "button";
      button.textContent = t.loginButton;
      button.style.cssText =
        "font:inherit;padding:.5rem 1.25rem;border-radius:6px;border:0;background:#1f5fbf;color:#fff;cursor:pointer";
      button.addEventListener("click", function () {
        if (typeof self.onLogin === "function") self.onLogin(kind);
        else global.location.assign(self.options.loginUrl);
      });
      dialog.appendChild(title);
      dialog.appendChild(body);
      dialog.appendChild(button);
      overlay.appendChild(dialog);
      // The page behind is out of reach for keyboard, pointer and screen readers while the dialog is up.
      Array.prototype.forEach.call(doc.body.children, function (el) {
        if (el !== overlay) el.setAttribute("inert", "");
      });
      // Tab stays inside: the button is the only focusable element.
      dialog.addEventListener("keydown", function (e) {
        if (e.key === "Tab") {
          e.preventDefault();
          button.focus();
        }
      });
      doc.body.appendChild(overlay);
      button.focus();
    },
  };

  var ns = (global.Tether = global.Tether || {});
  ns.Session = Session;
  ns.session = function (options) {
    return new Session(options);
  };
})(typeof window !== "undefined" ? window : this);
