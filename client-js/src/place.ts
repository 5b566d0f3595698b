/** Placement: keeps a non-modal prompt off the page elements it must not cover.
 *
 * The template positions its content (usually `position: fixed` in a corner); that is the
 * prompt's home. When the home box intersects an element to avoid - one matched by the
 * prompt's `avoid` selectors (the rule's `show.avoid`, the element of the triggering event) or
 * by `[data-cw-avoid]`, which a site can put on its key controls - the prompt moves with the
 * CSS `translate` property (not `transform`, so the template's entrance animations still
 * apply) to the first place that is inside the viewport and intersects nothing to avoid: the
 * other corners (the home mirrored), then beside each element (left, right, above, below).
 * If no place is free it takes the one that covers least. Boxes are measured without
 * transforms (offsetLeft/Top), so an entrance animation in progress does not skew them. It
 * places again when the page scrolls or the window resizes.
 */
import type { Remover } from "./types";
import { listen, removeAll } from "./dom";

export const AVOID = "[data-cw-avoid]";
const GAP = 16;

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/** The untransformed box of the prompt's top-level elements, in viewport coordinates. */
function home(roots: HTMLElement[]): Box | null {
  let x1 = Infinity,
    y1 = Infinity,
    x2 = -Infinity,
    y2 = -Infinity;
  for (const el of roots) {
    if (!el.offsetWidth && !el.offsetHeight) continue;
    x1 = Math.min(x1, el.offsetLeft);
    y1 = Math.min(y1, el.offsetTop);
    x2 = Math.max(x2, el.offsetLeft + el.offsetWidth);
    y2 = Math.max(y2, el.offsetTop + el.offsetHeight);
  }
  return x1 < x2 ? { x: x1, y: y1, w: x2 - x1, h: y2 - y1 } : null;
}

/** The boxes of the visible page elements matched by `selectors` (an invalid one is skipped). */
function obstacles(selectors: string[]): Box[] {
  const out: Box[] = [];
  for (const selector of selectors) {
    let found: NodeListOf<Element>;
    try {
      found = document.querySelectorAll(selector);
    } catch {
      continue;
    }
    found.forEach((el) => {
      if (el.closest("[data-cuewire-prompt]")) return;
      const r = el.getBoundingClientRect();
      if (r.width || r.height) out.push({ x: r.left, y: r.top, w: r.width, h: r.height });
    });
  }
  return out;
}

/** Where `box` can go: home, the other corners, then beside each obstacle. */
function candidates(box: Box, avoid: Box[], vw: number, vh: number): Box[] {
  const { w, h } = box;
  const mx = vw - box.x - w;
  const my = vh - box.y - h;
  const out: Box[] = [box, { x: mx, y: box.y, w, h }, { x: box.x, y: my, w, h }, { x: mx, y: my, w, h }];
  for (const a of avoid) {
    const y = Math.min(Math.max(box.y, GAP), vh - h - GAP);
    const x = Math.min(Math.max(box.x, GAP), vw - w - GAP);
    out.push(
      { x: a.x - GAP - w, y, w, h },
      { x: a.x + a.w + GAP, y, w, h },
      { x, y: a.y - GAP - h, w, h },
      { x, y: a.y + a.h + GAP, w, h },
    );
  }
  return out;
}

/** Moves the prompt in `root` off what it must not cover; returns the remover of its
 * listeners. */
export function place(root: ShadowRoot, selectors: string[]): Remover {
  const wanted = selectors.concat(AVOID);
  const roots = Array.from(root.children).filter(
    (el) => el.tagName !== "STYLE",
  ) as HTMLElement[];
  let frame = 0;

  function update(): void {
    frame = 0;
    const box = home(roots);
    if (!box) return;
    const avoid = obstacles(wanted);
    const doc = document.documentElement;
    const vw = doc.clientWidth || innerWidth;
    const vh = doc.clientHeight || innerHeight;
    let best = box;
    let least = Infinity;
    for (const c of avoid.length ? candidates(box, avoid, vw, vh) : [box]) {
      const inside = c.x >= 0 && c.y >= 0 && c.x + c.w <= vw && c.y + c.h <= vh;
      const covered = avoid.reduce((sum, a) => sum + overlap(c, a), 0) + (inside ? 0 : 1e9);
      if (covered < least) {
        best = c;
        least = covered;
        if (!covered) break;
      }
    }
    const dx = Math.round(best.x - box.x);
    const dy = Math.round(best.y - box.y);
    for (const el of roots) el.style.translate = dx || dy ? dx + "px " + dy + "px" : "";
  }

  const later = () => {
    if (!frame) frame = requestAnimationFrame(update);
  };
  const removers = [listen(window, "scroll", later), listen(window, "resize", later)];
  update();
  return () => {
    cancelAnimationFrame(frame);
    removeAll(removers);
  };
}
