/** Where on the page a click (or a rest) was, for heatmaps (docs/protocol.md): `x` in
 * thousandths of the viewport's width, `y` in thousandths of the document's height, `w` the
 * viewport's width in CSS pixels (its layout class: the server counts each class apart). */
export interface Position {
  x: number;
  y: number;
  w: number;
}

const permille = (v: number, of: number): number =>
  Math.max(0, Math.min(1000, Math.round((v / (of || 1)) * 1000)));

/** The position of the viewport point (`clientX`, `clientY`). */
export function positionAt(clientX: number, clientY: number): Position {
  const doc = document.documentElement;
  const height = Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0);
  const width = window.innerWidth || doc.clientWidth;
  return {
    x: permille(clientX, width),
    y: permille(clientY + (window.scrollY || 0), height || window.innerHeight),
    w: Math.max(1, Math.round(width)),
  };
}

/** The position of an element's centre. */
export function positionOf(el: Element): Position {
  const r = el.getBoundingClientRect();
  return positionAt(r.left + r.width / 2, r.top + r.height / 2);
}
