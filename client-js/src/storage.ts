/** First-party storage that never throws: localStorage / sessionStorage when the browser
 * allows them (they throw in some privacy modes and sandboxed frames), otherwise an in-memory
 * map that lasts as long as the page. */

export interface Store {
  get(key: string): string | null;
  set(key: string, value: string): void;
}

function open(kind: "localStorage" | "sessionStorage"): Store {
  const memory: Record<string, string> = {};
  let real: Storage | null = null;
  try {
    real = window[kind];
    const probe = "cw_probe";
    real.setItem(probe, probe);
    real.removeItem(probe);
  } catch {
    real = null;
  }
  return {
    get(key) {
      if (real) {
        try {
          return real.getItem(key);
        } catch {
          /* fall through to memory */
        }
      }
      return key in memory ? memory[key] : null;
    },
    set(key, value) {
      memory[key] = value;
      if (real) {
        try {
          real.setItem(key, value);
        } catch {
          /* quota or revoked access: the memory copy still holds it */
        }
      }
    },
  };
}

export const local = open("localStorage");
export const tabStore = open("sessionStorage");
