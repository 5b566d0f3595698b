/** Clicks: a short CSS selector of what was clicked, its visible text (80 characters at most),
 * the `data-cw-track` value of the nearest tracked ancestor and where it was (`x`, `y`:
 * position.ts). Never the value of a field. */
import type { Collector, Fields, Send } from "./types";
import { clip, elementOf, listen, trackOf } from "./dom";
import { positionAt } from "./position";

const INTERACTIVE =
  "a,button,input,select,textarea,label,summary,[role=button],[role=link],[onclick],[data-cw-track]";
const FIELD = /^(INPUT|SELECT|TEXTAREA|OPTION)$/;

function escapeCss(s: string): string {
  return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/[^\w-]/g, "\\$&");
}

/** `tag#id`, or `tag.class1.class2`, for up to three ancestors, stopping at an id. */
export function selectorOf(el: Element): string {
  const parts: string[] = [];
  for (
    let node: Element | null = el;
    node && node.nodeType === 1 && parts.length < 4;
    node = node.parentElement
  ) {
    const tag = node.tagName.toLowerCase();
    if (tag === "html" || tag === "body") break;
    const id = node.getAttribute("id");
    if (id && !/\d{3,}/.test(id)) {
      parts.unshift("#" + escapeCss(id));
      break;
    }
    let part = tag;
    const classes = (node.getAttribute("class") || "")
      .split(/\s+/)
      .filter((c) => c && !/\d{3,}|:/.test(c));
    for (const c of classes.slice(0, 2)) part += "." + escapeCss(c);
    parts.unshift(part);
  }
  return clip(parts.join(" > "), 256);
}

function textOf(el: Element): string | undefined {
  if (FIELD.test(el.tagName) || (el as HTMLElement).isContentEditable) return undefined;
  const text = (el.textContent || "").slice(0, 400).replace(/\s+/g, " ").trim();
  return clip(text, 80) || el.getAttribute("aria-label")?.slice(0, 80) || undefined;
}

/** What a click reports of its target: its selector, visible text and tracked ancestor (also
 * used by rage and dead clicks, which send no more than this). Null inside our own prompts,
 * whose clicks are reported as prompt_* events. */
export function clickFields(target: Element | null): Fields | null {
  if (!target || target.closest("[data-cuewire-prompt]")) return null;
  const el = target.closest(INTERACTIVE) || target;
  return { selector: selectorOf(el), text: textOf(el), track: trackOf(target) };
}

export function startClicks(send: Send): Collector {
  const stop = listen<MouseEvent>(document, "click", (e) => {
    const fields = clickFields(elementOf(e.target));
    if (fields) send("click", { ...fields, ...positionAt(e.clientX, e.clientY) });
  });
  return { stop };
}
