/* /qa/metrics: conversion over time, drawn with Observable Plot from a rule's "series" in
   metrics.json (conversion_series.py; docs/qa.md "Measurement"). Two charts per rule:
   - the daily conversion rate of each arm, a dot per day with its 95 % Wilson interval as a
     vertical rule, the holdout in purple beside the variants;
   - each arm's daily difference from the reference arm (the holdout) in points, with
     Newcombe's 95 % interval, and the whole window's at the right end. An interval that
     leaves zero out is a difference beyond noise (a filled dot); one that crosses it is not
     (a hollow dot).
   Rule and variant ids are untrusted: Plot writes titles and ticks as text, the legend and
   headings here use textContent. */
import * as Plot from "@observablehq/plot";
import { label, pct, pts } from "./format";
import { tag } from "./tag";

type Interval = [number, number];
interface Point { day: string; visitors: number; converted: number; rate: number | null; ci: Interval | null }
interface Window { visitors: number; converted: number; rate: number | null; ci: Interval | null }
interface Arm { variant: string | null; points: Point[]; window: Window }
interface DiffPoint { day?: string; difference: number | null; ci: Interval | null }
interface Difference { variant: string | null; against: string | null; points: DiffPoint[]; window: DiffPoint | null }
export interface Series { days: string[]; reference: string | null; arms: Arm[]; differences: Difference[] }
export interface RuleReport { rule: string; series?: Series | null }

const W = 860;
const MARGIN = { marginLeft: 56, marginRight: 16, marginTop: 14, marginBottom: 30 };
const COLOURS = ["#1f5f4a", "#2f6fde", "#c2562b", "#b7950b", "#0e7490"];
const HOLDOUT = "#7a4bb3";

/** One drawn dot and its interval. */
interface Mark { variant: string; day: string; value: number; low: number; high: number; beyond: boolean; text: string }

function colourOf(series: Series): (variant: string | null) => string {
  const variants = series.arms.map((a) => a.variant).filter((v) => v !== "holdout");
  return (variant) => (variant === "holdout" ? HOLDOUT : COLOURS[variants.indexOf(variant) % COLOURS.length]);
}

/** Every n-th day under the axis (about ten labels), and "window" always. */
function dayTicks(names: string[]): string[] {
  const every = Math.max(1, Math.ceil(names.length / 10));
  return names.filter((name, i) => i % every === 0 || name === "window");
}

/** A "nice" step for about five ticks over a span. */
function step(span: number): number {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

const dayLabel = (name: string): string => (name === "window" ? "window" : name.slice(5));

/** Arms side by side around their day: the horizontal shift of the k-th of n. */
function dodge(slots: number, n: number): (k: number) => number {
  const slot = (W - MARGIN.marginLeft - MARGIN.marginRight) / slots;
  const by = Math.min(10, (slot * 0.6) / n);
  return (k) => (k - (n - 1) / 2) * by;
}

/** An arm's dots with their intervals as Plot marks, tagged with the figures they show. */
function whiskers(marks: Mark[], colour: string, dx: number, hollow: boolean): Plot.Markish[] {
  const attrs = (m: Mark) => ({ variant: m.variant, day: m.day, value: m.value, low: m.low, high: m.high, beyond: m.beyond });
  return [
    Plot.ruleX(marks, { x: "day", y1: "low", y2: "high", dx, stroke: colour, strokeWidth: 2, title: "text", className: "ci", render: tag(marks, attrs) }),
    Plot.dot(marks, {
      x: "day", y: "value", dx, r: 4, stroke: colour, strokeWidth: 2,
      fill: hollow ? (m: Mark) => (m.beyond ? colour : "#fff") : colour,
      title: "text", className: "point", render: tag(marks, attrs),
    }),
  ];
}

function finish(svg: Element, kind: string, aria: string): Element {
  svg.classList.add("conversion-chart", kind);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", aria);
  return svg;
}

function rates(rule: string, series: Series): Element {
  const colour = colourOf(series);
  const arms = series.arms;
  const top = Math.max(...arms.flatMap((a) => a.points.flatMap((p) => (p.ci ? [p.ci[1]] : []))), 0.05);
  const shift = dodge(series.days.length, arms.length);
  const marks: Plot.Markish[] = [];
  arms.forEach((arm, k) => {
    const c = colour(arm.variant);
    const name = label(arm.variant);
    const drawn: Mark[] = arm.points.flatMap((p) =>
      p.rate === null || !p.ci ? [] : [{
        variant: name, day: p.day, value: p.rate, low: p.ci[0], high: p.ci[1], beyond: true,
        text: `${name} · ${p.day}: ${pct(p.rate)} (${p.converted}/${p.visitors}), 95 % CI ${pct(p.ci[0])} – ${pct(p.ci[1])}`,
      }]);
    // a gap in the line on a day without visitors (Plot breaks a line at a missing value)
    marks.push(Plot.lineY(arm.points, { x: "day", y: (p: Point) => p.rate ?? NaN, dx: shift(k), stroke: c, strokeWidth: 1.5, strokeOpacity: 0.5, className: "trend" }));
    marks.push(...whiskers(drawn, c, shift(k), false));
  });
  const svg = Plot.plot({
    width: W, height: 240, ...MARGIN,
    x: { type: "point", domain: series.days, padding: 0.5, ticks: dayTicks(series.days), tickFormat: dayLabel, label: null },
    y: { domain: [0, Math.min(1, top)], nice: true, grid: true, tickFormat: (v: number) => `${Math.round(100 * v)} %`, label: null },
    marks: [Plot.ruleY([0]), ...marks],
  });
  return finish(svg, "rates", `Daily conversion rate by variant of ${rule}`);
}

function differences(rule: string, series: Series): Element {
  const colour = colourOf(series);
  const names = [...series.days, "window"];
  const shift = dodge(names.length, series.differences.length);
  const marks: Plot.Markish[] = [];
  series.differences.forEach((d, k) => {
    const name = label(d.variant);
    const drawn: Mark[] = [...d.points, { ...(d.window ?? { difference: null, ci: null }), day: "window" }].flatMap((p) => {
      if (p.difference === null || !p.ci) return [];
      const beyond = p.ci[0] > 0 || p.ci[1] < 0;
      const when = p.day === "window" ? "whole window" : p.day;
      const text = `${name} − ${label(d.against)} · ${when}: ${pts(p.difference)}, 95 % CI ${pts(p.ci[0])} to ${pts(p.ci[1])}: ${beyond ? "beyond noise" : "within noise"}`;
      return [{ variant: name, day: p.day ?? "", value: p.difference, low: p.ci[0], high: p.ci[1], beyond, text }];
    });
    marks.push(...whiskers(drawn, colour(d.variant), shift(k), true));
  });
  const slot = (W - MARGIN.marginLeft - MARGIN.marginRight) / names.length;
  // zero always in view, with a whole step of room on its side: an interval that crosses it
  // shows as crossing
  const ends = series.differences.flatMap((d) => [...d.points, d.window].flatMap((p) => (p && p.ci ? p.ci : [])));
  const lowest = Math.min(0, ...ends), highest = Math.max(0, ...ends);
  const by = step(Math.max(0.1, highest - lowest));
  const domain = [Math.floor(lowest / by) * by, Math.ceil(highest / by) * by || by];
  const svg = Plot.plot({
    width: W, height: 200, ...MARGIN,
    x: { type: "point", domain: names, padding: 0.5, ticks: dayTicks(names), tickFormat: dayLabel, label: null },
    y: { domain, grid: true, tickFormat: (v: number) => `${v > 0 ? "+" : v < 0 ? "−" : ""}${Math.round(Math.abs(100 * v))}`, label: null },
    marks: [
      Plot.ruleX(["window"], { dx: -slot / 2, stroke: "#d6dde4", strokeDasharray: "4 3" }),
      Plot.ruleY([0], { stroke: "currentColor", strokeWidth: 1.2 }),
      ...marks,
    ],
  });
  return finish(svg, "differences", `Daily difference from ${label(series.reference)} of ${rule}`);
}

function legend(series: Series): HTMLElement {
  const colour = colourOf(series);
  const ul = document.createElement("ul");
  ul.className = "legend";
  for (const arm of series.arms) {
    const w = arm.window;
    const li = document.createElement("li");
    li.dataset.variant = label(arm.variant);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(arm.variant);
    li.append(swatch, `${label(arm.variant)}: ${pct(w.rate)} (${w.converted}/${w.visitors})${w.ci ? `, 95 % CI ${pct(w.ci[0])} – ${pct(w.ci[1])}` : ""}`);
    ul.append(li);
  }
  return ul;
}

function verdicts(series: Series): HTMLElement[] {
  return series.differences.flatMap((d) => {
    const w = d.window;
    if (!w || w.difference === null || !w.ci) return [];
    const beyond = w.ci[0] > 0 || w.ci[1] < 0;
    const p = document.createElement("p");
    p.className = `verdict ${beyond ? (w.difference > 0 ? "sig" : "hurts") : "muted"}`;
    p.dataset.variant = label(d.variant);
    p.textContent = `${label(d.variant)} − ${label(d.against)} over the window: ${pts(w.difference)} (95 % CI ${pts(w.ci[0])} to ${pts(w.ci[1])}): ` +
      (beyond ? (w.difference > 0 ? "the prompt helps, beyond noise" : "the prompt hurts, beyond noise") : "within noise");
    return [p];
  });
}

/** The "Conversion over time" block of a rule, or null when nobody was exposed. */
export function conversionOverTime(rule: RuleReport): HTMLElement | null {
  const series = rule.series;
  if (!series || !series.days.length) return null;
  const block = document.createElement("div");
  block.className = "conversion";
  const h3 = document.createElement("h3");
  h3.textContent = "Conversion per UTC day (95 % Wilson interval)";
  block.append(h3, rates(rule.rule, series), legend(series));
  if (series.differences.length) {
    const h = document.createElement("h3");
    h.textContent = `Difference from ${label(series.reference)}, in points (95 % Newcombe interval; filled: beyond noise)`;
    block.append(h, differences(rule.rule, series), ...verdicts(series));
  }
  return block;
}
