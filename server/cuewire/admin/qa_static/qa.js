/* The live QA view: sessions as they arrive, and for one session its events, facts, pending
 * timers (with countdowns), firings and suppressions, and the explain output per rule.
 * Data comes pushed over the Socket.IO namespace /admin (see qa.py), through adminio.js (built
 * from client-js/src/admin/adminio.ts: socket.io-client + msgpack, as the snippet). Everything
 * a visitor sent is shown as text (textContent), never as HTML. */
import { AdminSocket } from "./adminio.js";
import { createTools } from "./qatools.js";

const params = new URLSearchParams(location.search);
const state = {
  site: params.get("site"),
  sites: [],
  sessions: new Map(), // id -> {id, visitor, first, last, events, lastType, url, fired, suppressed}
  events: new Map(), // session id -> events in arrival order (capped)
  audit: [], // site-wide, oldest first (capped)
  auditIds: new Set(),
  watching: params.get("session"),
  snapshot: null,
  offset: 0, // server clock - browser clock, ms
  longest: new Map(), // timer key -> longest time left seen, for the progress bars
  fresh: new Set(),
};
const MAX_EVENTS = 400;
const MAX_AUDIT = 2000;
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");
function clock(ms) {
  if (!ms) return "–";
  const d = new Date(Number(ms));
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function pathOf(url) {
  try { const u = new URL(url); return u.pathname + u.search; } catch { return url || ""; }
}
const short = (id) => (id && id.length > 14 ? `${id.slice(0, 12)}…` : id || "");
const serverNow = () => Date.now() + state.offset;

function summary(e) {
  switch (e.type) {
    case "page_view": return pathOf(e.url) + (e.spa ? " (SPA)" : "");
    case "click": return e.text || e.selector || "";
    case "scroll": return `${e.depth}% down ${pathOf(e.url)}`;
    case "custom": return `${e.name} ${e.props && Object.keys(e.props).length ? JSON.stringify(e.props) : ""}`;
    case "visibility": return `${e.state} (${Math.round((e.dwell_ms || 0) / 1000)} s active)`;
    case "idle": return `${Math.round((e.ms || 0) / 1000)} s without input`;
    case "attention": return `${Math.round((e.active_ms || 0) / 1000)} s attentive${e.reading ? " (reading)" : ""}`;
    case "exit_intent": return e.cause || "";
    case "hover": return `${e.element} ${e.ms} ms`;
    case "hesitation": return `${e.element || e.selector} still after ${e.ms} ms`;
    case "rage_click": return `${e.text || e.selector} x${e.count}`;
    case "dead_click": return e.text || e.selector || "";
    case "element_visible": return e.element;
    case "form": return `${e.action} ${e.form}${e.field ? `.${e.field}` : ""}`;
    case "identify": return e.user_id;
    default: return e.type.startsWith("prompt_") ? `${e.rule} (${e.prompt})` : "";
  }
}

/* ---------- rendering ---------- */

let queued = false;
function render() {
  if (queued) return;
  queued = true;
  requestAnimationFrame(() => { queued = false; renderSessions(); renderFeed(); renderDetail(); });
}

function renderSites() {
  const select = $("site");
  select.replaceChildren(...state.sites.map((s) => el("option", { value: s, selected: s === state.site }, s)));
}

function renderSessions() {
  const list = [...state.sessions.values()].sort((a, b) => b.last - a.last);
  $("session-count").textContent = String(list.length);
  $("sessions").replaceChildren(...list.map((s) => el("li", {},
    el("button", {
      type: "button", "data-session": s.id, "aria-pressed": s.id === state.watching ? "true" : "false",
      title: `${s.id} · visitor ${s.visitor}`, class: state.fresh.has(s.id) ? "fresh" : "",
      onclick: () => watch(s.id),
    },
    el("span", { class: "sid" }, short(s.id)),
    s.fired ? el("span", { class: "badge", title: "fired" }, `${s.fired} fired`) : null,
    s.suppressed ? el("span", { class: "badge suppressed", title: "suppressed" }, `${s.suppressed} supp.`) : null,
    el("span", { class: "line" }, `${short(s.visitor)} · ${s.events} events · ${clock(s.last)}`),
    el("span", { class: "line" }, `${s.lastType} ${pathOf(s.url)}`)))));
  state.fresh.clear();
}

function pill(outcome) { return el("span", { class: `pill ${outcome}` }, outcome); }

function renderFeed() {
  const items = state.audit.slice(-200).reverse();
  $("feed").replaceChildren(...(items.length ? items.map((r) => el("li", { "data-rule": r.rule, "data-outcome": r.outcome },
    pill(r.outcome), " ", el("span", { class: "rule" }, r.rule), " ", el("span", { class: "muted" }, clock(r.at)),
    el("span", { class: "why" }, r.reason || r.template || "", " ",
      el("button", { type: "button", onclick: () => watch(r.session), title: r.session }, short(r.session))))) :
    [el("li", { class: "none" }, "Nothing has fired yet.")]));
}

function sessionAudit() {
  const byId = new Map();
  for (const r of (state.snapshot && state.snapshot.audit) || []) byId.set(r.id, r);
  for (const r of state.audit) if (r.session === state.watching) byId.set(r.id, r);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
}

function renderDetail() {
  const snap = state.snapshot;
  $("empty").hidden = Boolean(state.watching);
  $("session").hidden = !state.watching;
  if (!state.watching) return;
  const facts = (snap && snap.facts) || {};
  $("session-title").textContent = `Session ${state.watching}`;
  $("session-meta").textContent = snap && !snap.exists ? "This session has ended (or never existed on this site)."
    : `visitor ${facts.visitor || "?"} · ${facts.returning === "1" ? "returning" : "new"} visitor · ` +
      `${facts.events || 0} events · ${facts.pages || 0} pages · ${facts.prompts || 0} prompts · ${facts.device || ""}`;

  const rules = (snap && snap.rules) || [];
  $("rules").replaceChildren(...rules.map((r) => el("tr", { "data-rule": r.rule, "data-state": r.state },
    el("td", { class: "mono" }, r.rule), el("td", {}, pill(r.state)), el("td", {}, r.detail))));

  const audit = sessionAudit();
  $("audit").replaceChildren(...(audit.length ? audit.map((r) => el("tr", {
    "data-rule": r.rule, "data-outcome": r.outcome, class: state.fresh.has(r.id) ? "new" : "" },
  el("td", { class: "mono" }, clock(r.at)), el("td", {}, pill(r.outcome)), el("td", { class: "mono" }, r.rule),
  el("td", {}, r.variant || "–"), el("td", {}, r.reason || (r.outcome === "fired" ? "shown" : "")),
  el("td", {}, r.cause), el("td", {}, r.template || "–"))) :
    [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No rule has fired or been suppressed in this session yet."))]));

  const live = state.events.get(state.watching) || [];
  const events = (live.length ? live : (snap && snap.events) || []).slice(-150).reverse();
  $("events").replaceChildren(...(events.length ? events.map((e) => el("li", { "data-type": e.type },
    el("span", { class: "mono" }, clock(e.ts)), el("span", { class: "type" }, e.type), el("span", { class: "what" }, summary(e)))) :
    [el("li", { class: "none" }, "No events yet.")]));

  const dl = (entries) => entries.sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]);
  $("facts").replaceChildren(...dl(Object.entries(facts)));
  $("visitor-facts").replaceChildren(...dl(Object.entries((snap && snap.visitor) || {})));
  tools.renderExplain(snap);
  renderTimers();
}

function renderTimers() {
  const timers = (state.snapshot && state.snapshot.timers) || [];
  const now = serverNow();
  $("timers").replaceChildren(...(timers.length ? timers.map((t) => {
    const left = Math.max(0, (t.due_ms || now) - now);
    const key = `${t.rule}@${t.due_ms}`;
    const longest = Math.max(state.longest.get(key) || 0, left);
    state.longest.set(key, longest);
    return el("li", { "data-rule": t.rule },
      el("span", { class: "left", "aria-label": `${(left / 1000).toFixed(1)} seconds left` }, `${(left / 1000).toFixed(1)} s`),
      el("span", {}, el("strong", { class: "mono" }, t.rule), el("br"), el("span", { class: "muted" }, t.detail.replace(/ in [\d.]+s$/, ""))),
      el("span", { class: "track", "aria-hidden": "true" }, el("span", { style: `width:${longest ? (100 * left) / longest : 0}%` })));
  }) : [el("li", { class: "none" }, "No timer is pending.")]));
}
setInterval(() => { if (state.watching && state.snapshot) renderTimers(); }, 100);

/* ---------- data ---------- */

function watch(session) {
  state.watching = session;
  state.snapshot = null;
  const url = new URL(location.href);
  url.searchParams.set("site", state.site || "");
  if (session) url.searchParams.set("session", session); else url.searchParams.delete("session");
  history.replaceState(null, "", url);
  socket.emit("watch", { session });
  render();
}

function touch(id, visitor) {
  let s = state.sessions.get(id);
  if (!s) {
    s = { id, visitor, first: 0, last: 0, events: 0, lastType: "", url: "", fired: 0, suppressed: 0 };
    state.sessions.set(id, s);
  }
  return s;
}

function onBatches({ site, batches }) {
  if (site !== state.site) return;
  for (const b of batches) {
    const s = touch(b.session, b.visitor);
    s.events += b.events.length;
    s.last = Math.max(s.last, b.at);
    s.first = s.first || b.at;
    const last = b.events[b.events.length - 1];
    if (last) { s.lastType = last.type; s.url = last.url; }
    const list = state.events.get(b.session) || [];
    list.push(...b.events);
    state.events.set(b.session, list.slice(-MAX_EVENTS));
    state.fresh.add(b.session);
  }
  render();
}

function onAudit({ site, records }) {
  if (site !== state.site) return;
  for (const r of records) {
    if (state.auditIds.has(r.id)) continue;
    state.auditIds.add(r.id);
    state.audit.push(r);
    state.fresh.add(r.id);
    const s = touch(r.session, r.visitor);
    if (r.outcome === "fired") s.fired += 1;
    else if (r.outcome === "suppressed" || r.outcome === "dropped") s.suppressed += 1;
  }
  if (state.audit.length > MAX_AUDIT) state.audit = state.audit.slice(-MAX_AUDIT);
  render();
}

function onHello({ sites, site, now }) {
  state.sites = sites;
  state.site = site;
  state.offset = now - Date.now();
  state.sessions.clear();
  state.events.clear();
  state.audit = [];
  state.auditIds.clear();
  renderSites();
  render();
}

function onSnapshot(snap) {
  if (snap.session !== state.watching || snap.site !== state.site) return;
  state.snapshot = snap;
  state.offset = snap.now - Date.now();
  render();
}

function setStatus(what, detail) {
  const status = $("status");
  const text = { connecting: "connecting…", connected: "live", closed: `reconnecting (${detail})`, refused: `refused: ${detail}` };
  status.textContent = text[what] || what;
  status.className = `status ${what === "connected" ? "ok" : "bad"}`;
  document.body.dataset.connection = what;
}

const socket = new AdminSocket({
  async auth() {
    const response = await fetch("/qa/api/token", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(`the token request answered HTTP ${response.status}`);
    const { token } = await response.json();
    return { token, site: state.site };
  },
  onState(what, detail) {
    setStatus(what, detail);
    // Only once connected (and again after every reconnect) may the page speak: the server
    // answers hello and starts the feed of this site and the followed session.
    if (what === "connected") socket.emit("hello", { site: state.site, session: state.watching });
  },
});
const tools = createTools({ el, pill, state, watch, clock });
socket.on("hello", onHello);
socket.on("batches", onBatches);
socket.on("audit", onAudit);
socket.on("snapshot", onSnapshot);

$("site").addEventListener("change", (event) => {
  state.site = event.target.value;
  state.watching = null;
  state.snapshot = null;
  socket.emit("site", { site: state.site });
  const url = new URL(location.href);
  url.searchParams.set("site", state.site);
  url.searchParams.delete("session");
  history.replaceState(null, "", url);
  state.sessions.clear(); state.events.clear(); state.audit = []; state.auditIds.clear();
  render();
});

socket.open();
render();
