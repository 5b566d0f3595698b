/** Cuewire Studio: polls api/state and mounts every preview in its own Shadow DOM host.
 *
 * Built by scripts/build.mjs into server/cuewire/admin/studio/studio.js (committed: pip users
 * need no Node). A preview is mounted by the snippet's own code (../render.ts: parse, which
 * removes script-like elements, on* attributes, srcdoc and javascript:/vbscript: values;
 * adoptStyles, which turns <style> elements into adopted stylesheets; HOST_STYLE, the
 * `all: initial` fixed zero-size host; safeHref, the links the snippet follows), so the studio
 * shows what a visitor gets and the sanitizer exists once.
 * Differences, on purpose: each preview's stage is a containing block (so `position: fixed`
 * content stays in its stage), actions are logged instead of reported, nothing takes focus on
 * mount, and the theme and reduced-motion switches rewrite the prefers-* media queries of the
 * template's styles before they are adopted.
 */
import { HOST_STYLE, adoptStyles, parse, safeHref } from "../render";

interface Preview {
  key: string;
  source: "template" | "rule";
  template: string;
  rule?: string | null;
  variant?: string | null;
  title?: string | null;
  kind: string;
  note?: string | null;
  file: string;
  html?: string | null;
  error?: string | null;
  problems?: string | null;
  stale?: boolean;
}

interface State {
  version: string;
  unchanged?: boolean;
  templates_dir: string;
  rules_dir: string;
  error?: string | null;
  previews: Preview[];
}

interface Parts {
  root: HTMLElement;
  note: HTMLElement;
  file: HTMLElement;
  error: HTMLElement;
  stage: HTMLElement;
  log: HTMLElement;
  stale: HTMLElement;
}

interface Entry {
  parts: Parts;
  data: Preview | null;
  force: boolean;
}

const POLL_MS = 500;
const ALWAYS = "(min-width: 0px)";
const NEVER = "(min-width: 987654px)";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const cards = new Map<string, Entry>();
let version = "";
let failures = 0;

function el(tag: string, className?: string, text?: unknown): HTMLElement {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/* ---------- mounting, with the snippet's code ---------- */

function themed(css: string): string {
  const theme = $<HTMLSelectElement>("theme").value;
  const reduced = $<HTMLInputElement>("motion").checked;
  let out = css;
  if (theme !== "system") {
    out = out
      .replace(/\(\s*prefers-color-scheme\s*:\s*dark\s*\)/gi, theme === "dark" ? ALWAYS : NEVER)
      .replace(/\(\s*prefers-color-scheme\s*:\s*light\s*\)/gi, theme === "light" ? ALWAYS : NEVER);
  }
  if (reduced) {
    out = out
      .replace(/\(\s*prefers-reduced-motion\s*:\s*reduce\s*\)/gi, ALWAYS)
      .replace(/\(\s*prefers-reduced-motion\s*:\s*no-preference\s*\)/gi, NEVER);
  }
  return out;
}

function mount(stage: HTMLElement, log: HTMLElement, data: Preview): void {
  stage.replaceChildren();
  const content = parse(data.html || "");
  content.querySelectorAll("style").forEach((style) => {
    style.textContent = themed(style.textContent || "");
  });
  // The host as render.ts builds it for a visitor.
  const host = el("div");
  host.setAttribute("data-cuewire-prompt", data.key);
  host.setAttribute("data-cw-kind", data.kind);
  host.style.cssText = HOST_STYLE;
  const root = host.attachShadow({ mode: "open" });
  adoptStyles(root, content);
  root.appendChild(content);
  root.addEventListener("submit", (e) => e.preventDefault());
  root.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    const actor = target && target.closest("[data-cw-action]");
    if (!actor) return;
    e.preventDefault();
    const action = actor.getAttribute("data-cw-action");
    // The link as written, when the snippet would follow it (safeHref: http(s), mailto, tel).
    const raw = actor.getAttribute("data-cw-href");
    const href = action === "click" && safeHref(raw) ? raw : null;
    log.textContent =
      `prompt_${action}` +
      (href ? ` → ${href}` : "") +
      (action === "click" ? ' (and cuewire.on("prompt:click") handlers)' : "");
    host.remove();
    const again = el("button", "again", "Show again") as HTMLButtonElement;
    again.type = "button";
    again.addEventListener("click", () => {
      log.textContent = "";
      mount(stage, log, data);
    });
    stage.appendChild(again);
  });
  stage.appendChild(host);
}

/* ---------- cards ---------- */

function card(data: Preview): Parts {
  const root = el("article", "card");
  const head = el("header", "card-head");
  const title = el("h3");
  title.append(el("span", "name", data.rule || data.template), el("span", "variant", data.title));
  const badges = el("p", "badges");
  if (data.kind) badges.append(el("span", "badge kind", data.kind));
  if (data.source === "rule") badges.append(el("span", "badge", "template " + data.template));
  const stale = el("span", "badge stale", "stale");
  badges.append(stale);
  head.append(title, badges);
  const note = el("p", "note");
  const file = el("p", "file");
  const error = el("pre", "error");
  error.setAttribute("role", "alert");
  const stage = el("div", "stage");
  const log = el("p", "log");
  log.setAttribute("aria-live", "polite");
  root.append(head, note, file, error, stage, log);
  return { root, note, file, error, stage, log, stale };
}

function update(entry: Entry, data: Preview): void {
  const old = entry.data;
  const parts = entry.parts;
  parts.root.dataset.search = [data.template, data.rule, data.variant, data.title, data.kind]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  parts.note.textContent = data.note || "";
  parts.file.textContent = data.file;
  const problem = data.error || data.problems;
  parts.error.textContent = problem || "";
  parts.error.hidden = !problem;
  parts.root.classList.toggle("has-error", Boolean(problem));
  parts.stale.hidden = !(data.stale && data.problems && data.html);
  parts.stage.classList.toggle("is-stale", Boolean(data.stale && data.problems));
  parts.stage.dataset.kind = data.kind;
  parts.stage.hidden = !data.html;
  if (data.html && (!old || old.html !== data.html || entry.force)) {
    parts.log.textContent = "";
    mount(parts.stage, parts.log, data);
  }
  entry.data = data;
  entry.force = false;
}

function render(state: State): void {
  $("templates-dir").textContent = state.templates_dir;
  $("rules-dir").textContent = state.rules_dir;
  $("banner").hidden = !state.error;
  $("banner-text").textContent = state.error || "";
  const seen = new Set<string>();
  const lists = { template: $("templates"), rule: $("rules") };
  for (const data of state.previews) {
    seen.add(data.key);
    let entry = cards.get(data.key);
    if (!entry) {
      entry = { parts: card(data), data: null, force: false };
      cards.set(data.key, entry);
    }
    lists[data.source].appendChild(entry.parts.root); // keeps the server's order
    update(entry, data);
  }
  for (const [key, entry] of cards) {
    if (!seen.has(key)) {
      entry.parts.root.remove();
      cards.delete(key);
    }
  }
  applyFilter();
}

function remountAll(): void {
  for (const entry of cards.values()) {
    entry.force = true;
    if (entry.data) update(entry, entry.data);
  }
}

function applyFilter(): void {
  // "toast success, banner": previews matching every word of any comma-separated part.
  const parts = $<HTMLInputElement>("filter")
    .value.toLowerCase()
    .split(",")
    .map((part) => part.split(/\s+/).filter(Boolean))
    .filter((words) => words.length);
  for (const entry of cards.values()) {
    const text = entry.parts.root.dataset.search || "";
    entry.parts.root.hidden =
      parts.length > 0 && !parts.some((words) => words.every((w) => text.includes(w)));
  }
}

/* ---------- polling ---------- */

function status(state: string, text: string): void {
  const node = $("status");
  node.dataset.state = state;
  node.textContent = text;
}

async function poll(): Promise<void> {
  try {
    const response = await fetch("api/state?v=" + encodeURIComponent(version), {
      cache: "no-store",
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const state = (await response.json()) as State;
    failures = 0;
    if (!state.unchanged) {
      version = state.version;
      render(state);
    }
    const live = document.querySelectorAll(".card:not([hidden])").length;
    status(
      $("banner").hidden ? "live" : "error",
      `Live · reload ${version.split("-")[0]} · ${live} previews`,
    );
  } catch (e) {
    failures += 1;
    status("offline", "Server unreachable, retrying… (" + (e as Error).message + ")");
  }
  setTimeout(poll, failures ? Math.min(5000, POLL_MS * 2 ** failures) : POLL_MS);
}

function start(): void {
  const theme = $<HTMLSelectElement>("theme");
  const motion = $<HTMLInputElement>("motion");
  let prefs: { theme?: string; motion?: boolean } = {};
  try {
    prefs = JSON.parse(localStorage.getItem("cw_studio") || "{}") || {};
  } catch {
    /* unreadable preferences: the defaults */
  }
  if (prefs.theme) theme.value = prefs.theme;
  motion.checked = Boolean(prefs.motion);
  const save = () =>
    localStorage.setItem("cw_studio", JSON.stringify({ theme: theme.value, motion: motion.checked }));
  theme.addEventListener("change", () => (save(), remountAll()));
  motion.addEventListener("change", () => (save(), remountAll()));
  $("filter").addEventListener("input", applyFilter);
  document.documentElement.dataset.theme = theme.value;
  theme.addEventListener("change", () => {
    document.documentElement.dataset.theme = theme.value;
  });
  void poll();
}

start();
