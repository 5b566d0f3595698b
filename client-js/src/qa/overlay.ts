/** The QA overlay (cw-qa.js): loaded by cw.js only when the page's URL has
 * `?cuewire_qa=TOKEN` (a token the QA view issues per site, admin/explain_view.py), and on the
 * tab's later pages until the overlay is closed or the token refused. It lists
 * the rules watching this page and their state, from the server's explain of this tab's own
 * session (the ids cw.js keeps in localStorage), refreshed every second. Shadow DOM, as render.ts:
 * the page's styles do not reach it. Everything from the server is shown as text. */

import { local, tabStore } from "../storage";

const TOKEN_KEY = "cw_qa";
const POLL_MS = 1000;
const FIRST_MS = 200; // until cw.js holds this tab's session id
const current = document.currentScript as HTMLScriptElement | null;

interface RuleState {
  rule: string;
  state: string;
  detail: string;
  watches_page: boolean;
  trigger: {
    due_ms: number | null;
    sequence?: { steps: string[]; reached: number };
    count?: { at_least: number; groups: Record<string, { count: number }> };
  };
  governance: { holds: string; opted_out: boolean; snooze: { active: boolean } };
  last_drop: { code: string; outcome: string } | null;
}

interface Explained {
  now: number;
  rules: RuleState[];
}

const STYLE = `
:host{all:initial}
.box{position:fixed;left:12px;bottom:12px;z-index:2147483646;width:340px;max-height:60vh;overflow:auto;
font:12px/1.4 system-ui,sans-serif;color:#e8ecf1;background:#1d2430f2;border-radius:8px;
box-shadow:0 6px 24px #0006;padding:8px 10px}
h2{font-size:13px;margin:0 0 6px;display:flex;justify-content:space-between}
ul{list-style:none;margin:0;padding:0}
li{padding:4px 0;border-top:1px solid #ffffff1f}
li.off{opacity:.55}
b{font-family:ui-monospace,monospace;font-weight:600}
.pill{display:inline-block;border-radius:9px;padding:0 6px;margin-left:6px;font-size:11px;background:#4b5563}
.fired{background:#15803d}.pending{background:#b45309}.blocked{background:#b91c1c}.waiting{background:#1d4ed8}
.d{color:#c3cad5}.err{color:#fca5a5}
button{all:unset;cursor:pointer;color:#9ca3af}
`;

function text(tag: string, value: string, cls?: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = value;
  if (cls) node.className = cls;
  return node;
}

function ids(): { visitor: string; session: string } | null {
  try {
    const visitor = local.get("cw_vid");
    const held = JSON.parse(local.get("cw_sid") || "null");
    return visitor && held && typeof held.id === "string" ? { visitor, session: held.id } : null;
  } catch {
    return null;
  }
}

function progress(r: RuleState, now: number): string {
  const t = r.trigger;
  const parts: string[] = [];
  if (t.due_ms) parts.push(`deadline in ${Math.max(0, (t.due_ms - now) / 1000).toFixed(1)} s`);
  if (t.sequence) parts.push(`step ${t.sequence.reached}/${t.sequence.steps.length}`);
  if (t.count) {
    const most = Math.max(0, ...Object.values(t.count.groups).map((g) => g.count));
    parts.push(`${most}/${t.count.at_least} in window`);
  }
  const g = r.governance;
  if (g.opted_out) parts.push("opted out");
  else if (g.snooze.active) parts.push("snoozed");
  if (g.holds) parts.push(`held: ${g.holds}`);
  if (r.last_drop) parts.push(`last ${r.last_drop.outcome}: ${r.last_drop.code}`);
  return parts.join(" · ");
}

function start(): void {
  // The token of the URL, kept in the tab's storage so QA mode lasts across the tab's pages.
  const token = new URLSearchParams(location.search).get("cuewire_qa") || tabStore.get(TOKEN_KEY);
  const site = current && current.getAttribute("data-site");
  if (!token || !site || !current) return;
  tabStore.set(TOKEN_KEY, token);
  const server = new URL(current.src, location.href).origin;
  const host = document.createElement("div");
  host.setAttribute("data-cuewire-qa", "");
  const root = host.attachShadow({ mode: "open" });
  const style = document.createElement("style");
  style.textContent = STYLE;
  const box = document.createElement("div");
  box.className = "box";
  box.setAttribute("role", "complementary");
  box.setAttribute("aria-label", "Cuewire QA");
  const title = text("h2", "Cuewire QA");
  const close = text("button", "×");
  close.setAttribute("aria-label", "Close the QA overlay");
  title.appendChild(close);
  const body = document.createElement("div");
  box.append(title, body);
  root.append(style, box);
  document.body.appendChild(host);
  let timer = 0;
  close.addEventListener("click", () => {
    tabStore.set(TOKEN_KEY, ""); // closed: QA mode ends for the tab
    window.clearTimeout(timer);
    host.remove();
  });

  async function refresh(): Promise<void> {
    const who = ids();
    if (!who) {
      body.replaceChildren(text("p", "Waiting for this tab's session…", "d"));
      timer = window.setTimeout(refresh, FIRST_MS);
      return;
    }
    const url = new URL("/qa/overlay/explain", server);
    const q = { site: site as string, session: who.session, visitor: who.visitor, token: token as string };
    Object.entries(q).forEach(([k, v]) => url.searchParams.set(k, v));
    try {
      const response = await fetch(url.href, { cache: "no-store", credentials: "omit" });
      const data = await response.json();
      if (!response.ok) {
        box.setAttribute("data-refused", String(data.code));
        body.replaceChildren(text("p", `Refused (${data.code}): ${data.reason}`, "err"));
        if (data.code === "invalid_token" || data.code === "token_expired") {
          tabStore.set(TOKEN_KEY, ""); // final: QA mode ends for the tab
          return;
        }
      } else render(data as Explained);
    } catch (err) {
      body.replaceChildren(text("p", `Cannot reach ${server}: ${String(err)}`, "err"));
    }
    timer = window.setTimeout(refresh, POLL_MS);
  }

  function render(data: Explained): void {
    const rules = data.rules.slice().sort((a, b) => Number(b.watches_page) - Number(a.watches_page));
    const watching = rules.filter((r) => r.watches_page).length;
    body.replaceChildren(
      text("p", `${watching} of ${rules.length} rules watch this page`, "d"),
      list(rules, data.now),
    );
  }

  function list(rules: RuleState[], now: number): HTMLElement {
    const ul = document.createElement("ul");
    for (const r of rules) {
      const li = document.createElement("li");
      li.setAttribute("data-rule", r.rule);
      li.setAttribute("data-state", r.state);
      if (!r.watches_page) li.className = "off";
      const head = document.createElement("div");
      head.append(text("b", r.rule), text("span", r.state, `pill ${r.state}`));
      li.append(head, text("div", r.detail, "d"));
      const more = progress(r, now);
      if (more) li.append(text("div", more, "d"));
      ul.appendChild(li);
    }
    return ul;
  }

  void refresh();
}

if (document.body) start();
else document.addEventListener("DOMContentLoaded", start);
