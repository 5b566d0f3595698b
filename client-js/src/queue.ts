/** The outgoing event queue: stamps every event with `seq`, `ts` and `url`, keeps events until
 * the server acknowledges them, and stays bounded (the oldest pending events are dropped). */
import type { Fields, WireEvent } from "./types";
import { clip } from "./dom";
import { MAX_STRING } from "./sanitize";

export interface Queue {
  /** Stamps and enqueues one event. */
  add(type: string, fields: Fields | undefined, url: string | undefined): void;
  /** Takes up to `max` pending events (oldest first) to send, or null when none are pending. */
  take(max: number): WireEvent[] | null;
  /** Settles a batch from `take`: the events in `keep` go back to be resent, in seq order. */
  release(batch: WireEvent[], keep: WireEvent[]): void;
  /** Every event not yet acknowledged, pending or in flight, in seq order. */
  unacked(): WireEvent[];
  /** The seq the next event gets. */
  next(): number;
  /** Forgets every event (consent withdrawn, or stopped for good). */
  clear(): void;
}

/** `seq` continues from `start.seq`; `start.events` (left unacknowledged by the previous page
 * of this tab) are sent first, with their own seq. */
export function createQueue(limit: number, start: { seq: number; events: WireEvent[] }): Queue {
  let pending: WireEvent[] = start.events.slice(-limit);
  let seq = start.seq;
  const out = new Set<WireEvent[]>();
  const size = () => {
    let n = pending.length;
    out.forEach((b) => (n += b.length));
    return n;
  };
  const trim = () => {
    while (pending.length && size() > limit) {
      const dropped = pending.shift();
      if (DEBUG) console.warn("[cuewire] queue full, dropped", dropped);
    }
  };

  return {
    add(type, fields, url) {
      const event: WireEvent = {
        type,
        ts: Date.now(),
        seq: seq++,
        url: clip(url || location.href, MAX_STRING),
      };
      if (fields) {
        for (const k in fields) if (fields[k] !== undefined) event[k] = fields[k];
      }
      pending.push(event);
      trim();
    },
    take(max) {
      if (!pending.length) return null;
      const batch = pending.splice(0, max);
      out.add(batch);
      return batch;
    },
    release(batch, keep) {
      if (!out.delete(batch)) return;
      if (keep.length) {
        pending = keep.concat(pending).sort((a, b) => a.seq - b.seq);
        trim();
      }
    },
    unacked() {
      const all = pending.slice();
      out.forEach((b) => all.push(...b));
      return all.sort((a, b) => a.seq - b.seq);
    },
    next: () => seq,
    clear() {
      pending = [];
      out.clear();
    },
  };
}
