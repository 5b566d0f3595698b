/* The QA view's explain panel and QA tools (docs/qa.md): the explanation of the watched
 * session per rule (trigger progress, `when` with the facts' values, caps and cooldown with
 * their counters, snooze, opt-out, last drop), session search, force a rule, reset the
 * visitor, and a QA link that opens a page of the site with the overlay. Everything from the
 * store is shown as text. POSTs carry the page's admin token (X-Cuewire-Token): qatools.py. */

const $ = (id) => document.getElementById(id);

export function createTools({ el, pill, state, watch, clock }) {
  const secs = (ms) => `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  const say = (text, bad = false) => {
    const out = $("tool-status");
    out.textContent = text;
    out.className = `tool-status ${bad ? "bad" : "ok"}`;
  };

  function trigger(r, now) {
    const t = r.trigger;
    const out = [t.kind];
    if (t.due_ms) out.push(`deadline due ${clock(t.due_ms)} (in ${secs(t.due_ms - now)})`);
    if (t.sequence) out.push(`step ${t.sequence.reached}/${t.sequence.steps.length}: ${t.sequence.steps.join(" → ")}` +
      (t.sequence.expires_ms ? ` · window ends in ${secs(t.sequence.expires_ms - now)}` : ""));
    if (t.count) {
      const groups = Object.entries(t.count.groups);
      out.push(`${t.count.at_least} within ${secs(t.count.within_ms)}: ` +
        (groups.length ? groups.map(([g, c]) => `${g || "all"} ${c.count}/${t.count.at_least}`).join(", ") : "none yet"));
    }
    if (t.queued_since) out.push(`queued since ${clock(t.queued_since)}`);
    if (t.held_for_tab_since) out.push(`waiting for a tab since ${clock(t.held_for_tab_since)}`);
    return out.join(" · ");
  }

  function conditions(node) {
    if (!node) return [el("li", { class: "muted" }, "no conditions")];
    if (node.kind === "fact") {
      const value = node.missing ? "missing" : JSON.stringify(node.value);
      return [el("li", { class: node.ok ? "ok" : "fail", "data-fact": node.fact },
        el("span", { class: "mark", "aria-label": node.ok ? "holds" : "fails" }, node.ok ? "✓" : "✗"), " ",
        el("span", { class: "mono" }, node.test), el("span", { class: "muted" }, ` = ${value}`))];
    }
    const label = node.kind === "segment" ? `segment ${node.name}` : node.kind;
    return [el("li", { class: node.ok ? "ok" : "fail" },
      el("span", { class: "mark" }, node.ok ? "✓" : "✗"), " ", el("strong", {}, label),
      el("ul", { class: "tree" }, ...node.children.flatMap(conditions)))];
  }

  function counter(name, c) {
    return c.cap ? `${name} ${c.count}/${c.cap}` : `${name} ${c.count} (no cap)`;
  }

  function governance(g, now) {
    const out = [counter("session", g.session), counter("day", g.day), counter("week", g.week),
      `shown ${g.shown_total} in all`];
    if (g.cooldown.ms) out.push(g.cooldown.until_ms && g.cooldown.until_ms > now
      ? `cooldown until ${clock(g.cooldown.until_ms)}` : `cooldown ${secs(g.cooldown.ms)}: over`);
    if (g.snooze.at_ms) out.push(g.snooze.active ? `snoozed until ${clock(g.snooze.until_ms)}` : "snooze over");
    if (g.opted_out) out.push(`opted out ${clock(g.opted_out_ms)}`);
    return out.join(" · ");
  }

  function renderExplain(snap) {
    const body = $("explain");
    const x = snap && snap.explain;
    if (!x) { body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No live session."))); return; }
    const p = x.policy;
    $("explain-policy").textContent = `prompts ${p.prompts.count}${p.prompts.cap ? `/${p.prompts.cap}` : ""} this session · ` +
      `dismissals ${p.dismissals.count}/${p.dismissals.pause_after}` +
      (p.dismissals.paused_until_ms ? ` (paused until ${clock(p.dismissals.paused_until_ms)})` : "") +
      ` · ${p.returning ? "returning" : "new"} visitor (${p.sessions} sessions)` +
      (p.showing.prompt ? ` · on screen: ${p.showing.rule}` : "");
    body.replaceChildren(...x.rules.map((r) => el("tr", { "data-rule": r.rule, "data-state": r.state },
      el("td", {}, el("span", { class: "mono" }, r.rule), el("br"), pill(r.state),
        r.watches_page ? null : el("span", { class: "muted small" }, " not this page")),
      el("td", {}, el("div", {}, trigger(r, x.now)), el("div", { class: "muted small" }, r.detail)),
      el("td", {}, el("ul", { class: "tree" }, ...conditions(r.when))),
      el("td", {}, el("div", {}, governance(r.governance, x.now)),
        r.governance.holds ? el("div", { class: "holds" }, "would be held: ", el("code", {}, r.governance.holds)) :
          el("div", { class: "muted small" }, "governance would grant")),
      el("td", {}, r.last_drop ? el("div", {}, pill(r.last_drop.outcome), " ", el("code", {}, r.last_drop.code),
        el("div", { class: "muted small" }, `${r.last_drop.reason} · ${clock(r.last_drop.at)}`)) : el("span", { class: "muted" }, "–")))));
    const select = $("force-rule");
    const chosen = select.value;
    select.replaceChildren(...x.rules.map((r) => el("option", { value: r.rule, selected: r.rule === chosen }, r.rule)));
  }

  async function post(path, body) {
    const token = (await (await fetch("/qa/api/token", { cache: "no-store" })).json()).token;
    const reply = await fetch(path, {
      method: "POST", cache: "no-store",
      headers: { "Content-Type": "application/json", "X-Cuewire-Token": token },
      body: JSON.stringify(body),
    });
    return { ok: reply.ok, data: await reply.json() };
  }

  const when = (ms) => (ms ? `${new Date(Number(ms)).toLocaleDateString()} ${clock(ms)}` : "–");

  // What the search covered (qasearch.py): one phrase per source it read
  function covered(c) {
    if (!c) return "";
    const parts = (c.sources || []).map((s) => {
      if (s.code) return `the export was not searched (${s.code})`;
      if (s.source === "streams") return `searched the last ${s.entries} stream entries, since ${when(s.since_ms)}`;
      if (s.source === "index") return `looked up the store's sessions (kept since ${when(s.since_ms)})`;
      return `searched the PostgreSQL export, since ${when(s.since_ms)}`;
    });
    return `${parts.join("; ")}. Covered since ${when(c.since_ms)}.`;
  }

  async function search(event) {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return;
    const params = new URLSearchParams({ site: state.site || "", by: $("search-by").value, q });
    const reply = await fetch(`/qa/api/search?${params}`, { cache: "no-store" });
    const data = await reply.json();
    const list = $("search-results");
    const note = $("search-covered");
    note.textContent = reply.ok ? covered(data.covered) : "";
    note.hidden = !reply.ok;
    if (!reply.ok) { list.replaceChildren(el("li", { class: "bad" }, `${data.code}: ${data.reason}`)); return; }
    list.replaceChildren(...(data.sessions.length ? data.sessions.map((s) => el("li", {},
      el("button", { type: "button", "data-session": s.session, onclick: () => watch(s.session) },
        el("span", { class: "sid" }, s.session), s.live ? null : el("span", { class: "badge suppressed" }, "ended"),
        el("span", { class: "line" }, `${s.visitor} · ${clock(s.last_at)}`),
        el("span", { class: "line" }, [...(s.rules || []), ...(s.urls || []).slice(0, 2)].join(" · "))))) :
      [el("li", { class: "muted" }, "No session found.")]));
  }

  async function force() {
    const rule = $("force-rule").value;
    const { ok, data } = await post("/qa/api/force", { site: state.site, session: state.watching, rule });
    if (!ok) say(`force ${rule} refused: ${data.code} (${data.reason})`, true);
    else say(`force ${rule}: ${data.outcome}${data.code ? ` (${data.code})` : ""}`, data.outcome !== "forced");
  }

  async function reset() {
    const visitor = state.snapshot && state.snapshot.facts && state.snapshot.facts.visitor;
    if (!visitor || !confirm(`Forget every key of visitor ${visitor}? Its open tabs start afresh as a new visitor.`)) return;
    const { ok, data } = await post("/qa/api/reset", { site: state.site, visitor });
    say(ok ? `reset ${visitor}: ${data.deleted} keys of ${data.sessions.length} session(s) deleted, ` +
      `${data.tabs} open tab(s) told to start afresh` :
      `reset refused: ${data.code} (${data.reason})`, !ok);
  }

  async function qaLink() {
    const reply = await fetch(`/qa/api/overlay-token?site=${encodeURIComponent(state.site || "")}`, { cache: "no-store" });
    const data = await reply.json();
    if (!reply.ok) { say(`QA link refused: ${data.code}`, true); return; }
    const page = (state.snapshot && state.snapshot.facts && state.snapshot.facts.url) || "";
    let link = `?${data.param}=${data.token}`;
    try { const u = new URL(page); u.searchParams.set(data.param, data.token); link = u.href; } catch { /* no page yet */ }
    const out = $("qa-link");
    out.value = link;
    out.hidden = false;
    out.select();
    say(`QA link for ${data.site}, valid until ${clock(data.expires_ms)}: open it in the browser under test`);
  }

  $("search").addEventListener("submit", search);
  $("force").addEventListener("click", force);
  $("reset").addEventListener("click", reset);
  $("qa-link-button").addEventListener("click", qaLink);
  return { renderExplain };
}
