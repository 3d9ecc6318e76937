/**
 * The `_all_docs` command line for Deno: `deno run -A cli.ts <command> [options]`.
 *
 * @module
 */

import process from "node:process";
import { main } from "./cli/main.ts";
import { createStorageDriver } from "./drivers/for_deno.ts";

if (import.meta.main) {
  const status = await main(process.argv.slice(2), (options) => createStorageDriver(options));
  process.exitCode = status;
}
