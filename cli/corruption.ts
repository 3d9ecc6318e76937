/**
 * How the CLI reports corrupt cache entries: every command's cache reports each one it reads
 * on stderr (a JSON line with `--json`) and removes it, so that the next refresh or fetch gets
 * it again, as npm's cache does with content that fails its integrity check; the command then
 * exits 1. `cache verify` counts them itself and removes them only with `--fix`.
 *
 * @module
 */

import type { CacheOptions } from "../src/storage/cache.ts";
import { err } from "./io.ts";

/** A corrupt entry a command read. */
export interface CorruptEntryReport {
  /** The entry key. */
  key: string;
  /** What was wrong. */
  reason: string;
}

/** Collects the corrupt entries a command reads, reporting each on stderr as it is found. */
export class CorruptionLog {
  /** The entries found so far, in order. */
  readonly entries: CorruptEntryReport[] = [];
  #json: boolean;

  /** @param json Report each entry as a JSON line. */
  constructor(json: boolean) {
    this.#json = json;
  }

  /** Cache options that report corrupt entries here and remove them. */
  cacheOptions(): Pick<CacheOptions, "onCorrupt" | "dropCorrupt"> {
    return {
      dropCorrupt: true,
      onCorrupt: (key, reason) => {
        this.entries.push({ key, reason });
        err(
          this.#json
            ? JSON.stringify({ type: "corrupt", key, reason, removed: true })
            : `corrupt  ${key}: ${reason} (removed from the cache; a refresh fetches it again)`,
        );
      },
    };
  }

  /** Whether any entry was found for `key`. */
  has(key: string): boolean {
    return this.entries.some((entry) => entry.key === key);
  }
}
