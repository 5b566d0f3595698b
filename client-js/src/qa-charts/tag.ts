/* A render transform that writes data-* attributes on the elements a Plot mark drew (one
   element per datum, in the order of the mark's index), so that tests and people can tell
   which figure each dot, rule or bar stands for. Values go in with setAttribute: never parsed
   as markup. */
import type { RenderFunction } from "@observablehq/plot";

export type Attrs<T> = (d: T) => Record<string, string | number | boolean>;

export function tag<T>(data: readonly T[], attrs: Attrs<T>): RenderFunction {
  return (index, scales, values, dimensions, context, next) => {
    const g = next ? next(index, scales, values, dimensions, context) : null;
    if (!g) return g;
    const drawn = Array.from(g.children).filter((c) => c.tagName !== "title");
    drawn.forEach((node, k) => {
      const i = index[k];
      if (i === undefined) return;
      for (const [key, value] of Object.entries(attrs(data[i]))) node.setAttribute(`data-${key}`, String(value));
    });
    return g;
  };
}
