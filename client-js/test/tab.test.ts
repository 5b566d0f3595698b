import { beforeAll, describe, expect, it, vi } from "vitest";

// tab.ts keeps its state in sessionStorage; in Node the storage module falls back to memory.
vi.stubGlobal("window", globalThis);
let tab: typeof import("../src/tab");
let storage: typeof import("../src/storage");
beforeAll(async () => {
  tab = await import("../src/tab");
  storage = await import("../src/storage");
});

const event = (seq: number) => ({ type: "click", ts: 1, seq, url: "u", selector: "a" });

describe("tab hand-off", () => {
  it("starts a new tab at seq 0 when no page left a state", () => {
    const t = tab.takeTab();
    expect(t.id).toMatch(/^t_[A-Za-z0-9_-]{20}$/);
    expect(t).toMatchObject({ seq: 0, events: [] });
  });

  it("gives the next page the id, the next seq and the unacknowledged events, once", () => {
    tab.putTab({ id: "t_abc", seq: 9, events: [event(7), event(8)] });
    expect(tab.takeTab()).toEqual({ id: "t_abc", seq: 9, events: [event(7), event(8)] });
    // Taken out while the page shows: a duplicated tab gets its own id.
    expect(tab.takeTab().id).not.toBe("t_abc");
  });

  it("drops events that claim a seq not yet handed out, and bad states", () => {
    tab.putTab({ id: "t_abc", seq: 3, events: [event(2), event(3), event(9)] });
    expect(tab.takeTab().events).toEqual([event(2)]);
    storage.tabStore.set("cw_tab", "{not json");
    expect(tab.takeTab().seq).toBe(0);
    storage.tabStore.set("cw_tab", JSON.stringify({ id: "bad id!", seq: 5, events: [] }));
    expect(tab.takeTab().seq).toBe(0);
    storage.tabStore.set("cw_tab", JSON.stringify({ id: "t_x", seq: -4.5, events: "x" }));
    expect(tab.takeTab()).toEqual({ id: "t_x", seq: 0, events: [] });
  });
});
