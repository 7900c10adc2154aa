// The /ops dashboard: polls /ops/api/summary with the operator token and draws it.
// No framework, no build step, no CDN: tables from the DOM API, charts on <canvas>.
"use strict";

(function () {
  const TOKEN_KEY = "omnirouter.ops.token";
  const STAGES = ["ingress", "identity", "cases", "routing", "dispatcher"];
  const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
    "#4b5563", "#db2777", "#65a30d", "#7c3aed"];
  const $ = (id) => document.getElementById(id);
  let timer = null;

  // ?token=… (a link printed for an operator) is taken once, then removed from the address bar.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }

  function askForToken(message) {
    clearTimeout(timer);
    $("dashboard").hidden = true;
    $("forget-token").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = message || "";
    $("status").textContent = "operator token needed";
    $("token").focus();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("token-form").hidden = true;
    poll();
  });

  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken("");
  });

  async function poll() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return askForToken("");
    let interval = 5;
    try {
      const answer = await fetch("/ops/api/summary", {
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
      });
      if (answer.status === 401 || answer.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        return askForToken("That token was not accepted.");
      }
      if (!answer.ok) {
        const detail = await answer.json().catch(() => ({}));
        throw new Error(detail.detail || "HTTP " + answer.status);
      }
      const summary = await answer.json();
      interval = Math.max(1, Math.min(10, summary.sample_interval_s || 5));
      render(summary);
    } catch (error) {
      $("status").textContent = "could not load: " + error.message;
    }
    clearTimeout(timer);
    timer = setTimeout(poll, interval * 1000);
  }

  // ---- formatting -------------------------------------------------------------------------

  function fmtNumber(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (Math.abs(value) >= 1e4) return (value / 1e3).toFixed(1) + "k";
    return Number(value).toFixed(digits === undefined ? 0 : digits);
  }

  // Axis ticks of small counts fall between integers: show the fraction rather than repeat one.
  function fmtCount(value) {
    return value < 10 && !Number.isInteger(value) ? String(Number(value.toFixed(2))) : fmtNumber(value);
  }

  function fmtRate(value) {
    if (!value) return "0";
    return value >= 100 ? fmtNumber(value, 0) : fmtNumber(value, value >= 10 ? 1 : 2);
  }

  function fmtSeconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 1 : 0) + " ms";
    if (value < 120) return value.toFixed(1) + " s";
    if (value < 7200) return (value / 60).toFixed(1) + " min";
    return (value / 3600).toFixed(1) + " h";
  }

  function cell(row, text, className, testid) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (testid) td.dataset.testid = testid;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, rows, toCells, empty) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = body.insertRow();
      const td = cell(tr, empty, "empty");
      td.colSpan = $(id).querySelectorAll("thead th").length;
      return;
    }
    for (const item of rows) {
      const tr = body.insertRow();
      for (const [text, className, testid] of toCells(item)) cell(tr, text, className, testid);
    }
  }

  // ---- rendering ----------------------------------------------------------------------------

  function render(s) {
    $("token-form").hidden = true;
    $("dashboard").hidden = false;
    $("forget-token").hidden = false;
    const sources = Object.entries(s.sources).map(([k, v]) => k + ": " + v).join(" · ");
    $("status").textContent =
      "updated " + new Date(s.generated_at * 1000).toLocaleTimeString() + " · " + sources;
    $("window").textContent = s.window_s ? "(last " + Math.round(s.window_s) + " s)" : "";
    renderGroups(s);
    renderStages(s);
    renderQueues(s);
    renderDeadLetters(s);
    drawCharts(s);
  }

  function renderGroups(s) {
    const box = $("groups");
    box.replaceChildren();
    $("lag-error").hidden = !s.lag_error;
    $("lag-error").textContent = s.lag_error ? "lag monitor: " + s.lag_error : "";
    const groups = (s.lag && s.lag.groups) || [];
    if (!groups.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = s.lag ? "no consumer groups" : "lag not sampled yet";
      box.appendChild(p);
      return;
    }
    for (const g of groups) {
      const card = document.createElement("article");
      card.className = "card";
      const title = document.createElement("h3");
      title.textContent = g.group;
      const badge = document.createElement("span");
      badge.className = "badge status-" + g.status;
      badge.dataset.testid = "group-status";
      badge.dataset.status = g.status;
      badge.textContent = g.status;
      title.appendChild(badge);
      const facts = document.createElement("p");
      const partitions = (g.partitions || []).length;
      facts.textContent = "lag " + fmtNumber(g.total_lag) + " · time lag " +
        fmtSeconds(g.max_time_lag_s) + " · " + partitions + " partition" +
        (partitions === 1 ? "" : "s");
      card.append(title, facts);
      const worst = (g.partitions || []).filter((p) => p.status !== "OK").slice(0, 5);
      if (worst.length) {
        const list = document.createElement("ul");
        for (const p of worst) {
          const li = document.createElement("li");
          li.textContent = p.topic + "[" + p.partition + "] " + p.status + ": lag " +
            fmtNumber(p.lag) + ", " + fmtSeconds(p.time_lag_s);
          list.appendChild(li);
        }
        card.appendChild(list);
      }
      box.appendChild(card);
    }
  }

  function renderStages(s) {
    const stages = STAGES.concat(Object.keys(s.throughput).filter((x) => !STAGES.includes(x)));
    let totalIn = 0;
    let totalOut = 0;
    fillTable("stages", stages, (stage) => {
      const flow = s.throughput[stage] || { in: 0, out: 0 };
      const lat = s.latency.stages[stage] || {};
      totalIn += flow.in;
      totalOut += flow.out;
      return [[stage], [fmtRate(flow.in), "num", "throughput-" + stage], [fmtRate(flow.out), "num"],
        [fmtSeconds(lat.p50), "num"], [fmtSeconds(lat.p95), "num"], [fmtSeconds(lat.p99), "num"],
        [fmtNumber(lat.count), "num"]];
    }, "");
    $("stages").querySelector("[data-testid=throughput-total]").textContent = fmtRate(totalIn);
    $("throughput-out").textContent = fmtRate(totalOut);
    const e2e = s.latency.end_to_end;
    $("end-to-end").textContent = "received → routed: p50 " + fmtSeconds(e2e.p50) + " · p95 " +
      fmtSeconds(e2e.p95) + " · p99 " + fmtSeconds(e2e.p99) + " (" + fmtNumber(e2e.count) +
      " cases)";
  }

  function renderQueues(s) {
    fillTable("queues", s.queues, (q) => {
      const late = q.sla_first_response_s && q.oldest_wait_s > q.sla_first_response_s;
      return [[q.tenant], [q.queue], [fmtNumber(q.depth), "num"],
        [q.depth ? fmtSeconds(q.oldest_wait_s) : "—", "num" + (late ? " late" : "")],
        [q.sla_first_response_s ? fmtSeconds(q.sla_first_response_s) : "—", "num"],
        [fmtNumber(q.sla_breaches_total), "num"], [fmtNumber(q.sla_breaches_per_min, 1), "num"]];
    }, "no queues with routing state yet");
    const byTenant = {};
    for (const a of s.agents) {
      (byTenant[a.tenant] = byTenant[a.tenant] || []).push(a.presence + " " + a.count);
    }
    $("agents").textContent = Object.keys(byTenant).length
      ? "Agents — " + Object.entries(byTenant).map(([t, v]) => t + ": " + v.join(", ")).join(" · ")
      : "Agents — none signed up yet";
  }

  function renderDeadLetters(s) {
    fillTable("dead-letters", s.dead_letters, (d) => [[d.stage], [d.reason],
      [fmtNumber(d.total), "num"], [fmtNumber(d.per_min, 1), "num"]], "none — nothing failed");
    const d = s.deliveries;
    $("deliveries").textContent = "Replies delivered " + fmtNumber(d.delivered) + " (" +
      fmtRate(d.delivered_per_s) + "/s) · failed " + fmtNumber(d.failed) + " (" +
      fmtRate(d.failed_per_s) + "/s)";
  }

  // ---- charts ---------------------------------------------------------------------------------

  function seriesOf(points, pick) {
    // points: [{t, …}] → {name: [[t, v], …]} for every name pick(point) returns.
    const series = {};
    for (const point of points) {
      const values = pick(point) || {};
      for (const [name, value] of Object.entries(values)) {
        if (value === null || value === undefined) continue;
        (series[name] = series[name] || []).push([point.t, value]);
      }
    }
    return series;
  }

  function drawCharts(s) {
    const lag = s.lag_history || [];
    const groupValues = (key) => (p) => Object.fromEntries(
      Object.entries(p.groups).map(([g, v]) => [g, v[key]]));
    drawChart($("chart-lag"), seriesOf(lag, groupValues("lag")), fmtCount);
    drawChart($("chart-time-lag"), seriesOf(lag, groupValues("time_lag_s")), fmtSeconds);
    const history = s.history || [];
    drawChart($("chart-throughput"), seriesOf(history, (p) => p.throughput), fmtRate);
    drawChart($("chart-latency"), seriesOf(history, (p) => p.p95), fmtSeconds);
    drawChart($("chart-queues"), seriesOf(history, (p) => p.queues), fmtCount);
    drawChart($("chart-problems"), seriesOf(history, (p) => ({
      "SLA breaches": p.sla_breaches_per_min, "dead letters": p.dead_letters_per_min,
    })), (v) => fmtNumber(v, 1));
  }

  // The axis top: the next 1, 2, 4, 5 or 8 × 10^k, so the four grid steps are round numbers.
  function niceCeiling(value) {
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    const step = [1, 2, 4, 5, 8, 10].find((m) => m * power >= value * (1 - 1e-9));
    return step * power;
  }

  function drawChart(canvas, series, format) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480;
    const height = canvas.clientHeight || 200;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    const names = Object.keys(series).sort();
    const all = names.flatMap((n) => series[n]);
    const pad = { left: 56, right: 10, top: 10, bottom: 38 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    ctx.strokeStyle = "#d1d5db";
    ctx.fillStyle = "#6b7280";
    if (!all.length) {
      ctx.fillText("no data yet", pad.left + plotW / 2 - 28, pad.top + plotH / 2);
      canvas.setAttribute("aria-label", "no data yet");
      return;
    }
    const t0 = Math.min(...all.map((p) => p[0]));
    const t1 = Math.max(...all.map((p) => p[0]));
    const yMax = niceCeiling(Math.max(...all.map((p) => p[1])) || 1);
    const x = (t) => pad.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * plotW : plotW);
    const y = (v) => pad.top + plotH - (v / yMax) * plotH;
    // grid and axis labels
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.left, y(v));
      ctx.lineTo(pad.left + plotW, y(v));
      ctx.stroke();
      ctx.fillText(format(v), pad.left - 4, y(v) + 4);
    }
    ctx.textAlign = "center";
    for (const t of [t0, (t0 + t1) / 2, t1]) {
      ctx.fillText(new Date(t * 1000).toLocaleTimeString(), x(t), pad.top + plotH + 14);
    }
    // lines, then the legend under the plot
    ctx.lineWidth = 2;
    let legendX = pad.left;
    names.forEach((name, i) => {
      const points = series[name];
      const colour = PALETTE[i % PALETTE.length];
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.beginPath();
      points.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
      if (points.length === 1) ctx.fillRect(x(points[0][0]) - 2, y(points[0][1]) - 2, 4, 4);
      ctx.textAlign = "left";
      const label = name + " " + format(points[points.length - 1][1]);
      ctx.fillRect(legendX, height - 12, 10, 3);
      ctx.fillText(label, legendX + 14, height - 8);
      legendX += ctx.measureText(label).width + 28;
    });
    canvas.setAttribute("aria-label", names.map((n) => {
      const last = series[n][series[n].length - 1];
      return n + " " + format(last[1]);
    }).join(", "));
  }

  poll();
})();
