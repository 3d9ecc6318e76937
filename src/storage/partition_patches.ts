/**
 * Pending edits of cached partitions: the changes a `_changes` follower has applied to a
 * partition without rewriting it yet. Readers of the partition apply them as it streams, so it
 * reads as if it had been rewritten; the follower rewrites it (and drops its patch) once the
 * patch grows past a bound.
 *
 * Records (plain JSON beside the checkpoints, never listed as cache entries):
 *
 * - `v1:checkpoint:{originKey}:changes:patches` — the patch index of an origin: for each
 *   partition key with a patch, the integrity of the partition body the patch applies to
 *   (`base`), its number of edits, and a version that grows with every write.
 * - `v1:checkpoint:{originKey}:changes:patch:{shard}` — the patches of the partitions whose key
 *   hashes to `shard` (two hex digits, one of {@linkcode PATCH_SHARDS}): by partition key, its
 *   `base` and its edits, `[id, rev, deleted]`, in the order they were applied (the feed's):
 *   an id may appear more than once, and of its edits the newer revision counts (on a tie, the
 *   later one). Readers put a patch in key order as they apply it (`patchPartition`), a few
 *   hundred edits for one partition, so the follower sorts nothing when it writes a batch.
 *   Shards keep the number of records (and of files and directories on the fs driver) small
 *   whatever the number of partitions, and a reader of one partition reads only its shard.
 *
 * A patch applies only to the body it was made for: once `partition refresh` replaces the
 * partition (another integrity), readers ignore it. The index decides which patches exist: the
 * follower writes a shard before the index names its patches, so a reader never applies half
 * of one.
 *
 * @module
 */

import type { StorageDriver } from "./driver.ts";
import { CHECKPOINT_PREFIX, PARTITION_PREFIX } from "./keys.ts";

/** One partition's entry in the patch index. */
export interface PatchIndexEntry {
  /** The integrity of the partition body the patch applies to. */
  base: string;
  /** The number of edits in the patch. */
  edits: number;
  /** Grows with every write of the patch (readers key memos on it). */
  version: number;
}

/** The patch index of an origin, by partition key. */
export type PatchIndex = Record<string, PatchIndexEntry>;

/** One pending edit: `[id, rev, deleted]` (`deleted` is `1` for a deletion, else `0`). */
export type PatchEdit = [id: string, rev: string, deleted: 0 | 1];

/** One partition's patch. */
export interface PatchRecord {
  /** The integrity of the partition body it applies to. */
  base: string;
  /** The edits, in the order they were applied; an id may repeat (the newer revision counts,
   * the later one on a tie). Patches written before this order was allowed are in key order,
   * one per id, which reads the same. */
  edits: PatchEdit[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The key of an origin's patch index.
 *
 * @param originKey The origin key.
 * @returns `v1:checkpoint:{originKey}:changes:patches`.
 *
 * @example
 * ```ts
 * import { patchIndexKey } from "./partition_patches.ts";
 * console.assert(patchIndexKey("npm") === "v1:checkpoint:npm:changes:patches");
 * ```
 */
export function patchIndexKey(originKey: string): string {
  return `${CHECKPOINT_PREFIX}${originKey}:changes:patches`;
}

/** How many shards an origin's patches are spread over. */
export const PATCH_SHARDS = 64;

/** The patches of one shard, by partition key. */
export type PatchShard = Record<string, PatchRecord>;

/**
 * The shard of a partition's patch: a hash of its key (FNV-1a) modulo {@linkcode PATCH_SHARDS}.
 *
 * @param partitionKey The partition's cache key.
 * @returns The shard, from 0.
 *
 * @example
 * ```ts
 * import { PATCH_SHARDS, patchShardOf } from "./partition_patches.ts";
 * const shard = patchShardOf("v1:partition:npm:40:4061");
 * console.assert(shard >= 0 && shard < PATCH_SHARDS && shard === patchShardOf("v1:partition:npm:40:4061"));
 * ```
 */
export function patchShardOf(partitionKey: string): number {
  let hash = 2166136261;
  for (let i = 0; i < partitionKey.length; i++) {
    hash = Math.imul(hash ^ partitionKey.charCodeAt(i), 16777619);
  }
  return (hash >>> 0) % PATCH_SHARDS;
}

/**
 * The key of a shard of an origin's patches.
 *
 * @param originKey The origin key.
 * @param shard The shard, from 0.
 * @returns `v1:checkpoint:{originKey}:changes:patch:{shard as two hex digits}`.
 *
 * @example
 * ```ts
 * import { patchShardKey } from "./partition_patches.ts";
 * console.assert(patchShardKey("npm", 10) === "v1:checkpoint:npm:changes:patch:0a");
 * ```
 */
export function patchShardKey(originKey: string, shard: number): string {
  return `${CHECKPOINT_PREFIX}${originKey}:changes:patch:${shard.toString(16).padStart(2, "0")}`;
}

/** The origin key named in a partition key. */
function originOf(partitionKey: string): string {
  const rest = partitionKey.startsWith(PARTITION_PREFIX)
    ? partitionKey.slice(PARTITION_PREFIX.length).split(":")
    : [];
  if (rest.length !== 3) {
    throw new TypeError(`Cannot find a patch: not a partition key, received '${partitionKey}'`);
  }
  return rest[0]!;
}

async function readJson<T>(driver: StorageDriver, key: string): Promise<T | undefined> {
  const raw = await driver.get(key);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(decoder.decode(raw)) as T;
  } catch {
    return undefined;
  }
}

/**
 * Reads an origin's patch index.
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @returns The index (empty when none was written).
 */
export async function readPatchIndex(
  driver: StorageDriver,
  originKey: string,
): Promise<PatchIndex> {
  const index = await readJson<PatchIndex>(driver, patchIndexKey(originKey));
  return index && typeof index === "object" ? index : {};
}

/**
 * Writes an origin's patch index (an empty one is removed).
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @param index The index.
 */
export async function writePatchIndex(
  driver: StorageDriver,
  originKey: string,
  index: PatchIndex,
): Promise<void> {
  const key = patchIndexKey(originKey);
  if (Object.keys(index).length === 0) await driver.delete(key);
  else await driver.put(key, encoder.encode(JSON.stringify(index)));
}

/**
 * Reads a shard of an origin's patches.
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @param shard The shard.
 * @returns The patches (empty when none are stored, or the record is damaged).
 */
export async function readPatchShard(
  driver: StorageDriver,
  originKey: string,
  shard: number,
): Promise<PatchShard> {
  const record = await readJson<PatchShard>(driver, patchShardKey(originKey, shard));
  return record && typeof record === "object" ? record : {};
}

/**
 * Writes a shard of an origin's patches (an empty one is removed).
 *
 * @param driver Where it is stored.
 * @param originKey The origin key.
 * @param shard The shard.
 * @param patches The patches.
 */
export async function writePatchShard(
  driver: StorageDriver,
  originKey: string,
  shard: number,
  patches: PatchShard,
): Promise<void> {
  const key = patchShardKey(originKey, shard);
  if (Object.keys(patches).length === 0) await driver.delete(key);
  else await driver.put(key, encoder.encode(JSON.stringify(patches)));
}

/**
 * Reads a partition's patch (from its shard).
 *
 * @param driver Where it is stored.
 * @param partitionKey The partition's cache key.
 * @returns The patch, or `undefined` when none is stored (or it is damaged).
 * @throws {TypeError} When the key is no partition key.
 */
export async function readPatch(
  driver: StorageDriver,
  partitionKey: string,
): Promise<PatchRecord | undefined> {
  const shard = await readPatchShard(driver, originOf(partitionKey), patchShardOf(partitionKey));
  const record = shard[partitionKey];
  return record && typeof record.base === "string" && Array.isArray(record.edits)
    ? record
    : undefined;
}
