// The dashboard page: renders what the server pushes (server-sent events),
// never changes anything. Data is shown with textContent only, never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const KEEP_LINES = 200;
const tails = new Map();

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(text, kind) {
  return el("span", { className: "badge " + kind }, text);
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  const empty = el("tr", { className: "empty" }, el("td", { colSpan: 9 }, "none"));
  body.replaceChildren(...(rows.length ? rows : [empty]));
}

function row(name, ...cells) {
  const tr = el("tr", {}, el("td", { className: "name" }, name), ...cells);
  tr.dataset.name = name;
  return tr;
}

function cell(className, ...children) {
  return el("td", { className }, ...children);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return seconds + "s ago";
  if (seconds < 7200) return Math.round(seconds / 60) + "m ago";
  return Math.round(seconds / 3600) + "h ago";
}

function render(s) {
  const connection = document.getElementById("connection");
  const problem = document.getElementById("problem");
  if (s.connected) {
    connection.className = "badge ok";
    connection.textContent = "live";
    problem.hidden = true;
  } else {
    connection.className = "badge bad";
    connection.textContent = "cluster connection lost";
    problem.hidden = false;
    problem.textContent = "Cannot read the cluster, retrying: " + (s.error || "no answer") +
      (s.updated_at ? " — showing the data read at " + new Date(s.updated_at).toLocaleTimeString() : "");
  }
  document.getElementById("cluster").textContent = s.cluster || "–";
  document.getElementById("namespace").textContent = s.namespace || "–";
  document.getElementById("updated").textContent =
    s.updated_at ? new Date(s.updated_at).toLocaleTimeString() : "–";
  const gateway = document.getElementById("gateway");
  gateway.replaceChildren(s.gateway ? el("a", { href: s.gateway, target: "_blank", rel: "noreferrer" }, s.gateway) : "no address yet");

  fill("nodes", s.nodes.map((n) => row(n.name,
    cell("status", badge(n.ready ? "Ready" : "NotReady", n.ready ? "ok" : "bad")),
    cell("roles", n.roles.length ? n.roles.join(", ") : "<none>"),
    cell("arch", n.arch || "–"),
    cell("heartbeat", age(n.heartbeat_age)))));

  fill("workloads", s.workloads.map((w) => {
    const ok = w.ready >= w.desired;
    return row(w.name,
      cell("kind", w.kind),
      cell("ready", badge(w.ready + "/" + w.desired, ok ? "ok" : "warn")));
  }));

  fill("autoscalers", s.autoscalers.map((a) => {
    const now = a.cpu_now === null || a.cpu_now === undefined ? "no metrics" : a.cpu_now + "%";
    const target = a.cpu_target === null || a.cpu_target === undefined ? "–" : a.cpu_target + "%";
    const hot = a.cpu_now !== null && a.cpu_target !== null && a.cpu_now > a.cpu_target;
    return row(a.name,
      cell("cpu", badge(now, hot ? "warn" : "muted"), " / " + target),
      cell("replicas", String(a.replicas)),
      cell("range", a.min + ".." + a.max));
  }));

  fill("pods", s.pods.map((p) => {
    const kind = p.ready ? "ok" : (p.status === "Running" || p.status === "Pending" ? "warn" : "bad");
    return row(p.name,
      cell("status", badge(p.status, kind)),
      cell("restarts", String(p.restarts)),
      cell("node", p.node || "–"));
  }));

  const secrets = document.getElementById("secrets");
  secrets.replaceChildren(...(s.secrets.length ? s.secrets.map((name) => el("li", {}, name)) : [el("li", { className: "muted" }, "none")]));

  renderAudit(s.verify);
}

function renderAudit(audit) {
  const list = document.getElementById("verify");
  const summary = document.getElementById("verify-summary");
  if (!audit || !Array.isArray(audit.checks)) {
    summary.textContent = "";
    list.replaceChildren(el("li", { className: "muted" }, "no run yet: `orchestrator verify`"));
    return;
  }
  const count = (status) => audit.checks.filter((c) => c.status === status).length;
  summary.textContent = "(" + count("passed") + " passed, " + count("failed") + " failed, " +
    count("skipped") + " skipped — " + new Date(audit.started_at).toLocaleString() + ")";
  const marks = { passed: ["✓", "ok"], failed: ["✗", "bad"], skipped: ["–", "warn"] };
  list.replaceChildren(...audit.checks.map((c) => {
    const [mark, kind] = marks[c.status] || ["?", "muted"];
    const item = el("li", { className: "check" }, badge(mark, kind), " " + c.name);
    if (c.status !== "passed" && c.reason && c.reason.length) {
      item.append(el("div", { className: "reason" }, c.reason.join(" → ")));
    }
    return item;
  }));
}

function pane(app) {
  let entry = tails.get(app);
  if (!entry) {
    const pre = el("pre", { id: "log-" + app });
    const box = el("div", { className: "log" }, el("h3", {}, app), pre);
    const container = document.getElementById("logs");
    const after = [...container.children].find((c) => c.querySelector("h3").textContent > app);
    container.insertBefore(box, after || null);
    entry = { pre, lines: [] };
    tails.set(app, entry);
  }
  return entry;
}

function showTail(app, lines) {
  const entry = pane(app);
  entry.lines = lines.slice(-KEEP_LINES);
  entry.pre.textContent = entry.lines.join("\n");
  entry.pre.scrollTop = entry.pre.scrollHeight;
}

function connect() {
  const events = new EventSource("events?token=" + encodeURIComponent(token));
  events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  events.addEventListener("logs", (e) => {
    for (const [app, lines] of Object.entries(JSON.parse(e.data))) showTail(app, lines);
  });
  events.addEventListener("log", (e) => {
    const change = JSON.parse(e.data);
    const entry = pane(change.app);
    showTail(change.app, change.line === null ? [] : entry.lines.concat([change.line]));
  });
  events.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    const connection = document.getElementById("connection");
    connection.className = "badge bad";
    connection.textContent = "dashboard server unreachable";
  };
}

connect();
