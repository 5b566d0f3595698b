import { describe, expect, it } from "vitest";
import { DEFAULT_THRESHOLDS, thresholds } from "../src/hesitation";
import { RAGE_RADIUS_PX, RAGE_WINDOW_MS, addClick, isRage, type Burst } from "../src/rage";

describe("hesitation thresholds", () => {
  it("defaults to 1.5 s and 4 s when the attribute is absent, empty or all invalid", () => {
    expect(DEFAULT_THRESHOLDS).toEqual([1500, 4000]);
    for (const attr of [null, undefined, "", " , ", "abc", "-5,0,50", "700000"])
      expect(thresholds(attr)).toEqual([1500, 4000]);
  });

  it("sorts, rounds and deduplicates, drops what is out of range, keeps four at most", () => {
    expect(thresholds("4000, 800")).toEqual([800, 4000]);
    expect(thresholds("1000,1000.4,x,50,2000")).toEqual([1000, 2000]);
    expect(thresholds("100,200,300,400,500")).toEqual([100, 200, 300, 400]);
    expect(thresholds("600000,600001")).toEqual([600000]);
  });

  it("gives a fresh array each time (the defaults cannot be changed through it)", () => {
    thresholds(null).push(1);
    expect(thresholds(null)).toEqual([1500, 4000]);
  });
});

function clicks(...at: [number, number, number][]): Burst[] {
  const out: Burst[] = [];
  let burst: Burst | null = null;
  for (const [t, x, y] of at) {
    burst = addClick(burst, t, x, y);
    if (!out.includes(burst)) out.push(burst);
  }
  return out;
}

describe("rage window", () => {
  it("three clicks within the window and the radius are one rage burst", () => {
    const bursts = clicks([0, 100, 100], [200, 110, 105], [400, 95, 120]);
    expect(bursts).toHaveLength(1);
    expect(bursts[0].times).toEqual([0, 200, 400]);
    expect(isRage(bursts[0])).toBe(true);
  });

  it("two clicks, or three spread beyond the window, are not rage", () => {
    expect(isRage(clicks([0, 0, 0], [100, 0, 0])[0])).toBe(false);
    const slow = clicks([0, 0, 0], [RAGE_WINDOW_MS, 0, 0], [2 * RAGE_WINDOW_MS, 0, 0]);
    expect(slow).toHaveLength(1); // each within the window of the last: one burst...
    expect(isRage(slow[0])).toBe(false); // ...but no three within the window
  });

  it("a pause longer than the window starts a new burst", () => {
    const bursts = clicks([0, 0, 0], [100, 0, 0], [100 + RAGE_WINDOW_MS + 1, 0, 0]);
    expect(bursts.map((b) => b.times)).toEqual([[0, 100], [801]]);
  });

  it("a click beyond the radius of the first starts a new burst", () => {
    const far = RAGE_RADIUS_PX + 1;
    const bursts = clicks([0, 0, 0], [100, 20, 20], [200, far, 0], [300, far, 0]);
    expect(bursts.map((b) => b.times)).toEqual([[0, 100], [200, 300]]);
    expect(bursts.some(isRage)).toBe(false);
  });

  it("a long burst counts all its clicks", () => {
    const b = clicks(...Array.from({ length: 6 }, (_, i): [number, number, number] => [i * 150, 5, 5]));
    expect(b).toHaveLength(1);
    expect(b[0].times).toHaveLength(6);
    expect(isRage(b[0])).toBe(true);
  });
});
