/**
 * The document index as text: one `id,rev` line per document of the cached partitions,
 * de-duplicated and sorted by id in code-point order (see {@linkcode indexBatches}), handed out
 * in chunks of about 64 KiB for a writer; and read back ({@linkcode parseIndexLines}), for
 * `packument fetch-list`.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { AllDocsRow } from "../couchdb/rows.ts";
import { type NameListProblem, packageNameProblem } from "../npm/package_name.ts";
import { indexBatches } from "./create_index.ts";

/** A revision as the index writes it: `12-abc`. */
const REV = /^\d+-[0-9A-Za-z]{1,64}$/;

/**
 * Whether a text list is index lines (`id,rev`, as `cache create-index` writes them) rather
 * than names: its first line that is not blank or a `#` comment is `name,N-hash`.
 *
 * @param text The file contents.
 * @returns `true` for index lines.
 *
 * @example
 * ```ts
 * import { isIndexText } from "./index_lines.ts";
 * console.assert(isIndexText("# from create-index\nleft-pad,2-b\n"));
 * console.assert(!isIndexText("left-pad\nms@^2\n"));
 * ```
 */
export function isIndexText(text: string): boolean {
  for (const raw of text.replace(/^\ufeff/, "").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const comma = line.lastIndexOf(",");
    return comma > 0 && REV.test(line.slice(comma + 1));
  }
  return false;
}

/** Index lines read back: rows in file order (an id repeated keeps its last line). */
export interface IndexList {
  /** The rows. */
  rows: AllDocsRow[];
  /** Lines that repeated an earlier id. */
  duplicates: number;
}

/**
 * Reads index lines (`id,rev`, one a line, as `cache create-index` writes them; blank lines and
 * `#` comments ignored, a byte order mark too).
 *
 * @param text The file contents.
 * @returns The rows, or every problem found (a line that is not `name,N-hash`, a name npm
 *   could never have served).
 *
 * @example
 * ```ts
 * import { parseIndexLines } from "./index_lines.ts";
 * const list = parseIndexLines("left-pad,2-b\nms,1-a\n");
 * console.assert("rows" in list && list.rows[1]!.rev === "1-a");
 * const bad = parseIndexLines("left-pad\n");
 * console.assert("problems" in bad && bad.problems[0]!.at === 1);
 * ```
 */
export function parseIndexLines(text: string): IndexList | { problems: NameListProblem[] } {
  const byId = new Map<string, string>();
  let duplicates = 0;
  const problems: NameListProblem[] = [];
  const lines = text.replace(/^\ufeff/, "").split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const comma = line.lastIndexOf(",");
    const id = line.slice(0, Math.max(comma, 0));
    const rev = line.slice(comma + 1);
    let problem: string | undefined;
    if (comma <= 0 || !REV.test(rev)) problem = "not an index line (name,N-hash)";
    else problem = packageNameProblem(id);
    if (problem !== undefined) {
      problems.push({ at: i + 1, kind: "line", value: raw, problem });
      return;
    }
    if (byId.has(id)) duplicates++;
    byId.set(id, rev);
  });
  if (problems.length > 0) return { problems };
  return { rows: [...byId].map(([id, rev]) => ({ id, rev })), duplicates };
}

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
