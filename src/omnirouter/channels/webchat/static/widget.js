/*
 * omnirouter web chat widget. Embed with one tag:
 *
 *   <script src="https://HOST/chat/widget.js" data-tenant="default" async></script>
 *
 * Plain JavaScript, no build step, no external resources. The widget lives in a shadow root so
 * the host page's styles and ours never meet. Frames are described in
 * omnirouter/channels/webchat/protocol.py.
 */
(function () {
  "use strict";

  if (window.__omnirouterChat) return; // included twice: one widget is enough
  window.__omnirouterChat = true;

  var script =
    document.currentScript || document.querySelector('script[src*="/chat/widget.js"]');
  if (!script) return;

  var STORAGE_KEY = "omnirouter.chat.visitorId";
  var MAX_TEXT = 4000;
  var MAX_BACKOFF_MS = 30000;
  var MAX_SEND_ATTEMPTS = 8;
  var scriptUrl = new URL(script.src, location.href);
  var tenant = script.getAttribute("data-tenant") || "default";
  // The socket lives next to the script, wherever the gateway is mounted.
  var socketUrl =
    (scriptUrl.protocol === "https:" ? "wss:" : "ws:") +
    "//" +
    scriptUrl.host +
    scriptUrl.pathname.replace(/\/widget\.js$/, "") +
    "/ws";

  function newId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // randomUUID needs a secure context; getRandomValues does not.
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) {
      return (x + 0x100).toString(16).slice(1);
    });
    return [h.slice(0, 4), h.slice(4, 6), h.slice(6, 8), h.slice(8, 10), h.slice(10)]
      .map(function (p) {
        return p.join("");
      })
      .join("-");
  }

  var memoryVisitorId = null; // when localStorage is unavailable (privacy modes, sandboxes)
  function visitorId(create) {
    var id = null;
    try {
      id = localStorage.getItem(STORAGE_KEY);
    } catch (e) {
      id = memoryVisitorId;
    }
    if (!id && create) {
      id = newId();
      memoryVisitorId = id;
      try {
        localStorage.setItem(STORAGE_KEY, id);
      } catch (e) {
        /* kept in memory for this page */
      }
    }
    return id;
  }

  var CSS =
    ":host{all:initial}" +
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".vh{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}" +
    "button,input,textarea{font:inherit;font-size:15px}" +
    ":focus-visible{outline:3px solid #ffbf47;outline-offset:2px}" +
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;" +
    "padding:12px 18px;background:#1d4ed8;color:#fff;font-size:15px;font-weight:600;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".badge{display:inline-block;min-width:20px;margin-left:8px;padding:0 6px;border-radius:10px;background:#fff;color:#1d4ed8}" +
    ".panel{position:fixed;right:20px;bottom:84px;z-index:2147483000;width:min(360px,calc(100vw - 40px));" +
    "height:min(540px,calc(100vh - 110px));display:flex;flex-direction:column;background:#fff;color:#111;" +
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden;font-size:15px}" +
    ".panel[hidden]{display:none}" +
    "header{display:flex;align-items:center;gap:8px;padding:10px 12px;background:#1d4ed8;color:#fff}" +
    ".heading{flex:1}header h2{margin:0;font-size:16px}" +
    ".status{margin:0;font-size:12px;opacity:.9}" +
    ".close{border:0;background:transparent;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px}" +
    ".log{flex:1;overflow-y:auto;margin:0;padding:12px;list-style:none;display:flex;flex-direction:column;gap:8px}" +
    ".msg{max-width:85%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".visitor{align-self:flex-end;background:#dbeafe}" +
    ".agent{align-self:flex-start;background:#f1f5f9}" +
    ".notice{align-self:center;font-size:13px;color:#555}" +
    ".state{display:block;margin-top:2px;font-size:12px;color:#374151;text-align:right}" +
    ".failed .state{color:#b91c1c}" +
    ".compose{display:flex;gap:8px;padding:10px;border-top:1px solid #e5e7eb}" +
    ".compose textarea{flex:1;resize:none;padding:8px;border:1px solid #9ca3af;border-radius:8px}" +
    ".compose button,.identify button{border:0;border-radius:8px;padding:8px 14px;background:#1d4ed8;color:#fff;cursor:pointer}" +
    ".identify{padding:0 10px 10px;font-size:14px}" +
    ".identify summary{cursor:pointer;padding:6px 0;color:#1d4ed8}" +
    ".identify label{display:block;margin-top:6px}" +
    ".identify input{width:100%;padding:6px 8px;border:1px solid #9ca3af;border-radius:6px}" +
    ".identify button{margin-top:8px}" +
    ".identify p{margin:6px 0 0}" +
    "@media (prefers-reduced-motion:no-preference){.panel{transition:opacity .15s}}";

  var HTML =
    '<button type="button" class="launcher" aria-expanded="false" aria-controls="omni-panel">' +
    '<span class="label">Chat with us</span><span class="badge" hidden></span></button>' +
    '<section class="panel" id="omni-panel" role="dialog" aria-labelledby="omni-title" hidden>' +
    "<header>" +
    '<div class="heading"><h2 id="omni-title">Chat with us</h2>' +
    '<p class="status" role="status">Not connected</p></div>' +
    '<button type="button" class="close" aria-label="Close chat">\u00d7</button>' +
    "</header>" +
    '<ol class="log" role="log" aria-live="polite" aria-relevant="additions" aria-label="Conversation"></ol>' +
    '<form class="compose">' +
    '<label class="vh" for="omni-text">Your message</label>' +
    '<textarea id="omni-text" rows="2" maxlength="' +
    MAX_TEXT +
    '" placeholder="Write a message\u2026" required></textarea>' +
    '<button type="submit">Send</button>' +
    "</form>" +
    '<details class="identify"><summary>Leave your e-mail or phone so we can reach you</summary>' +
    "<form>" +
    '<label for="omni-email">E-mail</label>' +
    '<input id="omni-email" name="email" type="email" autocomplete="email">' +
    '<label for="omni-phone">Phone</label>' +
    '<input id="omni-phone" name="phone" type="tel" autocomplete="tel">' +
    '<button type="submit">Save</button>' +
    '<p class="identify-status" role="status"></p>' +
    "</form></details>" +
    "</section>";

  function mount() {
    var host = document.createElement("div");
    host.setAttribute("data-omnirouter-chat", "");
    document.body.appendChild(host);
    var root = host.attachShadow({ mode: "open" });
    try {
      // A constructed stylesheet also works on pages whose CSP refuses inline <style>.
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var style = document.createElement("style");
      style.textContent = CSS;
      root.appendChild(style);
    }
    var shell = document.createElement("div");
    shell.innerHTML = HTML; // our own constant markup; visitor and agent text uses textContent
    root.appendChild(shell);

    var $ = function (selector) {
      return root.querySelector(selector);
    };
    var launcher = $(".launcher");
    var launcherLabel = $(".launcher .label");
    var badge = $(".badge");
    var panel = $(".panel");
    var statusLine = $(".status");
    var log = $(".log");
    var compose = $(".compose");
    var textBox = $("#omni-text");
    var identifyForm = $(".identify form");
    var identifyStatus = $(".identify-status");

    var socket = null;
    var connected = false;
    var reconnectAttempt = 0;
    var reconnectTimer = null;
    var unread = 0;
    var identifying = false;
    var outbox = new Map(); // client_message_id -> {text, item, attempts, timer}
    var seenReplies = new Set();

    function setStatus(text) {
      statusLine.textContent = text;
    }

    function scrollToEnd() {
      log.scrollTop = log.scrollHeight;
    }

    function addItem(kind, text, who) {
      var item = document.createElement("li");
      item.className = "msg " + kind;
      if (who) {
        var label = document.createElement("span");
        label.className = "vh";
        label.textContent = who + ": ";
        item.appendChild(label);
      }
      var body = document.createElement("span");
      body.className = "text";
      body.textContent = text;
      item.appendChild(body);
      log.appendChild(item);
      scrollToEnd();
      return item;
    }

    // ``spoken`` replaces a symbol (the ✓) for screen readers.
    function setState(item, text, spoken) {
      var state = item.querySelector(".state");
      if (!state) {
        state = document.createElement("span");
        state.className = "state";
        item.appendChild(state);
      }
      state.textContent = "";
      var shown = document.createElement("span");
      shown.textContent = text;
      state.appendChild(shown);
      if (spoken) {
        shown.setAttribute("aria-hidden", "true");
        var said = document.createElement("span");
        said.className = "vh";
        said.textContent = spoken;
        state.appendChild(said);
      }
    }

    function send(frame) {
      if (!connected) return false;
      socket.send(JSON.stringify(frame));
      return true;
    }

    function sendMessage(id) {
      var entry = outbox.get(id);
      if (!entry) return;
      entry.timer = null;
      entry.attempts += 1;
      // Unsent now is sent on reconnect: the server acknowledges a resend without publishing twice.
      send({ type: "message", client_message_id: id, text: entry.text });
    }

    function markFailed(id, reason) {
      var entry = outbox.get(id);
      if (!entry) return;
      outbox.delete(id);
      entry.item.classList.add("failed");
      setState(entry.item, "Not sent: " + reason);
    }

    function onAck(frame) {
      var entry = outbox.get(frame.client_message_id);
      if (!entry) return;
      outbox.delete(frame.client_message_id);
      if (entry.timer) clearTimeout(entry.timer);
      entry.item.classList.remove("failed");
      setState(entry.item, "\u2713", "Delivered");
    }

    function onError(frame) {
      if (frame.client_message_id && outbox.has(frame.client_message_id)) {
        var entry = outbox.get(frame.client_message_id);
        if (frame.retryable && entry.attempts < MAX_SEND_ATTEMPTS) {
          setState(entry.item, "Retrying\u2026");
          entry.timer = setTimeout(
            sendMessage,
            Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, entry.attempts)),
            frame.client_message_id
          );
        } else {
          markFailed(frame.client_message_id, frame.reason);
        }
        return;
      }
      if (identifying) {
        identifying = false;
        identifyStatus.textContent = frame.reason;
        return;
      }
      addItem("notice", frame.reason);
    }

    function onIdentified(frame) {
      identifying = false;
      var ways = [frame.email, frame.phone].filter(Boolean).join(" or ");
      identifyStatus.textContent = "Thanks \u2014 we can reach you at " + ways + ".";
    }

    function onReply(frame) {
      if (seenReplies.has(frame.event_id)) return; // delivered again after a reconnect
      seenReplies.add(frame.event_id);
      var item = addItem("agent", frame.text, "Agent");
      if (frame.at) item.title = new Date(frame.at).toLocaleString();
      if (panel.hidden) {
        unread += 1;
        badge.textContent = String(unread);
        badge.hidden = false;
        launcher.setAttribute("aria-label", "Chat with us, " + unread + " new");
      }
    }

    function onFrame(event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame.type === "ack") onAck(frame);
      else if (frame.type === "error") onError(frame);
      else if (frame.type === "identified") onIdentified(frame);
      else if (frame.type === "message") onReply(frame);
    }

    function scheduleReconnect() {
      if (reconnectTimer) return;
      // Exponential backoff with jitter, so a restarted gateway is not stormed by every tab.
      var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, reconnectAttempt));
      delay = delay / 2 + Math.random() * (delay / 2);
      reconnectAttempt += 1;
      setStatus("Reconnecting\u2026");
      reconnectTimer = setTimeout(function () {
        reconnectTimer = null;
        connect();
      }, delay);
    }

    function connect() {
      if (socket) return;
      var id = visitorId(true);
      setStatus("Connecting\u2026");
      var url =
        socketUrl + "?visitor_id=" + encodeURIComponent(id) + "&tenant=" + encodeURIComponent(tenant);
      try {
        socket = new WebSocket(url);
      } catch (e) {
        socket = null;
        scheduleReconnect();
        return;
      }
      socket.addEventListener("open", function () {
        connected = true;
        reconnectAttempt = 0;
        setStatus("Connected");
        outbox.forEach(function (entry, clientId) {
          if (!entry.timer) sendMessage(clientId);
        });
      });
      socket.addEventListener("message", onFrame);
      socket.addEventListener("close", function () {
        connected = false;
        socket = null;
        if (identifying) {
          identifying = false;
          identifyStatus.textContent = "Not saved: the connection dropped. Please try again.";
        }
        scheduleReconnect();
      });
    }

    function open() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      launcherLabel.textContent = "Close chat";
      unread = 0;
      badge.hidden = true;
      launcher.removeAttribute("aria-label");
      connect();
      textBox.focus();
    }

    function close() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      launcherLabel.textContent = "Chat with us";
      launcher.focus();
    }

    launcher.addEventListener("click", function () {
      if (panel.hidden) open();
      else close();
    });
    $(".close").addEventListener("click", close);
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") close();
    });

    compose.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = textBox.value.trim();
      if (!text) return;
      var id = newId();
      var item = addItem("visitor", text, "You");
      setState(item, "Sending\u2026");
      outbox.set(id, { text: text, item: item, attempts: 0, timer: null });
      textBox.value = "";
      if (connected) sendMessage(id);
      else connect();
    });
    textBox.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (compose.requestSubmit) compose.requestSubmit();
        else compose.querySelector('button[type="submit"]').click();
      }
    });

    identifyForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var email = identifyForm.elements.email.value.trim();
      var phone = identifyForm.elements.phone.value.trim();
      if (!email && !phone) {
        identifyStatus.textContent = "Leave an e-mail address or a phone number.";
        return;
      }
      if (!send({ type: "identify", email: email || null, phone: phone || null })) {
        identifyStatus.textContent = "Not connected yet \u2014 please try again in a moment.";
        connect();
        return;
      }
      identifying = true;
      identifyStatus.textContent = "Saving\u2026";
    });

    window.addEventListener("online", function () {
      if (reconnectTimer) {
        clearTimeout(reconnectTimer);
        reconnectTimer = null;
        connect();
      }
    });

    // A returning visitor connects at once: replies sent while they were away are waiting.
    if (visitorId(false)) connect();
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
