import { describe, expect, it } from "vitest";
import { name, sanitizeMap } from "../src/sanitize";

describe("sanitizeMap", () => {
  it("keeps scalars and drops the rest", () => {
    expect(sanitizeMap({ a: "x", b: 1, c: true, d: null, e: {}, f: [1], g: () => 1 })).toEqual({
      a: "x",
      b: 1,
      c: true,
      d: null,
    });
  });

  it("turns numbers msgpack cannot carry exactly into null", () => {
    expect(sanitizeMap({ inf: Infinity, nan: NaN, big: 1e20, neg: -(2 ** 60) })).toEqual({
      inf: null,
      nan: null,
      big: null,
      neg: null,
    });
    expect(sanitizeMap({ safe: Number.MAX_SAFE_INTEGER, frac: 1.5, tiny: -1e-300 })).toEqual({
      safe: Number.MAX_SAFE_INTEGER,
      frac: 1.5,
      tiny: -1e-300,
    });
  });

  it("keeps at most 50 keys, keys of 128 and strings of 2,048 characters", () => {
    const input: Record<string, string> = {};
    for (let i = 0; i < 60; i++) input[i + "k".repeat(200)] = "v".repeat(3000);
    const out = sanitizeMap(input);
    expect(Object.keys(out).length).toBe(50);
    for (const [k, v] of Object.entries(out)) {
      expect(k.length).toBe(128);
      expect((v as string).length).toBe(2048);
    }
  });

  it("gives an empty map for anything but a plain object", () => {
    expect(sanitizeMap("x")).toEqual({});
    expect(sanitizeMap([1, 2])).toEqual({});
    expect(sanitizeMap(null)).toEqual({});
  });
});

describe("name", () => {
  it("coerces, trims and clips; empty gives null", () => {
    expect(name("  signup ", 128)).toBe("signup");
    expect(name(42, 128)).toBe("42");
    expect(name("   ", 128)).toBe(null);
    expect(name("x".repeat(300), 128)).toBe("x".repeat(128));
  });
});
