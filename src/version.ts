/**
 * The version of this package, kept equal to `version` in deno.json (a test checks it).
 *
 * @module
 */

/** The package version, used in the `user-agent` header and by `--version`. */
export const VERSION: string = "0.1.0";
