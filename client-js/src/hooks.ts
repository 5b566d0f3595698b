/** The page's `cuewire.on(name, fn)` handlers. A throwing handler is isolated from the others
 * and from the snippet. */
import type { Remover } from "./types";

export type Handler = (payload: unknown) => void;

export interface Hooks {
  on(name: string, fn: Handler): Remover;
  off(name: string, fn: Handler): void;
  emit(name: string, payload: unknown): void;
}

export function createHooks(): Hooks {
  const handlers: Record<string, Handler[]> = {};
  const off = (name: string, fn: Handler) => {
    const list = handlers[name];
    const i = list ? list.indexOf(fn) : -1;
    if (i >= 0) list.splice(i, 1);
  };
  return {
    on(name, fn) {
      if (typeof fn !== "function") return () => {};
      (handlers[name] = handlers[name] || []).push(fn);
      return () => off(name, fn);
    },
    off,
    emit(name, payload) {
      for (const fn of (handlers[name] || []).slice()) {
        try {
          fn(payload);
        } catch (e) {
          setTimeout(() => {
            throw e; // reported like any uncaught error, without breaking the snippet
          });
        }
      }
    },
  };
}
