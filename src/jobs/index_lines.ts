/**
 * The document index as text: one `id,rev` line per document of the cached partitions,
 * de-duplicated and sorted by id in code-point order (see {@linkcode indexBatches}), handed out
 * in chunks of about 64 KiB for a writer.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import { indexBatches } from "./create_index.ts";

/** Options for {@linkcode indexLines}. */
export interface IndexLinesOptions {
  /** Only the partitions of this origin key.
   * @default {undefined} (every origin) */
  originKey?: string;
  /** Only these partition keys (one partition set).
   * @default {undefined} (every cached partition) */
  only?: Iterable<string>;
  /** A chunk is handed out once it holds at least this many characters (the last may hold
   * fewer).
   * @default {65536} */
  chunkSize?: number;
}

/**
 * The `id,rev` lines of every document in the cached partitions, in id order, one per id,
 * joined into chunks of at least `chunkSize` characters (each ends with a whole line).
 *
 * @param cache The cache.
 * @param options Which partitions, and the chunk size.
 * @returns The chunks of text; together, every line, each ending in `\n`.
 * @throws {RangeError} When `chunkSize` is not a positive integer.
 *
 * @example
 * ```ts
 * import { indexLines } from "./index_lines.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { encodePartitionLines } from "../couchdb/partition_lines.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const rows = [{ id: "left-pad", rev: "2-b" }, { id: "ms", rev: "1-a" }];
 * await cache.put(partitionKey("couch", "", ""), encodePartitionLines(rows), { status: 200 });
 * let text = "";
 * for await (const chunk of indexLines(cache, { originKey: "couch" })) text += chunk;
 * console.assert(text === "left-pad,2-b\nms,1-a\n");
 * ```
 */
export function indexLines(
  cache: Cache,
  options: IndexLinesOptions = {},
): AsyncGenerator<string> {
  const chunkSize = options.chunkSize ?? 65_536;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(
      `Cannot write index lines: 'chunkSize' must be a positive integer, received ${chunkSize}`,
    );
  }
  return chunks(cache, options.originKey, options.only, chunkSize);
}

async function* chunks(
  cache: Cache,
  originKey: string | undefined,
  only: Iterable<string> | undefined,
  chunkSize: number,
): AsyncGenerator<string> {
  let text = "";
  for await (const rows of indexBatches(cache, originKey, only)) {
    for (const row of rows) text += `${row.id},${row.rev}\n`;
    if (text.length >= chunkSize) {
      yield text;
      text = "";
    }
  }
  if (text) yield text;
}
