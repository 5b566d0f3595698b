/** The admin pages' Socket.IO client (the QA view, server/cuewire/admin/qa_static/qa.js):
 * socket.io-client with the msgpack parser, the same pair the snippet uses, so the admin
 * namespace speaks exactly the visitor's wire format (docs/protocol.md).
 *
 * Built by scripts/build.mjs into server/cuewire/admin/qa_static/adminio.js (an ES module,
 * committed: pip users need no Node). The API is the small one qa.js needs:
 *
 *     const socket = new AdminSocket({ auth: async () => ({token, site}), onState });
 *     const off = socket.on("hello", fn);   // returns its remover
 *     socket.emit("watch", {session});      // false (and nothing sent) while not connected
 *     socket.open(); socket.close();
 *
 * `onState(state, detail)`: "connecting", "connected", "closed" (the connection was lost or
 * cannot be made; it reconnects with capped backoff), "refused" (the server or the `auth`
 * callback said no; it stays closed).
 */
import { io, type Socket } from "socket.io-client";
import * as msgpackParser from "socket.io-msgpack-parser";

export type AdminState = "connecting" | "connected" | "closed" | "refused";
type Handler = (...args: unknown[]) => void;

export interface AdminOptions {
  /** The auth object of the namespace's CONNECT packet, asked for before every connect. */
  auth: () => Promise<Record<string, unknown>>;
  onState?: (state: AdminState, detail?: string) => void;
  namespace?: string;
  path?: string;
}

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 5000;

export class AdminSocket {
  private readonly socket: Socket;
  private readonly onState: (state: AdminState, detail?: string) => void;
  private readonly handlers = new Map<string, Handler>();
  private stopped = true;
  private timer = 0;

  constructor({ auth, onState = () => {}, namespace = "/admin", path = "/socket.io/" }: AdminOptions) {
    this.onState = onState;
    this.socket = io(namespace, {
      path,
      transports: ["websocket"],
      parser: msgpackParser,
      autoConnect: false,
      reconnectionDelay: FIRST_DELAY_MS,
      reconnectionDelayMax: MAX_DELAY_MS,
      auth: (send: (data: object) => void) => {
        auth().then(send, (err: unknown) => {
          this.onState("refused", String(err));
          this.close();
        });
      },
    });
    const socket = this.socket;
    socket.io.on("reconnect_attempt", () => this.onState("connecting"));
    socket.on("connect", () => this.onState("connected"));
    socket.on("connect_error", (err: Error) => {
      // A refusal by the server (a CONNECT_ERROR packet) leaves the socket inactive; a
      // transport that cannot connect leaves it active and the manager tries again.
      if (socket.active) this.onState("closed", "cannot connect");
      else if (!this.stopped) {
        this.stopped = true;
        this.onState("refused", err.message || "refused");
      }
    });
    socket.on("disconnect", () => {
      if (this.stopped) return;
      this.onState("closed", "connection lost");
      // The server ended the namespace: socket.io-client does not reconnect on its own then.
      if (!socket.active) this.timer = window.setTimeout(() => this.reopen(), FIRST_DELAY_MS);
    });
    socket.onAny((event: string, ...args: unknown[]) => {
      const fn = this.handlers.get(event);
      if (fn) fn(...args);
    });
  }

  /** Calls `fn` for every `event` pushed by the server; returns the remover. */
  on(event: string, fn: Handler): () => void {
    this.handlers.set(event, fn);
    return () => {
      if (this.handlers.get(event) === fn) this.handlers.delete(event);
    };
  }

  /** Sends `event` when connected; returns false (and drops it) otherwise, so nothing stale
   * is replayed after a reconnect (the page says hello again instead). */
  emit(event: string, ...args: unknown[]): boolean {
    if (!this.socket.connected) return false;
    this.socket.emit(event, ...args);
    return true;
  }

  open(): void {
    this.stopped = false;
    this.reopen();
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket.disconnect();
  }

  private reopen(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.onState("connecting");
    this.socket.connect();
  }
}
