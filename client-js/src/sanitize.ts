/** Client-side trimming of user-supplied maps so that valid calls are never rejected by the
 * server (docs/protocol.md: at most 50 keys, scalar values, strings up to 2,048 characters). */
import type { Scalar } from "./types";
import { clip } from "./dom";

const MAX_KEYS = 50;
const MAX_KEY = 128;
export const MAX_STRING = 2048;

/** Keeps the scalar entries of `input` (non-finite numbers, and integers beyond 2^53, which
 * msgpack would encode wrapped, become null); anything that is not a plain object gives an
 * empty map. */
export function sanitizeMap(input: unknown): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  if (!input || typeof input !== "object" || Array.isArray(input)) return out;
  let n = 0;
  for (const key of Object.keys(input)) {
    if (n >= MAX_KEYS) break;
    const value = (input as Record<string, unknown>)[key];
    let kept: Scalar | undefined;
    if (typeof value === "string") kept = clip(value, MAX_STRING);
    else if (typeof value === "number") kept = exact(value) ? value : null;
    else if (typeof value === "boolean" || value === null) kept = value;
    if (kept !== undefined) {
      out[clip(key, MAX_KEY)] = kept;
      n++;
    }
  }
  return out;
}

/** A required string field: coerced, trimmed and clipped; empty gives null. */
export function name(value: unknown, max: number): string | null {
  if (value === null || value === undefined) return null;
  const s = clip(String(value).trim(), max);
  return s ? s : null;
}

/** A number msgpack carries as it is: finite, and not an integer past the safe range (those
 * are encoded as 64-bit integers, wrapped beyond 2^64, and are not exact in JS anyway). */
function exact(value: number): boolean {
  return isFinite(value) && (Math.abs(value) <= Number.MAX_SAFE_INTEGER || value % 1 !== 0);
}
