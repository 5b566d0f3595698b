/* /qa/metrics: conversion over time, drawn as inline SVG from a rule's "series" in
   metrics.json (conversion_series.py; docs/qa.md "Measurement"). Two charts per rule:
   - the daily conversion rate of each arm, a dot per day with its 95 % Wilson interval as a
     vertical line, the holdout in purple beside the variants;
   - each arm's daily difference from the reference arm (the holdout) in points, with
     Newcombe's 95 % interval, and the whole window's at the right end. An interval that
     leaves zero out is a difference beyond noise (a filled dot); one that crosses it is not
     (a hollow dot).
   Text goes in through textContent only: rule and variant ids are never parsed as markup. */

const NS = "http://www.w3.org/2000/svg";
const W = 860, LEFT = 56, RIGHT = 16, TOP = 14, BOTTOM = 30;
const COLOURS = ["#1f5f4a", "#2f6fde", "#c2562b", "#b7950b", "#0e7490"];
const HOLDOUT = "#7a4bb3";

export const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`);
export const pts = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)} pts`;
export const label = (v) => (v === null ? "prompt" : v);

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function tip(node, text) {
  node.append(svg("title", {}, text));
  return node;
}

function colourOf(series) {
  const variants = series.arms.map((a) => a.variant).filter((v) => v !== "holdout");
  return (variant) => (variant === "holdout" ? HOLDOUT : COLOURS[variants.indexOf(variant) % COLOURS.length]);
}

/* A "nice" step for about five ticks over [0, span]. */
function step(span) {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
}

/* Axes: x over `slots` columns (a label under every n-th), y from lo to hi with ticks. */
function frame(height, slots, names, lo, hi, unit) {
  const plot = { x0: LEFT, x1: W - RIGHT, y0: TOP, y1: height - BOTTOM };
  const slot = (plot.x1 - plot.x0) / slots;
  const x = (i) => plot.x0 + slot * (i + 0.5);
  const y = (v) => plot.y1 - ((v - lo) / (hi - lo)) * (plot.y1 - plot.y0);
  const g = svg("g", { class: "axes" });
  const every = Math.max(1, Math.ceil(names.length / 10));
  const by = step(hi - lo);
  for (let v = Math.ceil(lo / by) * by; v <= hi + 1e-9; v += by) {
    g.append(svg("line", { x1: plot.x0, x2: plot.x1, y1: y(v), y2: y(v), class: Math.abs(v) < 1e-9 ? "zero" : "grid" }));
    g.append(svg("text", { x: plot.x0 - 6, y: y(v) + 4, "text-anchor": "end" }, unit(v)));
  }
  names.forEach((name, i) => {
    if (i % every === 0 || name === "window") g.append(svg("text", { x: x(i), y: plot.y1 + 18, "text-anchor": "middle" }, name === "window" ? "window" : name.slice(5)));
  });
  return { g, x, y, slot };
}

/* A dot with its interval: a vertical line with caps, and a <title> saying it all. */
function whisker(x, y, low, high, value, colour, filled, text, data) {
  const g = svg("g", { class: "point", ...data });
  g.append(svg("line", { class: "ci", x1: x, x2: x, y1: y(low), y2: y(high), stroke: colour }));
  for (const v of [low, high]) g.append(svg("line", { class: "cap", x1: x - 4, x2: x + 4, y1: y(v), y2: y(v), stroke: colour }));
  g.append(svg("circle", { cx: x, cy: y(value), r: 4, stroke: colour, fill: filled ? colour : "#fff" }));
  return tip(g, text);
}

function rates(series) {
  const colour = colourOf(series);
  const arms = series.arms;
  const top = Math.max(...arms.flatMap((a) => a.points.filter((p) => p.ci).map((p) => p.ci[1])), 0.05);
  const hi = Math.min(1, Math.ceil(top / step(top)) * step(top));
  const height = 240;
  const { g, x, y, slot } = frame(height, series.days.length, series.days, 0, hi, (v) => `${Math.round(100 * v)} %`);
  const chart = svg("svg", { class: "conversion-chart rates", role: "img", viewBox: `0 0 ${W} ${height}`, width: W, height });
  chart.append(g);
  const dodge = Math.min(10, (slot * 0.6) / arms.length);
  arms.forEach((arm, k) => {
    const shift = (k - (arms.length - 1) / 2) * dodge;
    const c = colour(arm.variant);
    let path = "", pen = "M";  // a gap in the line on a day without visitors
    arm.points.forEach((p, i) => {
      if (p.rate === null) { pen = "M"; return; }
      path += `${pen}${x(i) + shift},${y(p.rate)} `;
      pen = "L";
    });
    chart.append(svg("path", { class: "trend", d: path.trim(), stroke: c }));
    arm.points.forEach((p, i) => {
      if (p.rate === null) return;
      const text = `${label(arm.variant)} · ${p.day}: ${pct(p.rate)} (${p.converted}/${p.visitors}), 95 % CI ${pct(p.ci[0])} – ${pct(p.ci[1])}`;
      chart.append(whisker(x(i) + shift, y, p.ci[0], p.ci[1], p.rate, c, true, text,
        { "data-variant": label(arm.variant), "data-day": p.day, "data-rate": p.rate, "data-low": p.ci[0], "data-high": p.ci[1] }));
    });
  });
  return chart;
}

function differences(series) {
  const colour = colourOf(series);
  const names = [...series.days, "window"];
  const all = series.differences.flatMap((d) => [...d.points, d.window].filter((p) => p && p.ci).flatMap((p) => p.ci));
  const by = step(Math.max(0.1, Math.max(0, ...all) - Math.min(0, ...all)));
  const lo = Math.floor(Math.min(0, ...all) / by) * by, hi = Math.ceil(Math.max(0, ...all) / by) * by;
  const height = 200;
  const { g, x, y, slot } = frame(height, names.length, names, lo, hi || by, (v) => `${v > 0 ? "+" : v < 0 ? "−" : ""}${Math.round(Math.abs(100 * v))}`);
  const chart = svg("svg", { class: "conversion-chart differences", role: "img", viewBox: `0 0 ${W} ${height}`, width: W, height });
  chart.append(g);
  chart.append(svg("line", { class: "window-sep", x1: x(names.length - 1) - slot / 2, x2: x(names.length - 1) - slot / 2, y1: TOP, y2: height - BOTTOM }));
  const dodge = Math.min(10, (slot * 0.6) / series.differences.length);
  series.differences.forEach((d, k) => {
    const shift = (k - (series.differences.length - 1) / 2) * dodge;
    const c = colour(d.variant);
    [...d.points, { day: "window", ...(d.window || { difference: null }) }].forEach((p, i) => {
      if (p.difference === null) return;
      const beyond = p.ci[0] > 0 || p.ci[1] < 0;
      const when = p.day === "window" ? "whole window" : p.day;
      const text = `${label(d.variant)} − ${label(d.against)} · ${when}: ${pts(p.difference)}, 95 % CI ${pts(p.ci[0])} to ${pts(p.ci[1])}: ${beyond ? "beyond noise" : "within noise"}`;
      chart.append(whisker(x(i) + shift, y, p.ci[0], p.ci[1], p.difference, c, beyond, text,
        { "data-variant": label(d.variant), "data-day": p.day, "data-difference": p.difference, "data-low": p.ci[0], "data-high": p.ci[1], "data-beyond": beyond }));
    });
  });
  return chart;
}

function legend(series) {
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

function verdicts(series) {
  return series.differences.filter((d) => d.window).map((d) => {
    const w = d.window;
    const beyond = w.ci[0] > 0 || w.ci[1] < 0;
    const p = document.createElement("p");
    p.className = `verdict ${beyond ? (w.difference > 0 ? "sig" : "hurts") : "muted"}`;
    p.dataset.variant = label(d.variant);
    p.textContent = `${label(d.variant)} − ${label(d.against)} over the window: ${pts(w.difference)} (95 % CI ${pts(w.ci[0])} to ${pts(w.ci[1])}): ` +
      (beyond ? (w.difference > 0 ? "the prompt helps, beyond noise" : "the prompt hurts, beyond noise") : "within noise");
    return p;
  });
}

/* The "Conversion over time" block of a rule, or null when nobody was exposed. */
export function conversionOverTime(rule) {
  const series = rule.series;
  if (!series || !series.days.length) return null;
  const block = document.createElement("div");
  block.className = "conversion";
  const h3 = document.createElement("h3");
  h3.textContent = "Conversion per UTC day (95 % Wilson interval)";
  block.append(h3, rates(series), legend(series));
  if (series.differences.length) {
    const h = document.createElement("h3");
    h.textContent = `Difference from ${label(series.reference)}, in points (95 % Newcombe interval; filled: beyond noise)`;
    block.append(h, differences(series), ...verdicts(series));
  }
  block.querySelectorAll("svg.rates").forEach((s) => s.setAttribute("aria-label", `Daily conversion rate by variant of ${rule.rule}`));
  block.querySelectorAll("svg.differences").forEach((s) => s.setAttribute("aria-label", `Daily difference from ${label(series.reference)} of ${rule.rule}`));
  return block;
}
