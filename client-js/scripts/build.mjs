// Bundles the browser code of client-js/ into the files the Python package serves (all
// COMMITTED, so pip users need no Node; .ci/run fails when one is stale):
//
//   src/index.ts          -> server/cuewire/static/cw.js                  the visitor snippet (IIFE)
//   src/admin/adminio.ts  -> server/cuewire/admin/qa_static/adminio.js   the QA view's socket (ES module)
//   src/studio/studio.ts  -> server/cuewire/admin/studio/studio.js       the studio page (IIFE)
//   src/qa/overlay.ts     -> server/cuewire/static/cw-qa.js               the QA overlay (IIFE),
//                            loaded by cw.js only on a page opened with ?cuewire_qa=TOKEN
//   src/qa-charts/index.ts -> server/cuewire/admin/qa_static/qacharts.js  the QA pages' charts
//                            (ES module: Observable Plot), for /qa/metrics and /qa/funnels
//
// The output depends only on the sources and the pinned dependencies (no timestamps, no
// source map), so building twice gives the same bytes.
//
//   npm run build             production bundles (DEBUG false: debug code is dropped)
//   npm run build -- --debug  a readable snippet with debug logging, dist/cw.debug.js
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
const LICENSES = "socket.io-client, socket.io-msgpack-parser, notepack.io, component-emitter (MIT)";
const PLOT_LICENSES = "@observablehq/plot, d3, isoformat (ISC), interval-tree-1d, binary-search-bounds (MIT)";

/** Every bundle the package ships, relative to client-js/ (scripts/size.mjs reads it too). */
export const BUNDLES = [
  {
    name: "cw.js",
    entry: "src/index.ts",
    out: "../server/cuewire/static/cw.js",
    format: "iife",
    banner: `/*! Cuewire cw.js ${version} | Apache-2.0 | includes ${LICENSES} */`,
  },
  {
    name: "adminio.js",
    entry: "src/admin/adminio.ts",
    out: "../server/cuewire/admin/qa_static/adminio.js",
    format: "esm",
    banner:
      `/*! Cuewire admin socket ${version} | Apache-2.0 | includes ${LICENSES} | ` +
      `built from client-js/src/admin/adminio.ts: do not edit */`,
  },
  {
    name: "studio.js",
    entry: "src/studio/studio.ts",
    out: "../server/cuewire/admin/studio/studio.js",
    format: "iife",
    banner:
      `/*! Cuewire Studio ${version} | Apache-2.0 | ` +
      `built from client-js/src/studio/studio.ts: do not edit */`,
  },
  {
    name: "cw-qa.js",
    entry: "src/qa/overlay.ts",
    out: "../server/cuewire/static/cw-qa.js",
    format: "iife",
    banner:
      `/*! Cuewire QA overlay ${version} | Apache-2.0 | ` +
      `built from client-js/src/qa/overlay.ts: do not edit */`,
  },
  {
    name: "qacharts.js",
    entry: "src/qa-charts/index.ts",
    out: "../server/cuewire/admin/qa_static/qacharts.js",
    format: "esm",
    banner:
      `/*! Cuewire QA charts ${version} | Apache-2.0 | includes ${PLOT_LICENSES} | ` +
      `built from client-js/src/qa-charts/index.ts: do not edit */`,
  },
];

const common = {
  bundle: true,
  platform: "browser",
  target: ["es2018"],
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};

async function main() {
  if (debug) {
    const outfile = resolve(root, "dist/cw.debug.js");
    await build({
      ...common,
      entryPoints: [resolve(root, "src/index.ts")],
      outfile,
      format: "iife",
      minify: false,
      define: { DEBUG: "true", VERSION: JSON.stringify(version) },
    });
    console.log(`wrote ${outfile}`);
    return;
  }
  for (const bundle of BUNDLES) {
    const outfile = resolve(root, bundle.out);
    await build({
      ...common,
      entryPoints: [resolve(root, bundle.entry)],
      outfile,
      format: bundle.format,
      minify: true,
      define: { DEBUG: "false", VERSION: JSON.stringify(version) },
      drop: ["debugger"],
      banner: { js: bundle.banner },
    });
    console.log(`wrote ${outfile}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
