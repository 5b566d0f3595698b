import { describe, expect, it } from "vitest";
import { backoff, jitter, readRefusal, settleAck } from "../src/acks";
import type { WireEvent } from "../src/types";

const batch: WireEvent[] = [0, 1, 2].map((seq) => ({ type: "click", ts: 1, seq, url: "u" }));

describe("acks", () => {
  it("keeps nothing when all is accepted", () => {
    const s = settleAck(batch, { accepted: 3, rejected: [] });
    expect(s.keep).toEqual([]);
    expect(s.refused).toEqual([]);
  });

  it("keeps rate-limited events and refuses every other rejection", () => {
    const s = settleAck(batch, {
      accepted: 1,
      rejected: [
        { index: 0, code: "invalid_event", reason: "click: Object missing required field" },
        { index: 2, code: "rate_limited", reason: "rate limit" },
      ],
      retry_ms: 800,
    });
    expect(s.keep.map((e) => e.seq)).toEqual([2]);
    expect(s.refused.map((r) => r.event!.seq)).toEqual([0]);
    expect(s.retryMs).toBe(800);
  });

  it("never keeps on the words of a reason", () => {
    const s = settleAck(batch, {
      accepted: 0,
      rejected: [{ index: -1, reason: "store unavailable, resend later" }],
    });
    expect(s.keep).toEqual([]);
    expect(s.refused.length).toBe(3);
  });

  it("keeps the whole batch on store_unavailable", () => {
    const s = settleAck(batch, {
      accepted: 0,
      rejected: [{ index: -1, code: "store_unavailable", reason: "" }],
      retry_ms: 2000,
    });
    expect(s.keep).toEqual(batch);
    expect(s.retryMs).toBe(2000);
    expect(s.reconnect).toBe(false);
  });

  it("keeps the batch and reconnects on not_connected", () => {
    const s = settleAck(batch, { accepted: 0, rejected: [{ index: -1, code: "not_connected" }] });
    expect(s.keep).toEqual(batch);
    expect(s.reconnect).toBe(true);
  });

  it("refuses the whole batch on a permanent batch code", () => {
    for (const code of ["invalid_batch", "batch_too_large"]) {
      const s = settleAck(batch, { accepted: 0, rejected: [{ index: -1, code }] });
      expect(s.keep).toEqual([]);
      expect(s.refused.length).toBe(3);
    }
  });

  it("ignores a rejection naming no event of the batch, or naming one twice", () => {
    const s = settleAck(batch, {
      accepted: 2,
      rejected: [
        { index: 9, code: "rate_limited" },
        { index: 1, code: "rate_limited" },
        { index: 1, code: "rate_limited" },
      ],
    });
    expect(s.keep.map((e) => e.seq)).toEqual([1]);
    expect(s.retryMs).toBe(null);
  });
});

describe("connect refusals", () => {
  const refuse = (data: unknown) => readRefusal({ message: "x", data }, "demo", "http://a:1");

  it("stops for good on the permanent codes", () => {
    for (const code of ["invalid_auth", "unknown_site", "origin_not_allowed", "do_not_track"])
      expect(refuse({ code }).fatal).toBe(true);
  });

  it("retries on overloaded and store_unavailable, after retry_ms", () => {
    expect(refuse({ code: "overloaded", retry_ms: 5000 })).toMatchObject({
      fatal: false,
      retryMs: 5000,
      explain: null,
    });
    expect(refuse({ code: "store_unavailable", retry_ms: null }).retryMs).toBe(null);
  });

  it("retries when there is no code (a network error, an older server)", () => {
    expect(refuse(undefined).fatal).toBe(false);
    expect(readRefusal({ message: "websocket error" }, "demo", "http://a:1").fatal).toBe(false);
  });

  it("explains a wrong origin and an unknown site key in one line", () => {
    expect(refuse({ code: "origin_not_allowed" }).explain).toBe(
      '[cuewire] site key "demo" refused: origin http://a:1 is not allowed ' +
        "(check the sites file: scheme, www, port)",
    );
    expect(refuse({ code: "unknown_site" }).explain).toContain('site key "demo" refused');
    expect(refuse({ code: "do_not_track" }).explain).toBe(null);
  });
});

describe("backoff", () => {
  it("grows exponentially, capped, between half and all of the step", () => {
    expect(backoff(0, null, () => 0)).toBe(500);
    expect(backoff(0, null, () => 1)).toBe(1000);
    expect(backoff(3, null, () => 1)).toBe(8000);
    expect(backoff(50, null, () => 1)).toBe(30000);
    expect(backoff(50, null, () => 0)).toBe(15000);
  });

  it("never comes before the server's retry_ms", () => {
    expect(backoff(0, 10000, () => 0)).toBe(10000);
    expect(backoff(0, 10000, () => 1)).toBe(15000);
    expect(backoff(10, 100, () => 0)).toBe(15000);
  });

  it("jitters retry_ms by up to half", () => {
    expect(jitter(1000, () => 0)).toBe(1000);
    expect(jitter(1000, () => 1)).toBe(1500);
  });
});
