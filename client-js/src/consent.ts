/** The visitor's choices about being tracked.
 *
 * - `cuewire.consent(false)` / `consent(true)`: an explicit choice, kept in localStorage
 *   (`cw_consent`), that the site's consent banner passes on.
 * - `data-consent="required"` on the script tag: send nothing until `consent(true)`.
 * - Do-Not-Track / Global Privacy Control are only reported (`dnt` in the connect auth); the
 *   server decides whether the site honours them and refuses the connection if so.
 */
import { local } from "./storage";

const KEY = "cw_consent";

export interface Consent {
  /** True when events may be sent. */
  granted(): boolean;
  /** Records the visitor's choice; returns true when it changed. */
  set(granted: boolean): boolean;
}

export function createConsent(requireOptIn: boolean): Consent {
  let state = local.get(KEY);
  const granted = () => (state === null ? !requireOptIn : state === "1");
  return {
    granted,
    set(value) {
      const before = granted();
      state = value ? "1" : "0";
      local.set(KEY, state);
      return before !== value;
    },
  };
}

/** The browser asks not to be tracked (DNT header setting or Global Privacy Control). */
export function doNotTrack(): boolean {
  const nav = navigator as Navigator & { globalPrivacyControl?: boolean };
  return nav.doNotTrack === "1" || nav.globalPrivacyControl === true;
}
