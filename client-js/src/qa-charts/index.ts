/* The QA pages' charts (qa_static/qacharts.js, an ES module built by scripts/build.mjs):
   conversion over time on /qa/metrics, the funnels on /qa/funnels, drawn with Observable Plot. */
export { conversionOverTime } from "./conversion";
export { funnelChart, stepName } from "./funnel";
export { label, pct, pts } from "./format";
