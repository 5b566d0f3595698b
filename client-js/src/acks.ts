/** What the snippet does with the server's answers (docs/protocol.md, "Rejection codes" and
 * "Connect refusals"). Decisions branch on the `code`s only; `reason` is for people. */
import type { Prompt, WireEvent } from "./types";

export interface Rejection {
  index: number;
  code?: string;
  reason?: string;
}

export interface Ack {
  accepted: number;
  rejected?: Rejection[];
  retry_ms?: number | null;
  /** The prompts the batch caused (the snippet connects with `prompt_in_ack`). */
  prompts?: Prompt[];
}

/** Rate limited: resend this event later. */
const RATE_LIMITED = "rate_limited";
/** The store is down: resend the whole batch later (index -1). */
const STORE_UNAVAILABLE = "store_unavailable";
/** The server does not know this connection (index -1): reconnect, then resend. */
const NOT_CONNECTED = "not_connected";

export interface Settled {
  /** Events to resend (same seq), in batch order. */
  keep: WireEvent[];
  /** Events refused for good, with the rejection: never resent. */
  refused: { event: WireEvent | undefined; rejection: Rejection }[];
  /** When to resend `keep`: the ack's `retry_ms`, or null for the default. */
  retryMs: number | null;
  /** The connection must be made again before resending. */
  reconnect: boolean;
}

/** Splits a batch by its ack: retryable rejections are kept, every other one is refused. */
export function settleAck(batch: WireEvent[], ack: Ack): Settled {
  const settled: Settled = { keep: [], refused: [], retryMs: null, reconnect: false };
  const rejected = Array.isArray(ack.rejected) ? ack.rejected : [];
  const whole = rejected.filter((r) => r && r.index < 0);
  const kept = new Set<number>();
  for (const r of whole) {
    if (r.code === STORE_UNAVAILABLE || r.code === NOT_CONNECTED) {
      settled.keep = batch.slice();
      settled.reconnect = r.code === NOT_CONNECTED;
      settled.retryMs = retryMs(ack);
      return settled;
    }
  }
  if (whole.length) {
    // A permanent refusal of the whole batch (invalid_batch, batch_too_large): nothing in it
    // can succeed as it is.
    for (const event of batch) settled.refused.push({ event, rejection: whole[0] });
    return settled;
  }
  for (const r of rejected) {
    if (!r) continue;
    const event = batch[r.index];
    if (event && r.code === RATE_LIMITED && !kept.has(r.index)) {
      kept.add(r.index);
      settled.keep.push(event);
    } else {
      settled.refused.push({ event, rejection: r });
    }
  }
  if (settled.keep.length) settled.retryMs = retryMs(ack);
  return settled;
}

function retryMs(ack: Ack): number | null {
  const ms = ack.retry_ms;
  return typeof ms === "number" && isFinite(ms) && ms >= 0 ? Math.min(ms, 5 * 60000) : null;
}

/** A connect refusal, as `connect_error` carries it: `err.data` is the server's map. */
export interface Refusal {
  /** Stop for good: the site, the origin or the visitor will not be accepted by retrying. */
  fatal: boolean;
  code: string | null;
  /** The server's hint for the next attempt, when it gave one. */
  retryMs: number | null;
  /** One line for the console, for refusals a site owner must fix; null otherwise. */
  explain: string | null;
}

const FATAL = ["invalid_auth", "unknown_site", "origin_not_allowed", "do_not_track"];

export function readRefusal(
  err: { message?: string; data?: unknown },
  site: string,
  origin: string,
): Refusal {
  const data = (err && err.data && typeof err.data === "object" ? err.data : {}) as {
    code?: unknown;
    retry_ms?: unknown;
  };
  const code = typeof data.code === "string" ? data.code : null;
  const ms = data.retry_ms;
  let explain: string | null = null;
  if (code === "origin_not_allowed")
    explain =
      `[cuewire] site key "${site}" refused: origin ${origin} is not allowed ` +
      `(check the sites file: scheme, www, port)`;
  else if (code === "unknown_site")
    explain =
      `[cuewire] site key "${site}" refused: the server has no such site ` +
      `(check data-site on the script tag and the sites file)`;
  return {
    fatal: code !== null && FATAL.indexOf(code) >= 0,
    code,
    retryMs: typeof ms === "number" && isFinite(ms) && ms >= 0 ? ms : null,
    explain,
  };
}

/** Capped exponential backoff with "equal jitter": between half and all of
 * `base * 2^failures` (capped), and never less than `floor` (the server's retry_ms). */
export function backoff(
  failures: number,
  floor: number | null,
  random: () => number = Math.random,
  base = 1000,
  cap = 30000,
): number {
  const exp = Math.min(cap, base * 2 ** Math.min(failures, 20));
  const wait = exp / 2 + (random() * exp) / 2;
  return floor === null ? wait : Math.max(wait, floor + random() * floor * 0.5);
}

/** `ms` plus up to half of it again, at random: spreads the resends of many tabs told the
 * same retry_ms. */
export function jitter(ms: number, random: () => number = Math.random): number {
  return ms + random() * ms * 0.5;
}
