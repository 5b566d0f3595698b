/** The Socket.IO connection (docs/protocol.md): connects with the identity in `auth`, sends
 * the queue in acknowledged `events` batches, resends what was not acknowledged, and hands
 * `prompt` pushes to the renderer. A `reset` push (the QA view forgot the visitor) drops the
 * session id and every unsent event, and reconnects: the tab starts afresh (`onReset`), and
 * so do this browser's other tabs of the session (identity.ts, `cw_reset`).
 *
 * Discrete events (page views, clicks, prompt feedback...) are flushed at once, the others
 * at most every 250 ms. Batches are cut by count and by encoded size (wire.ts), so the server
 * never closes the socket over a message too large. Decisions follow the server's codes
 * (acks.ts): only `rate_limited` events and `store_unavailable` batches are resent, after the
 * server's `retry_ms` with jitter; every other rejection is final. A connect refusal that will
 * not change by retrying (`do_not_track`, an unknown site key, a forbidden origin, invalid
 * auth) stops the transport for good; `overloaded` and `store_unavailable` reconnect later. */
import { io } from "socket.io-client";
import * as msgpackParser from "socket.io-msgpack-parser";
import type { Identity } from "./identity";
import type { Prompt, Remover, Send, WireEvent } from "./types";
import { type DropReason, createQueue } from "./queue";
import { type TabState, forgetTab, putTab } from "./tab";
import { type Ack, backoff, jitter, readRefusal, settleAck } from "./acks";
import { MAX_BATCH_BYTES, MAX_EVENT_BYTES } from "./wire";

const DISCRETE =
  /^(page_view|click|exit_intent|hesitation|rage_click|dead_click|custom|identify|form|prompt_.*)$/;
const BATCH_MS = 250;
const ACK_TIMEOUT_MS = 5000;
const RETRY_MS = 1000; // resend of retryable events when the ack names no retry_ms
const MAX_BATCH = 100; // the server's limit per `events` call
const MAX_IN_FLIGHT = 4; // batches awaiting their ack
const QUEUE_LIMIT = 500;
const QUEUE_BYTES = 1024 * 1024;
const MAX_TRIES = 8; // sends of one event that got no answer (timeout, socket lost)
const LOUD_DROPS = 10; // console warnings before further drops are only counted
const STABLE_MS = 10000; // connected this long (or one batch acked): the backoff starts over

/** What the transport let go of and how often it (re)connected: `cuewire.stats()`. */
export interface Stats {
  /** `events` calls emitted. */
  batches: number;
  /** Events dropped in the browser, by reason (too_large, queue_full, too_many_tries),
   * and events the server refused for good (refused). */
  dropped: Record<DropReason | "refused", number>;
  /** Successful connects after the first. */
  reconnects: number;
  /** The last connect refusal code, if any. */
  refused: string | null;
  /** Events held now, pending or awaiting their ack. */
  unacked: number;
}

export interface TransportOptions {
  origin: string;
  site: string;
  identity: Identity;
  /** Where seq continues from, and the events the previous page left unacknowledged. */
  tab: TabState;
  dnt: boolean;
  /** False while consent is withheld: nothing is queued and no connection is opened. */
  enabled: boolean;
  /** Called once when the server refuses the site or the visitor for good. */
  onFatal: (reason: string) => void;
  /** Called on a `reset` push, once the queue is empty and while the socket reconnects. */
  onReset: () => void;
}

export interface Transport {
  send: Send;
  onPrompt(fn: (prompt: Prompt) => void): Remover;
  /** Consent withdrawn: drop the queue and disconnect. */
  pause(): void;
  /** Consent given: connect and send again. */
  resume(): void;
  /** Resolves once every queued event is acknowledged, or after `ms`. */
  drain(ms: number): Promise<void>;
  /** The page is hidden or left: sends what is queued now, and leaves the tab state (next
   * seq, unacknowledged events) in sessionStorage for the tab's next page. */
  hide(): void;
  /** The page shows again: takes the tab state back out of sessionStorage. */
  show(): void;
  /** Disconnects and removes every listener. */
  stop(): void;
  stats(): Stats;
}

export function createTransport(opts: TransportOptions): Transport {
  const { identity } = opts;
  const stats: Stats = {
    batches: 0,
    dropped: { too_large: 0, queue_full: 0, too_many_tries: 0, refused: 0 },
    reconnects: 0,
    refused: null,
    unacked: 0,
  };
  let loud = 0;
  /** Counts a dropped event, and says so on the console (the first few times). */
  function dropped(reason: DropReason | "refused", event: unknown, detail?: unknown): void {
    stats.dropped[reason]++;
    if (reason === "refused" ? !DEBUG : loud >= LOUD_DROPS) return;
    loud++;
    console.warn(
      `[cuewire] event dropped (${reason})` +
        (reason === "too_large" ? `: over ${MAX_EVENT_BYTES} bytes encoded` : "") +
        (loud === LOUD_DROPS ? "; further drops are only counted (cuewire.stats())" : ""),
      event,
      detail === undefined ? "" : detail,
    );
  }
  const queue = createQueue(
    {
      limit: QUEUE_LIMIT,
      maxBytes: QUEUE_BYTES,
      maxEventBytes: MAX_EVENT_BYTES,
      maxTries: MAX_TRIES,
      onDrop: dropped,
    },
    opts.tab,
  );
  const inFlight = new Map<number, WireEvent[]>();
  let enabled = opts.enabled;
  let stopped = false;
  let connectedOnce = false;
  let batchId = 0;
  let batchTimer = 0;
  let retryTimer = 0;
  let soon = false;
  let failures = 0;
  let stableTimer = 0;
  let current: string | null = null; // the session the server named on this connection
  const promptListeners = new Set<(prompt: Prompt) => void>(); // for the prompts in acks

  const socket = io(opts.origin, {
    path: "/socket.io",
    // WebSocket first; where a proxy or firewall blocks it, HTTP long-polling (several
    // server processes then need sticky routing: docs/deploy.md).
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    parser: msgpackParser,
    autoConnect: false,
    reconnectionDelayMax: 30000,
    // A function, so that every reconnect sends the session id held at that moment.
    auth: (cb: (data: object) => void) =>
      cb({
        site: opts.site,
        visitor: identity.visitor,
        session: identity.session(),
        tab: identity.tab,
        dnt: opts.dnt,
        // Minutes behind UTC, as Date reports it: lets rules target the visitor's local time.
        tz: new Date().getTimezoneOffset(),
        // A batch's prompts come in its ack: one frame, not a push beside the ack.
        prompt_in_ack: true,
      }),
  });

  function flushSoon(): void {
    if (soon) return;
    soon = true;
    Promise.resolve().then(() => {
      soon = false;
      flush();
    });
  }

  function flush(): void {
    clearTimeout(batchTimer);
    batchTimer = 0;
    if (!enabled || stopped || !socket.connected || retryTimer) return; // "connect" flushes
    while (inFlight.size < MAX_IN_FLIGHT) {
      const batch = queue.take(MAX_BATCH, MAX_BATCH_BYTES);
      if (!batch) break;
      const id = ++batchId;
      inFlight.set(id, batch);
      stats.batches++;
      socket
        .timeout(ACK_TIMEOUT_MS)
        .emit("events", batch, (err: Error | null, ack: Ack) => settle(id, err, ack));
    }
  }

  function settle(id: number, err: Error | null, ack: Ack): void {
    const batch = inFlight.get(id);
    if (!batch) return; // already given back on disconnect, or the queue was dropped
    inFlight.delete(id);
    if (err || !ack || typeof ack !== "object") {
      queue.retry(batch); // no answer: resent, a bounded number of times
      retryLater(null);
      return;
    }
    if (Array.isArray(ack.prompts)) for (const p of ack.prompts) showPrompt(p);
    const settled = settleAck(batch, ack);
    for (const { event, rejection } of settled.refused) dropped("refused", event, rejection);
    queue.release(batch, settled.keep);
    if (settled.reconnect) {
      socket.disconnect();
      reconnectLater(null);
      return;
    }
    failures = 0; // the server takes batches: a later disconnect starts the backoff over
    if (settled.keep.length) retryLater(settled.retryMs);
    else flush();
  }

  /** A prompt that came in a batch's ack, to whoever listens (as a push would be). */
  function showPrompt(p: Prompt): void {
    if (!enabled || stopped || !p || typeof p !== "object") return;
    promptListeners.forEach((fn) => fn(p));
  }

  /** Sends again after `ms` (the server's retry_ms, or the default), with jitter. */
  function retryLater(ms: number | null): void {
    clearTimeout(retryTimer);
    retryTimer = window.setTimeout(
      () => {
        retryTimer = 0;
        flush();
      },
      jitter(ms === null ? RETRY_MS : ms),
    );
  }

  /** Gives every in-flight batch back to the queue, to be resent with the same seq. */
  function requeueInFlight(): void {
    inFlight.forEach((batch) => queue.retry(batch));
    inFlight.clear();
  }

  /** Reconnects later, with capped exponential backoff and never before the server's
   * retry_ms, when Socket.IO will not by itself (a refusal by the server, or a disconnect
   * the server asked for). */
  function reconnectLater(retryMs: number | null): void {
    const delay = backoff(failures++, retryMs);
    clearTimeout(retryTimer);
    retryTimer = window.setTimeout(() => {
      retryTimer = 0;
      if (enabled && !stopped) socket.connect();
    }, delay);
  }

  function stop(): void {
    stopped = true;
    clearTimeout(batchTimer);
    clearTimeout(retryTimer);
    clearTimeout(stableTimer);
    queue.clear();
    inFlight.clear();
    unlisten();
    socket.disconnect();
    socket.off();
  }

  socket.on("connect", () => {
    // A server that accepts the connect and drops it at once must not get a reconnect every
    // second: the backoff starts over only once the connection has proved stable.
    clearTimeout(stableTimer);
    stableTimer = window.setTimeout(() => (failures = 0), STABLE_MS);
    if (connectedOnce) stats.reconnects++;
    connectedOnce = true;
    if (DEBUG) console.debug("[cuewire] connected", socket.id);
    clearTimeout(retryTimer);
    retryTimer = 0;
    flush();
  });
  socket.on("session", (info: { session?: unknown }) => {
    if (!info || typeof info.session !== "string") return;
    current = info.session;
    identity.setSession(info.session);
  });
  /** The server forgot this visitor's state (docs/protocol.md, "Reset"): what is queued was
   * collected for the forgotten session and is dropped; the same visitor id connects again
   * without a session id (or with the fresh one another tab already got) and so opens a fresh
   * session, which the server answers as usual. */
  function restart(): void {
    if (current) identity.forgetSession(current);
    current = null;
    clearTimeout(batchTimer);
    clearTimeout(retryTimer);
    batchTimer = retryTimer = 0;
    queue.clear();
    inFlight.clear();
    socket.disconnect();
    opts.onReset();
    socket.connect();
  }
  socket.on("reset", (info: unknown, ack?: unknown) => {
    if (typeof ack === "function") ack();
    if (!enabled || stopped) return;
    if (DEBUG) console.debug("[cuewire] reset by the server", info);
    // the server reaches one socket per session: this browser's other tabs of it learn here
    if (current) identity.announceReset(current);
    restart();
  });
  const unlisten = identity.onReset((session) => {
    if (enabled && !stopped && session === current) restart();
  });
  socket.on("disconnect", (reason: string) => {
    if (DEBUG) console.debug("[cuewire] disconnected", reason);
    clearTimeout(stableTimer);
    requeueInFlight();
    if (reason === "io server disconnect") reconnectLater(null);
  });
  socket.on("connect_error", (err: Error & { data?: unknown }) => {
    const refusal = readRefusal(err, opts.site, location.origin);
    if (DEBUG) console.warn("[cuewire] connect_error", err.message, refusal);
    if (refusal.code) stats.refused = refusal.code;
    if (refusal.explain && !stopped) console.error(refusal.explain);
    if (refusal.fatal) {
      stop();
      opts.onFatal(refusal.code!);
    } else if (!socket.active) {
      reconnectLater(refusal.retryMs);
    }
  });

  if (enabled) socket.connect();
  else queue.clear(); // events a previous page kept are dropped too when consent is withheld

  return {
    send(type, fields, url) {
      if (!enabled || stopped) return;
      if (!queue.add(type, fields, url)) return;
      identity.touch();
      if (DISCRETE.test(type)) flushSoon();
      else if (!batchTimer) batchTimer = window.setTimeout(flush, BATCH_MS);
    },
    onPrompt(fn) {
      // A prompt a deadline fired comes with an ack callback: the server holds the prompt
      // and pushes it again until a tab acks it (docs/protocol.md, "prompt").
      const handler = (p: Prompt, ack?: unknown) => {
        if (!enabled || stopped) return;
        fn(p);
        if (typeof ack === "function") ack();
      };
      socket.on("prompt", handler);
      promptListeners.add(fn);
      return () => {
        socket.off("prompt", handler);
        promptListeners.delete(fn);
      };
    },
    pause() {
      enabled = false;
      clearTimeout(batchTimer);
      batchTimer = 0;
      queue.clear();
      inFlight.clear();
      socket.disconnect();
    },
    resume() {
      if (enabled || stopped) return;
      enabled = true;
      socket.connect();
    },
    drain(ms) {
      const end = Date.now() + ms;
      return new Promise<void>((resolve) => {
        const check = () =>
          !queue.unacked().length || Date.now() >= end ? resolve() : setTimeout(check, 25);
        check();
      });
    },
    hide() {
      flush();
      if (!stopped) putTab({ id: opts.tab.id, seq: queue.next(), events: queue.unacked() });
    },
    show: forgetTab,
    stop,
    stats() {
      return { ...stats, dropped: { ...stats.dropped }, unacked: queue.unacked().length };
    },
  };
}
