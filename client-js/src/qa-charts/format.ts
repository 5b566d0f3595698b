/* Figures as the QA pages write them: rates in per cent, differences in points. */

export const pct = (x: number | null | undefined): string =>
  x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`;
export const pts = (x: number): string => `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)} pts`;
/** A variant's name: the rule's single prompt has none. */
export const label = (v: string | null): string => (v === null ? "prompt" : v);
