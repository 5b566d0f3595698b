import { describe, expect, it } from "vitest";
import { FORM_HESITATION_MS, formDelay, retype, timing } from "../src/forms";

describe("form hesitation delay", () => {
  it("defaults to 5 s when the attribute is absent or out of range", () => {
    expect(FORM_HESITATION_MS).toBe(5000);
    for (const attr of [null, undefined, "", "x", "50", "-1", "700000"])
      expect(formDelay(attr)).toBe(5000);
  });
  it("takes milliseconds from 100 to 600000, rounded", () => {
    expect(formDelay("800")).toBe(800);
    expect(formDelay(" 1200.4 ")).toBe(1200);
    expect(formDelay("600000")).toBe(600000);
  });
});

describe("field retyped", () => {
  /** Feeds the emptiness of successive values; returns at which inputs a retype is seen. */
  function retypes(...values: string[]): number[] {
    let had = false;
    let cleared = false;
    const out: number[] = [];
    values.forEach((v, i) => {
      const [c, r] = retype(had, cleared, !v);
      cleared = c;
      had = !!v;
      if (r) out.push(i);
    });
    return out;
  }
  it("is the first input after the field was emptied", () => {
    expect(retypes("a", "ab", "a", "", "x", "xy")).toEqual([4]);
    expect(retypes("a", "", "", "b", "", "c")).toEqual([3, 5]);
  });
  it("is not typing into a field that was always empty, or deleting part of it", () => {
    expect(retypes("", "a", "ab", "a", "ab")).toEqual([]);
  });
});

describe("field timing", () => {
  it("rounds, clips names to 128 characters and keeps 50 fields at most", () => {
    const ms: Record<string, number> = { email: 1200.6 };
    ms["x".repeat(200)] = 5;
    for (let i = 0; i < 60; i++) ms["f" + i] = i;
    const out = timing(ms);
    expect(Object.keys(out)).toHaveLength(50);
    expect(out.email).toBe(1201);
    expect(out["x".repeat(128)]).toBe(5);
  });
});
