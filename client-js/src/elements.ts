/** Tracked elements coming into view: `element_visible {element, ratio}` once per
 * `data-cw-track` value per page, for elements present at load and added later. An element
 * counts as seen when half of it is in view, or when it fills half of the viewport. */
import type { Collector, Send } from "./types";
import { TRACKED, TRACK_ATTR, clip, whenReady } from "./dom";

export function startElements(send: Send): Collector {
  if (typeof IntersectionObserver !== "function") return { stop() {} };
  let seen: Record<string, true> = {};

  const io = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        const root = entry.rootBounds;
        const big = root && entry.intersectionRect.height >= root.height / 2;
        if (entry.intersectionRatio < 0.5 && !big) continue;
        const name = clip(entry.target.getAttribute(TRACK_ATTR) || "", 2048);
        io.unobserve(entry.target);
        if (!name || seen[name]) continue;
        seen[name] = true;
        send("element_visible", {
          element: name,
          ratio: Math.min(1, Math.round(entry.intersectionRatio * 100) / 100),
        });
      }
    },
    { threshold: [0, 0.25, 0.5, 0.75, 1] },
  );

  function each(node: Node, fn: (el: Element) => void): void {
    if (node.nodeType !== 1) return;
    const el = node as Element;
    if (el.matches(TRACKED)) fn(el);
    el.querySelectorAll(TRACKED).forEach(fn);
  }
  const observe = (el: Element) => io.observe(el);
  const scan = () => each(document.documentElement, observe);

  const mo = new MutationObserver((records) => {
    for (const r of records) {
      r.addedNodes.forEach((n) => each(n, observe));
      r.removedNodes.forEach((n) => each(n, (el) => io.unobserve(el)));
    }
  });
  mo.observe(document.documentElement, { childList: true, subtree: true });
  const notReady = whenReady(scan);

  return {
    stop() {
      notReady();
      mo.disconnect();
      io.disconnect();
    },
    reset() {
      seen = {};
      // Observing again makes the observer report what is in view right now.
      io.disconnect();
      scan();
    },
  };
}
