/* /qa/metrics: the measurement report (metrics.json) as tables and CSS bar charts, and
   conversion over time drawn with Observable Plot (qacharts.js, built from
   client-js/src/qa-charts/). */
import { conversionOverTime, label, pct, pts } from "./qacharts.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}


function bars(rule) {
  const rows = rule.variants.filter((v) => v.exposed > 0);
  return el("div", { class: "bars", role: "img", "aria-label": `Conversion rate by variant of ${rule.rule}` },
    rows.map((v) => {
      const [lo, hi] = v.ci;
      return el("div", { class: "row" },
        el("span", { class: "mono" }, label(v.variant)),
        el("span", { class: "axis" },
          el("span", { class: `fill ${v.variant === "holdout" ? "holdout" : ""}`, style: `width:${100 * v.rate}%` }),
          el("span", { class: "ci", style: `left:${100 * lo}%;width:${100 * (hi - lo)}%` })),
        el("span", { class: "value" }, `${pct(v.rate)} (${v.converted}/${v.visitors})`));
    }));
}

function table(rule) {
  const head = ["Variant", "Eligible", "Suppressed", "Fired", "Holdout", "Shown", "Clicked", "Dismissed", "Converted", "Rate", "95 % CI"];
  const row = (v, name) => el("tr", { "data-variant": name },
    el("th", { scope: "row", class: "mono" }, name),
    [v.eligible, v.suppressed, v.fired, v.holdout, v.shown, v.clicked, v.dismissed, v.converted].map((n) => el("td", {}, n)),
    el("td", {}, pct(v.rate)), el("td", {}, v.ci ? `${pct(v.ci[0])} – ${pct(v.ci[1])}` : "–"));
  return el("table", {},
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rule.variants.map((v) => row(v, label(v.variant))), rule.variants.length > 1 ? row(rule.total, "all") : null));
}

function comparisons(rule) {
  if (!rule.comparisons.length) return null;
  return el("ul", { class: "comparisons" }, rule.comparisons.map((c) => el("li", {},
    el("strong", {}, `${label(c.variant)} vs ${label(c.against)}: `), pts(c.difference),
    ` (95 % CI ${pts(c.ci[0])} to ${pts(c.ci[1])}), p = ${c.p_value.toFixed(3)} `,
    el("span", { class: c.significant ? "sig" : "muted" }, c.significant ? "significant at 5 %" : "not significant"))));
}

function suppressed(rule) {
  const reasons = Object.entries(rule.suppressed_by);
  if (!reasons.length) return null;
  return el("p", { class: "muted" }, "Suppressed: ", reasons.map(([r, n]) => `${r} (${n})`).join(" · "));
}

async function load() {
  // ?site=, ?from= and ?to= (UTC days, YYYY-MM-DD) pass on to the report: the window it covers
  const wanted = new URLSearchParams();
  for (const name of ["site", "from", "to"]) if (params.get(name)) wanted.set(name, params.get(name));
  const query = wanted.toString() ? `?${wanted}` : "";
  $("csv").href = `/qa/metrics.csv${query}`;
  $("json").href = `/qa/metrics.json${query}`;
  $("status").textContent = "loading…";
  const response = await fetch(`/qa/metrics.json${query}`, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) {
    $("status").textContent = `error: ${await response.text()}`;
    $("status").className = "status bad";
    return;
  }
  const report = await response.json();
  $("site").replaceChildren(...report.sites.map((s) => el("option", { value: s, selected: s === report.site }, s)));
  $("goals-file").textContent = report.goals_file;
  if (report.window) [$("from").value, $("to").value] = [report.window.from, report.window.to];
  $("read").textContent = report.window
    ? `counted ${report.window.from} to ${report.window.to} (UTC days)`
    : `${report.read.audit_records} audit records, ${report.read.batches} batches read`;
  $("rules").replaceChildren(...(report.rules.length ? report.rules.map((rule) => {
    const goal = rule.goal.event;
    return el("section", { class: "panel", "data-rule": rule.rule, "aria-label": rule.rule },
      el("h2", {}, rule.rule),
      el("p", { class: "goal" }, `Goal: ${goal.type}${goal.name ? ` ${goal.name}` : ""} within ${rule.goal.window_s / 60} min of the visitor's last exposure, once per visitor`),
      bars(rule), conversionOverTime(rule), table(rule), comparisons(rule), suppressed(rule));
  }) : [el("section", { class: "panel" }, el("p", {}, "No rule has fired on this site yet."))]));
  $("status").textContent = `as of ${new Date(report.generated_at).toLocaleTimeString()}`;
  $("status").className = "status ok";
}

for (const name of ["site", "from", "to"]) {
  $(name).addEventListener("change", (event) => {
    if (event.target.value) params.set(name, event.target.value);
    else params.delete(name);
    history.replaceState(null, "", `?${params}`);
    load();
  });
}
$("refresh").addEventListener("click", load);
load();
