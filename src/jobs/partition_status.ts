/**
 * Where partition work stands, as data: the progress of each recorded partition set (from its
 * checkpoint), and the partitions the cache holds.
 *
 * @module
 */

import type { StorageDriver } from "../storage/driver.ts";
import { compareKeys } from "../storage/driver.ts";
import type { Cache } from "../storage/cache.ts";
import { decodedSizeOf } from "../storage/entry.ts";
import { Checkpoint, listPartitionSets, type PartitionStatus } from "../storage/checkpoint.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import { partitionSetId, rangesFromPivots, validatePivots } from "../couchdb/pivots.ts";

/** Whether a partition is cached and readable (see `PartitionSetStatusOptions.cache`). */
async function isCached(cache: Cache, key: string): Promise<boolean> {
  return (await cache.get(key, { verify: "while" })) !== undefined;
}

/** A partition that failed in the current pass. */
export interface FailedPartitionStatus {
  /** The partition index. */
  index: number;
  /** Its last error, when one was recorded. */
  error: string | undefined;
}

/** The progress of one partition set in its current pass. */
export interface PartitionSetStatus {
  /** The set id. */
  setId: string;
  /** The origin URL the set was refreshed from. */
  origin: string;
  /** The origin key. */
  originKey: string;
  /** Partitions in the set. */
  partitions: number;
  /** The current pass (a refresh of a completed set starts the next one). */
  pass: number;
  /** Partitions not yet started in this pass. */
  pending: number;
  /** Partitions a worker holds. */
  inProgress: number;
  /** Partitions completed in this pass (and, when a cache was given, still cached). */
  done: number;
  /** Partitions completed in this pass whose cache entry is gone or corrupt: counted as pending,
   * a refresh fetches them again. Checked only when a cache is given. */
  missing: number[];
  /** Partitions that ran out of attempts in this pass. */
  failed: FailedPartitionStatus[];
  /** Rows in the partitions completed in this pass. */
  rows: number;
}

/** Options for {@linkcode partitionSetStatus}. */
export interface PartitionSetStatusOptions {
  /** Only the sets of this origin key.
   * @default {undefined} (every origin) */
  originKey?: string;
  /** Only the set these pivots make (with `originKey`, which it requires).
   * @default {undefined} (every set) */
  pivots?: readonly string[];
  /** The cache holding the partitions: each partition completed in the current pass is
   * checked in it (its header, that its body is there, and an inline body's integrity; a body
   * stored apart is checked when it is read) and counted as pending when its entry is gone or
   * corrupt. Corrupt entries are reported by the cache (`onCorrupt`).
   * @default {undefined} (the checkpoints alone) */
  cache?: Cache;
}

/**
 * The progress of every recorded partition set, or of those the options pick, in key order.
 *
 * @param driver The storage holding the checkpoints.
 * @param options Which sets.
 * @returns One status per set.
 * @throws {TypeError} When `pivots` is given without `originKey`.
 * @throws {PivotError} When `pivots` is not a valid pivot list.
 *
 * @example
 * ```ts
 * import { partitionSetStatus } from "./partition_status.ts";
 * import { Checkpoint } from "../storage/checkpoint.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const driver = new MemoryDriver();
 * const checkpoint = new Checkpoint(driver, "couch", "0123456789abcdef");
 * await checkpoint.writeSet({
 *   id: "0123456789abcdef",
 *   originKey: "couch",
 *   origin: "http://couch.test/",
 *   pivots: ["m"],
 *   createdAt: 0,
 * });
 * await checkpoint.put(0, { status: "done", attempts: 1, rows: 5, updatedAt: 0, pass: 1 });
 * const [set] = await partitionSetStatus(driver, { originKey: "couch" });
 * console.assert(set!.partitions === 2 && set!.done === 1 && set!.pending === 1);
 * console.assert(set!.rows === 5);
 * ```
 */
export async function partitionSetStatus(
  driver: StorageDriver,
  options: PartitionSetStatusOptions = {},
): Promise<PartitionSetStatus[]> {
  const { originKey } = options;
  let setId: string | undefined;
  if (options.pivots !== undefined) {
    if (originKey === undefined) {
      throw new TypeError("Cannot report partition status: 'pivots' needs 'originKey'");
    }
    setId = partitionSetId(originKey, validatePivots([...options.pivots]));
  }
  const statuses: PartitionSetStatus[] = [];
  for (const set of await listPartitionSets(driver)) {
    if (originKey !== undefined && set.originKey !== originKey) continue;
    if (setId !== undefined && set.id !== setId) continue;
    const states = await new Checkpoint(driver, set.originKey, set.id).all();
    const pass = Math.max(1, ...[...states.values()].map((s) => s.pass));
    const counts: Record<PartitionStatus, number> = {
      pending: 0,
      "in-progress": 0,
      done: 0,
      failed: 0,
    };
    let rows = 0;
    const failed: FailedPartitionStatus[] = [];
    const missing: number[] = [];
    const ranges = options.cache ? rangesFromPivots(set.pivots, set.originKey) : [];
    for (let i = 0; i <= set.pivots.length; i++) {
      const state = states.get(i);
      let status = state?.pass === pass ? state.status : "pending";
      if (status === "done" && options.cache && !(await isCached(options.cache, ranges[i]!.key))) {
        status = "pending";
        missing.push(i);
      }
      counts[status]++;
      if (status === "done") rows += state?.rows ?? 0;
      if (status === "failed") failed.push({ index: i, error: state?.lastError });
    }
    statuses.push({
      setId: set.id,
      origin: set.origin,
      originKey: set.originKey,
      partitions: set.pivots.length + 1,
      pass,
      pending: counts.pending,
      inProgress: counts["in-progress"],
      done: counts.done,
      failed,
      missing,
      rows,
    });
  }
  return statuses;
}

/** A partition the cache holds. */
export interface CachedPartition {
  /** The cache key. */
  key: string;
  /** The origin key. */
  origin: string;
  /** The range start (`""` when open). */
  startKey: string;
  /** The range end, exclusive (`""` when open). */
  endKey: string;
  /** Rows in the range. */
  rows: number;
  /** Body bytes: the decoded document's, however it is stored. */
  bytes: number;
  /** When the range was fetched or last revalidated (ms since the epoch). */
  fetchedAt: number;
}

/** Options for {@linkcode listCachedPartitions}. */
export interface ListCachedPartitionsOptions {
  /** Only the partitions of this origin key.
   * @default {undefined} (every origin) */
  originKey?: string;
}

/**
 * Every partition the cache holds, ordered by origin key, then by range (an open start first,
 * an open end last).
 *
 * @param cache The cache.
 * @param options Which origin.
 * @returns The partitions.
 *
 * @example
 * ```ts
 * import { listCachedPartitions } from "./partition_status.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { partitionKey } from "../storage/keys.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const body = new TextEncoder().encode('["ms","1-a"]\n');
 * await cache.put(partitionKey("couch", "m", ""), body, { status: 200, count: 1 });
 * await cache.put(partitionKey("couch", "", "m"), new Uint8Array(), { status: 200, count: 0 });
 * const partitions = await listCachedPartitions(cache);
 * console.assert(partitions.map((p) => p.startKey).join() === ",m");
 * console.assert(partitions[1]!.rows === 1);
 * ```
 */
export async function listCachedPartitions(
  cache: Cache,
  options: ListCachedPartitionsOptions = {},
): Promise<CachedPartition[]> {
  const partitions: CachedPartition[] = [];
  for await (const key of cache.keys(keyPrefix("partition", options.originKey))) {
    const info = await cache.info(key);
    const parts = parseKey(key);
    if (!info || parts.type !== "partition") continue;
    partitions.push({
      key,
      origin: parts.origin,
      startKey: parts.startKey,
      endKey: parts.endKey,
      rows: info.count ?? 0,
      bytes: decodedSizeOf(info) ?? info.size,
      fetchedAt: info.fetchedAt,
    });
  }
  // In key-range order (storage order puts an open start after starts with a digit).
  const end = (key: string) => key === "" ? "\u{10ffff}\u{10ffff}" : key;
  partitions.sort((a, b) =>
    compareKeys(a.origin, b.origin) || compareKeys(a.startKey, b.startKey) ||
    compareKeys(end(a.endKey), end(b.endKey))
  );
  return partitions;
}
