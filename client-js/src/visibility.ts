/** Page visibility: `visibility {state, dwell_ms, active_ms}` on every change, where
 * `dwell_ms` is the time this page has been visible so far and `active_ms` its attentive time
 * (attention.ts), so that the server's count of attentive time is exact at every change. */
import type { Collector, Send } from "./types";
import { listen } from "./dom";

export function startVisibility(send: Send, activeMs: () => number): Collector {
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
      send("visibility", { state: "visible", dwell_ms: Math.round(dwell), active_ms: activeMs() });
    } else {
      if (since) dwell += now - since;
      since = 0;
      send("visibility", { state: "hidden", dwell_ms: Math.round(dwell), active_ms: activeMs() });
    }
  });
  return { stop, reset: start };
}
