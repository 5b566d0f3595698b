/** Exit intent, at most one `exit_intent {cause}` per page. On every device: the pointer
 * leaves through the top edge of the window (`mouse_leave`). On touch devices, after the
 * visitor touched or scrolled the page: a fast scroll back toward the top (`scroll_up`),
 * back-navigation (`back`, popstate) or the tab hidden (`hidden`). */
import type { Collector, Send } from "./types";
import { listen, removeAll } from "./dom";

export const FLING_PX = 500; // upward scroll at least this far ...
export const FLING_MS = 400; // ... within this long

/** A run of upward scrolling: where and when it began. */
export interface Run {
  y: number;
  t: number;
  lastY: number;
  lastT: number;
}

/** Feeds one scroll position; returns the upward run so far (a new one after a turn down or
 * a pause of 150 ms) and whether it is a fling (FLING_PX up within FLING_MS). A run that
 * begins with an upward step begins where the page was before it: the first frame of a
 * flick has already moved the page (on a busy phone, by a third of the flick). */
export function scrollUp(run: Run | null, y: number, t: number): [Run, boolean] {
  if (!run) run = { y, t, lastY: y, lastT: t };
  else if (y > run.lastY || t - run.lastT > 150)
    run = { y: Math.max(y, run.lastY), t, lastY: y, lastT: t };
  else {
    run.lastY = y;
    run.lastT = t;
  }
  return [run, run.y - y >= FLING_PX && t - run.t <= FLING_MS];
}

export function startExitIntent(send: Send): Collector {
  let fired = false;
  let touched = false;
  let run: Run | null = null;
  const touch = navigator.maxTouchPoints > 0;
  const fire = (cause: string) => {
    if (fired) return;
    fired = true;
    send("exit_intent", { cause });
  };
  const removers = [
    listen<MouseEvent>(document, "mouseout", (e) => {
      if (!e.relatedTarget && e.clientY <= 0) fire("mouse_leave");
    }),
  ];
  if (touch)
    removers.push(
      listen(window, "touchstart", () => (touched = true)),
      listen(window, "scroll", () => {
        touched = true;
        const [r, fling] = scrollUp(run, window.scrollY, Date.now());
        run = r;
        if (fling) fire("scroll_up");
      }),
      listen(window, "popstate", () => touched && fire("back")),
      listen(document, "visibilitychange", () => {
        if (touched && document.visibilityState === "hidden") fire("hidden");
      }),
    );
  return {
    stop: () => removeAll(removers),
    reset() {
      fired = false;
      run = null;
    },
  };
}
