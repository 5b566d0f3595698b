/** The QA heatmap's "page's scripts" rendering (docs/qa.md, "Heatmaps"): the page is framed
 * with `sandbox="allow-scripts"` and no `allow-same-origin`, so its origin is opaque and the QA
 * page cannot read its document. The heatmap's rows are thousandths of the document's height
 * (position.ts), so the snippet in such a frame, named `cuewire-heatmap`, tells its parent the
 * document's height and the viewport's width, computed as position.ts does, and nothing else
 * (numbers; the QA page checks that the message comes from its frame). Anywhere else it does
 * nothing. The snippet otherwise runs as on any page: its connect, from origin "null", is
 * refused by the site's allow-list. */
export const HEATMAP_FRAME = "cuewire-heatmap";

export function reportHeatmapSize(): void {
  if (window.name !== HEATMAP_FRAME || window.parent === window) return;
  let last = "";
  const post = (): void => {
    const doc = document.documentElement;
    const height = Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0);
    const size = { height, width: window.innerWidth || doc.clientWidth };
    const key = `${size.height}x${size.width}`;
    if (key === last) return;
    last = key;
    window.parent.postMessage({ cuewire_heatmap: size }, "*");
  };
  post();
  window.addEventListener("load", post);
  window.addEventListener("resize", post);
  if (typeof ResizeObserver === "function") {
    const observer = new ResizeObserver(post);
    observer.observe(document.documentElement);
    if (document.body) observer.observe(document.body);
    else document.addEventListener("DOMContentLoaded", () => document.body && observer.observe(document.body));
  }
}
