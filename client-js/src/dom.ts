/** Small DOM helpers shared by the collectors. */
import type { Remover } from "./types";

/** addEventListener that returns its remover. */
export function listen<E extends Event = Event>(
  target: EventTarget,
  type: string,
  handler: (event: E) => void,
  options: AddEventListenerOptions | boolean = { capture: true, passive: true },
): Remover {
  target.addEventListener(type, handler as EventListener, options);
  return () => target.removeEventListener(type, handler as EventListener, options);
}

/** Calls every remover once, in reverse order of creation, and empties the list. */
export function removeAll(removers: Remover[]): void {
  while (removers.length) {
    try {
      removers.pop()!();
    } catch (e) {
      if (DEBUG) console.warn("[cuewire] teardown", e);
    }
  }
}

export const TRACK_ATTR = "data-cw-track";
export const TRACKED = "[" + TRACK_ATTR + "]";

/** The element an event happened on, when it is an Element (text nodes -> parent). */
export function elementOf(target: EventTarget | null): Element | null {
  const node = target as Node | null;
  if (!node || !node.nodeType) return null;
  return node.nodeType === 1 ? (node as Element) : node.parentElement;
}

/** The `data-cw-track` value of the nearest tracked ancestor (or the element itself). */
export function trackOf(el: Element | null): string | undefined {
  const tracked = el && el.closest(TRACKED);
  return tracked ? clip(tracked.getAttribute(TRACK_ATTR) || "", 2048) || undefined : undefined;
}

export function clip(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

/** Runs `fn` once the DOM is parsed (at once when it already is). */
export function whenReady(fn: () => void): Remover {
  if (document.readyState !== "loading") {
    fn();
    return () => {};
  }
  return listen(document, "DOMContentLoaded", fn, { once: true });
}
