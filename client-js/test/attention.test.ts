import { describe, expect, it } from "vitest";
import { attentionClock, WINDOW_MS } from "../src/attention";
import { scrollUp, type Run } from "../src/exitintent";

describe("attention clock", () => {
  it("counts nothing before the first input", () => {
    const c = attentionClock(1000);
    expect(c.at(5000)).toBe(0);
  });

  it("counts up to the window after each input, no further", () => {
    const c = attentionClock(1000);
    c.input(0);
    expect(c.at(400)).toBe(400);
    expect(c.at(3000)).toBe(1000); // stopped: idle after the window
    c.input(3000);
    c.input(3500); // inputs inside the window extend it, never double count
    expect(c.at(10000)).toBe(1000 + 500 + 1000);
  });

  it("counts a steady reader all along", () => {
    const c = attentionClock(WINDOW_MS);
    for (let t = 0; t <= 60000; t += 5000) c.input(t);
    expect(c.at(60000)).toBe(60000);
  });

  it("does not count while the tab is hidden, and resets per page", () => {
    const c = attentionClock(1000);
    c.input(0);
    c.visible(200, false);
    expect(c.at(900)).toBe(200);
    c.visible(900, true);
    expect(c.at(1000)).toBe(300);
    c.reset(1000);
    expect(c.at(1500)).toBe(0);
  });
});

describe("fast scroll up", () => {
  function feed(points: [number, number][]): boolean {
    let run: Run | null = null;
    let fling = false;
    for (const [y, t] of points) [run, fling] = [...scrollUp(run, y, t)] as [Run, boolean];
    return fling;
  }

  it("is a fling when far enough up, fast enough", () => {
    const pts: [number, number][] = [];
    for (let i = 0; i <= 10; i++) pts.push([2000 - i * 60, i * 30]);
    expect(feed(pts)).toBe(true);
  });

  it("counts the first frame of a flick that follows a pause", () => {
    // read down to 950, a pause, then a flick whose first frame already moved 183 px
    expect(feed([[950, 0], [767, 2000], [583, 2002], [400, 2051]])).toBe(true);
    expect(feed([[950, 0], [767, 2000], [583, 2002], [500, 2051]])).toBe(false); // 450 px
  });

  it("is not one when slow, short, downward or paused", () => {
    const slow: [number, number][] = [];
    for (let i = 0; i <= 20; i++) slow.push([2000 - i * 40, i * 100]); // 800 px in 2 s
    expect(feed(slow)).toBe(false);
    expect(feed([[2000, 0], [1800, 50], [1700, 100]])).toBe(false);
    expect(feed([[0, 0], [300, 50], [900, 100]])).toBe(false);
    expect(feed([[2000, 0], [1700, 50], [1700, 500], [1400, 550]])).toBe(false);
  });
});
