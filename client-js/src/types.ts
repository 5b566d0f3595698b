/** Types shared by the snippet's modules. */

/** Undoes one subscription (listener, observer, timer, patch). */
export type Remover = () => void;

/** A value allowed in `props` / `traits` maps and in event fields. */
export type Scalar = string | number | boolean | null;

/** The type-specific fields of an event (docs/protocol.md, "Sending events"). */
export type Fields = Record<string, Scalar | Record<string, Scalar> | undefined>;

/** An event as it travels: the fields plus type, ts, seq and url. */
export interface WireEvent {
  type: string;
  ts: number;
  seq: number;
  url: string;
  [field: string]: unknown;
}

/** Queues one event. `url` defaults to location.href (given explicitly for events that
 * belong to the page being left). */
export type Send = (type: string, fields?: Fields, url?: string) => void;

/** A collector: `stop` undoes everything it set up; `reset` (page-scoped collectors)
 * forgets the per-page state when a single-page app changes route. */
export interface Collector {
  stop: Remover;
  reset?: (previousUrl: string) => void;
}

/** The `prompt` event the server emits. */
export interface Prompt {
  id: string;
  rule: string;
  template: string;
  variant: string | null;
  kind: string;
  html: string;
  /** Not modal: close by itself after this long unattended (0: stays). */
  dismiss_after_ms?: number;
  /** CSS selectors of page elements the prompt must not cover. */
  avoid?: string[];
  /** The id of a prompt on screen this one takes the place of. */
  replaces?: string | null;
}
