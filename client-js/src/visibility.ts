/** Page visibility: `visibility {state, dwell_ms}` on every change, where `dwell_ms` is the
 * time this page has been visible so far. */
import type { Collector, Send } from "./types";
import { listen } from "./dom";

export function startVisibility(send: Send): Collector {
  let dwell = 0;
  let since = 0; // when the page last became visible; 0 while hidden

  const visible = () => document.visibilityState !== "hidden";
  const start = () => {
    dwell = 0;
    since = visible() ? Date.now() : 0;
  };
  start();

  const stop = listen(document, "visibilitychange", () => {
    const now = Date.now();
    if (visible()) {
      if (!since) since = now;
      send("visibility", { state: "visible", dwell_ms: Math.round(dwell) });
    } else {
      if (since) dwell += now - since;
      since = 0;
      send("visibility", { state: "hidden", dwell_ms: Math.round(dwell) });
    }
  });
  return { stop, reset: start };
}
