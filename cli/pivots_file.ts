/**
 * Loads pivots from a file: `.json` (an array), `.txt` (one key per line, read as a name list
 * is: trimmed, `#` comments and blank lines ignored) or a `.js`/`.ts`/`.mjs` module exporting
 * `pivots` or a default array.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parsePivots, PivotError, validatePivots } from "../src/couchdb/pivots.ts";
import { UsageError } from "./options.ts";

/** Reads and validates a pivots file; every problem is a {@linkcode UsageError}. */
export async function loadPivots(file: string): Promise<string[]> {
  const ext = extname(file).toLowerCase();
  try {
    if (ext === ".json" || ext === ".txt") {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (cause) {
        throw new UsageError(`Cannot read pivots file '${file}': ${(cause as Error).message}`);
      }
      return parsePivots(text, ext === ".json" ? "json" : "txt");
    }
    if (ext === ".js" || ext === ".ts" || ext === ".mjs") {
      let module: { pivots?: unknown; default?: unknown };
      try {
        module = await import(pathToFileURL(resolve(file)).href);
      } catch (cause) {
        throw new UsageError(`Cannot load pivots module '${file}': ${(cause as Error).message}`);
      }
      return validatePivots(module.pivots ?? module.default);
    }
  } catch (error) {
    if (error instanceof PivotError) throw new UsageError(`${error.message} (in ${file})`);
    throw error;
  }
  throw new UsageError(
    `Unknown pivots file type '${ext || file}': use .json, .txt, .js, .mjs or .ts`,
  );
}
