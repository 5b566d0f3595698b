/** Exit intent: the pointer leaves through the top edge of the window (towards the tabs or
 * the address bar). At most one `exit_intent` per page. */
import type { Collector, Send } from "./types";
import { listen } from "./dom";

export function startExitIntent(send: Send): Collector {
  let fired = false;
  const stop = listen<MouseEvent>(document, "mouseout", (e) => {
    if (fired || e.relatedTarget || e.clientY > 0) return;
    fired = true;
    send("exit_intent");
  });
  return {
    stop,
    reset() {
      fired = false;
    },
  };
}
