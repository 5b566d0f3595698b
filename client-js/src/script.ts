/** The <script> tag that loaded the snippet. `document.currentScript` is only set while the
 * script's top-level code runs, so it is read here, when the bundle is evaluated. */
const current = document.currentScript as HTMLScriptElement | null;

export function ownScript(): HTMLScriptElement | null {
  return (
    (current && current.src ? current : null) ||
    document.querySelector<HTMLScriptElement>('script[src$="/cw.js"],script[src*="/cw.js?"]')
  );
}
