/* /qa/funnels: draws each funnel's bars (qacharts.js, Observable Plot) from /qa/funnels.json
   above the table the server wrote, which stays as the page without script. */
import { funnelChart } from "./qacharts.js";

async function draw() {
  const response = await fetch(`/qa/funnels.json${location.search}`, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) return;  // the tables stay, and they have the numbers
  const { funnels } = await response.json();
  const sections = new Map([...document.querySelectorAll("section[data-funnel]")].map((s) => [s.dataset.funnel, s]));
  for (const funnel of funnels) {
    const section = sections.get(funnel.id);
    if (!section) continue;
    section.querySelector(".funnel-table").before(funnelChart(funnel));
  }
}

draw();
