/** The Socket.IO connection (docs/protocol.md): connects with the identity in `auth`, sends
 * the queue in acknowledged `events` batches, resends what was not acknowledged, and hands
 * `prompt` pushes to the renderer.
 *
 * Discrete events (page views, clicks, prompt feedback...) are flushed at once, the others
 * at most every 250 ms. A refusal that will not change by retrying (`do-not-track`, an
 * unknown site key, a forbidden origin) stops the transport for good. */
import { io } from "socket.io-client";
import * as msgpackParser from "socket.io-msgpack-parser";
import type { Identity } from "./identity";
import type { Prompt, Remover, Send, WireEvent } from "./types";
import { createQueue } from "./queue";
import { type TabState, forgetTab, putTab } from "./tab";

const DISCRETE = /^(page_view|click|exit_intent|custom|identify|form|prompt_.*)$/;
const FATAL = ["do-not-track", "unknown site key", "origin not allowed for this site"];
const BATCH_MS = 250;
const ACK_TIMEOUT_MS = 5000;
const MAX_BATCH = 100; // the server's limit per `events` call
const MAX_IN_FLIGHT = 4; // batches awaiting their ack
const QUEUE_LIMIT = 500;

interface Ack {
  accepted: number;
  rejected?: { index: number; reason: string }[];
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
}

export function createTransport(opts: TransportOptions): Transport {
  const { identity } = opts;
  const queue = createQueue(QUEUE_LIMIT, opts.tab);
  const inFlight = new Map<number, WireEvent[]>();
  let enabled = opts.enabled;
  let stopped = false;
  let batchId = 0;
  let batchTimer = 0;
  let retryTimer = 0;
  let soon = false;
  let failures = 0;

  const socket = io(opts.origin, {
    path: "/socket.io",
    transports: ["websocket"],
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
    if (!enabled || stopped || !socket.connected) return; // "connect" flushes
    while (inFlight.size < MAX_IN_FLIGHT) {
      const batch = queue.take(MAX_BATCH);
      if (!batch) break;
      const id = ++batchId;
      inFlight.set(id, batch);
      socket
        .timeout(ACK_TIMEOUT_MS)
        .emit("events", batch, (err: Error | null, ack: Ack) => settle(id, err, ack));
    }
  }

  function settle(id: number, err: Error | null, ack: Ack): void {
    const batch = inFlight.get(id);
    if (!batch) return; // already given back on disconnect, or the queue was dropped
    inFlight.delete(id);
    const keep: WireEvent[] = [];
    if (err || !ack) {
      keep.push(...batch);
    } else {
      for (const r of ack.rejected || []) {
        // index -1: the whole batch ("store unavailable, resend later"): keep all of it.
        if (r.index < 0 && /resend later/.test(r.reason)) {
          keep.push(...batch);
          break;
        }
        const event = batch[r.index];
        // Past the rate limit the server asks for the event later; anything else is invalid
        // and resending it would not help.
        if (event && /^rate limit/.test(r.reason)) keep.push(event);
        else if (DEBUG) console.warn("[cuewire] rejected", r, event);
      }
    }
    queue.release(batch, keep);
    if (keep.length) retryLater(1000);
    else flush();
  }

  function retryLater(ms: number): void {
    clearTimeout(retryTimer);
    retryTimer = window.setTimeout(flush, ms);
  }

  /** Gives every in-flight batch back to the queue, to be resent with the same seq. */
  function requeueInFlight(): void {
    inFlight.forEach((batch) => queue.release(batch, batch));
    inFlight.clear();
  }

  /** Reconnects later, with capped exponential backoff, when Socket.IO will not by itself
   * (a refusal by the server, or a disconnect the server asked for). */
  function reconnectLater(): void {
    const delay = Math.min(30000, 1000 * 2 ** failures++) * (0.5 + Math.random() / 2);
    clearTimeout(retryTimer);
    retryTimer = window.setTimeout(() => enabled && !stopped && socket.connect(), delay);
  }

  function stop(): void {
    stopped = true;
    clearTimeout(batchTimer);
    clearTimeout(retryTimer);
    queue.clear();
    inFlight.clear();
    socket.disconnect();
    socket.off();
  }

  socket.on("connect", () => {
    failures = 0;
    if (DEBUG) console.debug("[cuewire] connected", socket.id);
    flush();
  });
  socket.on("session", (info: { session?: unknown }) => {
    if (info && typeof info.session === "string") identity.setSession(info.session);
  });
  socket.on("disconnect", (reason: string) => {
    if (DEBUG) console.debug("[cuewire] disconnected", reason);
    requeueInFlight();
    if (reason === "io server disconnect") reconnectLater();
  });
  socket.on("connect_error", (err: Error) => {
    if (DEBUG) console.warn("[cuewire] connect_error", err.message);
    if (FATAL.indexOf(err.message) >= 0) {
      stop();
      opts.onFatal(err.message);
    } else if (!socket.active) {
      reconnectLater();
    }
  });

  if (enabled) socket.connect();
  else queue.clear(); // events a previous page kept are dropped too when consent is withheld

  return {
    send(type, fields, url) {
      if (!enabled || stopped) return;
      queue.add(type, fields, url);
      identity.touch();
      if (DISCRETE.test(type)) flushSoon();
      else if (!batchTimer) batchTimer = window.setTimeout(flush, BATCH_MS);
    },
    onPrompt(fn) {
      const handler = (p: Prompt) => {
        if (enabled && !stopped) fn(p);
      };
      socket.on("prompt", handler);
      return () => socket.off("prompt", handler);
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
  };
}
