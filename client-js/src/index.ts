/** Entry point of cw.js: reads the script tag, wires identity, consent, transport, collectors
 * and renderer together, owns their teardown, and exposes the one global, `window.cuewire`.
 *
 *   <script src="https://HOST/cw.js" data-site="KEY" async></script>
 *
 * Calls made before the snippet loads are queued by the stub the README puts in front of the
 * tag (an array whose method shims push `[method, ...args]`):
 *   window.cuewire=window.cuewire||[];["track","identify","consent","on","off"].forEach(...)
 * Once loaded, the snippet runs the queued calls in order (consent first) and replaces the
 * stub, shims included, with the API below.
 */
import { ownScript } from "./script";
import type { Collector, Remover } from "./types";
import { createIdentity } from "./identity";
import { tabStore } from "./storage";
import { takeTab } from "./tab";
import { createConsent, doNotTrack } from "./consent";
import { type Stats, createTransport } from "./transport";
import { createHooks, type Handler } from "./hooks";
import { createRenderer } from "./render";
import { name, sanitizeMap } from "./sanitize";
import { listen, removeAll } from "./dom";
import { startPageview } from "./pageview";
import { startClicks } from "./clicks";
import { startScroll } from "./scroll";
import { startVisibility } from "./visibility";
import { startElements } from "./elements";
import { startHover } from "./hover";
import { startHesitation, thresholds } from "./hesitation";
import { startRage } from "./rage";
import { startDeadClicks } from "./deadclicks";
import { startIdle } from "./idle";
import { startExitIntent } from "./exitintent";
import { startAttention } from "./attention";
import { formDelay, startForms } from "./forms";
import { startCopy } from "./copy";
import { reportHeatmapSize } from "./heatframe";

export interface Cuewire {
  /** `custom {name, props}`. */
  track(name: string, props?: Record<string, unknown>): void;
  /** `identify {user_id, traits, signature}`: `signature` is the hex HMAC-SHA256 of the user
   * id with the site's identity secret, computed by the site's backend. */
  identify(
    userId: string,
    traits?: Record<string, unknown> | null,
    options?: { signature?: string },
  ): void;
  /** The visitor's consent: false stops sending and removes every collector (listeners,
   * observers, timers) and is remembered; true starts them again with a new `page_view`. */
  consent(granted: boolean): void;
  /** Ends the snippet on this page: every collector, the connection and the prompt on
   * screen removed; the other calls do nothing afterwards. */
  stop(): void;
  /** Subscribes to "prompt:show", "prompt:click", "prompt:dismiss", "prompt:snooze",
   * "prompt:optout" or "prompt:expire"; returns the remover. */
  on(event: string, fn: Handler): Remover;
  off(event: string, fn: Handler): void;
  /** Runs a queued call `[method, ...args]` (the stub's `push`). */
  push(call: ArrayLike<unknown>): void;
  /** What the snippet sent, dropped (and why) and how often it reconnected: for tests and
   * debugging a page. */
  stats(): Stats;
  readonly version: string;
}

declare global {
  interface Window {
    cuewire?: Cuewire | ArrayLike<unknown>;
  }
}

function main(): void {
  const queued = window.cuewire;
  if (queued && typeof (queued as Cuewire).version === "string") return; // included twice
  reportHeatmapSize(); // only in the QA heatmap's frame
  const stub =
    queued && typeof (queued as ArrayLike<unknown>).length === "number"
      ? toArray(queued).map(toArray)
      : [];

  const script = ownScript();
  const site = script && script.getAttribute("data-site");
  if (!script || !site) {
    if (DEBUG) console.warn("[cuewire] no <script src=.../cw.js data-site=...> found");
    return;
  }

  // QA mode (?cuewire_qa=TOKEN, kept for the tab): the overlay is its own bundle (src/qa/).
  if (/[?&]cuewire_qa=/.test(location.search) || tabStore.get("cw_qa")) {
    const qa = document.createElement("script");
    qa.src = new URL("cw-qa.js", script.src).href;
    qa.setAttribute("data-site", site);
    document.head.appendChild(qa);
  }
  const consent = createConsent(script.getAttribute("data-consent") === "required");
  // Queued consent decisions apply before anything is collected or sent.
  for (const call of stub) if (call[0] === "consent") consent.set(!!call[1]);

  let collectors: Collector[] = [];
  const removers: Remover[] = [];
  let ended = false;
  const hooks = createHooks();
  const tab = takeTab();
  const transport = createTransport({
    origin: new URL(script.src, location.href).origin,
    site,
    identity: createIdentity(tab.id),
    tab,
    dnt: doNotTrack(),
    enabled: consent.granted(),
    onFatal: teardown,
    // the server forgot the visitor: the collectors start over as on a new page (a page_view
    // opens the fresh session's history)
    onReset: () => {
      stopCollectors();
      startCollectors();
    },
  });
  const send = transport.send;
  const renderer = createRenderer({ report: send, hook: hooks.emit, drain: transport.drain });
  removers.push(transport.onPrompt(renderer.show), renderer.stop, transport.stop);

  function stopCollectors(): void {
    collectors.forEach((c) => c.stop());
    collectors = [];
  }

  function teardown(): void {
    ended = true;
    stopCollectors();
    removeAll(removers);
  }

  const pageChanged = (previousUrl: string) =>
    collectors.forEach((c) => c.reset && c.reset(previousUrl));
  // Only while consent is granted: without it nothing listens, observes or waits.
  function startCollectors(): void {
    if (collectors.length || ended) return;
    const attention = startAttention(send);
    collectors = [
      startPageview(send, pageChanged),
      startClicks(send),
      startScroll(send),
      attention,
      startVisibility(send, attention.activeMs),
      startElements(send),
      startHover(send),
      startHesitation(send, thresholds(script!.getAttribute("data-hesitation"))),
      startRage(send),
      startDeadClicks(send),
      startIdle(send),
      startExitIntent(send),
      startForms(send, formDelay(script!.getAttribute("data-form-hesitation"))),
      startCopy(send),
    ];
  }
  if (consent.granted()) startCollectors();

  // Registered after the collectors, so that their last events for the same DOM event (form
  // abandon on pagehide, visibility hidden) are queued before the queue is saved.
  removers.push(
    listen(window, "pagehide", transport.hide),
    listen(window, "pageshow", transport.show),
    listen(document, "visibilitychange", () =>
      document.visibilityState === "hidden" ? transport.hide() : transport.show(),
    ),
  );

  const api: Cuewire = {
    version: VERSION,
    track(eventName, props) {
      const n = name(eventName, 128);
      if (n) send("custom", { name: n, props: props == null ? undefined : sanitizeMap(props) });
    },
    identify(userId, traits, options) {
      const id = name(userId, 256);
      const signature = options && options.signature;
      if (id)
        send("identify", {
          user_id: id,
          traits: traits == null ? undefined : sanitizeMap(traits),
          signature: typeof signature === "string" && signature ? signature.slice(0, 128) : undefined,
        });
    },
    consent(granted) {
      const g = !!granted;
      if (!consent.set(g) || ended) return;
      if (g) {
        transport.resume();
        startCollectors(); // sends the page_view
      } else {
        stopCollectors(); // a form's abandon, say, must not follow the refusal
        transport.pause();
      }
    },
    stop: teardown,
    on: hooks.on,
    off: hooks.off,
    stats: transport.stats,
    push(call) {
      const [method, ...args] = toArray(call);
      const fn = (api as unknown as Record<string, unknown>)[method as string];
      if (typeof fn === "function" && method !== "push" && method !== "stats" && !ended)
        fn.apply(api, args);
    },
  };
  window.cuewire = api;
  for (const call of stub) if (call[0] !== "consent") api.push(call);
}

function toArray(value: unknown): unknown[] {
  return value && typeof value === "object" ? Array.prototype.slice.call(value) : [];
}

main();
