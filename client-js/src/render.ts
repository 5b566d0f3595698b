/** Prompts: mounts the server-rendered `html` of a `prompt` push in a Shadow DOM host and
 * reports what the visitor does with it.
 *
 * Contract (docs/protocol.md, "Prompts"):
 * - host: `<div data-cuewire-prompt="ID" data-cw-kind="KIND">` at the end of <body>, styled
 *   `all: initial`, fixed, zero-size and on top, so it neither inherits the page's styles nor
 *   shifts its layout. The template positions its own content (usually `position: fixed`).
 * - the shadow root is OPEN on purpose: tests and the site's own scripts can reach the prompt
 *   (`host.shadowRoot`, and Playwright selectors pierce open roots). It isolates styles; it is
 *   not a security boundary, and does not need to be.
 * - `<style>` elements become constructable stylesheets (`adoptedStyleSheets`), which strict
 *   CSPs allow; without constructable stylesheets the <style> elements stay in place.
 * - defensively, <script> and other active elements, `on*` attributes and `javascript:` URLs
 *   are removed (the server's templates escape everything already).
 * - `[data-cw-action]`: `dismiss`, `snooze`, `optout` close the prompt; `click` reports
 *   `prompt_click` (action = `data-cw-href` or "click"), closes, then follows `data-cw-href`.
 * - a `modal` takes focus (`[data-cw-autofocus]` or the first focusable element), keeps Tab
 *   inside and closes on Esc; only one modal is open at a time. Other kinds close on Esc while
 *   focus is inside them. Every kind gives focus back to where it was when it closes with
 *   focus inside (a modal always).
 * - not modal: `dismiss_after_ms` > 0 closes the prompt by itself after that long unattended
 *   (the time stops while the pointer is over it, focus is inside it or the tab is hidden),
 *   reported as `prompt_expired`; it is placed off the page elements it must not cover
 *   (place.ts).
 * - `replaces`: the id of a prompt on screen that this one takes the place of; it closes
 *   without a report (the server audited it).
 * - the host sets `overflow-wrap: anywhere`, inherited by the prompt: a long unbroken string
 *   (a product name, an email, a URL) wraps instead of pushing the card off-screen.
 */
import type { Prompt, Remover, Scalar } from "./types";
import { elementOf, listen, removeAll } from "./dom";
import { place } from "./place";

export type PromptHook =
  | "prompt:show"
  | "prompt:click"
  | "prompt:dismiss"
  | "prompt:snooze"
  | "prompt:optout"
  | "prompt:expire";

export interface RendererOptions {
  /** Sends a prompt_* event. */
  report(type: string, fields: Record<string, Scalar>): void;
  /** Calls the page's `cuewire.on(...)` handlers. */
  hook(name: PromptHook, prompt: Omit<Prompt, "html">): void;
  /** Waits (briefly) until the queue is sent, before following a link. */
  drain(ms: number): Promise<void>;
}

export interface Renderer {
  show(prompt: Prompt): void;
  stop: Remover;
}

const ACTIONS: Record<string, PromptHook> = {
  dismiss: "prompt:dismiss",
  snooze: "prompt:snooze",
  optout: "prompt:optout",
  click: "prompt:click",
};
const EXPIRED = "expired";
/** After the pointer leaves or focus goes, an expiring prompt stays at least this long. */
const GRACE_MS = 2000;
const ACTIVE = "script,iframe,frame,frameset,object,embed,base,meta,link,noscript";
const FOCUSABLE =
  'a[href],area[href],button:not([disabled]),input:not([disabled]):not([type="hidden"]),select:not([disabled]),textarea:not([disabled]),[tabindex]:not([tabindex="-1"]),[contenteditable="true"]';
const BAD_URL = /^(javascript|vbscript):/i;
/** The style of a prompt's host element (see the contract above). */
export const HOST_STYLE =
  "all:initial;position:fixed;z-index:2147483647;top:0;left:0;width:0;height:0;overflow:visible;overflow-wrap:anywhere;";

type TrustedPolicy = { createHTML(s: string): string };
let policy: TrustedPolicy | null | undefined;

/** Parses into an inert <template> (nothing loads or runs there) and cleans the result.
 * Exported for the studio (src/studio/), which previews prompts with this same code. */
export function parse(html: string): DocumentFragment {
  const template = document.createElement("template");
  if (policy === undefined) {
    // Sites that enforce Trusted Types need a policy for innerHTML; the content is cleaned
    // below, before it leaves the inert template.
    const tt = (
      window as unknown as { trustedTypes?: { createPolicy(n: string, p: object): TrustedPolicy } }
    ).trustedTypes;
    try {
      policy = tt ? tt.createPolicy("cuewire", { createHTML: (s: string) => s }) : null;
    } catch {
      policy = null;
    }
  }
  template.innerHTML = (policy ? policy.createHTML(html) : html) as string;
  const content = template.content;
  content.querySelectorAll(ACTIVE).forEach((el) => el.remove());
  content.querySelectorAll("*").forEach((el) => {
    for (const attr of Array.from(el.attributes)) {
      // Control characters and spaces are ignored by URL parsing: "java\tscript:" counts too.
      const value = attr.value.replace(/[\u0000-\u0020]/g, "");
      if (/^on/i.test(attr.name) || BAD_URL.test(value) || attr.name === "srcdoc")
        el.removeAttribute(attr.name);
    }
  });
  return content;
}

/** Moves the <style> elements of `content` into adopted stylesheets of `root`. Exported for
 * the studio, with parse and HOST_STYLE. */
export function adoptStyles(root: ShadowRoot, content: DocumentFragment): void {
  const styles = content.querySelectorAll("style");
  if (!styles.length || !("adoptedStyleSheets" in root)) return;
  try {
    const sheets = Array.from(styles).map((style) => {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(style.textContent || "");
      return sheet;
    });
    root.adoptedStyleSheets = sheets;
    styles.forEach((style) => style.remove());
  } catch {
    /* no constructable stylesheets: the <style> elements stay and apply as they are */
  }
}

/** The URL a `data-cw-href` leads to, or null when it is not http(s), mailto or tel. */
export function safeHref(href: string | null): string | null {
  if (!href) return null;
  try {
    const url = new URL(href, location.href);
    return /^(https?|mailto|tel):$/.test(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** Calls `done` after `ms` of the prompt in `host` being unattended: the time stops while the
 * pointer is over it, focus is inside it or the tab is hidden. */
function expireAfter(host: HTMLElement, root: ShadowRoot, ms: number, done: () => void): Remover {
  let left = ms;
  let since = 0;
  let timer = 0;
  let over = false;
  let stopped = false;
  const sync = () => {
    if (stopped) return; // a focusout deferred past close
    if (timer) {
      clearTimeout(timer);
      timer = 0;
      left = Math.max(GRACE_MS, left - (Date.now() - since));
    }
    if (!over && !root.activeElement && document.visibilityState !== "hidden") {
      since = Date.now();
      timer = window.setTimeout(done, left);
    }
  };
  const hover = (on: boolean) => () => {
    over = on;
    sync();
  };
  const removers = [
    listen(host, "pointerenter", hover(true)),
    listen(host, "pointerleave", hover(false)),
    listen(host, "focusin", sync),
    listen(host, "focusout", () => setTimeout(sync, 0)),
    listen(document, "visibilitychange", sync),
  ];
  sync();
  return () => {
    stopped = true;
    clearTimeout(timer);
    removeAll(removers);
  };
}

export function createRenderer(opts: RendererOptions): Renderer {
  const open = new Map<string, Remover>(); // prompt id -> close without reporting
  let modal: string | null = null;

  function show(prompt: Prompt): void {
    if (
      !prompt ||
      typeof prompt.id !== "string" ||
      typeof prompt.html !== "string" ||
      open.has(prompt.id)
    )
      return;
    if (!document.body) {
      listen(document, "DOMContentLoaded", () => show(prompt), { once: true });
      return;
    }
    const { html, ...info } = prompt;
    const isModal = prompt.kind === "modal";
    const replaced = typeof prompt.replaces === "string" && open.get(prompt.replaces);
    if (replaced) replaced(); // governance let this one take the other's place
    if (isModal && modal) open.get(modal)!(); // a new modal replaces the old one

    const host = document.createElement("div");
    host.setAttribute("data-cuewire-prompt", prompt.id);
    host.setAttribute("data-cw-kind", String(prompt.kind));
    host.style.cssText = HOST_STYLE;
    const root = host.attachShadow({ mode: "open" });
    const content = parse(html);
    adoptStyles(root, content);
    root.appendChild(content);

    const removers: Remover[] = [];
    // Where focus goes back to: what had it when the prompt came, or when focus moved in.
    let returnTo = document.activeElement as HTMLElement | null;
    const fields = { prompt: prompt.id, rule: String(prompt.rule) };
    let acted = false;

    function close(): void {
      if (!open.delete(prompt.id)) return;
      if (modal === prompt.id) modal = null;
      const focused = !!root.activeElement;
      removeAll(removers);
      host.remove();
      if ((isModal || focused) && returnTo && returnTo.isConnected && returnTo.focus)
        returnTo.focus();
    }

    function act(action: string, href: string | null): void {
      const hook = action === EXPIRED ? "prompt:expire" : ACTIONS[action];
      if (!hook || acted) return;
      acted = true;
      const type = "prompt_" + action;
      opts.report(type, action === "click" ? { ...fields, action: href || "click" } : fields);
      opts.hook(hook, info);
      if (action === "click" && !href) {
        // Let the browser finish what the click does first (follow a plain link, submit a
        // form): a form that is no longer in the document is not submitted.
        setTimeout(close, 0);
      } else {
        close();
        if (href) opts.drain(300).then(() => location.assign(href));
      }
    }

    const focusables = () =>
      Array.from(root.querySelectorAll<HTMLElement>(FOCUSABLE)).filter(
        (el) => el.getClientRects().length > 0,
      );

    removers.push(
      listen<MouseEvent>(
        root,
        "click",
        (e) => {
          const el = elementOf(e.target);
          const actor = el && el.closest("[data-cw-action]");
          if (!actor) return;
          const action = actor.getAttribute("data-cw-action") || "";
          if (action === EXPIRED) return;
          const href = action === "click" ? safeHref(actor.getAttribute("data-cw-href")) : null;
          if (action !== "click" || href) e.preventDefault();
          act(action, href);
        },
        false,
      ),
      listen<KeyboardEvent>(
        document,
        "keydown",
        (e) => {
          const inside = !!root.activeElement;
          if (e.key === "Escape" || e.key === "Esc") {
            if (isModal || inside) {
              e.preventDefault();
              act("dismiss", null);
            }
          } else if (e.key === "Tab" && isModal) {
            const list = focusables();
            if (!list.length) return e.preventDefault();
            const first = list[0];
            const last = list[list.length - 1];
            const at = root.activeElement;
            if (e.shiftKey ? !inside || at === first : !inside || at === last) {
              e.preventDefault();
              (e.shiftKey ? last : first).focus();
            }
          }
        },
        true,
      ),
      listen<FocusEvent>(host, "focusin", (e) => {
        const from = e.relatedTarget as HTMLElement | null;
        if (from && from !== host && !host.contains(from)) returnTo = from;
      }),
    );

    open.set(prompt.id, close);
    if (isModal) modal = prompt.id;
    document.body.appendChild(host);
    if (isModal) {
      const target = root.querySelector<HTMLElement>("[data-cw-autofocus]") || focusables()[0];
      if (target) target.focus();
    } else {
      const avoid = Array.isArray(prompt.avoid)
        ? prompt.avoid.filter((a) => typeof a === "string")
        : [];
      removers.push(place(root, avoid));
      const ttl = Number(prompt.dismiss_after_ms) || 0;
      if (ttl > 0) removers.push(expireAfter(host, root, ttl, () => act(EXPIRED, null)));
    }
    opts.report("prompt_shown", fields);
    opts.hook("prompt:show", info);
  }

  return {
    show,
    stop() {
      Array.from(open.values()).forEach((close) => close());
    },
  };
}
