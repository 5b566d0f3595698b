/** Inactivity: `idle {ms}` after 30 s without input, then `active` at the next input. */
import type { Collector, Send } from "./types";
import { listen, removeAll } from "./dom";

const IDLE_MS = 30000;
const INPUTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "scroll"];

export function startIdle(send: Send): Collector {
  let last = Date.now();
  let idle = false;
  let timer = 0;

  // One timer per idle period rather than one per input: on firing it checks how long it has
  // really been quiet and sleeps again for the rest.
  function wake(): void {
    const quiet = Date.now() - last;
    if (quiet >= IDLE_MS) {
      idle = true;
      timer = 0;
      send("idle", { ms: quiet });
    } else {
      timer = window.setTimeout(wake, IDLE_MS - quiet);
    }
  }

  function input(): void {
    last = Date.now();
    if (idle) {
      idle = false;
      send("active");
    }
    if (!timer) timer = window.setTimeout(wake, IDLE_MS);
  }

  const removers = INPUTS.map((type) => listen(window, type, input));
  timer = window.setTimeout(wake, IDLE_MS);
  return {
    stop() {
      clearTimeout(timer);
      removeAll(removers);
    },
  };
}
