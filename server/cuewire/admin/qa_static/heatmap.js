/* /qa/heatmap (docs/qa.md, "Heatmaps"): the site's page in a sandboxed iframe, the counts per
 * position cell drawn over it, the top selectors beside it. Two renderings of the page:
 *
 * - static (sandbox="allow-same-origin", no scripts: a QA look adds no clicks): the QA page can
 *   read the frame's document, so hovering a selector (or its box on the page) highlights its
 *   element and shows its counts; a page of another origin cannot be searched, so only the
 *   cells are drawn over it.
 * - scripts (sandbox="allow-scripts" without allow-same-origin): the page's scripts build it as
 *   a visitor sees it, in an opaque origin that cannot reach this page (nor its admin
 *   session), and whose snippet the site's allow-list refuses (origin "null"). This page cannot
 *   read that document: the cells are drawn from the recorded positions over the frame, whose
 *   height the snippet in the frame (named "cuewire-heatmap") posts (heatframe.ts); the
 *   selectors are listed only.
 *
 * "auto" renders statically when the static rendering has the elements that most of the
 * listed events were on, else with the page's scripts.
 *
 * Layout: the cells of one layout class (mobile, tablet, desktop: the visitors' viewport
 * widths, bucketed by the server) or of all of them; the frame is as wide as a viewport of the
 * class (the API's `width`), so a responsive page lays itself out as those visitors saw it.
 * Everything from the store is shown as text (textContent, SVG <title>). */
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const NAMES = { click: "click", rage_click: "rage click", dead_click: "dead click", hesitation: "hesitation" };
const named = (n, kind) => `${n} ${NAMES[kind] || kind}${n === 1 || kind === "hesitation" ? "" : "s"}`;
const LAYOUTS = ["all", "mobile", "tablet", "desktop", "unknown"];
const MAX_HEIGHT = 8000;
const BOXES = 20; // selectors boxed on the page
const FIRST_HEIGHT = 800; // the scripts frame's height until its page says how tall it is
const FRAME_NAME = "cuewire-heatmap"; // the snippet posts its size only in a frame so named
const RENDERINGS = ["auto", "static", "scripts"];

let rendering = "static"; // how the frame on show renders: "static" or "scripts"
let reported = 0; // the document height the scripts frame's page posted, 0 before it did
let why = ""; // why "auto" chose the rendering on show

let data = null;
let width = 1024; // the frame's width: the layout class's (data.width)

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
  if (rendering !== "static") return null;
  try {
    return $("frame").contentDocument;
  } catch {
    return null;
  }
}

/** The frame, the overlay and their stage as wide as the layout class's viewport. */
function fit() {
  for (const node of [$("frame"), $("overlay"), $("frame").parentElement]) node.style.width = `${width}px`;
}

function size() {
  const doc = frameDoc();
  let height = 1600;
  if (doc) height = Math.min(MAX_HEIGHT, Math.max(doc.documentElement.scrollHeight, 400));
  else if (rendering === "scripts") height = Math.min(MAX_HEIGHT, reported || FIRST_HEIGHT);
  for (const node of [$("frame"), $("overlay")]) node.style.height = `${height}px`;
  fit();
  $("overlay").setAttribute("viewBox", `0 0 ${width} ${height}`);
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
  const cw = width / grid;
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
    const missing = box || rendering === "scripts" ? "" : " (not on this rendering)";
    li.append(code, ` ${describe(s.counts)}`, missing);
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
  $("shown").textContent = shownText();
  $("note").textContent = noteText();
  const every = data.layout === "all" ? "" : "Counted over all layouts (a selector is the same element in each). ";
  $("hint").textContent = every + (frameDoc()
    ? "Hover one to see its element on the page."
    : "Their elements cannot be looked up in this rendering: the cells show where.");
}

/** Which layout class is shown, and how wide it is drawn. */
function shownText() {
  const view = data.layouts.find((v) => v.layout === data.layout);
  const drawn = `drawn ${data.width}px wide`;
  if (data.layout === "all") {
    return `All layouts in one grid, ${drawn}: on a responsive page the cells line up only ` +
      "for visitors whose viewport was about as wide; pick a layout to see one class.";
  }
  const label = view ? view.label : data.layout;
  return `Layout: ${data.layout} (${label}), ${drawn}.`;
}

/** The layout picker's options, with each class's events. */
function listLayouts() {
  for (const option of $("layout").options) {
    const view = data.layouts.find((v) => v.layout === option.value);
    if (!view) continue;
    const n = Object.values(view.totals).reduce((a, b) => a + b, 0);
    const name = option.value === "all" ? "all layouts" : option.value === "unknown" ? "width not sent" : option.value;
    option.textContent = `${name} (${n})`;
  }
}

function noteText() {
  if (rendering === "scripts") {
    const height = reported
      ? `its document is ${reported}px tall here`
      : `it did not say how tall it is (no Cuewire snippet in it?): rows are drawn over ${FIRST_HEIGHT}px`;
    return `${why}Rendered with the page's scripts, in an isolated frame that records nothing: ` +
      `the cells are drawn from the recorded positions, ${height}; selectors are listed, not boxed.`;
  }
  if (!frameDoc()) return "This page is on another origin: selectors cannot be shown on it, only the cells.";
  return why ? `${why}Rendered without the page's scripts.` : "";
}

/** A fresh iframe for ``mode`` in place of the one on show (a changed sandbox applies only to
 * a new document, and nothing of the previous page is kept). */
function newFrame(mode) {
  const old = $("frame");
  const frame = document.createElement("iframe");
  frame.id = "frame";
  frame.title = old.title;
  frame.setAttribute("scrolling", "no");
  frame.setAttribute("referrerpolicy", "no-referrer");
  if (mode === "scripts") {
    frame.setAttribute("sandbox", "allow-scripts");
    frame.name = FRAME_NAME;
    frame.style.height = `${FIRST_HEIGHT}px`;
  } else {
    frame.setAttribute("sandbox", "allow-same-origin");
  }
  old.replaceWith(frame);
  fit(); // as wide as the layout class's viewport before the page lays itself out
  rendering = mode;
  reported = 0;
  document.body.dataset.render = mode;
  delete document.body.dataset.measured;
  return frame;
}

async function load(mode, url) {
  const frame = newFrame(mode);
  const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
  frame.src = url || "about:blank";
  await loaded;
}

/** The share of the listed selectors' events whose element the static rendering has. */
function found() {
  const rows = data.selectors.slice(0, BOXES);
  const all = rows.reduce((n, s) => n + s.total, 0);
  if (!all) return 1;
  return rows.reduce((n, s) => n + (boxOf(s.selector) ? s.total : 0), 0) / all;
}

// The scripts frame's page says how tall its document is (heatframe.ts); only a message from
// the frame on show counts, and only its two numbers are read.
window.addEventListener("message", (e) => {
  const frame = $("frame");
  if (rendering !== "scripts" || e.source !== frame.contentWindow) return;
  const size = e.data && typeof e.data === "object" ? e.data.cuewire_heatmap : null;
  const height = size && Number(size.height);
  if (!Number.isFinite(height) || height <= 0) return;
  reported = Math.round(Math.min(MAX_HEIGHT, height));
  frame.style.height = `${reported}px`;
  document.body.dataset.measured = String(reported);
  draw();
});

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
  const render = $("render").value;
  const layout = $("layout").value;
  history.replaceState(null, "", `?${new URLSearchParams({ site, path, days, layout, render })}`);
  if (!path) {
    data = null;
    draw();
    say("no counts yet");
    return;
  }
  delete document.body.dataset.ready;
  data = await getJson(new URLSearchParams({ site, path, days, layout }));
  width = data.width;
  document.body.dataset.layout = data.layout;
  listLayouts();
  const wanted = $("render").value;
  why = "";
  await load(wanted === "scripts" ? "scripts" : "static", data.page_url);
  if (wanted === "auto" && data.page_url) {
    const share = frameDoc() ? found() : 0;
    if (share < 0.5) {
      why = frameDoc()
        ? `Auto: the page without its scripts lacks the elements of ${Math.round(100 * (1 - share))}% of the listed events. `
        : "Auto: the page is on another origin. ";
      await load("scripts", data.page_url);
    } else {
      why = "Auto: the page without its scripts has the clicked elements. ";
    }
  }
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
  if (RENDERINGS.includes(params.get("render"))) $("render").value = params.get("render");
  if (LAYOUTS.includes(params.get("layout"))) $("layout").value = params.get("layout");
  const run = (work) => work().catch((e) => say(`error: ${e.message}`));
  $("site").addEventListener("change", () => run(listPages));
  $("days").addEventListener("change", () => run(listPages));
  $("path").addEventListener("change", () => run(showPage));
  $("kind").addEventListener("change", draw);
  $("layout").addEventListener("change", () => run(showPage));
  $("render").addEventListener("change", () => run(showPage));
  await run(listPages);
}

start();
