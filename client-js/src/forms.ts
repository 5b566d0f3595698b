/** Form interaction, never values: `form {action: "focus"}` the first time a field of a form
 * gets focus on this page, `submit` when it is submitted, and `abandon` when the page is left
 * (pagehide, or a single-page-app route change) after a focus without a submit. A form is
 * named by its id, name, data-cw-track or action attribute; a field by its name or id. */
import type { Collector, Remover, Send } from "./types";
import { TRACK_ATTR, clip, listen, removeAll } from "./dom";
import { selectorOf } from "./clicks";

const FIELD = /^(INPUT|SELECT|TEXTAREA)$/;

interface State {
  name: string;
  field?: string;
  submitted: boolean;
}

function formName(form: HTMLFormElement): string {
  const named =
    form.getAttribute("id") ||
    form.getAttribute("name") ||
    form.getAttribute(TRACK_ATTR) ||
    form.getAttribute("action");
  return clip(named || selectorOf(form), 2048);
}

export function startForms(send: Send): Collector {
  let forms = new Map<HTMLFormElement, State>();

  function abandon(url?: string): void {
    forms.forEach((s) => {
      if (!s.submitted) send("form", { action: "abandon", form: s.name, field: s.field }, url);
    });
    forms = new Map();
  }

  const removers: Remover[] = [
    listen(document, "focusin", (e) => {
      const field = e.target as HTMLInputElement;
      if (!field || !FIELD.test(field.tagName) || !field.form) return;
      const name =
        clip(field.getAttribute("name") || field.getAttribute("id") || "", 2048) || undefined;
      let state = forms.get(field.form);
      if (!state) {
        state = { name: formName(field.form), submitted: false };
        forms.set(field.form, state);
        send("form", { action: "focus", form: state.name, field: name });
      }
      state.field = name;
    }),
    listen(document, "submit", (e) => {
      const form = e.target as HTMLFormElement;
      if (!form || form.tagName !== "FORM") return;
      const state = forms.get(form) || { name: formName(form), submitted: false };
      state.submitted = true;
      forms.set(form, state);
      send("form", { action: "submit", form: state.name });
    }),
    listen(window, "pagehide", () => abandon()),
  ];
  return { stop: () => removeAll(removers), reset: abandon };
}
