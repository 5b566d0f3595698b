/** Copy and selection of tracked content, never the text: `copy {element, chars, action}` when
 * the visitor copies (`action: "copy"`) or selects (`action: "select"`, once the selection has
 * rested 500 ms, once per selection) text inside one `[data-cw-track]` element; `element` is
 * its `data-cw-track` value, `chars` how many characters. */
import type { Collector, Remover, Send } from "./types";
import { TRACKED, elementOf, listen, removeAll, trackOf } from "./dom";

const SETTLE_MS = 500;

/** The tracked element holding the whole selection, and its length; null when there is none. */
function selected(): { element: string; chars: number } | null {
  const sel = document.getSelection();
  if (!sel || sel.isCollapsed || !sel.rangeCount) return null;
  const within = elementOf(sel.getRangeAt(0).commonAncestorContainer);
  const element = within && within.closest(TRACKED) ? trackOf(within) : undefined;
  const chars = sel.toString().trim().length;
  return element && chars ? { element, chars } : null;
}

export function startCopy(send: Send): Collector {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = "";

  const removers: Remover[] = [
    listen(document, "copy", () => {
      const s = selected();
      if (s) send("copy", { ...s, action: "copy" });
    }),
    listen(document, "selectionchange", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const s = selected();
        const key = s ? s.element + "\n" + s.chars : "";
        if (s && key !== last) send("copy", { ...s, action: "select" });
        last = key;
      }, SETTLE_MS);
    }),
  ];
  return {
    stop() {
      clearTimeout(timer);
      removeAll(removers);
    },
    reset: () => (last = ""),
  };
}
