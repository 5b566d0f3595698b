/* /qa/funnels: a funnel as grouped bars drawn with Observable Plot from /qa/funnels.json
   (funnels.py: FunnelReport.to_json): per step, one bar per segment (all visitors when the
   funnel has no split), each labelled with its visitors, its title giving the share of the
   previous step's. Step names and segment labels come from rule files and variant ids:
   Plot writes them as text. */
import * as Plot from "@observablehq/plot";
import { tag } from "./tag";

interface Step { type: string; name?: string | null; where?: unknown }
interface Progress { label: string; visitors: number[]; from_previous: (number | null)[] }
export interface FunnelJson { id: string; split: string | null; steps: Step[]; segments: Record<string, Progress> }

const COLOURS = ["#8a94a6", "#2f6fde", "#1f9d6b", "#c2562b", "#8e44ad", "#b7950b"];
const BAR_W = 34, GAP = 4, MIN_GROUP = 150, STEP_GAP = 24;

/** A step as the table names it: its type, event name, and "(where …)" when it has a filter. */
export function stepName(step: Step): string {
  const name = step.name !== null && step.name !== undefined ? ` ${step.name}` : "";
  return `${step.type}${name}${step.where !== null && step.where !== undefined ? " (where …)" : ""}`;
}

interface Bar { step: number; name: string; segment: string; label: string; visitors: number; kept: number | null; text: string }

/** The funnel's chart and, when it is split, its colour legend. */
export function funnelChart(funnel: FunnelJson): HTMLElement {
  const segments = funnel.split ? Object.keys(funnel.segments).filter((n) => n !== "all") : [];
  const names = segments.length ? segments : ["all"];
  const bars: Bar[] = funnel.steps.flatMap((step, i) => names.map((segment) => {
    const row = funnel.segments[segment];
    const visitors = row.visitors[i], kept = row.from_previous[i];
    const who = segment === "all" ? "all visitors" : row.label;
    return {
      step: i + 1, name: stepName(step), segment, label: row.label, visitors, kept,
      text: `${i + 1}. ${stepName(step)} · ${who}: ${visitors}${kept === null ? "" : ` (${Math.round(100 * kept)} % of step ${i})`}`,
    };
  }));
  const labels = new Map(bars.map((b) => [b.step, `${b.step}. ${b.name.length <= 22 ? b.name : `${b.name.slice(0, 21)}…`}`]));
  const group = Math.max(names.length * (BAR_W + GAP), MIN_GROUP);
  const colour = {
    domain: names,
    range: segments.length ? names.map((_, j) => COLOURS[j % COLOURS.length]) : [COLOURS[1]],
  };
  const svg = Plot.plot({
    width: funnel.steps.length * (group + STEP_GAP) + 16, height: 290,
    marginTop: 24, marginBottom: 30, marginLeft: 8, marginRight: 8,
    fx: { domain: funnel.steps.map((_, i) => i + 1), tickFormat: (i: number) => labels.get(i) ?? String(i), label: null, axis: "bottom", padding: STEP_GAP / (group + STEP_GAP) },
    x: { domain: names, axis: null, paddingInner: GAP / (BAR_W + GAP), paddingOuter: Math.max(0, (group - names.length * (BAR_W + GAP)) / (2 * (BAR_W + GAP))) },
    y: { axis: null, domain: [0, Math.max(1, ...bars.map((b) => b.visitors))] },
    color: colour,
    marks: [
      Plot.barY(bars, {
        fx: "step", x: "segment", y: "visitors", fill: "segment", title: "text", className: "bar",
        render: tag(bars, (b) => ({ step: b.step, segment: b.segment, visitors: b.visitors })),
      }),
      Plot.text(bars, { fx: "step", x: "segment", y: "visitors", text: "visitors", dy: -5, lineAnchor: "bottom", fontSize: 11, className: "count" }),
      Plot.ruleY([0]),
    ],
  });
  svg.classList.add("funnel-chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Visitors reaching each step of ${funnel.id}`);
  const box = document.createElement("div");
  box.className = "funnel-drawing";
  if (segments.length) {
    const key = Plot.legend({ color: { ...colour, type: "ordinal", tickFormat: (n: string) => funnel.segments[n].label }, className: "legend" });
    box.append(key);
  }
  box.prepend(svg);
  return box;
}
