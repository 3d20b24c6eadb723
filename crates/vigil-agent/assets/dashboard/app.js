// vigil dashboard: plain JavaScript, no build step, no network beyond this agent.
"use strict";

const $ = (id) => document.getElementById(id);
const STATE_LABEL = { alive: "alive", suspect: "suspect", dead: "failed", left: "left" };
const STATE_ORDER = { suspect: 0, dead: 1, alive: 2, left: 3 };
const HEALTH_ORDER = { failing: 0, degraded: 1, ok: 2 };
const MAX_EVENTS = 500;

const ui = {
  members: new Map(),      // name -> member JSON
  rows: new Map(),         // name -> <tr>
  order: [],               // names in displayed order
  sort: { key: "name", dir: 1 },
  events: [],              // newest first
  evidence: new Map(),     // name -> last suspected/failed event
  selected: null,
  lastTraffic: null,       // {t, in, out}
  self: null,
};

async function getJSON(path) {
  const r = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
  if (!r.ok) { const e = new Error(path + ": HTTP " + r.status); e.status = r.status; throw e; }
  return r.json();
}

function fmtAge(ms) {
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d";
}
function fmtBytes(n) {
  if (n == null || !isFinite(n)) return "–";
  if (n < 1024) return n.toFixed(0) + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(2) + " MiB";
}
function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}
function metaText(meta) {
  return Object.entries(meta || {}).map(([k, v]) => k + "=" + v).join(" ");
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function pill(kind, text) { return el("span", "pill " + kind, text); }

// ---------------------------------------------------------------- members

function matches(m) {
  const st = $("state-filter").value, hf = $("health-filter").value;
  if (st && m.state !== st) return false;
  if (hf && m.health.status !== hf) return false;
  const q = $("filter").value.trim().toLowerCase();
  if (!q) return true;
  const hay = (m.name + " " + m.addr + " " + metaText(m.meta) + " " + m.health.reason).toLowerCase();
  return q.split(/\s+/).every((w) => hay.includes(w));
}

function compare(a, b) {
  const k = ui.sort.key, d = ui.sort.dir;
  let x, y;
  switch (k) {
    case "state": x = STATE_ORDER[a.state]; y = STATE_ORDER[b.state]; break;
    case "health": x = HEALTH_ORDER[a.health.status]; y = HEALTH_ORDER[b.health.status]; break;
    case "meta": x = metaText(a.meta); y = metaText(b.meta); break;
    case "rtt_ms": x = a.rtt_ms ?? Infinity; y = b.rtt_ms ?? Infinity; break;
    case "since_ms": x = -a.since_ms; y = -b.since_ms; break;
    default: x = a[k]; y = b[k];
  }
  if (x < y) return -d;
  if (x > y) return d;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function setCell(td, text, cls) {
  if (td.textContent !== text) td.textContent = text;
  if (cls !== undefined && td.className !== cls) td.className = cls;
}

function renderRow(tr, m) {
  const c = tr.children;
  setCell(c[0], m.name, "mono");
  setCell(c[1], m.addr, "mono");
  const stateKey = m.state + "|" + STATE_LABEL[m.state];
  if (c[2].dataset.k !== stateKey) {
    const changed = c[2].dataset.k !== undefined;
    c[2].dataset.k = stateKey;
    c[2].replaceChildren(pill(m.state, STATE_LABEL[m.state]));
    if (changed) { tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash"); }
  }
  const hKey = m.health.status + "|" + m.health.reason;
  if (c[3].dataset.k !== hKey) {
    c[3].dataset.k = hKey;
    const frag = [pill(m.health.status, m.health.status)];
    if (m.health.reason) frag.push(el("span", "muted", " " + m.health.reason));
    c[3].replaceChildren(...frag);
    c[3].title = m.health.reason;
  }
  setCell(c[4], String(m.incarnation), "r mono");
  setCell(c[5], m.state === "alive" || m.state === "suspect" ? m.phi.toFixed(1) : "–", "r mono");
  setCell(c[6], m.rtt_ms == null ? "–" : m.rtt_ms.toFixed(m.rtt_ms < 10 ? 2 : 0) + " ms", "r mono");
  const mt = metaText(m.meta);
  setCell(c[7], mt, "mono"); c[7].title = mt;
  setCell(c[8], fmtAge(m.since_ms), "r");
}

function newRow(name) {
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.name = name;
  for (let i = 0; i < 9; i++) tr.appendChild(document.createElement("td"));
  tr.addEventListener("click", () => showDetail(name));
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") showDetail(name); });
  return tr;
}

function renderMembers() {
  const all = [...ui.members.values()];
  const shown = all.filter(matches).sort(compare);
  const tbody = $("rows");
  const names = shown.map((m) => m.name);
  for (const [name, tr] of ui.rows) {
    if (!ui.members.has(name)) { tr.remove(); ui.rows.delete(name); }
  }
  for (const m of shown) {
    let tr = ui.rows.get(m.name);
    if (!tr) { tr = newRow(m.name); ui.rows.set(m.name, tr); }
    renderRow(tr, m);
  }
  const same = names.length === ui.order.length && names.every((n, i) => n === ui.order[i]);
  if (!same) {
    const frag = document.createDocumentFragment();
    for (const n of names) frag.appendChild(ui.rows.get(n));
    tbody.replaceChildren(frag);
    ui.order = names;
  }
  $("count").textContent = shown.length === all.length ? all.length + " members" : shown.length + " of " + all.length;

  const n = { alive: 0, suspect: 0, dead: 0, left: 0 };
  let unhealthy = 0;
  for (const m of all) {
    n[m.state]++;
    if (m.state === "alive" && m.health.status !== "ok") unhealthy++;
  }
  $("n-alive").textContent = n.alive;
  $("n-suspect").textContent = n.suspect;
  $("n-dead").textContent = n.dead;
  $("n-left").textContent = n.left;
  $("n-unhealthy").textContent = unhealthy;
  if (ui.selected) showDetail(ui.selected, true);
}

// ---------------------------------------------------------------- side panels

function renderGroups(groups) {
  const box = $("groups");
  if (!groups || groups.length === 0) { box.replaceChildren(el("p", "muted", "No groups.")); return; }
  box.replaceChildren(...groups.map((g) => {
    const row = el("div", "group");
    row.appendChild(el("div", "mono", g.group));
    const right = el("div");
    right.appendChild(g.active ? el("span", "active", "▶ " + g.active) : el("span", "none", "no active member"));
    if (g.standbys && g.standbys.length) right.appendChild(el("div", "muted small", "standby: " + g.standbys.join(", ")));
    row.appendChild(right);
    return row;
  }));
}

function evidenceText(e) {
  const parts = [];
  if (e.suspected_by && e.suspected_by.length) parts.push("suspected by " + e.suspected_by.join(", "));
  if (e.confirmations != null) parts.push(e.confirmations + " confirmation" + (e.confirmations === 1 ? "" : "s"));
  if (e.suspicion_ms != null) parts.push("suspicion lasted " + (e.suspicion_ms / 1000).toFixed(2) + " s");
  if (e.declared_by) parts.push("declared by " + e.declared_by);
  if (e.probe) parts.push("probe timed out after " + e.probe.timeout_ms + " ms; " + e.probe.nacks.length + "/" + e.probe.indirect.length + " indirect probes failed");
  return parts.join(" · ");
}

const KIND_CLASS = { joined: "alive", recovered: "alive", suspected: "suspect", failed: "dead", left: "left", updated: "ok" };

function addEvent(e) {
  ui.events.unshift(e);
  if (ui.events.length > MAX_EVENTS) ui.events.pop();
  if (e.kind === "suspected" || e.kind === "failed") ui.evidence.set(e.member, e);
  const li = el("li");
  li.appendChild(el("span", "t", fmtTime(e.time_ms)));
  li.appendChild(el("span", null)).appendChild(pill(KIND_CLASS[e.kind] || "left", e.kind));
  li.appendChild(el("span", "mono", e.member));
  const why = evidenceText(e);
  if (why) li.appendChild(el("span", "why", why));
  li.addEventListener("click", () => showDetail(e.member));
  const ol = $("timeline");
  ol.insertBefore(li, ol.firstChild);
  while (ol.children.length > MAX_EVENTS) ol.lastChild.remove();
  $("ev-count").textContent = "(" + ui.events.length + ")";
}

function showDetail(name, quiet) {
  const m = ui.members.get(name);
  ui.selected = name;
  const box = $("detail");
  $("detail-title").textContent = name;
  const body = $("detail-body");
  if (!m) { body.replaceChildren(el("p", "muted", "No longer known.")); box.hidden = false; return; }
  const dl = el("dl");
  const add = (k, v) => { dl.appendChild(el("dt", null, k)); const dd = el("dd"); if (v instanceof Node) dd.appendChild(v); else dd.textContent = v; dl.appendChild(dd); };
  add("state", pill(m.state, STATE_LABEL[m.state]));
  add("address", m.addr);
  add("health", m.health.status + (m.health.reason ? " — " + m.health.reason : ""));
  add("incarnation", String(m.incarnation));
  add("phi", m.phi.toFixed(2));
  add("round trip", m.rtt_ms == null ? "not measured" : m.rtt_ms.toFixed(2) + " ms");
  add("in state for", fmtAge(m.since_ms));
  add("metadata", metaText(m.meta) || "none");
  const parts = [dl];
  const ev = ui.evidence.get(name);
  if (ev) {
    const box2 = el("div", "evidence " + ev.kind);
    box2.appendChild(el("strong", null, "Last " + ev.kind + " at " + fmtTime(ev.time_ms)));
    box2.appendChild(el("div", null, evidenceText(ev) || "no further evidence"));
    parts.push(box2);
  } else {
    parts.push(el("p", "muted", "No suspicion or failure seen since this page opened."));
  }
  body.replaceChildren(...parts);
  if (!quiet || box.hidden) box.hidden = false;
}

// ---------------------------------------------------------------- data

async function refresh() {
  try {
    const members = await getJSON("/v1/members");
    ui.members = new Map(members.map((m) => [m.name, m]));
    renderMembers();
    setConn(true);
  } catch (e) {
    setConn(false);
    return;
  }
  try {
    const self = await getJSON("/v1/self");
    ui.self = self;
    $("self").textContent = self.name + " · " + self.addr + (self.encrypted === false ? " · NOT ENCRYPTED" : "");
    if (self.local_health != null) $("local-health").textContent = self.local_health;
    if (self.bytes_in != null) {
      const now = Date.now();
      const last = ui.lastTraffic;
      if (last && now > last.t) {
        const dt = (now - last.t) / 1000;
        $("bw").textContent = fmtBytes((self.bytes_in - last.in) / dt) + " · " + fmtBytes((self.bytes_out - last.out) / dt);
      }
      ui.lastTraffic = { t: now, in: self.bytes_in, out: self.bytes_out };
    }
  } catch (_) { /* older agents: no extras */ }
  try { renderGroups(await getJSON("/v1/groups")); } catch (_) { /* no groups endpoint */ }
}

function setConn(ok) {
  const c = $("conn");
  c.className = "conn " + (ok ? "live" : "down");
  c.querySelector(".label").textContent = ok ? "live" : "disconnected";
}

let soon = null;
function refreshSoon() {
  if (soon) return;
  soon = setTimeout(() => { soon = null; refresh(); }, 100);
}

function connectEvents() {
  const es = new EventSource("/v1/events");
  const onEvent = (msg) => {
    try { addEvent(JSON.parse(msg.data)); } catch (_) { return; }
    refreshSoon();
  };
  // The agent names its events "membership"; accept unnamed ones too.
  es.addEventListener("membership", onEvent);
  es.onmessage = onEvent;
  es.onerror = () => setConn(false);
}

// ---------------------------------------------------------------- wiring

for (const th of document.querySelectorAll("thead th")) {
  th.tabIndex = 0;
  const sortBy = () => {
    const key = th.dataset.key;
    ui.sort = { key, dir: ui.sort.key === key ? -ui.sort.dir : 1 };
    for (const h of document.querySelectorAll("thead th")) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ui.sort.dir > 0 ? "ascending" : "descending");
    renderMembers();
  };
  th.addEventListener("click", sortBy);
  th.addEventListener("keydown", (e) => { if (e.key === "Enter") sortBy(); });
}
for (const id of ["filter", "state-filter", "health-filter"]) $(id).addEventListener("input", renderMembers);
$("detail-close").addEventListener("click", () => { $("detail").hidden = true; ui.selected = null; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("detail").hidden = true; ui.selected = null; } });

refresh();
connectEvents();
setInterval(refresh, 1000);
