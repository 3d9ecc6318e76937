/**
 * Loads pivots from a file: `.json` (an array), `.txt` (one key per line, read as a name list
 * is: trimmed, `#` comments and blank lines ignored) or a `.js`/`.ts`/`.mjs` module exporting
 * `pivots` or a default array. A module that throws while it loads or while its list is read,
 * or that is still loading after {@linkcode PIVOTS_IMPORT_TIMEOUT} (a top-level await that never
 * settles), is a usage error.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parsePivots, PivotError, validatePivots } from "../src/couchdb/pivots.ts";
import { UsageError } from "./options.ts";

/** How long a pivots module may take to load (its top-level code, awaits included), in ms. */
export const PIVOTS_IMPORT_TIMEOUT = 10_000;

/** Options for {@linkcode loadPivots}. */
export interface LoadPivotsOptions {
  /** How long a `.js`/`.mjs`/`.ts` module may take to load, in ms.
   * @default {PIVOTS_IMPORT_TIMEOUT} */
  importTimeout?: number;
}

/** The first line of an error's message (a load error may carry a code frame below it). */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0]!.trim();
}

/** Imports a module, giving up after `ms` (a top-level await that never settles). */
async function importWithin(href: string, ms: number): Promise<Record<string, unknown>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`it did not finish loading within ${ms / 1000} s`)),
      ms,
    );
  });
  try {
    return await Promise.race([import(href), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads and validates a pivots file; every problem is a {@linkcode UsageError}. */
export async function loadPivots(file: string, options: LoadPivotsOptions = {}): Promise<string[]> {
  const ext = extname(file).toLowerCase();
  try {
    if (ext === ".json" || ext === ".txt") {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (cause) {
        throw new UsageError(`Cannot read pivots file '${file}': ${messageOf(cause)}`);
      }
      return parsePivots(text, ext === ".json" ? "json" : "txt");
    }
    if (ext === ".js" || ext === ".ts" || ext === ".mjs") {
      const href = pathToFileURL(resolve(file)).href;
      let value: unknown;
      try {
        const module = await importWithin(href, options.importTimeout ?? PIVOTS_IMPORT_TIMEOUT);
        // Read the export and copy the list here, so a getter or proxy that throws is a
        // problem of the module, reported like its other failures.
        value = module["pivots"] ?? module["default"];
        if (Array.isArray(value)) value = Array.from(value);
      } catch (cause) {
        throw new UsageError(`Cannot load pivots module '${file}': ${messageOf(cause)}`);
      }
      return validatePivots(value);
    }
  } catch (error) {
    if (error instanceof PivotError) throw new UsageError(`${error.message} (in ${file})`);
    throw error;
  }
  throw new UsageError(
    `Unknown pivots file type '${ext || file}': use .json, .txt, .js, .mjs or .ts`,
  );
}
