/** Dead clicks: a click on something that looks clickable (a link, a button, role=button, or
 * a pointer cursor) after which, within `DEAD_MS`, the page neither navigated nor changed
 * (no DOM mutation outside our prompts) nor moved the focus. One `dead_click {selector, text?,
 * track?}` (what `click` reports) per click; a click on the same element while one is watched
 * joins it. Links that go elsewhere (another URL, a new tab, a download) are left out: the
 * navigation may not show in this page. */
import type { Collector, Fields, Remover, Send } from "./types";
import { elementOf, listen, removeAll } from "./dom";
import { clickFields } from "./clicks";
import { positionAt } from "./position";

export const DEAD_MS = 1000;
const CLICKABLE = "a[href],button,[role=button],[role=link],input[type=submit],input[type=button]";

/** The clickable-looking element a click landed on, or null. */
export function clickable(target: Element): Element | null {
  // cursor is inherited: the target's own style tells whether it shows a pointer
  return target.closest(CLICKABLE) || (getComputedStyle(target).cursor === "pointer" ? target : null);
}

/** A link whose click leaves the page (or opens another one). */
function leaves(el: Element): boolean {
  if (el.tagName !== "A") return false;
  const a = el as HTMLAnchorElement;
  if (a.target && a.target !== "_self") return true;
  if (a.hasAttribute("download")) return true;
  const href = a.getAttribute("href") || "";
  if (/^\s*javascript:/i.test(href) || href.charAt(0) === "#") return false;
  return a.href.split("#")[0] !== location.href.split("#")[0];
}

const PROMPT = "[data-cuewire-prompt]";
const WATCH = { childList: true, subtree: true, attributes: true, characterData: true };
const ours = (node: Node): boolean => !!elementOf(node)?.closest(PROMPT);
const toArray = (nodes: NodeList): Node[] => Array.prototype.slice.call(nodes);

export function startDeadClicks(send: Send): Collector {
  let watched: Element | null = null;
  let fields: Fields | null = null;
  let focus: Element | null = null;
  let url = "";
  let timer: ReturnType<typeof setTimeout> | undefined;

  function cancel(): void {
    clearTimeout(timer);
    watched = fields = null;
    mo.disconnect();
  }

  const mo = new MutationObserver((records) => {
    if (!watched) return;
    // A prompt of ours coming or going is not the click's effect.
    for (const r of records) {
      const nodes = toArray(r.addedNodes).concat(toArray(r.removedNodes));
      if (!ours(r.target) && !(nodes.length && nodes.every(ours))) return cancel();
    }
  });
  const removers: Remover[] = [
    listen<MouseEvent>(document, "click", (e) => {
      const target = elementOf(e.target);
      const el = target && clickable(target);
      if (!el || el === watched || e.button !== 0) return;
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || leaves(el)) return cancel();
      const f = clickFields(target);
      if (!f) return;
      cancel();
      watched = el;
      fields = { ...f, ...positionAt(e.clientX, e.clientY) };
      url = location.href;
      // Taken before the click's own handlers run (this listener is in the capture phase).
      focus = document.activeElement;
      // Observed only while a click is watched; mutations made by the click's own handlers,
      // which run after this capture listener, are reported.
      mo.observe(document.documentElement, WATCH);
      timer = setTimeout(() => {
        if (fields && location.href === url && document.activeElement === focus)
          send("dead_click", fields);
        cancel();
      }, DEAD_MS);
    }),
    listen(window, "pagehide", cancel),
    listen(window, "beforeunload", cancel),
    listen(window, "hashchange", cancel),
    listen(window, "popstate", cancel),
  ];
  return {
    stop() {
      cancel();
      removeAll(removers);
    },
    reset: cancel,
  };
}
