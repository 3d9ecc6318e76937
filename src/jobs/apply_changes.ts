/**
 * Applying `_changes` to the cached partitions of an origin, so that everything that reads
 * them (`cache create-index`, `cache export`, the replica's `/_all_docs`, `packument
 * fetch-partitions`) sees the current state.
 *
 * - Each change goes to the partition that decides its id: of the partitions covering it, the
 *   most recently fetched one, as the merge of overlapping partitions reads them
 *   ({@linkcode segmentsOf}). An id no cached partition covers is left out (`uncovered`).
 * - A partition's changes are kept as its patch (`storage/partition_patches.ts`): pending
 *   edits, in feed order, that every reader puts in key order and applies as the body streams
 *   (`couchdb/patched_partitions.ts`). Writing a patch costs the size of the changes, not of the
 *   partition: a batch of 100,000 changes spread over 4.5 million names writes a few MB, where
 *   rewriting the touched partitions would read and write all of them. Nothing is sorted when a
 *   batch is applied: a reader sorts the few hundred edits of the partition it reads.
 * - A partition whose patch grows past `compactEdits` edits (or every patched partition, with
 *   `compact`) is rewritten with its edits ({@linkcode patchPartition}): a new id inserted in
 *   key order, a newer `_rev` replacing the row's, a deletion removing it, a change older than
 *   the row left out. The rewrite is one atomic cache put that keeps the partition's fetch time
 *   (so which partition decides a range does not change); its patch is dropped after.
 * - Between changes of one id, the newer revision wins (by generation; see
 *   {@linkcode revWins}): applying a change twice, or an older one after a newer, changes
 *   nothing.
 * - A patch belongs to the body it was made for: once `partition refresh` replaces the
 *   partition, its old patch no longer applies and is dropped (the follower replays from the
 *   refresh's start). A partition found corrupt while it is rewritten is left as the cache
 *   found it (reported through the cache's `onCorrupt`): its changes count as `uncovered`.
 *
 * Rewriting a partition while `partition refresh` rewrites the same one can lose one of the two
 * writes; run them one after the other.
 *
 * @module
 */

import { type Cache, CacheIntegrityError } from "../storage/cache.ts";
import { compareKeys } from "../storage/driver.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import {
  type PatchEdit,
  patchShardOf,
  readPatchIndex,
  readPatchShard,
  writePatchIndex,
  writePatchShard,
} from "../storage/partition_patches.ts";
import { type Segment, segmentsOf } from "../couchdb/merge.ts";
import {
  emptyPatchCounts,
  HIGH_CHARACTERS,
  type PartitionEdit,
  type PatchCounts,
  patchPartition,
  revWins,
  sortEditRuns,
} from "../couchdb/partition_patch.ts";
import { runPool } from "../_util/pool.ts";

/** The default number of pending edits past which a partition is rewritten. */
export const DEFAULT_COMPACT_EDITS = 4096;

/** What {@linkcode applyChanges} did. */
export interface ApplySummary {
  /** Changes taken in: new ids, or newer revisions than the pending ones. Each change is
   * compared with what was pending before the call: an id changed twice in one call counts
   * twice (its newer revision is the one read). */
  applied: number;
  /** Of those, deletions. */
  deletions: number;
  /** Changes already pending with that revision. */
  unchanged: number;
  /** Changes older than the pending edit of their id, left out. */
  stale: number;
  /** Changes no cached partition covers (or whose partition turned out corrupt). */
  uncovered: number;
  /** Partitions whose patch was written. */
  patched: number;
  /** Partitions rewritten with their edits (their patch dropped). */
  rewritten: number;
  /** What the rewrites did to rows (added, replaced, removed, and edits older than a row). */
  rows: PatchCounts;
  /** Keys of partitions found corrupt, left out. */
  corrupt: string[];
}

/** A cached partition as the follower sees it ({@linkcode listEditablePartitions}). */
export interface EditablePartition {
  /** Its cache key. */
  key: string;
  /** The first id of its range. */
  startKey: string;
  /** The end of its range, exclusive (`""`: open). */
  endKey: string;
  /** When it was fetched (the newest partition covering an id decides it). */
  fetchedAt: number;
  /** The integrity of its body: a patch applies to that body only. */
  integrity: string;
}

/**
 * The cached partitions of an origin, in start-key order (then key order, as the merge reads
 * them): what {@linkcode applyChanges} edits.
 *
 * @param cache The cache holding the partitions.
 * @param originKey The origin whose partitions to list.
 * @param parallel Headers read at once.
 * @returns The partitions.
 * @throws {StorageError} When the cache cannot be read.
 */
export async function listEditablePartitions(
  cache: Cache,
  originKey: string,
  parallel = 8,
): Promise<EditablePartition[]> {
  const out: EditablePartition[] = [];
  // Their headers are read a few at a time: on a large set the reads' latency adds up.
  await runPool(cache.keys(keyPrefix("partition", originKey)), async (key) => {
    let parts;
    try {
      parts = parseKey(key);
    } catch {
      return;
    }
    if (parts.type !== "partition") return;
    const info = await cache.info(key);
    if (!info || info.status !== 200) return;
    out.push({
      key,
      startKey: parts.startKey,
      endKey: parts.endKey,
      fetchedAt: info.fetchedAt,
      integrity: info.integrity,
    });
  }, { concurrency: parallel });
  return out.sort((a, b) => compareKeys(a.startKey, b.startKey) || compareKeys(a.key, b.key));
}

/**
 * Changes gathered for {@linkcode applyChanges}, each put with the partition that decides its
 * id as it comes (a binary search of the partitions' segments), so that applying them only
 * appends each partition's edits to its patch, in feed order: the `_changes` follower adds each
 * page while the next is on its way.
 *
 * @example
 * ```ts
 * import { ChangeBatch, listEditablePartitions } from "./apply_changes.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { encodePartitionLines } from "../couchdb/partition_lines.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const rows = [{ id: "left-pad", rev: "1-a" }];
 * await cache.put(partitionKey("couch", "k", ""), encodePartitionLines(rows), { status: 200 });
 * const batch = new ChangeBatch(await listEditablePartitions(cache, "couch"));
 * batch.add([{ id: "ms", rev: "1-b", deleted: false }, { id: "debug", rev: "1-c", deleted: false }]);
 * batch.add([{ id: "ms", rev: "2-d", deleted: false }]);
 * console.assert(batch.size === 3);
 * console.assert(batch.edits().map((e) => e.rev).join() === "1-c,2-d");
 * ```
 */
export class ChangeBatch {
  /** The partitions the batch is for, as {@linkcode listEditablePartitions} read them. */
  readonly partitions: readonly EditablePartition[];
  readonly #segments: Segment[];
  /** The edits of each segment, in feed order. */
  readonly #buckets: PartitionEdit[][];
  /** Edits no partition covers, in feed order. */
  #uncovered: PartitionEdit[] = [];
  /** By an id's first two characters (both below U+0080), where the search for its segment
   * starts (`-1`: not yet known) and ends. */
  readonly #from = new Int32Array(PREFIXES).fill(-1);
  readonly #to = new Int32Array(PREFIXES);
  #size = 0;

  /**
   * Starts an empty batch.
   *
   * @param partitions The partitions the changes go to ({@linkcode listEditablePartitions}),
   *   unchanged until the batch is applied.
   */
  constructor(partitions: readonly EditablePartition[]) {
    this.partitions = partitions;
    this.#segments = segmentsOf(partitions);
    this.#buckets = this.#segments.map(() => []);
    bucketsOf.set(this, () => this.#byPartition());
  }

  /** Edits added (repeats of an id counted). */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds edits, later in the feed than every one added before.
   *
   * @param edits The edits, in feed order.
   */
  add(edits: readonly PartitionEdit[]): void {
    const segments = this.#segments;
    const from = this.#from;
    const to = this.#to;
    for (const edit of edits) {
      const id = edit.id;
      // `<` is code-point order when the id has no character from U+D800 up.
      const high = HIGH_CHARACTERS.test(id);
      // The last segment starting at or before the id: among those starting at or before its
      // first two characters and before the next two (known once for each pair), when both are
      // ASCII. (`<` is code-point order against an ASCII string.)
      let lo = 0;
      let hi = segments.length;
      const c0 = id.charCodeAt(0);
      const c1 = id.charCodeAt(1);
      if (c0 < 128 && c1 < 128) {
        const pair = (c0 << 7) | c1;
        if (from[pair]! < 0) {
          from[pair] = startsUpTo(segments, String.fromCharCode(c0, c1), true);
          to[pair] = startsUpTo(segments, String.fromCharCode(c0, c1 + 1), false);
        }
        lo = from[pair]!;
        hi = to[pair]!;
      }
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const start = segments[mid]!.start;
        if (high ? compareKeys(start, id) <= 0 : start <= id) lo = mid + 1;
        else hi = mid;
      }
      const segment = segments[lo - 1];
      const end = segment?.end;
      if (end === undefined || (end !== "" && (high ? compareKeys(id, end) >= 0 : id >= end))) {
        this.#uncovered.push(edit);
      } else {
        this.#buckets[lo - 1]!.push(edit);
      }
    }
    this.#size += edits.length;
  }

  /** How many changes no partition covers. */
  get uncovered(): number {
    return this.#uncovered.length;
  }

  /** The edits of each partition (by its place in `partitions`), in feed order. */
  #byPartition(): Map<number, readonly PartitionEdit[]> {
    const out = new Map<number, readonly PartitionEdit[]>();
    this.#segments.forEach((segment, i) => {
      const bucket = this.#buckets[i]!;
      if (bucket.length === 0) return;
      const held = out.get(segment.source);
      // A partition deciding several segments (overlapping sets): all of theirs.
      out.set(segment.source, held === undefined ? bucket : [...held, ...bucket]);
    });
    return out;
  }

  /**
   * Every edit of the batch, covered or not: in key order (code-point order of the ids), one
   * per id, as {@linkcode sortEdits} gives them.
   */
  edits(): readonly PartitionEdit[] {
    return sortEditRuns([...this.#buckets, this.#uncovered]);
  }
}

/** The pairs of ASCII characters an id can start with. */
const PREFIXES = 128 * 128;

/** How many segments start at or before `key` (`equal`), or before it. */
function startsUpTo(segments: readonly Segment[], key: string, equal: boolean): number {
  let lo = 0;
  let hi = segments.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const start = segments[mid]!.start;
    if (start < key || (equal && start === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** What {@linkcode applyChanges} reads of a batch: its edits by partition. */
const bucketsOf = new WeakMap<ChangeBatch, () => Map<number, readonly PartitionEdit[]>>();

/**
 * A partition's pending edits with the incoming ones after them (in feed order, as readers take
 * them): each incoming edit is compared with the pending edit of its id, and taken when its
 * revision wins ({@linkcode revWins}), counted `unchanged` when it is the same revision and
 * `stale` when older. Edits of one batch are compared with what was pending before it, not
 * with each other: readers keep the newer of an id's edits, the later one on a tie. So an
 * `unchanged` edit is still kept after an edit of its id taken in this batch (the feed went
 * back to the pending revision: that one is current again).
 */
function mergeEdits(
  pending: readonly PatchEdit[],
  incoming: readonly PartitionEdit[],
  summary: ApplySummary,
): PatchEdit[] {
  const out: PatchEdit[] = pending.slice();
  // The revision each pending id counts at (a patch may hold an id more than once).
  let held: Map<string, string> | undefined;
  if (pending.length > 0) {
    held = new Map();
    for (const [id, rev] of pending) {
      const current = held.get(id);
      if (current === undefined || revWins(rev, current) || rev === current) held.set(id, rev);
    }
  }
  /** Ids this batch took an edit of, where some are pending (else every edit is taken). */
  const taken = held && new Set<string>();
  for (const edit of incoming) {
    const current = held?.get(edit.id);
    if (current === undefined || revWins(edit.rev, current)) {
      summary.applied++;
      if (edit.deleted) summary.deletions++;
      out.push([edit.id, edit.rev, edit.deleted ? 1 : 0]);
      taken?.add(edit.id);
    } else if (current === edit.rev) {
      summary.unchanged++;
      if (taken!.has(edit.id)) out.push([edit.id, edit.rev, edit.deleted ? 1 : 0]);
    } else summary.stale++;
  }
  return out;
}

/** Options for {@linkcode applyChanges}. */
export interface ApplyChangesOptions {
  /** Partitions handled at once: their reads and writes overlap (a rewrite holds a chunk of its
   * body in memory, a patch its edits).
   * @default {8} */
  parallel?: number;
  /** A partition whose patch would hold more edits than this is rewritten instead (0 rewrites
   * every touched partition).
   * @default {DEFAULT_COMPACT_EDITS} */
  compactEdits?: number;
  /** Rewrite every partition of the origin that has pending edits, touched or not.
   * @default {false} */
  compact?: boolean;
}

/**
 * Applies changes to the cached partitions of an origin (see the module documentation).
 *
 * @param cache The cache holding the partitions.
 * @param originKey The origin whose partitions to edit.
 * @param edits The changes, in feed order (an id may repeat); or gathered in a
 *   {@linkcode ChangeBatch} (for the partitions it was made with).
 * @param options How many at once, and when to rewrite.
 * @returns What was done.
 * @throws {RangeError} When `compactEdits` is not a non-negative integer.
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
 * console.assert(done.applied === 2 && done.patched === 1 && done.rewritten === 0);
 * const ids = [];
 * for await (const row of indexRows(cache, "couch")) ids.push(`${row.id},${row.rev}`);
 * console.assert(ids.join(" ") === "debug,1-c ms,3-b");
 * ```
 */
export async function applyChanges(
  cache: Cache,
  originKey: string,
  edits: Iterable<PartitionEdit> | ChangeBatch,
  options: ApplyChangesOptions = {},
): Promise<ApplySummary> {
  const compactEdits = options.compactEdits ?? DEFAULT_COMPACT_EDITS;
  if (!Number.isInteger(compactEdits) || compactEdits < 0) {
    throw new RangeError(
      `Cannot apply changes: 'compactEdits' must be a non-negative integer, received ${compactEdits}`,
    );
  }
  const summary: ApplySummary = {
    applied: 0,
    deletions: 0,
    unchanged: 0,
    stale: 0,
    uncovered: 0,
    patched: 0,
    rewritten: 0,
    rows: emptyPatchCounts(),
    corrupt: [],
  };
  const driver = cache.driver;
  const parallel = options.parallel ?? 8;
  let batch: ChangeBatch;
  if (edits instanceof ChangeBatch) batch = edits;
  else {
    batch = new ChangeBatch(await listEditablePartitions(cache, originKey, parallel));
    batch.add(Array.isArray(edits) ? edits : [...edits]);
  }
  const partitions = batch.partitions;
  const byPartition = bucketsOf.get(batch)!();
  summary.uncovered += batch.uncovered;
  const index = await readPatchIndex(driver, originKey);
  const before = JSON.stringify(index);
  // The partitions to handle, by the shard of their patch: each shard is read and written once.
  const shards = new Map<number, number[]>();
  const touch = (shard: number) => {
    let list = shards.get(shard);
    if (!list) shards.set(shard, list = []);
    return list;
  };
  for (const i of byPartition.keys()) touch(patchShardOf(partitions[i]!.key)).push(i);
  // Patches of bodies since replaced (by a refresh) apply to nothing any more: dropped.
  const current = new Map(partitions.map((p, i) => [p.key, i]));
  for (const [key, entry] of Object.entries(index)) {
    const i = current.get(key);
    if (i !== undefined && partitions[i]!.integrity === entry.base) {
      if (options.compact && !byPartition.has(i)) {
        byPartition.set(i, []);
        touch(patchShardOf(key)).push(i);
      }
      continue;
    }
    delete index[key];
    touch(patchShardOf(key));
  }
  const withPatches = new Set(Object.keys(JSON.parse(before)).map(patchShardOf));
  await runPool(shards, async ([shard, list]) => {
    const patches = withPatches.has(shard) ? await readPatchShard(driver, originKey, shard) : {};
    let dirty = false;
    for (const key of Object.keys(patches)) {
      if (index[key]) continue;
      delete patches[key];
      dirty = true;
    }
    for (const i of list.sort((a, b) => a - b)) {
      const target = partitions[i]!;
      const incoming = byPartition.get(i)!;
      const held = patches[target.key]?.base === target.integrity ? patches[target.key]!.edits : [];
      const taken = summary.applied;
      const counted = ["applied", "deletions", "unchanged", "stale"] as const;
      const before = counted.map((name) => summary[name]);
      const merged = mergeEdits(held, incoming, summary);
      // What this partition's changes added (other partitions are handled meanwhile).
      const added = counted.map((name, i) => summary[name] - before[i]!);
      if (merged.length > compactEdits || (options.compact && merged.length > 0)) {
        const counts = await rewrite(cache, target, merged);
        if (counts === undefined) {
          // Not applied after all: these changes count as uncovered, and only so.
          counted.forEach((name, i) => summary[name] -= added[i]!);
          summary.uncovered += incoming.length;
          summary.corrupt.push(target.key);
          continue;
        }
        for (const name of Object.keys(counts) as (keyof PatchCounts)[]) {
          summary.rows[name] += counts[name];
        }
        summary.rewritten++;
        if (patches[target.key] || index[target.key]) {
          delete patches[target.key];
          delete index[target.key];
          dirty = true;
        }
        continue;
      }
      // Nothing new for this partition: every change was pending already, or older.
      if (summary.applied === taken) continue;
      patches[target.key] = { base: target.integrity, edits: merged };
      index[target.key] = {
        base: target.integrity,
        edits: merged.length,
        version: (index[target.key]?.version ?? 0) + 1,
      };
      summary.patched++;
      dirty = true;
    }
    if (dirty) await writePatchShard(driver, originKey, shard, patches);
  }, { concurrency: parallel });
  // The index names a patch only once it is written.
  if (JSON.stringify(index) !== before) await writePatchIndex(driver, originKey, index);
  summary.corrupt.sort();
  return summary;
}

/** Rewrites one partition with its edits; `undefined` when it is gone or corrupt. */
async function rewrite(
  cache: Cache,
  target: EditablePartition,
  edits: readonly PatchEdit[],
): Promise<PatchCounts | undefined> {
  const entry = await cache.get(target.key, { verify: "while" });
  if (!entry) return undefined;
  const { info } = entry;
  const counts = emptyPatchCounts();
  const list = edits.map(([id, rev, deleted]) => ({ id, rev, deleted: deleted === 1 }));
  const body = patchPartition(entry.stream(), list, counts);
  try {
    await cache.put(target.key, body, () => ({
      status: 200,
      contentType: info.contentType ?? "application/x-ndjson",
      representation: info.representation ?? "partition",
      ...(info.count !== undefined ? { count: info.count + counts.added - counts.removed } : {}),
    }), { fetchedAt: info.fetchedAt, encoding: cache.storeEncoding });
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
