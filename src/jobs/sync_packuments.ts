/**
 * Syncing packuments from cached partitions: every document the cached `_all_docs` ranges of an
 * origin list is compared with the cached packument by `_rev`, and only the new or changed ones
 * are fetched.
 *
 * - A document whose cached packument (of the representation asked for) was stored from a 200
 *   with the `_rev` the partition row lists is skipped without a request (`sameRev`; the
 *   comparison is {@linkcode changedPackuments}, shared with the worker).
 * - Any other is fetched with {@linkcode fetchPackument}, revalidating even a fresh entry: the
 *   partition says it is stale. A 304 renews the entry and records no new `_rev`.
 * - A fetched body that carries its own `_rev` (a full document) is stored with it, even when it
 *   is older than the partition's (the registry may lag behind the replication endpoint): the
 *   next sync asks again. Only a body without a `_rev` of its own (the abbreviated document)
 *   takes the partition row's.
 *
 * @module
 */

import type { Cache } from "../storage/cache.ts";
import type { HttpClient } from "../http/client.ts";
import { rangesFromPivots, validatePivots } from "../couchdb/pivots.ts";
import { indexRows } from "./create_index.ts";
import type { AllDocsRow } from "../couchdb/rows.ts";
import { changedPackuments } from "./changed_packuments.ts";
import {
  type FetchPackumentOptions,
  fetchPackuments,
  type FetchSummary,
  type PackumentResult,
} from "./fetch_packuments.ts";

/** Options for {@linkcode syncPackuments}. */
export interface SyncPackumentsOptions extends Omit<FetchPackumentOptions, "refresh" | "revFor"> {
  /** The origin key of the partitions to read (the `_all_docs` origin's, not the registry's). */
  originKey: string;
  /** Only the partitions of the set these pivots make; every cached partition of the origin
   * when omitted.
   * @default {undefined} */
  pivots?: readonly string[];
  /** Names in progress at once.
   * @default {16} */
  parallel?: number;
  /** Called with the result of each name fetched (not of those skipped).
   * @default {undefined} */
  onResult?: (result: PackumentResult) => void;
}

/** Totals of a {@linkcode syncPackuments} run. */
export interface SyncSummary extends FetchSummary {
  /** Documents skipped because their cached packument has the partition row's `_rev`; they are
   * not counted in `total`, which counts the names fetched. */
  sameRev: number;
}

/**
 * Fetches the packuments of the documents in an origin's cached partitions whose `_rev` differs
 * from the cached packument's, or which are not cached.
 *
 * @param client The HTTP client for the registry.
 * @param cache The cache holding the partitions; packuments are stored in it.
 * @param options The partitions to read, and where and how to fetch.
 * @returns The totals.
 * @throws {TypeError} When `originKey` is not a valid origin key.
 * @throws {RangeError} When `parallel` is not a positive integer.
 * @throws {PivotError} When `pivots` is not a valid pivot list.
 *
 * @example Sync once, then again with nothing changed
 * ```ts
 * import { syncPackuments } from "./sync_packuments.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { HttpClient } from "../http/client.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { encodePartitionLines } from "../couchdb/partition_lines.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * // One cached partition of the origin "couch", listing ms at revision 3-a.
 * const rows = encodePartitionLines([{ id: "ms", rev: "3-a" }]);
 * await cache.put(partitionKey("couch", "", ""), rows, { status: 200 });
 * // A registry that serves every document with that revision.
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(Response.json({ _id: "ms", _rev: "3-a" })),
 * });
 * const registry = { url: "http://registry.test/", originKey: "registry" };
 * const options = { originKey: "couch", registryFor: () => registry };
 *
 * const first = await syncPackuments(client, cache, options);
 * console.assert(first.outcomes.fetched === 1 && first.sameRev === 0);
 * const second = await syncPackuments(client, cache, options);
 * console.assert(second.total === 0 && second.sameRev === 1);
 * ```
 */
export async function syncPackuments(
  client: HttpClient,
  cache: Cache,
  options: SyncPackumentsOptions,
): Promise<SyncSummary> {
  const { originKey } = options;
  if (typeof originKey !== "string" || !/^[A-Za-z0-9._-]+$/.test(originKey)) {
    throw new TypeError(
      `Cannot sync packuments: 'originKey' must be characters of [A-Za-z0-9._-], received '${originKey}'`,
    );
  }
  const parallel = options.parallel ?? 16;
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new RangeError(
      `Cannot sync packuments: 'parallel' must be a positive integer, received ${parallel}`,
    );
  }
  const only = options.pivots === undefined
    ? undefined
    : rangesFromPivots(validatePivots([...options.pivots]), originKey).map((range) => range.key);
  return await syncPackumentRows(client, cache, indexRows(cache, originKey, only), {
    ...options,
    parallel,
  });
}

/**
 * Fetches the packuments of the rows (id and `_rev`: an index, a listing) whose `_rev` differs
 * from the cached packument's, or which are not cached; the rest are skipped without a request.
 * This is {@linkcode syncPackuments} over rows given by the caller (`packument fetch-list` with
 * `cache create-index` output).
 *
 * @param client The HTTP client for the registry.
 * @param cache The cache the packuments are stored in.
 * @param rows The rows (ids must be valid package names).
 * @param options Where and how to fetch.
 * @returns The totals.
 * @throws {RangeError} When `parallel` is not a positive integer.
 *
 * @example
 * ```ts
 * import { syncPackumentRows } from "./sync_packuments.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { HttpClient } from "../http/client.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const client = new HttpClient({
 *   fetch: () => Promise.resolve(Response.json({ _id: "ms", _rev: "3-a" })),
 * });
 * const options = { registryFor: () => ({ url: "http://registry.test/", originKey: "r" }) };
 * const rows = [{ id: "ms", rev: "3-a" }];
 * console.assert((await syncPackumentRows(client, cache, rows, options)).outcomes.fetched === 1);
 * console.assert((await syncPackumentRows(client, cache, rows, options)).sameRev === 1);
 * ```
 */
export async function syncPackumentRows(
  client: HttpClient,
  cache: Cache,
  rows: AsyncIterable<AllDocsRow> | Iterable<AllDocsRow>,
  options: Omit<SyncPackumentsOptions, "originKey" | "pivots">,
): Promise<SyncSummary> {
  const parallel = options.parallel ?? 16;
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new RangeError(
      `Cannot sync packuments: 'parallel' must be a positive integer, received ${parallel}`,
    );
  }
  const representation = options.representation ?? "full";
  let sameRev = 0;
  // The listed _rev of each name in progress, for a body that names none.
  const revs = new Map<string, string>();
  async function* changed(): AsyncGenerator<string> {
    const listed = changedPackuments(cache, rows, {
      registryFor: options.registryFor,
      representation,
      onSameRev: () => sameRev++,
    });
    for await (const row of listed) {
      revs.set(row.id, row.rev);
      yield row.id;
    }
  }
  const onResult = options.onResult;
  const summary = await fetchPackuments(client, cache, changed(), {
    ...options,
    representation,
    parallel,
    // The partition lists a newer _rev than the cache holds: ask even when the entry is fresh.
    refresh: true,
    // A body's own _rev always wins (see fetchPackument): this one is only for bodies without.
    revFor: (name) => revs.get(name),
    onResult(result) {
      revs.delete(result.name);
      onResult?.(result);
    },
  });
  return { ...summary, sameRev };
}
