// The omnirouter agent desk: a light layer over the server's HTML shell (no build step).
//
// Data comes from the JSON API under /desk/api; /desk/api/events (server-sent events) says
// when something the agent may see changed, and the desk re-fetches what it shows. Every
// piece of data is inserted with textContent (see h()), never as HTML.
(() => {
  "use strict";

  const API = "/desk/api";
  const LOGIN_PAGE = "/desk/login";
  const DESK_PAGE = "/desk";
  const REFRESH_DEBOUNCE_MS = 50; // a burst of notices (case + routing) becomes one fetch
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;

  const CHANNELS = {
    email: { label: "E-mail", mark: "E" },
    sms: { label: "SMS", mark: "S" },
    whatsapp: { label: "WhatsApp", mark: "W" },
    voice: { label: "Voice", mark: "V" },
    webchat: { label: "Web chat", mark: "C" },
    webform: { label: "Web form", mark: "F" },
    api: { label: "API", mark: "A" },
  };
  // Which identifier a reply on each channel is sent to (as the server's routing engine).
  const REPLY_CHANNELS = [
    ["email", "email"],
    ["sms", "phone"],
    ["whatsapp", "phone"],
    ["voice", "phone"],
    ["webchat", "chat_visitor"],
  ];
  const IDENTIFIER_LABELS = {
    email: "E-mail",
    phone: "Phone",
    chat_visitor: "Chat visitor",
    social_handle: "Social handle",
    account_number: "Account number",
    external_id: "External ID",
  };
  const SYSTEM_LABELS = {
    note: "Internal note",
    status: "Status",
    reassignment: "Reassignment",
    delivery: "Delivery",
    merge: "Merge",
  };
  const CLOSED_STATUSES = new Set(["resolved", "closed"]);
  // Statuses in which a case is with its assigned agent (a queued case may still name its
  // last agent).
  const HELD_STATUSES = new Set(["assigned", "waiting_on_customer"]);

  // ---- DOM helpers -------------------------------------------------------------------------

  const byId = (id) => document.getElementById(id);

  /** An element; string children become text nodes, so data is never parsed as HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") {
        for (const [name, data] of Object.entries(value)) {
          if (data !== null && data !== undefined) el.dataset[name] = String(data);
        }
      }
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false || child === "") continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function setText(id, text) {
    byId(id).textContent = text;
  }

  function announce(text) {
    const region = byId("announcer");
    region.textContent = "";
    // A fresh text node in a cleared live region is announced even when the text repeats.
    window.setTimeout(() => {
      region.textContent = text;
    }, 30);
  }

  // ---- Formatting --------------------------------------------------------------------------

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function timeEl(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    return h("time", { datetime: when.toISOString() }, dateTime.format(when));
  }

  /** Seconds as "1:05", "1:02:03" or "-0:12". */
  function clock(totalSeconds) {
    const negative = totalSeconds < 0;
    let s = Math.floor(Math.abs(totalSeconds));
    const hours = Math.floor(s / 3600);
    s -= hours * 3600;
    const minutes = Math.floor(s / 60);
    const seconds = String(s - minutes * 60).padStart(2, "0");
    const body = hours
      ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`
      : `${minutes}:${seconds}`;
    return (negative ? "−" : "") + body;
  }

  /** Seconds as "45 s", "3 min 05 s", "2 h 10 min". */
  function duration(totalSeconds) {
    const s = Math.round(totalSeconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }

  function titleCase(word) {
    const text = String(word || "").replaceAll("_", " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function channelLabel(channel) {
    return (CHANNELS[channel] || { label: titleCase(channel) }).label;
  }

  function channelPill(channel) {
    if (!channel) return "";
    const known = CHANNELS[channel] || { label: titleCase(channel), mark: "?" };
    return h(
      "span",
      { class: `channel ch-${channel}` },
      h("span", { class: "channel-mark", "aria-hidden": "true" }, known.mark),
      known.label,
    );
  }

  function shortId(id) {
    const text = String(id || "");
    return text.length > 14 ? `${text.slice(0, 6)}…${text.slice(-6)}` : text;
  }

  function customerLabel(name, customerId) {
    return name || `Customer ${shortId(customerId)}`;
  }

  // ---- The API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let leaving = false;

  function toLogin() {
    if (leaving) return;
    leaving = true;
    live.stop();
    window.location.replace(LOGIN_PAGE);
  }

  function detailOf(body, fallback) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return fallback;
  }

  async function api(path, { method = "GET", body } = {}) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    if (response.status === 401) {
      toLogin();
      throw new ApiError(401, "Your session has ended; sign in again.");
    }
    const isJson = (response.headers.get("content-type") || "").includes("json");
    const data = isJson ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const fallback = `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, detailOf(data, fallback));
    }
    return data;
  }

  const caseUrl = (caseId, action = "") =>
    `/cases/${encodeURIComponent(caseId)}${action ? `/${action}` : ""}`;

  // ---- State -------------------------------------------------------------------------------

  const state = {
    me: null,
    offers: [],
    queues: [],
    queuesAt: 0,
    mine: [], // rows of GET /cases: assigned and offered cases, with customer and subject
    unseen: new Set(), // case ids that came to me and were not opened yet
    mineFetched: false,
    targets: { agents: [], queues: [] },
    openId: null,
    chosenChannel: null, // the agent's own pick in the reply channel selector, per open case
  };

  // "My cases" survives a reload of the tab: kept in sessionStorage per agent.
  const mineKey = () => `omnirouter.desk.mine.${state.me.tenant}.${state.me.agent_id}`;
  const openKey = () => `omnirouter.desk.open.${state.me.tenant}.${state.me.agent_id}`;

  function saveMine() {
    try {
      sessionStorage.setItem(
        mineKey(),
        JSON.stringify({ rows: state.mine, unseen: [...state.unseen] }),
      );
    } catch {
      // Storage full or disabled: the list still lives in memory.
    }
  }

  function loadMine() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(mineKey()) || "null");
      if (saved && Array.isArray(saved.rows)) {
        state.mine = saved.rows.filter((r) => r && typeof r.case_id === "string");
        state.unseen = new Set((saved.unseen || []).filter((id) => typeof id === "string"));
      }
    } catch {
      state.mine = [];
    }
  }

  function upsertMine(row) {
    const index = state.mine.findIndex((r) => r.case_id === row.case_id);
    if (index === -1) state.mine.push(row);
    else state.mine[index] = { ...state.mine[index], ...row };
    saveMine();
    renderMine();
  }

  function dropMine(caseId) {
    const before = state.mine.length;
    state.mine = state.mine.filter((r) => r.case_id !== caseId);
    state.unseen.delete(caseId);
    if (state.mine.length !== before) {
      saveMine();
      renderMine();
    }
  }

  // ---- Refreshing what is shown ------------------------------------------------------------

  const jobs = {
    offers: refreshOffers,
    queues: refreshQueues,
    mine: refreshMine,
    case: refreshCase,
    targets: refreshTargets,
  };
  const pending = {};

  /** Re-fetch one part of the desk soon; notices arriving meanwhile cause one more fetch. */
  function schedule(name) {
    const job = (pending[name] ||= { timer: 0, running: false, again: false });
    if (job.running) {
      job.again = true;
      return;
    }
    if (job.timer) return;
    job.timer = window.setTimeout(async () => {
      job.timer = 0;
      job.running = true;
      try {
        await jobs[name]();
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) {
          console.warn(`refreshing ${name} failed`, error);
        }
      } finally {
        job.running = false;
        if (job.again) {
          job.again = false;
          schedule(name);
        }
      }
    }, REFRESH_DEBOUNCE_MS);
  }

  function refreshAll() {
    for (const name of Object.keys(jobs)) schedule(name);
  }

  async function refreshOffers() {
    state.offers = (await api("/offers")) || [];
    renderOffers();
  }

  async function refreshQueues() {
    state.queues = (await api("/queues")) || [];
    state.queuesAt = Date.now();
    renderQueues();
  }

  async function refreshMine() {
    const rows = (await api("/cases")) || [];
    const known = new Set(state.mine.map((r) => r.case_id));
    // Cases held since before this desk started are not news; later arrivals are.
    if (state.mineFetched) {
      for (const row of rows) {
        if (row.state === "assigned" && !known.has(row.case_id) && row.case_id !== state.openId) {
          state.unseen.add(row.case_id);
        }
      }
    }
    state.mineFetched = true;
    const current = new Set(rows.map((r) => r.case_id));
    for (const id of [...state.unseen]) if (!current.has(id)) state.unseen.delete(id);
    state.mine = rows;
    saveMine();
    renderMine();
    renderOffers(); // offers show the customer and subject found here
  }

  async function refreshTargets() {
    state.targets = (await api("/transfer-targets")) || { agents: [], queues: [] };
    renderTargets();
  }

  let caseRequest = 0;

  async function refreshCase() {
    const caseId = state.openId;
    if (!caseId) return;
    const request = ++caseRequest;
    try {
      const [view, timeline] = await Promise.all([api(caseUrl(caseId)), fullTimeline(caseId)]);
      if (request !== caseRequest || caseId !== state.openId) return; // a newer answer wins
      // The case's context carries the latest entries only; the desk shows the whole story.
      view.timeline = timeline || view.context.recent_timeline || [];
      byId("case-problem").hidden = true;
      renderCase(view);
    } catch (error) {
      if (request !== caseRequest || caseId !== state.openId) return;
      if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
        // Moved to a queue this agent does not serve, or merged away: stale details with
        // working buttons would mislead, so the case is closed with the reason shown.
        closeCase(`You can no longer see this case: ${error.message}`);
        return;
      }
      throw error;
    }
  }

  async function fullTimeline(caseId) {
    try {
      return await api(caseUrl(caseId, "timeline"));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) throw error;
      return null; // the case's own recent entries stand in
    }
  }

  // ---- Live updates ------------------------------------------------------------------------

  const live = {
    source: null,
    retryMs: RETRY_MIN_MS,
    timer: 0,

    start() {
      if (leaving) return;
      const source = new EventSource(`${API}/events`);
      this.source = source;
      source.onopen = () => {
        this.retryMs = RETRY_MIN_MS;
        setLive("live", "Live");
        // Whatever changed while the stream was down (or before it opened) is fetched now.
        refreshAll();
      };
      source.onmessage = (event) => {
        let notice;
        try {
          notice = JSON.parse(event.data);
        } catch {
          return;
        }
        if (notice && typeof notice === "object") onNotice(notice);
      };
      source.onerror = () => {
        if (source.readyState !== EventSource.CLOSED) {
          setLive("down", "Reconnecting…"); // the browser retries by itself
          return;
        }
        // The browser gave up (an error status or a refused connection): retry with back-off,
        // checking first that the session is still valid.
        source.close();
        setLive("down", "Reconnecting…");
        this.timer = window.setTimeout(() => this.retry(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      };
    },

    async retry() {
      try {
        await api("/me");
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return; // on the way to sign-in
      }
      this.start();
    },

    stop() {
      window.clearTimeout(this.timer);
      if (this.source) this.source.close();
      this.source = null;
    },
  };

  function setLive(stateName, text) {
    const badge = byId("live-status");
    if (!badge) return;
    badge.dataset.state = stateName;
    badge.textContent = text;
  }

  function onNotice(notice) {
    const me = state.me.agent_id;
    const caseId = notice.case_id;
    if (caseId && caseId === state.openId) schedule("case");
    if (notice.type === "case") {
      schedule("queues");
      const mineNow = state.mine.some((r) => r.case_id === caseId);
      if (notice.agent_id === me && HELD_STATUSES.has(notice.status)) {
        if (!mineNow) {
          upsertMine({
            case_id: caseId,
            customer_id: notice.customer_id,
            state: "assigned",
            queue: notice.queue,
            status: notice.status,
          });
        }
        schedule("mine");
      } else if (mineNow) {
        schedule("mine");
      }
      return;
    }
    if (notice.type === "routing") {
      schedule("offers");
      schedule("queues");
      schedule("mine");
      if (notice.agent_id === me && notice.outcome === "assigned") {
        const held = mineRow(caseId);
        // An offer this desk accepted is not news (its notice may beat the accept's answer).
        const expected =
          (held && held.state === "assigned") || state.offers.some((o) => o.case_id === caseId);
        if (!expected && caseId !== state.openId) {
          state.unseen.add(caseId);
          upsertMine({
            case_id: caseId,
            customer_id: notice.customer_id,
            state: "assigned",
            queue: notice.queue,
          });
          announce("A case was assigned to you; it is in My cases.");
        }
      } else if (notice.agent_id === me && notice.outcome === "offered") {
        announce("New offer.");
      } else if (notice.agent_id && notice.agent_id !== me && notice.outcome === "assigned") {
        dropMine(caseId);
      }
    }
  }

  // ---- Rendering: the side column ----------------------------------------------------------

  function mineRow(caseId) {
    return state.mine.find((r) => r.case_id === caseId) || null;
  }

  function renderOffers() {
    const list = byId("offers");
    list.replaceChildren();
    for (const offer of state.offers) {
      const info = mineRow(offer.case_id) || {};
      const who = customerLabel(info.customer_name, info.customer_id || offer.case_id);
      const accept = h(
        "button",
        { type: "button", class: "primary", "aria-label": `Accept offer: ${who}` },
        "Accept",
      );
      const decline = h(
        "button",
        { type: "button", "aria-label": `Decline offer: ${who}` },
        "Decline",
      );
      const buttons = [accept, decline];
      accept.addEventListener("click", () => respondToOffer(offer.case_id, true, buttons));
      decline.addEventListener("click", () => respondToOffer(offer.case_id, false, buttons));
      list.append(
        h(
          "li",
          { class: "card offer", dataset: { caseId: offer.case_id } },
          h("p", { class: "card-title" }, who),
          info.subject ? h("p", { class: "card-subject" }, info.subject) : "",
          h(
            "p",
            { class: "card-meta" },
            channelPill(offer.channel),
            offer.queue ? h("span", { class: "queue-name" }, `Queue ${offer.queue}`) : "",
          ),
          h(
            "p",
            { class: "countdown" },
            h("span", { class: "countdown-value", dataset: { expires: offer.expires || "" } }),
          ),
          h("div", { class: "card-actions" }, accept, decline),
        ),
      );
    }
    setText("offers-count", state.offers.length ? `(${state.offers.length})` : "");
    byId("offers-empty").hidden = state.offers.length > 0;
    tick();
  }

  async function respondToOffer(caseId, accept, buttons) {
    for (const b of buttons) b.disabled = true;
    setText("offers-status", "");
    try {
      await api(`/offers/${encodeURIComponent(caseId)}/${accept ? "accept" : "decline"}`, {
        method: "POST",
      });
    } catch (error) {
      const verb = accept ? "accept" : "decline";
      setText("offers-status", `Could not ${verb} the offer: ${error.message}`);
      for (const b of buttons) b.disabled = false;
      schedule("offers");
      return;
    }
    state.offers = state.offers.filter((o) => o.case_id !== caseId);
    renderOffers();
    if (accept) {
      const offered = mineRow(caseId) || {};
      upsertMine({ ...offered, case_id: caseId, state: "assigned" });
      announce("Offer accepted.");
      openCase(caseId, { focus: true });
    } else {
      dropMine(caseId);
      announce("Offer declined.");
    }
    schedule("mine");
    schedule("queues");
  }

  function renderMine() {
    const list = byId("my-cases");
    list.replaceChildren();
    const assigned = state.mine.filter((r) => r.state === "assigned");
    for (const row of assigned) {
      const who = customerLabel(row.customer_name, row.customer_id || row.case_id);
      const fresh = state.unseen.has(row.case_id);
      const button = h(
        "button",
        {
          type: "button",
          class: "case-link",
          "aria-current": row.case_id === state.openId ? "true" : null,
        },
        h(
          "span",
          { class: "case-link-title" },
          who,
          fresh ? h("span", { class: "badge new" }, "new") : "",
        ),
        row.subject ? h("span", { class: "case-link-subject" }, row.subject) : "",
        h(
          "span",
          { class: "case-link-meta" },
          channelPill(row.channel),
          row.status
            ? h("span", { class: `status-text st-${row.status}` }, titleCase(row.status))
            : "",
        ),
      );
      button.addEventListener("click", () => openCase(row.case_id, { focus: true }));
      list.append(h("li", { dataset: { caseId: row.case_id } }, button));
    }
    setText("mine-count", assigned.length ? `(${assigned.length})` : "");
    byId("mine-empty").hidden = assigned.length > 0;
  }

  function renderQueues() {
    const box = byId("queues");
    box.replaceChildren();
    for (const queue of state.queues) {
      const titleId = `queue-${queue.queue_id}-title`;
      const list = h("ul", { class: "case-links", "aria-labelledby": titleId });
      for (const waiting of queue.waiting) {
        // Counted from when the queue was fetched, so the countdowns run between fetches.
        const since = String(state.queuesAt - waiting.waiting_s * 1000);
        const deadline = String(state.queuesAt + waiting.sla_left_s * 1000);
        const button = h(
          "button",
          { type: "button", class: "case-link" },
          h("span", { class: "case-link-title" }, customerLabel(null, waiting.customer_id)),
          h(
            "span",
            { class: "case-link-meta" },
            channelPill(waiting.channel),
            waiting.tier ? h("span", { class: "badge tier" }, waiting.tier) : "",
            (waiting.intents || []).map((i) => h("span", { class: "tag" }, i)),
          ),
          h(
            "span",
            { class: "case-link-times" },
            h("span", {}, "Waiting ", h("span", { class: "waited", dataset: { since } })),
            h("span", { class: "sla", dataset: { deadline } }),
          ),
        );
        button.addEventListener("click", () => openCase(waiting.case_id, { focus: true }));
        list.append(h("li", { dataset: { caseId: waiting.case_id } }, button));
      }
      box.append(
        h(
          "section",
          { class: "queue", dataset: { queueId: queue.queue_id } },
          h(
            "h3",
            { id: titleId },
            queue.name,
            h("span", { class: "count" }, ` ${queue.waiting.length} waiting`),
          ),
          queue.waiting.length ? list : h("p", { class: "empty" }, "Nobody waiting."),
        ),
      );
    }
    byId("queues-empty").hidden = state.queues.length > 0;
    tick();
  }

  function renderTargets() {
    const colleagues = byId("colleagues");
    colleagues.replaceChildren(
      ...state.targets.agents.map((a) =>
        h("option", { value: a.agent_id }, `${a.name} (${titleCase(a.presence)})`),
      ),
    );
    const select = byId("transfer-queue");
    const chosen = select.value;
    select.replaceChildren(
      h("option", { value: "" }, "— no queue —"),
      ...state.targets.queues.map((q) => h("option", { value: q.queue_id }, q.name)),
    );
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  }

  /** Once a second: offer expiry, waiting times and SLA countdowns. */
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-expires]")) {
      const expires = Number(el.dataset.expires);
      if (!expires) continue;
      const left = (expires - now) / 1000;
      const card = el.closest(".offer");
      if (left > 0) {
        el.textContent = `Expires in ${clock(left)}`;
      } else {
        el.textContent = "Expired";
        if (card) for (const b of card.querySelectorAll("button.primary")) b.disabled = true;
      }
      el.classList.toggle("urgent", left <= 15);
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = clock((now - Number(el.dataset.since)) / 1000);
    }
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const left = (Number(el.dataset.deadline) - now) / 1000;
      el.textContent = left >= 0 ? `SLA ${clock(left)} left` : `SLA overdue ${clock(-left)}`;
      el.classList.toggle("breached", left < 0);
    }
  }

  // ---- Rendering: the open case ------------------------------------------------------------

  function closeCase(reason) {
    state.openId = null;
    renderedTimeline.caseId = null;
    byId("case-view").hidden = true;
    byId("case-empty").hidden = false;
    const banner = byId("case-problem");
    banner.textContent = reason;
    banner.hidden = false;
    try {
      sessionStorage.removeItem(openKey());
    } catch {
      // Nothing was remembered.
    }
    renderMine();
  }

  let pendingFocus = false; // move focus to the case once it shows (when the agent opened it)

  function openCase(caseId, { focus = false } = {}) {
    if (caseId !== state.openId) {
      state.openId = caseId;
      state.chosenChannel = null;
      renderedTimeline.caseId = null;
      byId("case-view").hidden = true;
      byId("case-problem").hidden = true;
      setText("action-status", "");
      byId("case-empty").hidden = true;
      try {
        sessionStorage.setItem(openKey(), caseId);
      } catch {
        // Not remembered across reloads; nothing else depends on it.
      }
    }
    state.unseen.delete(caseId);
    saveMine();
    renderMine();
    pendingFocus = focus;
    schedule("case");
  }

  function renderCase(view) {
    const c = view.case;
    const x = view.context;
    const profile = x.profile || {};
    setText("case-title", customerLabel(profile.name, c.customer_id));
    setText("case-subject", c.subject || "");
    byId("case-subject").hidden = !c.subject;
    byId("case-meta").replaceChildren(
      h("span", {}, "Case ", h("code", {}, c.case_id)),
      h("span", {}, "Opened ", timeEl(c.opened_at)),
      h("span", { class: "channels" }, (c.channels || []).map(channelPill)),
    );
    const status = byId("case-status");
    status.textContent = titleCase(c.status);
    status.className = `badge status st-${c.status}`;

    const repeat = byId("repeat-contact");
    repeat.hidden = !x.repeat_contact;
    repeat.textContent = x.repeat_contact
      ? `Repeat contact · ${x.contacts_last_7_days} contacts in 7 days`
      : "";

    setText("story", x.story_so_far || "Nothing from the customer yet.");
    renderProfile(profile, x);
    renderIntents(c.intents || []);
    renderStatus(c);
    renderEffort(c.effort);
    byId("case-empty").hidden = true;
    byId("case-view").hidden = false; // shown before the timeline, which measures its scroll
    renderTimeline(c.case_id, view.timeline);
    renderReplyChannels(c, x, view.timeline);
    byId("resolve-form").querySelector("button").disabled = CLOSED_STATUSES.has(c.status);

    if (pendingFocus) {
      pendingFocus = false;
      byId("case-title").focus();
    }
    renderMine();
  }

  function fact(term, ...value) {
    return [h("dt", {}, term), h("dd", {}, ...value)];
  }

  function renderProfile(profile, context) {
    const facts = [
      fact("Name", profile.name || "Unknown"),
      profile.language ? fact("Language", profile.language) : [],
      profile.tier ? fact("Tier", h("span", { class: "badge tier" }, profile.tier)) : [],
      Object.entries(profile.attributes || {}).map(([k, v]) => fact(titleCase(k), v)),
      fact("Contacts (7 days)", String(context.contacts_last_7_days ?? 0)),
    ];
    byId("profile").replaceChildren(...facts.flat(Infinity));
    const ids = profile.identifiers || [];
    byId("identifiers").replaceChildren(
      ...(ids.length
        ? ids.map((i) =>
            h(
              "li",
              {},
              h("span", { class: "id-kind" }, IDENTIFIER_LABELS[i.kind] || titleCase(i.kind)),
              " ",
              h("span", { class: "id-value" }, i.value),
              i.provider ? h("span", { class: "id-provider" }, ` (${i.provider})`) : "",
            ),
          )
        : [h("li", { class: "empty" }, "None known")]),
    );
    const previous = context.previous_agents || [];
    setText("previous-agents", previous.length ? previous.join(", ") : "None");
  }

  function renderIntents(intents) {
    byId("intents").replaceChildren(
      ...(intents.length
        ? intents.map((i) =>
            h("li", { class: "tag", title: `rule ${i.rule_id}: “${i.evidence}”` }, i.tag),
          )
        : [h("li", { class: "empty" }, "None detected")]),
    );
  }

  function renderStatus(c) {
    byId("status-now").replaceChildren(
      ...fact("Status", titleCase(c.status)),
      ...fact(
        "Assigned to",
        HELD_STATUSES.has(c.status) && c.assigned_agent_id
          ? c.assigned_agent_id
          : `Nobody${c.assigned_agent_id ? ` (last: ${c.assigned_agent_id})` : ""}`,
      ),
      ...fact("Queue", c.queue || "—"),
      ...fact("Agents so far", (c.agents || []).join(", ") || "None"),
    );
    byId("status-history").replaceChildren(
      ...(c.status_history || []).map((s) =>
        h(
          "li",
          {},
          h(
            "p",
            { class: "history-step" },
            s.from_status ? `${titleCase(s.from_status)} → ` : "Opened as ",
            h("strong", {}, titleCase(s.to_status)),
          ),
          h("p", { class: "history-reason" }, s.reason || "no reason given"),
          h("p", { class: "history-at" }, timeEl(s.at)),
        ),
      ),
    );
  }

  function renderEffort(effort) {
    const e = effort || {};
    const facts = [
      fact("Contacts", String(e.contacts ?? 0)),
      fact(
        "Channels",
        (e.channels_used || []).length
          ? h("span", { class: "channels" }, e.channels_used.map(channelPill))
          : "None",
      ),
      fact("Channel switches", String(e.channel_switches ?? 0)),
      fact("Transfers", String(e.transfers ?? 0)),
      fact(
        "First response",
        e.time_to_first_response_s === null || e.time_to_first_response_s === undefined
          ? "Not yet"
          : duration(e.time_to_first_response_s),
      ),
      e.time_to_resolution_s === null || e.time_to_resolution_s === undefined
        ? []
        : fact("Resolution", duration(e.time_to_resolution_s)),
    ];
    byId("effort").replaceChildren(...facts.flat(Infinity));
  }

  const renderedTimeline = { caseId: null };

  /** Updates the timeline in place: entries already shown stay, new ones are appended (and
   * announced by the log region), so a refresh never re-reads the whole conversation. */
  function renderTimeline(caseId, entries) {
    const list = byId("timeline");
    const scroller = byId("timeline-log");
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    if (renderedTimeline.caseId !== caseId) list.replaceChildren();
    const wanted = new Set(entries.map((e) => e.entry_id));
    const shown = new Map();
    for (const item of [...list.children]) {
      if (wanted.has(item.dataset.entryId)) shown.set(item.dataset.entryId, item);
      else item.remove();
    }
    let added = false;
    entries.forEach((entry, index) => {
      const at = list.children[index] || null;
      if (at && at.dataset.entryId === entry.entry_id) return;
      const existing = shown.get(entry.entry_id);
      if (existing) list.insertBefore(existing, at);
      else {
        list.insertBefore(timelineItem(entry, caseId), at);
        added = true;
      }
    });
    if (!entries.length) {
      list.replaceChildren(h("li", { class: "empty" }, "Nothing on the timeline yet."));
    } else {
      for (const stray of list.querySelectorAll("li.empty")) stray.remove();
    }
    const switched = renderedTimeline.caseId !== caseId;
    renderedTimeline.caseId = caseId;
    if (switched || (added && nearBottom)) scroller.scrollTop = scroller.scrollHeight;
  }

  function timelineItem(entry, caseId) {
    const kind = entry.kind;
    const system = entry.system_type || "";
    const classes = ["entry", `kind-${kind}`];
    if (system) classes.push(`system-${system}`);
    if (entry.direction) classes.push(`dir-${entry.direction}`);
    let who;
    if (kind === "message") who = "Customer";
    else if (kind === "reply") who = entry.agent_id ? `Agent ${entry.agent_id}` : "Automatic reply";
    else who = SYSTEM_LABELS[system] || titleCase(system || "system");
    const direction = { inbound: "from the customer", outbound: "to the customer" }[
      entry.direction
    ];
    return h(
      "li",
      {
        class: classes.join(" "),
        dataset: { entryId: entry.entry_id, kind, systemType: system || null },
      },
      h(
        "p",
        { class: "entry-head" },
        entry.channel ? channelPill(entry.channel) : "",
        h("span", { class: "entry-who" }, who),
        system === "note" ? h("span", { class: "badge internal" }, "internal") : "",
        system === "note" && entry.agent_id
          ? h("span", { class: "entry-agent" }, `by ${entry.agent_id}`)
          : "",
        kind === "system" && system !== "note" && entry.agent_id
          ? h("span", { class: "entry-agent" }, entry.agent_id)
          : "",
        direction ? h("span", { class: "entry-direction" }, direction) : "",
        entry.case_id && entry.case_id !== caseId
          ? h("span", { class: "badge other-case" }, "other case")
          : "",
        h("span", { class: "entry-at" }, timeEl(entry.at)),
      ),
      entry.subject ? h("p", { class: "entry-subject" }, entry.subject) : "",
      entry.text ? h("p", { class: "entry-text" }, entryText(entry, caseId)) : "",
      entry.attachments
        ? h("p", { class: "entry-attachments" }, `${entry.attachments} attachment(s)`)
        : "",
    );
  }

  /** System entries name their case ("Case case_…: new -> offered"); the open one reads as
   * "This case". */
  function entryText(entry, caseId) {
    if (entry.kind !== "system" || !caseId) return entry.text;
    const prefix = `Case ${caseId}`;
    if (!entry.text.startsWith(prefix)) return entry.text;
    return `This case${entry.text.slice(prefix.length)}`;
  }

  /** Channels the customer can be reached on; the default is the one they wrote on last. */
  function renderReplyChannels(c, context, timeline) {
    const kinds = new Set((context.profile.identifiers || []).map((i) => i.kind));
    const addressOf = (kind) => (context.profile.identifiers || []).find((i) => i.kind === kind);
    const usable = REPLY_CHANNELS.filter(([, kind]) => kinds.has(kind));
    const lastInbound = [...timeline]
      .reverse()
      .find((t) => t.direction === "inbound" && t.channel && t.case_id === c.case_id);
    let latest = lastInbound ? lastInbound.channel : (c.channels || []).at(-1);
    if (latest === "webform") latest = "email"; // a web form is answered by e-mail
    const select = byId("reply-channel");
    const values = usable.map(([channel]) => channel);
    const pick =
      (state.chosenChannel && values.includes(state.chosenChannel) && state.chosenChannel) ||
      (values.includes(latest) ? latest : values[0] || "");
    const same =
      select.options.length === values.length &&
      [...select.options].every((o, i) => o.value === values[i]);
    if (!same) {
      select.replaceChildren(
        ...usable.map(([channel, kind]) =>
          h("option", { value: channel }, `${channelLabel(channel)} · ${addressOf(kind).value}`),
        ),
      );
    }
    select.value = pick;
    const form = byId("reply-form");
    const disabled = values.length === 0;
    select.disabled = disabled;
    form.querySelector("button[type=submit]").disabled = disabled;
    byId("reply-hint").textContent = disabled
      ? "The customer has no address to reply to."
      : "Ctrl+Enter sends.";
  }

  // ---- Actions on the open case ------------------------------------------------------------

  async function act(form, work, done) {
    const button = form.querySelector("button[type=submit]");
    const status = byId("action-status");
    const caseId = state.openId;
    if (!caseId) return;
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.textContent = "";
    status.classList.remove("error");
    try {
      const result = await work(caseId);
      status.textContent = done(result, caseId);
      schedule("case");
      schedule("mine");
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  }

  function wireActions() {
    const replyForm = byId("reply-form");
    const replyText = byId("reply-text");
    byId("reply-channel").addEventListener("change", (event) => {
      state.chosenChannel = event.target.value;
    });
    replyText.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        replyForm.requestSubmit();
      }
    });
    replyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = replyText.value.trim();
      const channel = byId("reply-channel").value;
      if (!text) {
        replyText.focus();
        return;
      }
      act(
        replyForm,
        (caseId) =>
          api(caseUrl(caseId, "reply"), {
            method: "POST",
            body: { text, channel: channel || null },
          }),
        (sent) => {
          replyText.value = "";
          return `Reply sent by ${channelLabel(sent && sent.channel ? sent.channel : channel)}.`;
        },
      );
    });

    const noteForm = byId("note-form");
    const noteText = byId("note-text");
    noteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = noteText.value.trim();
      if (!text) {
        noteText.focus();
        return;
      }
      act(
        noteForm,
        (caseId) => api(caseUrl(caseId, "notes"), { method: "POST", body: { text } }),
        () => {
          noteText.value = "";
          return "Internal note added.";
        },
      );
    });

    const transferForm = byId("transfer-form");
    // Colleagues' presence changes without notices: fresh when the agent is about to pick one.
    byId("transfer-agent").addEventListener("focus", () => schedule("targets"));
    transferForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const agentId = byId("transfer-agent").value.trim();
      const queue = byId("transfer-queue").value;
      const status = byId("action-status");
      if (Boolean(agentId) === Boolean(queue)) {
        status.textContent = "Transfer to either a colleague or a queue.";
        status.classList.add("error");
        return;
      }
      act(
        transferForm,
        (caseId) =>
          api(caseUrl(caseId, "transfer"), {
            method: "POST",
            body: agentId ? { agent_id: agentId } : { queue },
          }),
        (_, caseId) => {
          byId("transfer-agent").value = "";
          byId("transfer-queue").value = "";
          dropMine(caseId);
          return `Transferred to ${agentId || `queue ${queue}`}.`;
        },
      );
    });

    const resolveForm = byId("resolve-form");
    resolveForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = byId("resolve-reason").value.trim() || "resolved by agent";
      act(
        resolveForm,
        (caseId) => api(caseUrl(caseId, "resolve"), { method: "POST", body: { reason } }),
        (_, caseId) => {
          dropMine(caseId);
          return "Case resolved.";
        },
      );
    });
  }

  // ---- The header ---------------------------------------------------------------------------

  function wireHeader() {
    const presence = byId("presence");
    presence.addEventListener("change", async () => {
      const wanted = presence.value;
      presence.disabled = true;
      try {
        await api("/presence", { method: "POST", body: { presence: wanted } });
        state.me.presence = wanted;
        announce(`Presence: ${titleCase(wanted)}.`);
      } catch (error) {
        presence.value = state.me.presence;
        announce(`Presence not changed: ${error.message}`);
      } finally {
        presence.disabled = false;
      }
    });
    byId("sign-out").addEventListener("click", async () => {
      live.stop();
      try {
        sessionStorage.removeItem(mineKey());
        sessionStorage.removeItem(openKey());
        await api("/logout", { method: "POST" });
      } catch {
        // Signed out already, or the server is gone: the sign-in page is right either way.
      }
      leaving = true;
      window.location.replace(LOGIN_PAGE);
    });
  }

  function renderMe() {
    const me = state.me;
    setText("agent-name", me.name || me.agent_id);
    setText("agent-role", titleCase(me.role));
    const presence = byId("presence");
    presence.value = me.presence;
    presence.disabled = false;
    document.title = `${me.name || me.agent_id} · omnirouter desk`;
  }

  // ---- Start-up ----------------------------------------------------------------------------

  async function startDesk() {
    try {
      state.me = await api("/me");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        setText("agent-name", `The desk cannot reach the server: ${error.message}`);
      }
      return;
    }
    renderMe();
    wireHeader();
    wireActions();
    loadMine();
    renderMine();
    live.start();
    refreshAll();
    window.setInterval(tick, 1000);
    let reopen = null;
    try {
      reopen = sessionStorage.getItem(openKey());
    } catch {
      reopen = null;
    }
    if (reopen) openCase(reopen);
    window.addEventListener("pagehide", () => live.stop());
  }

  // ---- The sign-in page --------------------------------------------------------------------

  function startLogin() {
    const form = byId("login-form");
    const error = byId("login-error");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const agentId = byId("agent-id").value.trim();
      const password = byId("password").value;
      if (!agentId || !password) {
        error.textContent = "Enter your agent ID and password.";
        (agentId ? byId("password") : byId("agent-id")).focus();
        return;
      }
      button.disabled = true;
      try {
        const response = await fetch(`${API}/login`, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ agent_id: agentId, password }),
        });
        if (response.ok) {
          window.location.assign(DESK_PAGE);
          return;
        }
        error.textContent =
          response.status === 401
            ? "Wrong agent ID or password."
            : `Sign-in failed (${response.status}). Try again.`;
        byId("password").select();
      } catch {
        error.textContent = "Cannot reach the server. Check the connection and try again.";
      } finally {
        button.disabled = false;
      }
    });
  }

  if (document.body.dataset.page === "login") startLogin();
  else startDesk();
})();
