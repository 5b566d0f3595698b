/** Scroll depth: milestones 25, 50, 75, 90 and 100 percent, each once per page, measured at
 * most once per animation frame. */
import type { Collector, Send } from "./types";
import { listen } from "./dom";

const MILESTONES = [25, 50, 75, 90, 100];

export function startScroll(send: Send): Collector {
  let reached = 0;
  let frame = 0;

  function measure(): void {
    frame = 0;
    const root = document.documentElement;
    const height = Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0);
    const bottom = (window.scrollY || root.scrollTop) + window.innerHeight;
    // Within 2 px of the end counts as the end (fractional zoom and rounding).
    const depth =
      height <= 0 ? 0 : bottom >= height - 2 ? 100 : Math.floor((bottom / height) * 100);
    for (const m of MILESTONES) {
      if (m > reached && depth >= m) {
        reached = m;
        send("scroll", { depth: m });
      }
    }
  }

  const stop = listen(window, "scroll", () => {
    if (!frame) frame = requestAnimationFrame(measure);
  });
  return {
    stop() {
      stop();
      cancelAnimationFrame(frame);
    },
    reset() {
      reached = 0;
    },
  };
}
