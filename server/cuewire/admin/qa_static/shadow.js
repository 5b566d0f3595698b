/* /qa/metrics, "Shadow against live": /qa/shadow.json as a table (admin/shadow_report.py).
 * Rule ids come from rule files; they are still set as text, never as HTML. */
const $ = (id) => document.getElementById(id);
const HEAD = { shadow_fired: "Would fire", shadow_suppressed: "Would be held", fired: "Fired",
  holdout: "Holdout", suppressed: "Suppressed", excluded: "Not in rollout" };

function cell(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.textContent = String(text);
  return node;
}

async function loadShadow() {
  const site = new URLSearchParams(location.search).get("site") || "";
  const query = site ? `?site=${encodeURIComponent(site)}` : "";
  $("shadow-json").href = `/qa/shadow.json${query}`;
  const response = await fetch(`/qa/shadow.json${query}`, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) {
    $("shadow-rules").replaceChildren(cell("p", `error: ${await response.text()}`));
    return;
  }
  const report = await response.json();
  const when = (ms) => (ms === null ? "–" : new Date(ms).toLocaleString());
  $("shadow-period").textContent = `${when(report.from)} to ${when(report.to)}, ${report.records} records`;
  if (!report.rules.length) {
    $("shadow-rules").replaceChildren(cell("p", "No firing recorded in this period."));
    return;
  }
  const head = document.createElement("tr");
  head.append(cell("th", "Rule", { scope: "col" }), cell("th", "Mode", { scope: "col" }),
    ...report.columns.map((c) => cell("th", HEAD[c] || c, { scope: "col" })), cell("th", "Sessions", { scope: "col" }));
  const body = document.createElement("tbody");
  for (const rule of report.rules) {
    const row = document.createElement("tr");
    row.setAttribute("data-rule", rule.rule);
    row.append(cell("th", rule.rule, { scope: "row", class: "mono" }), cell("td", rule.mode),
      ...report.columns.map((c) => cell("td", rule[c])), cell("td", rule.sessions));
    body.append(row);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const table = document.createElement("table");
  table.append(thead, body);
  $("shadow-rules").replaceChildren(table);
}

$("refresh").addEventListener("click", loadShadow);
loadShadow();
