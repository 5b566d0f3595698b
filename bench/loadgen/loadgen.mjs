// Load generator of the Cuewire benchmarks (python -m bench starts it; see bench/README.md).
//
// One process, many Socket.IO sessions over websockets with the msgpack parser, speaking
// docs/protocol.md exactly as the browser snippet does. The scenario comes as one JSON
// argument; progress and results go to stdout as JSON lines:
//   {"t": "connected", ...}      every session received its `session` event
//   {"t": "measure_start"} / {"t": "measure_end"}   the measured window (the orchestrator
//                                reads CPU times of every process at these two lines)
//   {"t": "result", ...}         the figures of the run; the process then exits
// Modes: ingest, latency, idle, timers, batches, audience. Commands on stdin: "close" (idle
// mode), "go" (audience mode: start sending).

import { createRequire } from "node:module";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const { io } = require("socket.io-client");
const msgpackParser = require("socket.io-msgpack-parser");

const cfg = JSON.parse(process.argv[2]);
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const round = (x) => Math.round(x * 1000) / 1000;
const RUN = Math.random().toString(36).slice(2, 8);
// the codes an ack rejects with that ask for the event again later (docs/protocol.md)
const RETRYABLE = new Set(["rate_limited", "store_unavailable"]);
const DISCONNECTS = {}; // reason -> sessions the server or the transport dropped
const DISCONNECT_S = {}; // second since start -> sessions dropped then
let closing = false;

// The ordinary traffic of a visitor on a product page; no event here fires a prompt.
const PLAIN = [
  (s) => ({ type: "scroll", depth: 25 }),
  (s) => ({ type: "element_visible", element: "reviews", ratio: 0.5 }),
  (s) => ({ type: "hover", element: "price", ms: 450 }),
  (s) => ({ type: "scroll", depth: 50 }),
  (s) => ({ type: "click", selector: "#size-m", text: "M", track: "size" }),
  (s) => ({ type: "custom", name: "product_view", props: { product_id: s.product, price: 49.5 } }),
  (s) => ({ type: "scroll", depth: 75 }),
  (s) => ({ type: "visibility", state: "visible", dwell_ms: 1200 }),
  (s) => ({ type: "idle", ms: 5000 }),
];
const PAGE_VIEW = (s) => ({ type: "page_view", referrer: "https://search.example/", title: "Product" });

class Session {
  constructor(index) {
    this.index = index;
    this.seq = 0;
    this.cycle = 0;
    this.product = `p${index % 100}`;
    this.url = `${cfg.origin}/product/${this.product}`;
    this.prompts = [];
    this.socket = null;
  }

  event(body) {
    return { ...body, ts: Date.now(), seq: this.seq++, url: this.url };
  }

  // The mixed stream: a page_view then nine plain events, again and again.
  next() {
    const step = this.cycle++ % (PLAIN.length + 1);
    return this.event(step === 0 ? PAGE_VIEW(this) : PLAIN[step - 1](this));
  }

  plain() {
    return this.event(PLAIN[this.cycle++ % PLAIN.length](this));
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = io(cfg.url, {
        path: "/socket.io",
        transports: ["websocket"],
        parser: msgpackParser,
        forceNew: true,
        reconnection: false,
        timeout: 30000,
        extraHeaders: { Origin: cfg.origin },
        // browsers offer permessage-deflate; `deflate: false` leaves it out
        perMessageDeflate: cfg.deflate === false ? false : { threshold: 1024 },
        auth: {
          site: cfg.site,
          visitor: `v_${RUN}_${cfg.tag || "x"}_${this.index}`,
          session: null,
          tab: `tab_${this.index}`,
          // as the snippet: a batch's prompts come in its ack (a server before that pushes them)
          prompt_in_ack: true,
        },
      });
      this.socket = socket;
      socket.on("session", (info) => {
        this.session = info.session;
        resolve(this);
      });
      // the snippet acks every prompt (a deadline's prompt waits for it: docs/protocol.md)
      socket.on("prompt", (prompt, ack) => {
        this.prompts.push({ at: now(), rule: prompt.rule });
        if (typeof ack === "function") ack();
      });
      socket.on("disconnect", (reason) => {
        if (closing) return;
        DISCONNECTS[reason] = (DISCONNECTS[reason] || 0) + 1;
        const second = Math.floor(now() / 1000);
        DISCONNECT_S[second] = (DISCONNECT_S[second] || 0) + 1;
      });
      socket.on("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    });
  }

  // Emit one batch and resolve with [ack, latency ms] (ack null on timeout).
  send(batch, timeoutMs = 15000) {
    const t0 = now();
    return new Promise((resolve) => {
      this.socket.timeout(timeoutMs).emit("events", batch, (err, ack) => {
        for (const prompt of (!err && ack && ack.prompts) || []) {
          this.prompts.push({ at: now(), rule: prompt.rule });
        }
        resolve([err ? null : ack, now() - t0]);
      });
    });
  }
}

async function connectAll(n, rate, concurrency = 64) {
  const sessions = [];
  const pending = new Set();
  const t0 = now();
  let failures = 0;
  let firstError = null;
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    if (now() < due) await sleep(due - now());
    while (pending.size >= concurrency) await Promise.race(pending);
    const s = new Session(i);
    const p = s
      .connect()
      .then(() => sessions.push(s))
      .catch((err) => {
        failures++;
        firstError = firstError || err.message;
        s.socket?.close();
      })
      .finally(() => pending.delete(p));
    pending.add(p);
  }
  await Promise.all(pending);
  const seconds = (now() - t0) / 1000;
  out({ t: "connected", sessions: sessions.length, failures, first_error: firstError, seconds: round(seconds) });
  sessions.sort((a, b) => a.index - b.index);
  return sessions;
}

function closeAll(sessions) {
  closing = true;
  for (const s of sessions) s.socket.close();
}

// A window of at most `n` batches awaiting their ack, across all sessions (FIFO).
function window(n) {
  let free = n;
  const waiting = [];
  return {
    acquire: () => (free > 0 ? (free--, Promise.resolve()) : new Promise((r) => waiting.push(r))),
    release: () => (waiting.length ? waiting.shift()() : free++),
  };
}

// Closed loop: each session has at most one batch in flight and stays under the
// per-connection rate; all sessions together keep at most `in_flight` batches in flight.
async function ingest(sessions) {
  const batchSize = cfg.batch;
  const gap = (batchSize * 1000) / cfg.max_rate_per_session;
  const slots = window(cfg.in_flight);
  const counts = { batches: 0, accepted: 0, rejected: 0, timeouts: 0 };
  const reasons = {};
  const lat = [];
  let measuring = false;
  let stop = false;
  const loop = async (s) => {
    await sleep(Math.random() * gap);
    while (!stop) {
      const t0 = now();
      const batch = [];
      for (let i = 0; i < batchSize; i++) batch.push(s.next());
      await slots.acquire();
      const [ack, ms] = await s.send(batch);
      slots.release();
      if (measuring) {
        if (!ack) counts.timeouts++;
        else {
          counts.batches++;
          counts.accepted += ack.accepted;
          counts.rejected += ack.rejected.length;
          for (const r of ack.rejected) {
            reasons[r.code] = (reasons[r.code] || 0) + 1;
          }
          if (lat.length < 200000) lat.push(round(ms));
        }
      }
      await sleep(t0 + gap - now());
    }
  };
  const loops = sessions.map(loop);
  await sleep(cfg.warmup_s * 1000);
  measuring = true;
  const t0 = now();
  out({ t: "measure_start" });
  await sleep(cfg.duration_s * 1000);
  measuring = false;
  const seconds = (now() - t0) / 1000;
  out({ t: "measure_end" });
  stop = true;
  await Promise.all(loops);
  return { ...counts, reasons, seconds: round(seconds), ack_ms: lat };
}

// Open loop, like a browser tab: every session sends one event a second whether or not the
// earlier ones were acknowledged (at most 4 batches in flight, as the snippet does; a tick
// with 4 in flight is skipped and counted). Once, in the window, the event is the exit
// intent that fires the prompt: one event -> prompt sample per session.
async function latency(sessions) {
  const ackMs = [];
  const samples = [];
  const counts = { sent: 0, rejected: 0, timeouts: 0, skipped: 0, resent: 0 };
  const reasons = {};
  const ticks = cfg.warmup_s + cfg.window_s;
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  out({ t: "measure_start" });
  const start = now() + 50;
  const run = async (s) => {
    const phase = Math.random() * 1000;
    const fireAt = cfg.warmup_s + Math.floor(Math.random() * cfg.window_s);
    let inFlight = 0;
    let sentAt = -1;
    const acks = [];
    for (let k = 0; k < ticks; k++) {
      await sleep(start + phase + k * 1000 - now());
      const fire = k === fireAt;
      if (!fire && inFlight >= 4) {
        counts.skipped++;
        continue;
      }
      const ev = fire ? s.event({ type: "exit_intent" }) : s.next();
      if (fire) sentAt = now();
      // the qualifying event is resent (same seq) after 1 s when the server asks for it
      // later, up to `resend_tries` times, as docs/protocol.md says a client does; its sample
      // still counts from the first send
      const attempt = async (tries) => {
        inFlight++;
        counts.sent++;
        const [ack, ms] = await s.send([ev], cfg.ack_timeout_s * 1000);
        inFlight--;
        if (!ack) {
          counts.timeouts++;
          return;
        }
        for (const r of ack.rejected) {
          counts.rejected++;
          reasons[r.code] = (reasons[r.code] || 0) + 1;
        }
        if (k >= cfg.warmup_s) ackMs.push(round(ms));
        const later = ack.rejected.some((r) => RETRYABLE.has(r.code));
        if (fire && later && tries < cfg.resend_tries) {
          counts.resent++;
          await sleep(1000);
          await attempt(tries + 1);
        }
      };
      acks.push(attempt(0));
    }
    await Promise.all(acks);
    const deadline = now() + cfg.drain_s * 1000;
    while (!s.prompts.some((p) => p.rule === cfg.rule) && now() < deadline) await sleep(20);
    const got = s.prompts.find((p) => p.rule === cfg.rule);
    if (got && sentAt >= 0) samples.push(round(got.at - sentAt));
  };
  await Promise.all(sessions.map(run));
  loopDelay.disable();
  out({ t: "measure_end" });
  const missing = sessions.length - samples.length;
  return { prompt_ms: samples, ack_ms: ackMs, missing, reasons, loop_delay_ms: delays(loopDelay), ...counts };
}

// Each session arms the short absence rule once (a page view and the start event), at a
// random time in the spread; the prompt should arrive `within_s` later.
// Client-side lateness = receipt - send - within.
async function timers(sessions) {
  const late = [];
  let missing = 0;
  out({ t: "measure_start" });
  const run = async (s) => {
    await sleep(Math.random() * cfg.spread_s * 1000);
    const t0 = now();
    const arm = [s.event(PAGE_VIEW(s)), s.event({ type: "custom", name: cfg.start_event })];
    const [ack] = await s.send(arm);
    if (!ack || ack.accepted !== arm.length) {
      missing++;
      return;
    }
    const deadline = t0 + cfg.within_s * 1000 + 10000;
    while (!s.prompts.some((p) => p.rule === cfg.rule) && now() < deadline) await sleep(5);
    const got = s.prompts.find((p) => p.rule === cfg.rule);
    if (got) late.push(round(got.at - t0 - cfg.within_s * 1000));
    else missing++;
  };
  await Promise.all(sessions.map(run));
  out({ t: "measure_end" });
  return { client_lateness_ms: late, missing };
}

// A fixed number of batches of one composition per session, one at a time (Redis cost).
async function batches(sessions) {
  const make = {
    single: (s) => [s.plain()],
    plain: (s) => Array.from({ length: 5 }, () => s.plain()),
    page_view: (s) => [s.event(PAGE_VIEW(s)), ...Array.from({ length: 4 }, () => s.plain())],
    prompt: (s) => [s.event({ type: "exit_intent" })],
  }[cfg.kind];
  const gap = 5 * (1000 / 45);
  let sent = 0;
  let accepted = 0;
  let bad = 0;
  out({ t: "measure_start" });
  // The orchestrator reads Redis's counters when it gets the line: give it time to, or a short
  // run (30 prompt batches) is over before the window opens.
  await sleep(300);
  await Promise.all(
    sessions.map(async (s) => {
      for (let i = 0; i < cfg.per_session; i++) {
        const t0 = now();
        const [ack] = await s.send(make(s));
        sent++;
        if (ack) accepted += ack.accepted;
        if (!ack || ack.rejected.length) bad++;
        await sleep(t0 + gap - now());
      }
    }),
  );
  await sleep(300); // let the prompt-side writes that follow the ack land
  out({ t: "measure_end" });
  // ... and let the orchestrator read the counters before the sockets close: each close
  // releases its socket record (one more script call), which is not the batches' cost
  await sleep(300);
  return { batches: sent, accepted, bad };
}

// Resolve when stdin brings the line `word`.
async function command(word) {
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === word) break;
  }
  rl.close();
}

// Many sessions that mostly read, open loop: once the orchestrator says "go" (it reads the
// server's RSS with every session connected and idle first), each session sends one event
// every 1/rate s at its own random phase, whether or not the last one was acked. Latency
// counts from the tick's due time, so a stalled generator shows as late sends (send_lag_ms)
// instead of hiding them; the generator's own event-loop delay is reported beside it. A
// `fire_share` of the sessions sends the exit intent at one random tick of the window: one
// event -> prompt sample each, when the server runs that rule.
async function audience(sessions) {
  await command("go");
  const period = 1000 / cfg.rate;
  const ticks = Math.ceil(((cfg.warmup_s + cfg.window_s) * 1000) / period);
  const firstMeasured = Math.ceil((cfg.warmup_s * 1000) / period);
  const ackMs = [];
  const sendLag = [];
  const samples = [];
  const counts = { sent: 0, rejected: 0, timeouts: 0, firing: 0 };
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const start = now() + 50;
  let measuring = false;
  const measure = (async () => {
    await sleep(start + firstMeasured * period - now());
    measuring = true;
    loopDelay.enable();
    out({ t: "measure_start" });
  })();
  const run = async (s) => {
    const phase = Math.random() * period;
    const fires = Math.random() < cfg.fire_share;
    const fireAt = firstMeasured + Math.floor(Math.random() * (ticks - firstMeasured));
    let firedAt = -1;
    const acks = [];
    for (let k = 0; k < ticks; k++) {
      const due = start + phase + k * period;
      await sleep(due - now());
      const fire = fires && k === fireAt;
      const ev = fire ? s.event({ type: "exit_intent" }) : s.plain();
      const counted = measuring;
      if (counted) sendLag.push(round(now() - due));
      if (fire) {
        firedAt = due;
        counts.firing++;
      }
      counts.sent++;
      acks.push(
        s.send([ev], cfg.ack_timeout_s * 1000).then(([ack]) => {
          if (!ack) counts.timeouts++;
          else counts.rejected += ack.rejected.length;
          if (counted && ack) ackMs.push(round(now() - due));
        }),
      );
    }
    await Promise.all(acks);
    if (firedAt < 0 || !cfg.rule) return;
    const deadline = now() + cfg.drain_s * 1000;
    while (!s.prompts.some((p) => p.rule === cfg.rule) && now() < deadline) await sleep(20);
    const got = s.prompts.find((p) => p.rule === cfg.rule);
    if (got) samples.push(round(got.at - firedAt));
  };
  await Promise.all([measure, ...sessions.map(run)]);
  loopDelay.disable();
  out({ t: "measure_end" });
  const missing = cfg.rule ? counts.firing - samples.length : 0;
  return { ack_ms: ackMs, send_lag_ms: sendLag, prompt_ms: samples, missing, loop_delay_ms: delays(loopDelay), ...counts };
}

// The generator's own event-loop delay (a stall of its own would pass for the server's):
// the histogram holds each 10 ms tick's full wait, so keep only the delay beyond it.
function delays(loopDelay) {
  const late = (ns) => round(Math.max(0, ns / 1e6 - 10));
  return { p50: late(loopDelay.percentile(50)), p99: late(loopDelay.percentile(99)), max: late(loopDelay.max) };
}

async function idle(sessions) {
  await command("close");
  const alive = sessions.filter((s) => s.socket.connected).length;
  return { alive };
}

const MODES = { ingest, latency, timers, batches, idle, audience };

async function main() {
  const sessions = await connectAll(cfg.sessions, cfg.connect_rate || 1000);
  const result = await MODES[cfg.mode](sessions);
  closeAll(sessions);
  const usage = process.resourceUsage();
  const line = JSON.stringify({
    t: "result",
    mode: cfg.mode,
    sessions: sessions.length,
    cpu_s: round((usage.userCPUTime + usage.systemCPUTime) / 1e6),
    max_rss_kb: usage.maxRSS,
    disconnects: DISCONNECTS,
    disconnects_by_second: DISCONNECT_S,
    ...result,
  });
  // exit only once the (possibly large) line is flushed to the pipe
  process.stdout.write(`${line}\n`, () => process.exit(0));
}

main().catch((err) => {
  out({ t: "error", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
