/** Who is sending: a visitor id (localStorage `cw_vid`) and a session id with the time of
 * the last activity (localStorage `cw_sid`). The tab id comes from tab.ts. A tab the server
 * reset tells the browser's other tabs through localStorage `cw_reset`. */
import { local } from "./storage";
import { listen } from "./dom";
import type { Remover } from "./types";

const VISITOR_KEY = "cw_vid";
const SESSION_KEY = "cw_sid";
const RESET_KEY = "cw_reset";
/** The server ends a session after 30 minutes without events; so does the client. */
const SESSION_TTL_MS = 30 * 60 * 1000;
const ID = /^[A-Za-z0-9_-]{8,64}$/;
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A random id: `prefix` + 20 characters of [A-Za-z0-9_-] (120 bits). */
export function randomId(prefix: string): string {
  const bytes = new Uint8Array(20);
  const c = window.crypto;
  if (c && c.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = (Math.random() * 256) | 0;
  let out = prefix;
  for (let i = 0; i < bytes.length; i++) out += ALPHABET[bytes[i] & 63];
  return out;
}

function visitorId(): string {
  let id = local.get(VISITOR_KEY);
  if (!id || !ID.test(id)) {
    id = randomId("v_");
    local.set(VISITOR_KEY, id);
  }
  return id;
}

export interface Identity {
  readonly visitor: string;
  readonly tab: string;
  /** The stored session id, or null when there is none or it has expired. */
  session(): string | null;
  /** Stores the id the server handed out in its `session` event. */
  setSession(id: string): void;
  /** Records activity (an event was sent) so the session stays alive. */
  touch(): void;
  /** Drops the stored session id when it is still `session` (the server's `reset`): the next
   * connect opens a fresh session. The visitor id stays. */
  forgetSession(session: string): void;
  /** Tells the other tabs of this browser that `session` was reset (a `storage` event). */
  announceReset(session: string): void;
  /** Calls `fn` with the session another tab announced as reset. */
  onReset(fn: (session: string) => void): Remover;
}

export function createIdentity(tab: string): Identity {
  const visitor = visitorId();

  function read(): { id: string; at: number } | null {
    try {
      const v = JSON.parse(local.get(SESSION_KEY) || "null");
      return v && typeof v.id === "string" && typeof v.at === "number" ? v : null;
    } catch {
      return null;
    }
  }
  function write(id: string): void {
    local.set(SESSION_KEY, JSON.stringify({ id, at: Date.now() }));
  }

  return {
    visitor,
    tab,
    session() {
      const s = read();
      return s && ID.test(s.id) && Date.now() - s.at <= SESSION_TTL_MS ? s.id : null;
    },
    setSession(id) {
      if (ID.test(id)) write(id);
    },
    touch() {
      const s = read();
      const age = s ? Date.now() - s.at : Infinity;
      // Only a live session is extended (an expired one must not be revived), and storage
      // is written at most every few seconds.
      if (s && age <= SESSION_TTL_MS && age > 5000) write(s.id);
    },
    forgetSession(session) {
      const s = read();
      if (s && s.id === session) local.set(SESSION_KEY, "null");
    },
    announceReset(session) {
      local.set(RESET_KEY, JSON.stringify({ session, at: Date.now() }));
    },
    onReset(fn) {
      return listen<StorageEvent>(window, "storage", (e) => {
        if (e.key !== RESET_KEY) return;
        try {
          const v = JSON.parse(e.newValue || "null");
          if (v && typeof v.session === "string") fn(v.session);
        } catch {
          // not ours
        }
      });
    },
  };
}
