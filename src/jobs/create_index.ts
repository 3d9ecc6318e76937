/**
 * The document index: every `id,rev` in the cached partitions, de-duplicated and sorted by id in
 * code-point order, produced as a stream with memory bounded by the open partitions.
 *
 * Partitions are opened lazily in order of their start key and merged, so a set of disjoint
 * ranges keeps one or two open at a time; overlapping sets (different pivots for one origin) are
 * merged too: for every point of the key space the most recently fetched partition covering it
 * decides, so an id it lacks is gone even when an older partition still lists it.
 *
 * A partition's pending edits (the changes a `_changes` follower recorded without rewriting it)
 * are applied as it streams. A corrupt partition is reported through the cache
 * (`CacheOptions.onCorrupt`) and its rows are left out; the index goes on with the others.
 *
 * @module
 */

import type { AllDocsRow } from "../couchdb/rows.ts";
import { type Cache, CacheIntegrityError } from "../storage/cache.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import { partitionBatches } from "../couchdb/partition_lines.ts";
import { mergeBatches, type MergeSource } from "../couchdb/merge.ts";
import { PatchedPartitions } from "../couchdb/patched_partitions.ts";

/**
 * The rows of a cached partition. A corrupt one (reported by the cache's `onCorrupt`) ends
 * early: found before it is read, it gives no rows; found at the end of a body streamed apart,
 * the rows before its last chunk have been handed out already.
 */
async function* batchesOf(
  cache: Cache,
  key: string,
  patches: PatchedPartitions,
): AsyncGenerator<AllDocsRow[]> {
  const entry = await cache.get(key, { verify: "while" });
  if (!entry) return;
  try {
    yield* partitionBatches(await patches.body(key, entry));
  } catch (error) {
    if (error instanceof CacheIntegrityError) return;
    // Lines that do not parse: a changed byte seen before the integrity check at the end. The
    // check (which reports the entry) tells it from a body written wrong.
    if (error instanceof SyntaxError && !(await cache.get(key))) return;
    throw error;
  }
}

/**
 * Every document row of the cached partitions, in id order, one per id, in batches. While only
 * one partition covers the ids at hand (the usual case: one set of disjoint ranges), its rows
 * pass through a batch at a time without a per-row merge (see {@linkcode mergeBatches}).
 *
 * @param cache The cache.
 * @param originKey Only partitions of this origin; all origins when omitted.
 * @param only Only these partition keys (one partition set); all when omitted.
 * @returns Batches of rows; together they are in id order.
 */
export async function* indexBatches(
  cache: Cache,
  originKey?: string,
  only?: Iterable<string>,
): AsyncGenerator<AllDocsRow[]> {
  const prefix = keyPrefix("partition", originKey || undefined);
  const sources: MergeSource[] = [];
  const patches = new PatchedPartitions(cache.driver);
  const keys = only ? [...only].filter((k) => k.startsWith(prefix)) : cache.keys(prefix);
  for await (const key of keys) {
    const info = await cache.info(key);
    const parts = parseKey(key);
    if (!info || parts.type !== "partition") continue;
    sources.push({
      startKey: parts.startKey,
      endKey: parts.endKey,
      fetchedAt: info.fetchedAt,
      open: () => batchesOf(cache, key, patches),
    });
  }
  yield* mergeBatches(sources);
}

/**
 * Every document row of the cached partitions, in id order, one per id.
 *
 * @param cache The cache.
 * @param originKey Only partitions of this origin; all origins when omitted.
 * @param only Only these partition keys (one partition set); all when omitted.
 * @returns The rows.
 */
export async function* indexRows(
  cache: Cache,
  originKey?: string,
  only?: Iterable<string>,
): AsyncGenerator<AllDocsRow> {
  for await (const batch of indexBatches(cache, originKey, only)) yield* batch;
}
