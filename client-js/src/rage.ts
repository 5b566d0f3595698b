/** Rage clicks: 3 or more clicks within `RAGE_WINDOW_MS` of each other, all within
 * `RAGE_RADIUS_PX` of the first. One `rage_click {selector, text?, track?, count}` per burst
 * (what `click` reports of the first click's target, and how many clicks the burst had), sent
 * when the burst ends: `RAGE_WINDOW_MS` after its last click, or at a click that starts anew. */
import type { Collector, Fields, Remover, Send } from "./types";
import { elementOf, listen, removeAll } from "./dom";
import { clickFields } from "./clicks";
import { positionAt } from "./position";

export const RAGE_WINDOW_MS = 700;
export const RAGE_RADIUS_PX = 30;
export const RAGE_MIN = 3;

export interface Burst {
  x: number;
  y: number;
  /** Click times, oldest first. */
  times: number[];
}

/** The burst a click at `t` (ms), (`x`, `y`) belongs to: `burst` extended, when the click is
 * within the window of its last click and the radius of its first, else a new burst. */
export function addClick(burst: Burst | null, t: number, x: number, y: number): Burst {
  if (
    burst &&
    t - burst.times[burst.times.length - 1] <= RAGE_WINDOW_MS &&
    Math.hypot(x - burst.x, y - burst.y) <= RAGE_RADIUS_PX
  ) {
    burst.times.push(t);
    return burst;
  }
  return { x, y, times: [t] };
}

/** A burst is rage when some `RAGE_MIN` consecutive clicks of it span the window at most. */
export function isRage(burst: Burst): boolean {
  const t = burst.times;
  for (let i = RAGE_MIN - 1; i < t.length; i++)
    if (t[i] - t[i - RAGE_MIN + 1] <= RAGE_WINDOW_MS) return true;
  return false;
}

export function startRage(send: Send): Collector {
  let burst: Burst | null = null;
  let fields: Fields | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;

  function flush(url?: string): void {
    clearTimeout(timer);
    if (burst && fields && isRage(burst))
      send("rage_click", { ...fields, count: burst.times.length }, url);
    burst = fields = null;
  }

  const removers: Remover[] = [
    listen<MouseEvent>(document, "click", (e) => {
      const next = addClick(burst, Date.now(), e.clientX, e.clientY);
      if (next !== burst) {
        flush();
        const f = clickFields(elementOf(e.target));
        fields = f && { ...f, ...positionAt(e.clientX, e.clientY) };
      }
      burst = next;
      clearTimeout(timer);
      timer = setTimeout(() => flush(), RAGE_WINDOW_MS);
    }),
    // A burst cut short by leaving the page is still reported (queued before the tab's state
    // is saved: index.ts registers its pagehide listener after the collectors').
    listen(window, "pagehide", () => flush()),
  ];
  return {
    stop() {
      clearTimeout(timer);
      burst = fields = null;
      removeAll(removers);
    },
    reset: (previousUrl) => flush(previousUrl),
  };
}
