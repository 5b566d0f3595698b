/** Hesitation as it happens: while the pointer (or a finger held down) stays on a
 * `[data-cw-track]` element or a call to action (a button), one `hesitation {selector, element?,
 * ms}` per dwell threshold crossed, so a rule can answer before the visitor moves on. The
 * thresholds come from the script tag's `data-hesitation="1500,4000"` (milliseconds). The
 * `hover` event of the whole rest is still sent by hover.ts when the rest ends. */
import type { Collector, Remover, Send } from "./types";
import { TRACKED, elementOf, listen, removeAll, trackOf } from "./dom";
import { selectorOf } from "./clicks";
import { positionOf } from "./position";

export const DEFAULT_THRESHOLDS = [1500, 4000];
const MAX_THRESHOLDS = 4;
const MAX_MS = 600000;
/** A call to action: what a visitor hesitates over before committing. */
export const CTA = "button,[role=button],input[type=submit],input[type=button]";

/** `data-hesitation`: comma-separated milliseconds, sorted, deduplicated, each 100..600000;
 * nothing valid in it gives the defaults. */
export function thresholds(attr: string | null | undefined): number[] {
  const out = (attr || "")
    .split(",")
    .map((s) => Math.round(Number(s.trim())))
    .filter((n) => n >= 100 && n <= MAX_MS)
    .sort((a, b) => a - b)
    .filter((n, i, all) => i === 0 || n !== all[i - 1])
    .slice(0, MAX_THRESHOLDS);
  return out.length ? out : DEFAULT_THRESHOLDS.slice();
}

/** The element a rest counts on: the nearest tracked element or call to action. */
export function restTarget(el: Element | null): Element | null {
  return el ? el.closest(TRACKED + "," + CTA) : null;
}

export function startHesitation(send: Send, marks: number[]): Collector {
  let current: Element | null = null;
  let spent: Element | null = null; // clicked: no more hesitation until the pointer leaves it
  let timers: ReturnType<typeof setTimeout>[] = [];

  function end(): void {
    timers.forEach(clearTimeout);
    timers = [];
    current = null;
  }

  function begin(el: Element | null): void {
    if (el === current) return;
    end();
    if (el !== spent) spent = null;
    if (!el || spent) return;
    current = el;
    const fields = { selector: selectorOf(el), element: trackOf(el) };
    timers = marks.map((ms) =>
      setTimeout(() => {
        if (current === el && el.isConnected)
          send("hesitation", { ...fields, ms, ...positionOf(el) });
      }, ms),
    );
  }

  const removers: Remover[] = [
    listen<PointerEvent>(document, "pointerover", (e) => {
      if (e.pointerType !== "touch") begin(restTarget(elementOf(e.target)));
    }),
    listen<PointerEvent>(document, "pointerout", (e) => {
      if (!e.relatedTarget) end(); // left the window
    }),
    listen<PointerEvent>(document, "pointerdown", (e) => {
      // A mouse click ends the hesitation; a finger held down starts one.
      if (e.pointerType === "touch") begin(restTarget(elementOf(e.target)));
      else {
        spent = current;
        end();
      }
    }),
    listen<PointerEvent>(document, "pointerup", (e) => {
      if (e.pointerType === "touch") end();
    }),
    listen(document, "pointercancel", end),
    listen(document, "visibilitychange", end),
  ];
  return {
    stop: () => {
      end();
      removeAll(removers);
    },
    reset: end,
  };
}
