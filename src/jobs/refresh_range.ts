/**
 * Reads one key range of `_all_docs` completely into the cache: the unit of work of
 * `partition refresh` ({@linkcode refreshPartitions}) and of the worker's `partition` items.
 *
 * - A range cached from a single page with an `ETag` is asked for conditionally; a 304 renews
 *   the cached entry (its freshness) and keeps its body.
 * - Otherwise every page is read and streamed into the cache as NDJSON, one `["id","rev"]` line
 *   per document in key order. The entry is replaced only when the range was read completely;
 *   until then the cache keeps the previous version, so it never holds a half-written range.
 *   The `ETag` is kept only for a range of one page (a follow-on page has no validator).
 *
 * Failures reject: HTTP failures once the client's retries are spent, bad pages once
 * `readRange` has asked for them again, storage failures at once.
 *
 * @module
 */

import { readRange } from "../couchdb/all_docs.ts";
import { MAX_PAGE_LIMIT } from "../couchdb/rows.ts";
import type { PartitionRange } from "../couchdb/pivots.ts";
import type { Cache } from "../storage/cache.ts";
import type { HttpClient } from "../http/client.ts";
import { type Clock, systemClock } from "../clock.ts";

/** Options for {@linkcode refreshRange}. */
export interface RefreshRangeOptions {
  /** The origin URL (the replication endpoint). */
  origin: string;
  /** Rows per page, 2 to 10,000.
   * @default {10000} */
  limit?: number;
  /** The clock for the pause before a bad page is asked for again.
   * @default {systemClock} */
  clock?: Clock;
  /** Aborts the read; the cache keeps the previous version.
   * @default {undefined} */
  signal?: AbortSignal | undefined;
  /** Called with the rows of each page as it arrives. */
  onPage?: (rows: number) => void;
}

/** What {@linkcode refreshRange} did. */
export interface RangeRefresh {
  /** Rows in the cached range. */
  rows: number;
  /** The origin said the cached range is unchanged (304). */
  unchanged: boolean;
}

/**
 * Reads a range completely into the cache under its key, conditionally where the cached entry
 * allows (see the module documentation).
 *
 * @param client The HTTP client.
 * @param cache The cache.
 * @param range The range and its cache key.
 * @param options The origin and how to read.
 * @returns The rows cached and whether the origin said they were unchanged.
 * @throws {HttpError} When a page fails for good.
 * @throws {BadResponseError} When a page stays unusable.
 * @throws {StorageError} When the cache cannot be read or written.
 *
 * @example
 * ```ts
 * import { refreshRange } from "./refresh_range.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { HttpClient } from "../http/client.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const page = { total_rows: 1, offset: 0, rows: [{ id: "ms", key: "ms", value: { rev: "1-a" } }] };
 * const client = new HttpClient({ fetch: () => Promise.resolve(Response.json(page)) });
 * const cache = await Cache.open(new MemoryDriver());
 * const range = { startKey: "", endKey: "", key: partitionKey("couch", "", "") };
 * const done = await refreshRange(client, cache, range, { origin: "http://couch.test/" });
 * console.assert(done.rows === 1 && !done.unchanged);
 * ```
 */
export async function refreshRange(
  client: HttpClient,
  cache: Cache,
  range: Pick<PartitionRange, "key" | "startKey" | "endKey">,
  options: RefreshRangeOptions,
): Promise<RangeRefresh> {
  const limit = options.limit ?? MAX_PAGE_LIMIT;
  const onPage = options.onPage;
  const existing = await cache.info(range.key);
  const singlePage = existing?.count !== undefined && existing.count < limit;
  const conditional = existing?.etag && singlePage ? { etag: existing.etag } : undefined;
  const read = await readRange(client, options.origin, range, {
    limit,
    conditional,
    clock: options.clock ?? systemClock,
    signal: options.signal,
    ...(onPage ? { onPage: ({ rows }: { rows: number }) => onPage(rows) } : {}),
  });
  if (read.notModified && existing) {
    await cache.refresh(range.key);
    return { rows: existing.count ?? 0, unchanged: true };
  }
  let rows = 0;
  let pages = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await read.pages.next();
      if (next.done) return controller.close();
      rows += next.value.count;
      pages++;
      controller.enqueue(next.value.lines);
    },
    async cancel() {
      await read.pages.return(undefined);
    },
  });
  await cache.put(range.key, body, () => ({
    status: 200,
    contentType: "application/x-ndjson",
    representation: "partition",
    count: rows,
    ...(pages <= 1 && read.etag ? { etag: read.etag } : {}),
  }), { encoding: cache.storeEncoding });
  return { rows, unchanged: false };
}
