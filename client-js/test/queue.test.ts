import { describe, expect, it } from "vitest";
import { type DropReason, type QueueOptions, createQueue } from "../src/queue";
import type { WireEvent } from "../src/types";
import { MAX_BATCH_BYTES, MAX_EVENT_BYTES, encodedSize } from "../src/wire";

const URL = "https://shop.example/p";

function queue(over: Partial<QueueOptions> = {}, start = { seq: 0, events: [] as WireEvent[] }) {
  const drops: [DropReason, WireEvent][] = [];
  const q = createQueue(
    {
      limit: 500,
      maxBytes: 1 << 20,
      maxEventBytes: MAX_EVENT_BYTES,
      maxTries: 3,
      onDrop: (reason, event) => drops.push([reason, event]),
      ...over,
    },
    start,
  );
  return { q, drops };
}

const seqs = (events: WireEvent[] | null) => (events || []).map((e) => e.seq);

/** Props of `keys` strings of 2,000 characters: about 2 KB each once encoded. */
function wide(keys: number): Record<string, string> {
  const props: Record<string, string> = {};
  for (let k = 0; k < keys; k++) props["k" + k] = "y".repeat(2000);
  return props;
}

describe("seq numbering", () => {
  it("numbers events from the tab's next seq, one by one", () => {
    const { q } = queue({}, { seq: 7, events: [] });
    q.add("click", { selector: "a" }, URL);
    q.add("scroll", { depth: 25 }, URL);
    expect(seqs(q.take(100, MAX_BATCH_BYTES))).toEqual([7, 8]);
    expect(q.next()).toBe(9);
  });

  it("sends the previous page's unacknowledged events first, with their own seq", () => {
    const left = [{ type: "click", ts: 1, seq: 3, url: URL, selector: "a" }];
    const { q } = queue({}, { seq: 4, events: left });
    q.add("scroll", { depth: 25 }, URL);
    expect(seqs(q.take(100, MAX_BATCH_BYTES))).toEqual([3, 4]);
  });

  it("does not use a seq for an event it refuses", () => {
    const { q, drops } = queue();
    q.add("click", { selector: "a" }, URL);
    expect(q.add("custom", { name: "big", props: wide(50) }, URL)).toBe(false);
    q.add("click", { selector: "b" }, URL);
    expect(seqs(q.unacked())).toEqual([0, 1]);
    expect(drops.map((d) => d[0])).toEqual(["too_large"]);
  });
});

describe("release and keep", () => {
  it("forgets acknowledged events and resends kept ones in seq order", () => {
    const { q } = queue();
    for (let i = 0; i < 5; i++) q.add("click", { selector: "a" }, URL);
    const first = q.take(3, MAX_BATCH_BYTES)!;
    q.add("click", { selector: "b" }, URL);
    q.release(first, [first[1]]);
    expect(seqs(q.unacked())).toEqual([1, 3, 4, 5]);
    expect(seqs(q.take(100, MAX_BATCH_BYTES))).toEqual([1, 3, 4, 5]);
  });

  it("ignores a batch released twice, or after clear", () => {
    const { q } = queue();
    q.add("click", { selector: "a" }, URL);
    const batch = q.take(10, MAX_BATCH_BYTES)!;
    q.release(batch, batch);
    q.release(batch, batch);
    expect(seqs(q.unacked())).toEqual([0]);
    const again = q.take(10, MAX_BATCH_BYTES)!;
    q.clear();
    q.release(again, again);
    expect(q.unacked()).toEqual([]);
  });

  it("drops a batch given back unanswered maxTries times, and only then", () => {
    const { q, drops } = queue({ maxTries: 3 });
    q.add("click", { selector: "a" }, URL);
    for (let i = 0; i < 2; i++) q.retry(q.take(10, MAX_BATCH_BYTES)!);
    expect(seqs(q.unacked())).toEqual([0]);
    q.retry(q.take(10, MAX_BATCH_BYTES)!);
    expect(q.unacked()).toEqual([]);
    expect(drops.map((d) => [d[0], d[1].seq])).toEqual([["too_many_tries", 0]]);
  });
});

describe("limits", () => {
  it("keeps at most `limit` events, dropping the oldest pending ones", () => {
    const { q, drops } = queue({ limit: 3 });
    for (let i = 0; i < 5; i++) q.add("click", { selector: "a" }, URL);
    expect(seqs(q.unacked())).toEqual([2, 3, 4]);
    expect(drops.map((d) => [d[0], d[1].seq])).toEqual([
      ["queue_full", 0],
      ["queue_full", 1],
    ]);
  });

  it("counts in-flight events towards the limit but never drops them", () => {
    const { q } = queue({ limit: 2 });
    q.add("click", { selector: "a" }, URL);
    q.add("click", { selector: "a" }, URL);
    const flying = q.take(2, MAX_BATCH_BYTES)!;
    q.add("click", { selector: "a" }, URL);
    expect(seqs(q.unacked())).toEqual([0, 1]);
    q.release(flying, []);
    q.add("click", { selector: "a" }, URL);
    expect(seqs(q.unacked())).toEqual([3]);
  });

  it("keeps at most maxBytes encoded", () => {
    const { q } = queue({ maxBytes: 32_000 }); // room for three events of ~10.1 KB
    for (let i = 0; i < 5; i++) q.add("custom", { name: "n", props: wide(5) }, URL);
    expect(seqs(q.unacked())).toEqual([2, 3, 4]);
  });
});

describe("batches by encoded size", () => {
  it("cuts a burst of large events into batches under the byte budget", () => {
    const { q } = queue();
    const props: Record<string, string> = {};
    for (let k = 0; k < 50; k++) props["k" + k] = "é".repeat(100); // 2 bytes per character
    for (let i = 0; i < 40; i++) expect(q.add("custom", { name: "big", props }, URL)).toBe(true);
    const batches: WireEvent[][] = [];
    let batch;
    while ((batch = q.take(100, MAX_BATCH_BYTES))) batches.push(batch);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.flat().map((e) => e.seq)).toEqual([...Array(40).keys()]);
    for (const b of batches) expect(encodedSize(b)).toBeLessThanOrEqual(MAX_BATCH_BYTES + 5);
  });

  it("still cuts by count for small events", () => {
    const { q } = queue();
    for (let i = 0; i < 250; i++) q.add("click", { selector: "a" }, URL);
    expect([1, 2, 3].map(() => q.take(100, MAX_BATCH_BYTES)!.length)).toEqual([100, 100, 50]);
  });

  it("refuses an event over maxEventBytes, measured in UTF-8 bytes", () => {
    const { q } = queue({ maxEventBytes: 1000 });
    expect(q.add("custom", { name: "n", props: { x: "a".repeat(900) } }, URL)).toBe(true);
    expect(q.add("custom", { name: "n", props: { x: "€".repeat(400) } }, URL)).toBe(false);
  });

  it("drops a too-large event the previous page left behind", () => {
    const left = [{ type: "custom", ts: 1, seq: 0, url: URL, name: "n", big: "x".repeat(2000) }];
    const { q, drops } = queue({ maxEventBytes: 1000 }, { seq: 1, events: left });
    expect(q.unacked()).toEqual([]);
    expect(drops.map((d) => d[0])).toEqual(["too_large"]);
  });

  it("cuts every string field to 2,048 characters (a long title must not cost the event)", () => {
    const { q } = queue();
    q.add("page_view", { title: "t".repeat(5000), referrer: "r".repeat(3000) }, URL);
    const [event] = q.unacked();
    expect([(event.title as string).length, (event.referrer as string).length]).toEqual([
      2048, 2048,
    ]);
  });

  it("replaces lone surrogates, which would make the message undecodable", () => {
    const { q } = queue();
    q.add("custom", { name: "n\ud800", props: { ["k\udc00"]: "v\ud83d" } }, URL + "\udfff");
    const [event] = q.unacked();
    expect(event.name).toBe("n\ufffd");
    expect(event.props).toEqual({ "k\ufffd": "v\ufffd" });
    expect(event.url).toBe(URL + "\ufffd");
    q.add("custom", { name: "ok 😀" }, URL);
    expect(q.unacked()[1].name).toBe("ok 😀");
  });
});
