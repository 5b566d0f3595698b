/** Form interaction, never values: `form {action: "focus"}` the first time a field of a form
 * gets focus on this page, `submit` when it is submitted (with `field_ms`, the time each field
 * had the focus), and `abandon` when the page is left (pagehide, or a single-page-app route
 * change) after a focus without a submit. While the visitor fills it in: `form_hesitation
 * {form, field, ms}` when a focused field gets no input for `ms` (`data-form-hesitation` on
 * the script tag, default 5 s), `field_retyped {form, field}` when a field is emptied and typed
 * into again, and `form_abandon {form, fields_touched, field_ms}` when the page is left or
 * hidden after input into a form that was not submitted (once per form and page). A form is
 * named by its id, name, data-cw-track or action attribute; a field by its name or id. A
 * field's value is read only to tell whether it is empty, and never sent. */
import type { Collector, Remover, Send } from "./types";
import { TRACK_ATTR, clip, listen, removeAll } from "./dom";
import { selectorOf } from "./clicks";

const FIELD = /^(INPUT|SELECT|TEXTAREA)$/;
export const FORM_HESITATION_MS = 5000;
const MAX_FIELDS = 50;

type Field = HTMLInputElement;

interface State {
  name: string;
  field?: string;
  submitted: boolean;
  /** Fields typed into, by name. */
  touched: Set<string>;
  abandoned: boolean;
  /** Time each field had the focus (ms), by name. */
  ms: Record<string, number>;
}

/** `data-form-hesitation`: milliseconds, 100..600000; anything else gives the default. */
export function formDelay(attr: string | null | undefined): number {
  const n = Math.round(Number(attr));
  return attr && n >= 100 && n <= 600000 ? n : FORM_HESITATION_MS;
}

/** What a field's input means for `field_retyped`: `had` is whether it held something before
 * this input, `cleared` whether it was emptied since it last held something. Returns the new
 * `cleared` and whether this input is a retype (typed into after being emptied). */
export function retype(had: boolean, cleared: boolean, empty: boolean): [boolean, boolean] {
  if (empty) return [cleared || had, false];
  return [false, cleared];
}

/** Focus times with the running one added, as sent (names clipped, 50 fields at most). */
export function timing(ms: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  Object.keys(ms)
    .slice(0, MAX_FIELDS)
    .forEach((k) => (out[clip(k, 128)] = Math.round(ms[k])));
  return out;
}

function formName(form: HTMLFormElement): string {
  const named =
    form.getAttribute("id") ||
    form.getAttribute("name") ||
    form.getAttribute(TRACK_ATTR) ||
    form.getAttribute("action");
  return clip(named || selectorOf(form), 2048);
}

function fieldName(field: Element): string {
  return clip(field.getAttribute("name") || field.getAttribute("id") || "", 2048);
}

function fieldOf(target: EventTarget | null): Field | null {
  const field = target as Field | null;
  return field && FIELD.test(field.tagName) && field.form ? field : null;
}

export function startForms(send: Send, delay = FORM_HESITATION_MS): Collector {
  let forms = new Map<HTMLFormElement, State>();
  let fields = new WeakMap<Element, { had: boolean; cleared: boolean }>();
  let focused: Field | null = null;
  let since = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  /** Adds the running focus time of the focused field to its form's timing. */
  function settle(): void {
    clearTimeout(timer);
    const state = focused && focused.form && forms.get(focused.form);
    const name = focused && fieldName(focused);
    if (state && name) state.ms[name] = (state.ms[name] || 0) + Date.now() - since;
    since = Date.now();
  }

  function abandoned(url?: string): void {
    settle();
    forms.forEach((s) => {
      if (s.submitted || s.abandoned || !s.touched.size) return;
      s.abandoned = true;
      send(
        "form_abandon",
        { form: s.name, fields_touched: s.touched.size, field_ms: timing(s.ms) },
        url,
      );
    });
  }

  function leave(url?: string): void {
    abandoned(url);
    forms.forEach((s) => {
      if (!s.submitted) send("form", { action: "abandon", form: s.name, field: s.field }, url);
    });
    forms = new Map();
    fields = new WeakMap();
    focused = null;
  }

  const removers: Remover[] = [
    listen(document, "focusin", (e) => {
      const field = fieldOf(e.target);
      if (!field) return;
      settle();
      const name = fieldName(field) || undefined;
      let state = forms.get(field.form!);
      if (!state) {
        state = {
          name: formName(field.form!),
          submitted: false,
          touched: new Set(),
          abandoned: false,
          ms: {},
        };
        forms.set(field.form!, state);
        send("form", { action: "focus", form: state.name, field: name });
      }
      state.field = name;
      focused = field;
      const form = state.name;
      if (name)
        timer = setTimeout(() => send("form_hesitation", { form, field: name, ms: delay }), delay);
    }),
    listen(document, "focusout", (e) => {
      if (e.target !== focused) return;
      settle();
      focused = null;
    }),
    listen(document, "input", (e) => {
      const field = fieldOf(e.target);
      if (!field) return;
      if (field === focused) clearTimeout(timer);
      const state = forms.get(field.form!);
      const name = fieldName(field);
      if (!state || !name) return;
      state.touched.add(name);
      const before = fields.get(field) || { had: false, cleared: false };
      const empty = field.type === "checkbox" || field.type === "radio" ? false : !field.value;
      const [cleared, retyped] = retype(before.had, before.cleared, empty);
      fields.set(field, { had: !empty, cleared });
      if (retyped) send("field_retyped", { form: state.name, field: name });
    }),
    listen(document, "submit", (e) => {
      const form = e.target as HTMLFormElement;
      if (!form || form.tagName !== "FORM") return;
      settle();
      const state = forms.get(form) || {
        name: formName(form),
        submitted: false,
        touched: new Set<string>(),
        abandoned: false,
        ms: {},
      };
      state.submitted = true;
      forms.set(form, state);
      send("form", { action: "submit", form: state.name, field_ms: timing(state.ms) });
    }),
    listen(document, "visibilitychange", () => {
      // Hidden time is no focus time: the running field's time restarts when the page is back.
      if (document.visibilityState === "hidden") abandoned();
      else since = Date.now();
    }),
    listen(window, "pagehide", () => leave()),
  ];
  return {
    stop() {
      clearTimeout(timer);
      removeAll(removers);
    },
    reset: leave,
  };
}
