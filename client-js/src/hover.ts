/** Hesitation: the pointer rests on a `[data-cw-track]` element for a second or more without
 * clicking it. One `hover {element, ms}` per rest, sent when the rest ends (the pointer moves
 * to another element or leaves the window, or the page is hidden). */
import type { Collector, Remover, Send } from "./types";
import { TRACKED, TRACK_ATTR, clip, elementOf, listen, removeAll } from "./dom";

const MIN_MS = 1000;

export function startHover(send: Send): Collector {
  let current: Element | null = null;
  let since = 0;
  let clicked = false;

  function end(report: boolean): void {
    if (current && report && !clicked) {
      const ms = Date.now() - since;
      const name = clip(current.getAttribute(TRACK_ATTR) || "", 2048);
      if (ms >= MIN_MS && name) send("hover", { element: name, ms });
    }
    current = null;
    clicked = false;
  }

  const removers: Remover[] = [
    listen<PointerEvent>(document, "pointerover", (e) => {
      const el = elementOf(e.target);
      const tracked = el && el.closest(TRACKED);
      if (tracked === current) return;
      end(true);
      if (tracked && e.pointerType !== "touch") {
        current = tracked;
        since = Date.now();
      }
    }),
    listen<PointerEvent>(document, "pointerout", (e) => {
      if (!e.relatedTarget) end(true); // left the window
    }),
    listen(document, "pointerdown", (e) => {
      const el = elementOf(e.target);
      if (current && el && current.contains(el)) clicked = true;
    }),
    listen(document, "visibilitychange", () => end(true)),
  ];
  return { stop: () => removeAll(removers), reset: () => end(false) };
}
