/** Per-tab state that outlives a reload: the tab id, the next `seq`, and the events not yet
 * acknowledged (resent, with their seq, by the next page of the tab).
 *
 * It lives in sessionStorage (`cw_tab`) only while no page of the tab is showing: taken out
 * when the snippet starts, put back when the page is hidden or left. A duplicated tab (or a
 * window opened by this one), which starts with a copy of sessionStorage, therefore gets its
 * own id instead of reusing the seq numbers of a live tab. */
import type { WireEvent } from "./types";
import { tabStore } from "./storage";
import { randomId } from "./identity";

const KEY = "cw_tab";
const ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface TabState {
  id: string;
  seq: number;
  events: WireEvent[];
}

/** Takes the state left by the previous page of this tab, or starts a new tab. */
export function takeTab(): TabState {
  let s: Partial<TabState> | null = null;
  try {
    s = JSON.parse(tabStore.get(KEY) || "null");
  } catch {
    /* unreadable: start afresh */
  }
  forgetTab();
  if (!s || typeof s.id !== "string" || !ID.test(s.id))
    return { id: randomId("t_"), seq: 0, events: [] };
  const seq = Math.max(0, Math.floor(Number(s.seq)) || 0);
  const events = Array.isArray(s.events)
    ? s.events.filter((e) => e && typeof e.seq === "number" && e.seq < seq)
    : [];
  return { id: s.id, seq, events };
}

export function putTab(state: TabState): void {
  tabStore.set(KEY, JSON.stringify(state));
}

/** Called when the page shows again (the state must not stay behind while it is live). */
export function forgetTab(): void {
  tabStore.set(KEY, "");
}
