/**
 * Applying `_changes` to the cached partitions of an origin, so that everything that reads
 * them (`cache create-index`, `cache export`, the replica's `/_all_docs`, `packument
 * fetch-partitions`) sees the current state.
 *
 * - Each change goes to the partition that decides its id: of the partitions covering it, the
 *   most recently fetched one, as the merge of overlapping partitions reads them
 *   ({@linkcode segmentsOf}). An id no cached partition covers is left out (`uncovered`).
 * - Each touched partition is rewritten once per batch, streaming ({@linkcode patchPartition}):
 *   a new id inserted in key order, a newer `_rev` replacing the row's, a deletion removing it;
 *   a change older than the row it meets is left out. The rewrite is one atomic cache put that
 *   keeps the partition's fetch time (so which partition decides a range does not change) and
 *   drops its `ETag` (its body is no longer the one the origin sent).
 * - A partition found corrupt while it is read is left as the cache found it (reported through
 *   the cache's `onCorrupt`, dropped with `dropCorrupt`): its changes count as `uncovered`, and
 *   a refresh of its set fetches it again.
 *
 * Rewriting a partition while `partition refresh` rewrites the same one can lose one of the two
 * writes; run them one after the other (a refresh is what the follower starts from).
 *
 * @module
 */

import { type Cache, CacheIntegrityError } from "../storage/cache.ts";
import { compareKeys } from "../storage/driver.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import { type Segment, segmentsOf } from "../couchdb/merge.ts";
import {
  emptyPatchCounts,
  type PartitionEdit,
  type PatchCounts,
  patchPartition,
} from "../couchdb/partition_patch.ts";

/** What {@linkcode applyChanges} did. */
export interface ApplySummary extends PatchCounts {
  /** Partitions rewritten. */
  partitions: number;
  /** Changes no cached partition covers (or whose partition turned out corrupt). */
  uncovered: number;
  /** Keys of partitions found corrupt, left out. */
  corrupt: string[];
}

/** A cached partition as the follower sees it. */
interface Target {
  key: string;
  startKey: string;
  endKey: string;
  fetchedAt: number;
}

/** The cached partitions of `originKey`, in start-key order (then key order, as the merge). */
async function partitionsOf(cache: Cache, originKey: string): Promise<Target[]> {
  const out: Target[] = [];
  for await (const key of cache.keys(keyPrefix("partition", originKey))) {
    let parts;
    try {
      parts = parseKey(key);
    } catch {
      continue;
    }
    if (parts.type !== "partition") continue;
    const info = await cache.info(key);
    if (!info || info.status !== 200) continue;
    out.push({ key, startKey: parts.startKey, endKey: parts.endKey, fetchedAt: info.fetchedAt });
  }
  return out.sort((a, b) => compareKeys(a.startKey, b.startKey) || compareKeys(a.key, b.key));
}

/** The segment holding `id`, by binary search over disjoint segments in key order. */
function segmentOf(segments: readonly Segment[], id: string): Segment | undefined {
  let low = 0;
  let high = segments.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeys(segments[middle]!.start, id) <= 0) low = middle + 1;
    else high = middle;
  }
  const segment = segments[low - 1];
  if (!segment || (segment.end !== "" && compareKeys(id, segment.end) >= 0)) return undefined;
  return segment;
}

/** Options for {@linkcode applyChanges}. */
export interface ApplyChangesOptions {
  /** Called after each partition is rewritten, with its key and what the rewrite did. */
  onPartition?: (key: string, counts: PatchCounts) => void;
}

/**
 * Applies changes to the cached partitions of an origin (see the module documentation).
 *
 * @param cache The cache holding the partitions.
 * @param originKey The origin whose partitions to edit.
 * @param edits The changes, one per id, in any order.
 * @param options A callback per partition.
 * @returns What was done.
 * @throws {StorageError} When the cache cannot be read or written.
 *
 * @example
 * ```ts
 * import { applyChanges } from "./apply_changes.ts";
 * import { indexRows } from "./create_index.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { encodePartitionLines } from "../couchdb/partition_lines.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const rows = [{ id: "left-pad", rev: "1-a" }, { id: "ms", rev: "3-b" }];
 * await cache.put(partitionKey("couch", "", ""), encodePartitionLines(rows), { status: 200 });
 * const done = await applyChanges(cache, "couch", [
 *   { id: "debug", rev: "1-c", deleted: false },
 *   { id: "left-pad", rev: "2-d", deleted: true },
 * ]);
 * console.assert(done.added === 1 && done.removed === 1 && done.partitions === 1);
 * const ids = [];
 * for await (const row of indexRows(cache, "couch")) ids.push(`${row.id},${row.rev}`);
 * console.assert(ids.join(" ") === "debug,1-c ms,3-b");
 * ```
 */
export async function applyChanges(
  cache: Cache,
  originKey: string,
  edits: Iterable<PartitionEdit>,
  options: ApplyChangesOptions = {},
): Promise<ApplySummary> {
  const summary: ApplySummary = {
    ...emptyPatchCounts(),
    partitions: 0,
    uncovered: 0,
    corrupt: [],
  };
  const partitions = await partitionsOf(cache, originKey);
  const segments = segmentsOf(partitions);
  const byPartition = new Map<number, PartitionEdit[]>();
  for (const edit of edits) {
    const segment = segmentOf(segments, edit.id);
    if (!segment) {
      summary.uncovered++;
      continue;
    }
    let list = byPartition.get(segment.source);
    if (!list) byPartition.set(segment.source, list = []);
    list.push(edit);
  }
  const order = [...byPartition.keys()].sort((a, b) => a - b);
  for (const index of order) {
    const target = partitions[index]!;
    const list = byPartition.get(index)!.sort((a, b) => compareKeys(a.id, b.id));
    const counts = await rewrite(cache, target, list);
    if (counts === undefined) {
      summary.uncovered += list.length;
      summary.corrupt.push(target.key);
      continue;
    }
    summary.partitions++;
    summary.added += counts.added;
    summary.replaced += counts.replaced;
    summary.removed += counts.removed;
    summary.stale += counts.stale;
    summary.unchanged += counts.unchanged;
    options.onPartition?.(target.key, counts);
  }
  return summary;
}

/** Rewrites one partition with its edits; `undefined` when it is gone or corrupt. */
async function rewrite(
  cache: Cache,
  target: Target,
  edits: readonly PartitionEdit[],
): Promise<PatchCounts | undefined> {
  const entry = await cache.get(target.key, { verify: "while" });
  if (!entry) return undefined;
  const { info } = entry;
  const counts = emptyPatchCounts();
  const body = patchPartition(entry.stream(), edits, counts);
  try {
    await cache.put(target.key, body, () => ({
      status: 200,
      contentType: info.contentType ?? "application/x-ndjson",
      representation: info.representation ?? "partition",
      ...(info.count !== undefined ? { count: info.count + counts.added - counts.removed } : {}),
    }), { fetchedAt: info.fetchedAt });
  } catch (error) {
    // The old body broke its integrity while streaming: the cache reported it and kept (or
    // dropped) the entry; the put left nothing behind.
    if (error instanceof CacheIntegrityError) return undefined;
    // A line that does not parse: a changed byte met before the integrity check at the end.
    // Reading the entry whole tells it (and reports it) from a body written wrong.
    if (error instanceof SyntaxError && !(await cache.get(target.key))) return undefined;
    throw error;
  }
  return counts;
}
