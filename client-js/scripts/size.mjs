// Prints the size of every committed bundle (scripts/build.mjs: BUNDLES); fails when the
// visitor snippet cw.js is above its 30 KiB gzipped budget. The admin bundles (the QA view's
// socket, the studio, the QA charts) load only on the admin's pages, the QA overlay only in QA
// mode: they have no budget; their sizes are shown.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { BUNDLES } from "./build.mjs";

const BUDGET = 30720;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let over = 0;
for (const bundle of BUNDLES) {
  const raw = readFileSync(resolve(root, bundle.out));
  const gz = gzipSync(raw, { level: 9 }).length;
  const budget = bundle.name === "cw.js" ? BUDGET : null;
  const only = bundle.name === "cw-qa.js" ? "pages opened in QA mode" : "admin pages";
  const note = budget ? ` (budget ${budget})` : ` (${only} only)`;
  console.log(`${bundle.name}: ${raw.length} bytes, ${gz} bytes gzipped${note}`);
  if (budget && gz > budget) {
    console.error(`${bundle.name} is over budget by ${gz - budget} bytes`);
    over += 1;
  }
}
if (over) process.exit(1);
