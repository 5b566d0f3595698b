/* A small Socket.IO client for the admin pages: Engine.IO 4 over a WebSocket, Socket.IO 5
 * packets encoded with MessagePack (the server's AsyncServer uses the msgpack serializer for
 * every namespace). Enough for the QA view: connect to one namespace with an auth object,
 * receive events, emit events without acknowledgements, reconnect with capped backoff.
 *
 * pip users have no node_modules, and /cw.js is the visitor snippet, not a general client:
 * hence this file. Wire formats: docs/protocol.md and the Engine.IO / Socket.IO v5 specs.
 */
"use strict";

/* ---------- MessagePack: the subset python's msgpack.dumps produces for our data ---------- */

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

export function encode(value) {
  const out = [];
  const bytes = (...b) => { for (const x of b) out.push(x & 0xff); };
  const u16 = (n) => bytes(n >> 8, n);
  const u32 = (n) => bytes(n >>> 24, n >>> 16, n >>> 8, n);
  function put(v) {
    if (v === null || v === undefined) bytes(0xc0);
    else if (v === false) bytes(0xc2);
    else if (v === true) bytes(0xc3);
    else if (typeof v === "number") {
      if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
        if (v < 128) bytes(v);
        else if (v < 256) bytes(0xcc, v);
        else if (v < 65536) { bytes(0xcd); u16(v); }
        else { bytes(0xce); u32(v); }
      } else if (Number.isInteger(v) && v < 0 && v >= -(2 ** 31)) {
        if (v >= -32) bytes(0xe0 | (v + 32));
        else if (v >= -128) bytes(0xd0, v);
        else if (v >= -32768) { bytes(0xd1); u16(v); }
        else { bytes(0xd2); u32(v); }
      } else {
        const view = new DataView(new ArrayBuffer(8));
        view.setFloat64(0, v);
        bytes(0xcb, ...new Uint8Array(view.buffer));
      }
    } else if (typeof v === "string") {
      const b = utf8.encode(v);
      if (b.length < 32) bytes(0xa0 | b.length);
      else if (b.length < 256) bytes(0xd9, b.length);
      else if (b.length < 65536) { bytes(0xda); u16(b.length); }
      else { bytes(0xdb); u32(b.length); }
      for (const x of b) out.push(x);
    } else if (Array.isArray(v)) {
      if (v.length < 16) bytes(0x90 | v.length);
      else if (v.length < 65536) { bytes(0xdc); u16(v.length); }
      else { bytes(0xdd); u32(v.length); }
      for (const item of v) put(item);
    } else if (typeof v === "object") {
      const keys = Object.keys(v).filter((k) => v[k] !== undefined);
      if (keys.length < 16) bytes(0x80 | keys.length);
      else if (keys.length < 65536) { bytes(0xde); u16(keys.length); }
      else { bytes(0xdf); u32(keys.length); }
      for (const k of keys) { put(k); put(v[k]); }
    } else {
      throw new TypeError(`cannot encode ${typeof v}`);
    }
  }
  put(value);
  return new Uint8Array(out);
}

export function decode(buffer) {
  const view = new DataView(buffer instanceof ArrayBuffer ? buffer : buffer.buffer);
  let pos = 0;
  const u8 = () => view.getUint8(pos++);
  const take = (n, read) => { const v = read(pos); pos += n; return v; };
  const str = (n) => { const s = utf8d.decode(new Uint8Array(view.buffer, view.byteOffset + pos, n)); pos += n; return s; };
  const bin = (n) => { const b = new Uint8Array(view.buffer.slice(view.byteOffset + pos, view.byteOffset + pos + n)); pos += n; return b; };
  const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(get()); return a; };
  const map = (n) => { const m = {}; for (let i = 0; i < n; i++) { const k = get(); m[k] = get(); } return m; };
  function get() {
    const b = u8();
    if (b < 0x80) return b;
    if (b < 0x90) return map(b & 0x0f);
    if (b < 0xa0) return arr(b & 0x0f);
    if (b < 0xc0) return str(b & 0x1f);
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(u8());
      case 0xc5: return bin(take(2, (p) => view.getUint16(p)));
      case 0xc6: return bin(take(4, (p) => view.getUint32(p)));
      case 0xca: return take(4, (p) => view.getFloat32(p));
      case 0xcb: return take(8, (p) => view.getFloat64(p));
      case 0xcc: return u8();
      case 0xcd: return take(2, (p) => view.getUint16(p));
      case 0xce: return take(4, (p) => view.getUint32(p));
      case 0xcf: return Number(take(8, (p) => view.getBigUint64(p)));
      case 0xd0: return take(1, (p) => view.getInt8(p));
      case 0xd1: return take(2, (p) => view.getInt16(p));
      case 0xd2: return take(4, (p) => view.getInt32(p));
      case 0xd3: return Number(take(8, (p) => view.getBigInt64(p)));
      case 0xd9: return str(u8());
      case 0xda: return str(take(2, (p) => view.getUint16(p)));
      case 0xdb: return str(take(4, (p) => view.getUint32(p)));
      case 0xdc: return arr(take(2, (p) => view.getUint16(p)));
      case 0xdd: return arr(take(4, (p) => view.getUint32(p)));
      case 0xde: return map(take(2, (p) => view.getUint16(p)));
      case 0xdf: return map(take(4, (p) => view.getUint32(p)));
      default: throw new Error(`msgpack type 0x${b.toString(16)} is not supported`);
    }
  }
  return get();
}

/* ---------- Engine.IO 4 + Socket.IO 5 over one WebSocket ---------- */

const CONNECT = 0, DISCONNECT = 1, EVENT = 2, CONNECT_ERROR = 4;

export class AdminSocket {
  /** `auth`: async () => the auth object of the namespace's CONNECT packet.
   *  `onState`: (state, detail) with state "connecting", "connected", "refused", "closed". */
  constructor({ namespace = "/admin", path = "/socket.io/", auth, onState = () => {} }) {
    this.namespace = namespace;
    this.path = path;
    this.auth = auth;
    this.onState = onState;
    this.handlers = new Map();
    this.ws = null;
    this.connected = false;
    this.stopped = false;
    this.backoff = 500;
    this.timer = 0;
  }

  on(event, fn) {
    this.handlers.set(event, fn);
    return () => this.handlers.delete(event);
  }

  emit(event, ...args) {
    if (!this.connected) return false;
    this.ws.send(encode({ type: EVENT, nsp: this.namespace, data: [event, ...args] }));
    return true;
  }

  open() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.onState("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}?EIO=4&transport=websocket`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      const was = this.connected;
      this.connected = false;
      if (this.stopped) return;
      this.onState("closed", was ? "connection lost" : "cannot connect");
      this.timer = setTimeout(() => this.open(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.connected = false;
  }

  async receive(data) {
    if (typeof data === "string") {
      const kind = data[0];
      if (kind === "0") { // Engine.IO open: now open the namespace
        let auth = {};
        try { auth = await this.auth(); } catch (err) { this.onState("refused", String(err)); this.close(); return; }
        this.ws.send(encode({ type: CONNECT, nsp: this.namespace, data: auth }));
      } else if (kind === "2") {
        this.ws.send("3"); // pong
      } else if (kind === "1") {
        this.ws.close();
      }
      return;
    }
    const packet = decode(data);
    if (packet.nsp !== this.namespace) return;
    if (packet.type === CONNECT) {
      this.connected = true;
      this.backoff = 500;
      this.onState("connected");
    } else if (packet.type === CONNECT_ERROR) {
      const reason = packet.data && packet.data.message ? packet.data.message : "refused";
      this.onState("refused", reason);
      this.close();
    } else if (packet.type === EVENT && Array.isArray(packet.data)) {
      const [event, ...args] = packet.data;
      const fn = this.handlers.get(event);
      if (fn) fn(...args);
    } else if (packet.type === DISCONNECT) {
      this.ws.close();
    }
  }
}
