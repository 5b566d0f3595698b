/* /qa/heatmap (docs/qa.md, "Heatmaps"): the site's page in a sandboxed iframe (no scripts: a
 * QA look adds no clicks), the counts per position cell drawn over it, the top selectors
 * beside it. Hovering a selector (or its box on the page) highlights its element and shows its
 * counts; a page of another origin cannot be searched, so only the cells are drawn over it.
 * Everything from the store is shown as text (textContent, SVG <title>). */
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const NAMES = { click: "click", rage_click: "rage click", dead_click: "dead click", hesitation: "hesitation" };
const named = (n, kind) => `${n} ${NAMES[kind] || kind}${n === 1 || kind === "hesitation" ? "" : "s"}`;
const WIDTH = 1024;
const MAX_HEIGHT = 8000;
const BOXES = 20; // selectors boxed on the page

let data = null;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const sumOf = (counts, kind) => (kind ? counts[kind] || 0 : Object.values(counts).reduce((a, b) => a + b, 0));
const describe = (counts) =>
  Object.entries(counts).map(([k, n]) => named(n, k)).join(", ");

async function getJson(query) {
  const response = await fetch(`/qa/api/heatmap?${query}`, { credentials: "same-origin", cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.reason || response.statusText);
  return body;
}

function say(text) {
  $("status").textContent = text;
}

/** The document of the iframe when it is same-origin, else null. */
function frameDoc() {
  try {
    return $("frame").contentDocument;
  } catch {
    return null;
  }
}

function size() {
  const doc = frameDoc();
  const height = doc ? Math.min(MAX_HEIGHT, Math.max(doc.documentElement.scrollHeight, 400)) : 1600;
  for (const node of [$("frame"), $("overlay")]) node.style.height = `${height}px`;
  $("overlay").setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  return height;
}

/** The page-relative box of the first element ``selector`` finds in the iframe, or null. */
function boxOf(selector) {
  const doc = frameDoc();
  if (!doc) return null;
  let found = null;
  try {
    found = doc.querySelector(selector);
  } catch {
    return null; // not a selector this browser reads
  }
  if (!found) return null;
  const r = found.getBoundingClientRect();
  const view = doc.defaultView;
  return { x: r.left + view.scrollX, y: r.top + view.scrollY, w: r.width, h: r.height };
}

function draw() {
  const overlay = $("overlay");
  overlay.replaceChildren();
  $("selectors").replaceChildren();
  if (!data) return;
  const kind = $("kind").value;
  const height = size();
  const grid = data.grid;
  const cw = WIDTH / grid;
  const ch = height / grid;
  const max = Math.max(1, ...data.cells.map((c) => sumOf(c.counts, kind)));
  for (const c of data.cells) {
    const n = sumOf(c.counts, kind);
    if (!n) continue;
    const rect = svg("rect", {
      class: "cell", x: c.col * cw, y: c.row * ch, width: cw, height: ch,
      "fill-opacity": (0.15 + 0.55 * (n / max)).toFixed(2), "data-cell": `${c.col}:${c.row}`,
    });
    rect.append(svg("title", {}, describe(c.counts)));
    overlay.append(rect);
  }
  const rows = data.selectors.filter((s) => sumOf(s.counts, kind) > 0);
  rows.forEach((s, i) => {
    const box = i < BOXES ? boxOf(s.selector) : null;
    let spot = null;
    if (box) {
      spot = svg("rect", { class: "spot", x: box.x - 3, y: box.y - 3, width: box.w + 6, height: box.h + 6, rx: 4, "data-selector": s.selector });
      spot.append(svg("title", {}, `${s.selector}: ${describe(s.counts)}`));
      overlay.append(spot);
    }
    const li = document.createElement("li");
    li.dataset.selector = s.selector;
    const code = document.createElement("code");
    code.textContent = s.selector;
    li.append(code, ` ${describe(s.counts)}`, box ? "" : " (not on this rendering)");
    $("selectors").append(li);
    const on = (yes) => {
      li.classList.toggle("on", yes);
      if (spot) spot.classList.toggle("on", yes);
      if (yes && box) label(box, kind ? named(sumOf(s.counts, kind), kind) : describe(s.counts));
      else overlay.querySelector(".tag")?.remove();
    };
    li.addEventListener("mouseenter", () => on(true));
    li.addEventListener("mouseleave", () => on(false));
    if (spot) {
      spot.addEventListener("mouseenter", () => on(true));
      spot.addEventListener("mouseleave", () => on(false));
    }
  });
  const over = Object.entries(data.over_cap);
  $("over").textContent = over.length
    ? `Past the cap on distinct selectors: ${describe(data.over_cap)} (counted in the cells only).`
    : "";
  $("totals").textContent = `${describe(data.totals) || "no events"} over ${data.days.length} day(s)`;
  $("note").textContent = frameDoc() ? "" : "This page is on another origin: selectors cannot be shown on it, only the cells.";
}

function label(box, text) {
  const overlay = $("overlay");
  overlay.querySelector(".tag")?.remove();
  const g = svg("g", { class: "tag" });
  const y = Math.max(0, box.y - 26);
  const width = 8 * text.length + 12;
  g.append(svg("rect", { class: "label-bg", x: box.x, y, width, height: 22, rx: 4 }));
  g.append(svg("text", { class: "label", x: box.x + 6, y: y + 15 }, text));
  overlay.append(g);
}

async function showPage() {
  const site = $("site").value;
  const path = $("path").value;
  const days = $("days").value;
  history.replaceState(null, "", `?${new URLSearchParams({ site, path, days })}`);
  if (!path) {
    data = null;
    draw();
    say("no counts yet");
    return;
  }
  data = await getJson(new URLSearchParams({ site, path, days }));
  const frame = $("frame");
  const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
  frame.src = data.page_url || "about:blank";
  await loaded;
  draw();
  document.body.dataset.ready = "1";
  say(`${path}`);
}

async function listPages() {
  const site = $("site").value;
  const days = $("days").value;
  const body = await getJson(new URLSearchParams({ site, days }));
  const wanted = params.get("path") || $("path").value;
  const paths = body.pages.map((p) => p.path);
  if (wanted && !paths.includes(wanted)) paths.unshift(wanted);
  $("path").replaceChildren(...paths.map((p) => {
    const option = document.createElement("option");
    option.value = option.textContent = p;
    const page = body.pages.find((x) => x.path === p);
    if (page) option.textContent = `${p} (${page.events})`;
    return option;
  }));
  if (wanted) $("path").value = wanted;
  await showPage();
}

async function start() {
  const token = await fetch("/qa/api/token", { credentials: "same-origin", cache: "no-store" }).then((r) => r.json());
  $("site").replaceChildren(...token.sites.map((s) => {
    const option = document.createElement("option");
    option.value = option.textContent = s;
    return option;
  }));
  if (params.get("site")) $("site").value = params.get("site");
  if (params.get("days")) $("days").value = params.get("days");
  const run = (work) => work().catch((e) => say(`error: ${e.message}`));
  $("site").addEventListener("change", () => run(listPages));
  $("days").addEventListener("change", () => run(listPages));
  $("path").addEventListener("change", () => run(showPage));
  $("kind").addEventListener("change", draw);
  await run(listPages);
}

start();
