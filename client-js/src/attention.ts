/** Real attention: `attention {active_ms, reading?}` every 5 s while the visitor does
 * something (input, scroll or pointer movement), and once more when the tab is hidden.
 * `active_ms` is this page's attentive time so far: time the tab was visible and there was
 * input within the last 15 s. `reading: true` when that beat saw only scrolling or pointer
 * movement (no click, tap or key): reading, not idle. No input, no beat. */
import type { Collector, Send } from "./types";
import { listen, removeAll } from "./dom";

export const WINDOW_MS = 15000;
const BEAT_MS = 5000;
const MOVE_MS = 500; // pointermove throttle
const ACTS = ["pointerdown", "keydown", "touchstart"];
const READS = ["pointermove", "wheel", "scroll", "touchmove"];

/** Attentive time as a pure clock: `input(now)` on activity, `at(now)` reads it. */
export function attentionClock(windowMs = WINDOW_MS) {
  let acc = 0;
  let mark = 0; // time accounted up to
  let last = -Infinity; // last input
  let visible = true;
  const advance = (now: number) => {
    if (visible) acc += Math.max(0, Math.min(now, last + windowMs) - Math.max(mark, last));
    mark = now;
  };
  return {
    input(now: number) {
      advance(now);
      last = now;
    },
    visible(now: number, v: boolean) {
      advance(now);
      visible = v;
    },
    at(now: number): number {
      advance(now);
      return Math.round(acc);
    },
    reset(now: number) {
      acc = 0;
      mark = now;
      last = -Infinity;
    },
  };
}

/** The attention collector; `activeMs()` reads this page's attentive time so far (the
 * visibility collector reports it with every change). */
export function startAttention(send: Send): Collector & { activeMs(): number } {
  const clock = attentionClock();
  let moved = 0; // last pointermove taken
  let fresh = false; // input since the last beat
  let acted = false; // a click, tap or key since the last beat

  function beat(url?: string): void {
    if (!fresh) return;
    const fields = { active_ms: clock.at(Date.now()), reading: acted ? undefined : true };
    send("attention", fields, url);
    fresh = acted = false;
  }
  function input(e: Event): void {
    const now = Date.now();
    if (e.type === "pointermove") {
      if (now - moved < MOVE_MS) return;
      moved = now;
    }
    clock.input(now);
    fresh = true;
    if (ACTS.indexOf(e.type) >= 0) acted = true;
  }

  const removers = [...ACTS, ...READS].map((type) => listen(window, type, input));
  removers.push(
    listen(document, "visibilitychange", () => {
      const visible = document.visibilityState !== "hidden";
      clock.visible(Date.now(), visible);
      if (!visible) beat();
    }),
  );
  clock.visible(Date.now(), document.visibilityState !== "hidden");
  const timer = window.setInterval(() => beat(), BEAT_MS);
  return {
    // The visibility collector may hear of a change before this one does: the clock takes
    // the page's state as it is now, so a report made on hiding counts no time after it.
    activeMs: () => {
      const now = Date.now();
      clock.visible(now, document.visibilityState !== "hidden");
      return clock.at(now);
    },
    stop() {
      clearInterval(timer);
      removeAll(removers);
    },
    reset(previousUrl) {
      beat(previousUrl);
      clock.reset(Date.now());
    },
  };
}
