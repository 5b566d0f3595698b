/** The outgoing event queue: stamps every event with `seq`, `ts` and `url`, keeps events until
 * the server acknowledges them, and stays bounded (the oldest pending events are dropped).
 *
 * Every event's encoded size is measured once, when it is added: an event too large to be
 * sent on its own is refused there (its `seq` is not used), and `take` cuts batches by count
 * and by encoded bytes, so no batch can exceed the server's message limit. */
import type { Fields, WireEvent } from "./types";
import { clip } from "./dom";
import { MAX_STRING } from "./sanitize";
import { encodedSize, wellFormed } from "./wire";

/** Why the queue let go of an event without an acknowledgement. */
export type DropReason = "too_large" | "queue_full" | "too_many_tries";

export interface QueueOptions {
  /** At most this many events held (pending and in flight). */
  limit: number;
  /** An event whose encoding is larger is refused by `add`. */
  maxEventBytes: number;
  /** At most this many encoded bytes held (pending and in flight). */
  maxBytes: number;
  /** A batch given back unacknowledged (ack timeout, socket lost) this many times is
   * dropped: no event may keep a tab sending the same message forever. */
  maxTries: number;
  /** Told about every event let go of without an acknowledgement. */
  onDrop?: (reason: DropReason, event: WireEvent) => void;
}

export interface Queue {
  /** Stamps and enqueues one event; false (and nothing queued) when it is too large. */
  add(type: string, fields: Fields | undefined, url: string | undefined): boolean;
  /** Takes pending events (oldest first) to send: at most `max` of them and at most
   * `maxBytes` encoded bytes (always at least one); null when none are pending. */
  take(max: number, maxBytes: number): WireEvent[] | null;
  /** Settles a batch from `take`: the events in `keep` go back to be resent, in seq order. */
  release(batch: WireEvent[], keep: WireEvent[]): void;
  /** Gives a batch back unacknowledged (no answer came): resent unless it has been given
   * back `maxTries` times already, in which case it is dropped. */
  retry(batch: WireEvent[]): void;
  /** Every event not yet acknowledged, pending or in flight, in seq order. */
  unacked(): WireEvent[];
  /** The seq the next event gets. */
  next(): number;
  /** Forgets every event (consent withdrawn, or stopped for good). */
  clear(): void;
}

/** `seq` continues from `start.seq`; `start.events` (left unacknowledged by the previous page
 * of this tab) are sent first, with their own seq. */
export function createQueue(
  opts: QueueOptions,
  start: { seq: number; events: WireEvent[] },
): Queue {
  const sizes = new Map<WireEvent, number>();
  const tries = new Map<WireEvent, number>();
  const out = new Set<WireEvent[]>();
  let pending: WireEvent[] = [];
  let seq = start.seq;
  let bytes = 0;

  const count = () => {
    let n = pending.length;
    out.forEach((b) => (n += b.length));
    return n;
  };
  const forget = (event: WireEvent) => {
    bytes -= sizes.get(event) || 0;
    sizes.delete(event);
    tries.delete(event);
  };
  const drop = (reason: DropReason, event: WireEvent) => {
    forget(event);
    if (opts.onDrop) opts.onDrop(reason, event);
  };
  const trim = () => {
    while (pending.length && (count() > opts.limit || bytes > opts.maxBytes))
      drop("queue_full", pending.shift()!);
  };
  /** Measures and holds `event`; false when it is too large to ever be sent. */
  const hold = (event: WireEvent): boolean => {
    const size = encodedSize(event);
    if (size > opts.maxEventBytes) return false;
    sizes.set(event, size);
    bytes += size;
    pending.push(event);
    return true;
  };

  for (const event of start.events) if (!hold(event)) drop("too_large", event);
  trim();

  return {
    add(type, fields, url) {
      const event: WireEvent = {
        type,
        ts: Date.now(),
        seq,
        url: wellFormed(clip(url || location.href, MAX_STRING)),
      };
      if (fields) {
        for (const k in fields) if (fields[k] !== undefined) event[k] = clean(fields[k]);
      }
      if (!hold(event)) {
        if (opts.onDrop) opts.onDrop("too_large", event);
        return false;
      }
      seq++;
      trim();
      return true;
    },
    take(max, maxBytes) {
      if (!pending.length) return null;
      let n = 0;
      let used = 0;
      while (n < pending.length && n < max) {
        const size = sizes.get(pending[n]) || 0;
        if (n > 0 && used + size > maxBytes) break;
        used += size;
        n++;
      }
      const batch = pending.splice(0, n);
      out.add(batch);
      return batch;
    },
    release(batch, keep) {
      if (!out.delete(batch)) return;
      for (const event of batch) if (keep.indexOf(event) < 0) forget(event);
      if (keep.length) {
        pending = keep.concat(pending).sort((a, b) => a.seq - b.seq);
        trim();
      }
    },
    retry(batch) {
      if (!out.has(batch)) return;
      const keep: WireEvent[] = [];
      for (const event of batch) {
        const n = (tries.get(event) || 0) + 1;
        if (n >= opts.maxTries) {
          drop("too_many_tries", event);
        } else {
          tries.set(event, n);
          keep.push(event);
        }
      }
      out.delete(batch);
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
      sizes.clear();
      tries.clear();
      bytes = 0;
    },
  };
}

/** A field value with every string cut to the server's 2,048 characters (a long page title
 * or referrer would otherwise get its whole event rejected) and made well-formed (maps one
 * level deep: props, traits). */
function clean(value: unknown): unknown {
  if (typeof value === "string") return wellFormed(clip(value, MAX_STRING));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k in value as Record<string, unknown>)
      out[wellFormed(k)] = clean((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}
