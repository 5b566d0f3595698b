/** Page views: the initial load, and route changes in single-page apps (history.pushState /
 * replaceState and popstate). A route change first calls `onPageChange(previousUrl)` so that
 * page-scoped collectors can close and reset, then sends `page_view` with `spa: true`.
 * Only changes of path or query count; a change of the #fragment alone is not a new page. */
import type { Collector, Remover, Send } from "./types";
import { listen, removeAll } from "./dom";

type HistoryMethod = "pushState" | "replaceState";

function withoutHash(href: string): string {
  const i = href.indexOf("#");
  return i < 0 ? href : href.slice(0, i);
}

export function startPageview(send: Send, onPageChange: (previousUrl: string) => void): Collector {
  const pending = new Set<ReturnType<typeof setTimeout>>(); // page views of this tick
  const removers: Remover[] = [() => pending.forEach(clearTimeout)];
  let current = location.href;

  send("page_view", {
    referrer: document.referrer || undefined,
    title: document.title || undefined,
  });

  function check(): void {
    const now = location.href;
    if (withoutHash(now) === withoutHash(current)) {
      current = now;
      return;
    }
    const previous = current;
    current = now;
    onPageChange(previous);
    // Routers usually set the new title right after changing the URL: read it a tick later,
    // but keep the URL of the moment of navigation.
    const timer = setTimeout(() => {
      pending.delete(timer);
      send("page_view", { referrer: previous, title: document.title || undefined, spa: true }, now);
    }, 0);
    pending.add(timer);
  }

  function patch(method: HistoryMethod): Remover {
    const original = history[method];
    let active = true;
    const patched = function (this: History, ...args: Parameters<History["pushState"]>) {
      const result = original.apply(this, args);
      if (active) check();
      return result;
    };
    history[method] = patched;
    return () => {
      active = false;
      // Put the original back unless someone else has wrapped ours since.
      if (history[method] === patched) history[method] = original;
    };
  }

  removers.push(patch("pushState"), patch("replaceState"), listen(window, "popstate", check));
  return { stop: () => removeAll(removers) };
}
