/**
 * Reading cached partitions with their pending edits (see `storage/partition_patches.ts`):
 * the `_changes` follower records changes as patches and rewrites a partition only once its
 * patch has grown, so every reader of partition bodies (the index, the export, the replica)
 * opens them through {@linkcode PatchedPartitions}, which applies a partition's patch as its
 * body streams ({@linkcode patchPartition}).
 *
 * @module
 */

import type { StorageDriver } from "../storage/driver.ts";
import type { CacheEntry } from "../storage/entry.ts";
import { PARTITION_PREFIX } from "../storage/keys.ts";
import {
  type PatchIndex,
  type PatchIndexEntry,
  type PatchShard,
  patchShardOf,
  readPatchIndex,
  readPatchShard,
} from "../storage/partition_patches.ts";
import { emptyPatchCounts, type PartitionEdit, patchPartition } from "./partition_patch.ts";

/**
 * Cached partitions read with their pending edits applied. Each origin's patch index, and each
 * shard of patches, is read once per instance: make one per listing (a request, an index run),
 * so it sees one state.
 *
 * @example
 * ```ts
 * import { PatchedPartitions } from "./patched_partitions.ts";
 * import { Cache } from "../storage/cache.ts";
 * import { patchShardOf, writePatchIndex, writePatchShard } from "../storage/partition_patches.ts";
 * import { MemoryDriver } from "../../drivers/memory.ts";
 *
 * const cache = await Cache.open(new MemoryDriver());
 * const key = "v1:partition:couch::";
 * const info = await cache.put(key, new TextEncoder().encode('["a","1-a"]\n'), { status: 200 });
 * await writePatchShard(cache.driver, "couch", patchShardOf(key), {
 *   [key]: { base: info.integrity, edits: [["b", "1-b", 0]] },
 * });
 * await writePatchIndex(cache.driver, "couch", {
 *   [key]: { base: info.integrity, edits: 1, version: 1 },
 * });
 * const entry = (await cache.get(key))!;
 * const body = await new PatchedPartitions(cache.driver).body(key, entry);
 * console.assert((await new Response(body).text()) === '["a","1-a"]\n["b","1-b"]\n');
 * ```
 */
export class PatchedPartitions {
  #driver: StorageDriver;
  #indexes = new Map<string, Promise<PatchIndex>>();
  #shards = new Map<string, Promise<PatchShard>>();

  /**
   * @param driver The storage holding the partitions and their patches.
   */
  constructor(driver: StorageDriver) {
    this.#driver = driver;
  }

  /**
   * The patch that applies to a partition body, when one does.
   *
   * @param key The partition's cache key.
   * @param integrity The integrity of its body now.
   * @returns The patch's index entry, or `undefined` when none applies.
   */
  async patchOf(key: string, integrity: string): Promise<PatchIndexEntry | undefined> {
    if (!key.startsWith(PARTITION_PREFIX)) return undefined;
    const origin = key.slice(PARTITION_PREFIX.length).split(":")[0]!;
    let index = this.#indexes.get(origin);
    if (!index) this.#indexes.set(origin, index = readPatchIndex(this.#driver, origin));
    const entry = (await index)[key];
    return entry?.base === integrity ? entry : undefined;
  }

  /**
   * A partition entry's body with its pending edits applied (the body as stored when none
   * apply).
   *
   * @param key The partition's cache key.
   * @param entry Its entry, as the cache returned it.
   * @returns The body.
   */
  async body(key: string, entry: CacheEntry): Promise<ReadableStream<Uint8Array>> {
    const integrity = entry.info.integrity;
    if (!(await this.patchOf(key, integrity))) return entry.stream();
    const origin = key.slice(PARTITION_PREFIX.length).split(":")[0]!;
    const shard = patchShardOf(key);
    const id = `${origin} ${shard}`;
    let patches = this.#shards.get(id);
    if (!patches) this.#shards.set(id, patches = readPatchShard(this.#driver, origin, shard));
    const record = (await patches)[key];
    if (!record || record.base !== integrity || !Array.isArray(record.edits)) {
      return entry.stream();
    }
    const edits: PartitionEdit[] = record.edits.map(([id, rev, deleted]) => ({
      id,
      rev,
      deleted: deleted === 1,
    }));
    return patchPartition(entry.stream(), edits, emptyPatchCounts());
  }
}
