/* Cuewire Studio: polls api/state and mounts every preview in its own Shadow DOM host.
 *
 * Mounting mirrors client-js/src/render.ts (the snippet's renderer, which the bundle does not
 * export): the html is parsed in an inert <template>; script-like elements, on* attributes,
 * srcdoc and javascript:/vbscript: values are removed; each <style> becomes a constructable
 * stylesheet in shadowRoot.adoptedStyleSheets; the host is `all: initial`, fixed and zero-size.
 * Differences, on purpose: each preview's stage is a containing block (so `position: fixed`
 * content stays in its stage), actions are logged instead of reported, nothing takes focus on
 * mount, and the theme and reduced-motion switches rewrite the prefers-* media queries.
 */
"use strict";

(function () {
  const POLL_MS = 500;
  const ACTIVE = "script,iframe,frame,frameset,object,embed,base,meta,link,noscript";
  const BAD_URL = /^(javascript|vbscript):/i;
  const HOST_STYLE =
    "all:initial;position:fixed;z-index:2147483647;top:0;left:0;width:0;height:0;overflow:visible;overflow-wrap:anywhere;";
  const ALWAYS = "(min-width: 0px)";
  const NEVER = "(min-width: 987654px)";

  const $ = (id) => document.getElementById(id);
  const cards = new Map(); // key -> {el, data}
  let version = "";
  let failures = 0;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* ---------- mounting, as the snippet does ---------- */

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const content = template.content;
    content.querySelectorAll(ACTIVE).forEach((node) => node.remove());
    content.querySelectorAll("*").forEach((node) => {
      for (const attr of Array.from(node.attributes)) {
        const value = attr.value.replace(/[\u0000-\u0020]/g, "");
        if (/^on/i.test(attr.name) || BAD_URL.test(value) || attr.name === "srcdoc")
          node.removeAttribute(attr.name);
      }
    });
    return content;
  }

  function themed(css) {
    const theme = $("theme").value;
    const reduced = $("motion").checked;
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

  function adoptStyles(root, content) {
    const styles = content.querySelectorAll("style");
    if (!styles.length || !("adoptedStyleSheets" in root)) return;
    try {
      root.adoptedStyleSheets = Array.from(styles).map((style) => {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(themed(style.textContent || ""));
        return sheet;
      });
      styles.forEach((style) => style.remove());
    } catch (e) {
      /* no constructable stylesheets: the <style> elements stay as they are */
    }
  }

  function mount(stage, log, data) {
    stage.replaceChildren();
    const host = el("div");
    host.setAttribute("data-cuewire-prompt", data.key);
    host.setAttribute("data-cw-kind", data.kind);
    host.style.cssText = HOST_STYLE;
    const root = host.attachShadow({ mode: "open" });
    const content = parse(data.html);
    adoptStyles(root, content);
    root.appendChild(content);
    root.addEventListener("submit", (e) => e.preventDefault());
    root.addEventListener("click", (e) => {
      const target = e.target instanceof Element ? e.target : null;
      const actor = target && target.closest("[data-cw-action]");
      if (!actor) return;
      e.preventDefault();
      const action = actor.getAttribute("data-cw-action");
      const href = actor.getAttribute("data-cw-href");
      log.textContent = `prompt_${action}` + (href ? ` → ${href}` : "") +
        (action === "click" ? ' (and cuewire.on("prompt:click") handlers)' : "");
      host.remove();
      const again = el("button", "again", "Show again");
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

  function card(data) {
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

  function update(entry, data) {
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

  function render(state) {
    $("templates-dir").textContent = state.templates_dir;
    $("rules-dir").textContent = state.rules_dir;
    $("banner").hidden = !state.error;
    $("banner-text").textContent = state.error || "";
    const seen = new Set();
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

  function remountAll() {
    for (const entry of cards.values()) {
      entry.force = true;
      if (entry.data) update(entry, entry.data);
    }
  }

  function applyFilter() {
    // "toast success, banner": previews matching every word of any comma-separated part.
    const parts = $("filter")
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

  function status(state, text) {
    const node = $("status");
    node.dataset.state = state;
    node.textContent = text;
  }

  async function poll() {
    try {
      const response = await fetch("api/state?v=" + encodeURIComponent(version), {
        cache: "no-store",
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
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
      status("offline", "Server unreachable, retrying… (" + e.message + ")");
    }
    setTimeout(poll, failures ? Math.min(5000, POLL_MS * 2 ** failures) : POLL_MS);
  }

  function start() {
    const prefs = JSON.parse(localStorage.getItem("cw_studio") || "{}");
    if (prefs.theme) $("theme").value = prefs.theme;
    $("motion").checked = Boolean(prefs.motion);
    const save = () =>
      localStorage.setItem(
        "cw_studio",
        JSON.stringify({ theme: $("theme").value, motion: $("motion").checked }),
      );
    $("theme").addEventListener("change", () => (save(), remountAll()));
    $("motion").addEventListener("change", () => (save(), remountAll()));
    $("filter").addEventListener("input", applyFilter);
    document.documentElement.dataset.theme = $("theme").value;
    $("theme").addEventListener("change", () => {
      document.documentElement.dataset.theme = $("theme").value;
    });
    poll();
  }

  start();
})();
