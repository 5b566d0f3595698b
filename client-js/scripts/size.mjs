// Prints the gzipped size of the production bundle; fails above the 30 KiB budget.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const BUDGET = 30720;
const file = resolve(dirname(fileURLToPath(import.meta.url)), "../../server/cuewire/static/cw.js");
const raw = readFileSync(file);
const gz = gzipSync(raw, { level: 9 }).length;
console.log(`cw.js: ${raw.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`over budget by ${gz - BUDGET} bytes`);
  process.exit(1);
}
