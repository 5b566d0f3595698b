// Bundles src/index.ts into one minified IIFE: ../server/cuewire/static/cw.js.
// The output depends only on the sources and the pinned dependencies (no timestamps, no
// source map), so building twice gives the same bytes.
//
//   npm run build             production bundle (DEBUG false: debug code is dropped)
//   npm run build -- --debug  readable bundle with debug logging, dist/cw.debug.js
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// One version for server and snippet, written in server/cuewire/__init__.py (pyproject reads
// it there too).
const init = readFileSync(resolve(root, "../server/cuewire/__init__.py"), "utf8");
const version = /^__version__ = "([^"]+)"$/m.exec(init)?.[1];
if (!version) throw new Error("no __version__ in server/cuewire/__init__.py");
const debug = process.argv.includes("--debug");
const outfile = debug
  ? resolve(root, "dist/cw.debug.js")
  : resolve(root, "../server/cuewire/static/cw.js");

await build({
  entryPoints: [resolve(root, "src/index.ts")],
  outfile,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2018"],
  minify: !debug,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  define: { DEBUG: String(debug), VERSION: JSON.stringify(version) },
  drop: debug ? [] : ["debugger"],
  banner: {
    js:
      `/*! Cuewire cw.js ${version} | Apache-2.0 | includes socket.io-client, ` +
      `socket.io-msgpack-parser, notepack.io, component-emitter (MIT) */`,
  },
  logLevel: "warning",
});
console.log(`wrote ${outfile}`);
