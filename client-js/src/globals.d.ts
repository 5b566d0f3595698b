/** Replaced at build time (scripts/build.mjs): false in the production bundle, whose
 * `if (DEBUG) ...` branches are then dropped by the minifier. */
declare const DEBUG: boolean;
/** The package.json version, replaced at build time. */
declare const VERSION: string;
