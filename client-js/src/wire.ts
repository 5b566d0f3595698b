/** Sizes of what goes on the wire, measured as the server will receive it.
 *
 * socket.io-msgpack-parser encodes a packet with notepack.io and the websocket carries those
 * bytes as one message; an `events` packet is `{type, data: ["events", batch], nsp, id}`, and
 * a msgpack array is its header followed by its elements, so a batch costs the sum of its
 * events' encodings plus a small fixed overhead. The server closes the connection on a message
 * over its limit (64 KiB by default, docs/protocol.md), after which the client would reconnect
 * and send the same message again: batches are therefore cut well below it, and an event that
 * cannot fit in a batch on its own is never queued. */
import { encode } from "notepack.io";

/** The server's default `max_payload_bytes`. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** The packet around the events (type, "events", nsp, ack id, array headers), with room to
 * spare: the budget of one batch's events. */
export const MAX_BATCH_BYTES = MAX_MESSAGE_BYTES - 8 * 1024;
/** One event larger than this is dropped in the browser: the server refuses an event over its
 * `max_event_bytes` (16 KiB, JSON-encoded, docs/protocol.md "Limits") for good. msgpack is no
 * larger than JSON for our events, and 1 KiB stays spare. */
export const MAX_EVENT_BYTES = 15 * 1024;

/** The bytes `value` takes in a msgpack-encoded packet. */
export function encodedSize(value: unknown): number {
  return (encode(value) as { byteLength: number }).byteLength;
}

const LONE_SURROGATE = /\p{Cs}/gu;

/** `text` with every lone surrogate (a string cut inside a pair, or built that way by the
 * page) replaced by U+FFFD: the server decodes strings as UTF-8, and a lone surrogate would
 * make the whole message undecodable. */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd");
}
