/**
 * The partition index of the replica: the cached partitions read as pages of `_all_docs`.
 *
 * Partitions are grouped into disjoint clusters by their key ranges (partitions whose ranges
 * overlap, such as two partition sets of one origin, fall in one cluster and are merged by
 * {@linkcode mergeBatches}: for every point of the key space the most recently fetched partition
 * covering it decides, including for ids it lacks). A page reads only the
 * clusters its range touches, and each cluster's row count is known without reading it (a lone
 * partition records its count; a merged cluster is counted once and remembered), so a seek into
 * millions of rows costs at most the partitions around it. A partition's pending edits (the
 * changes a `_changes` follower recorded without rewriting it) are applied as it streams; such a
 * partition is counted like a merged cluster.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import { type Cache, CacheIntegrityError } from "../storage/cache.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import type { AllDocsRow } from "../couchdb/rows.ts";
import type { AllDocsQuery } from "../couchdb/query.ts";
import { partitionBatches } from "../couchdb/partition_lines.ts";
import { mergeBatches, type MergeSource } from "../couchdb/merge.ts";
import { PatchedPartitions } from "../couchdb/patched_partitions.ts";

/** A cached partition. */
export interface PartitionSource extends MergeSource {
  /** Its cache key. */
  key: string;
  /** The end of its range, exclusive; `""` is open. */
  endKey: string;
  /** Its row count, when recorded. */
  count: number | undefined;
  /** The integrity of its body. */
  integrity: string;
  /** The version of its pending edits, when it has some. */
  patch: number | undefined;
}

/** Partitions whose ranges overlap, merged; the clusters of an index are disjoint, in order. */
export interface Cluster {
  /** The least start key of its partitions. */
  startKey: string;
  /** The greatest end key of its partitions, exclusive; `""` is open. */
  endKey: string;
  /** Its partitions, in order of their start keys. */
  sources: PartitionSource[];
  /** How many rows (distinct ids) it holds. */
  rows: number;
}

/** A page of rows and how many rows come before it (from the top when descending). */
export interface PartitionPage {
  /** Rows before the first one returned, in the page's direction. */
  offset: number;
  /** The rows, in the page's direction. */
  rows: AllDocsRow[];
}

/** Merged-cluster counts remembered at most; the memo is cleared when it is full. */
const MAX_COUNTS = 1024;

/**
 * The rows of a cached partition whose header was just read. One that cannot be read now (a
 * corrupt body, reported by the cache, or replaced meanwhile) fails the page rather than
 * leaving its rows out of it.
 */
async function* cachedBatches(
  cache: Cache,
  key: string,
  patches: PatchedPartitions,
): AsyncGenerator<AllDocsRow[]> {
  const entry = await cache.get(key, { verify: "while" });
  if (!entry) throw new CacheIntegrityError(key, `Cache entry '${key}' could not be read`);
  if (entry.info.status !== 200) return;
  try {
    yield* partitionBatches(await patches.body(key, entry));
  } catch (error) {
    if (error instanceof SyntaxError && !(await cache.get(key))) {
      throw new CacheIntegrityError(key, `Cache entry '${key}' is corrupt`);
    }
    throw error;
  }
}

/** The later of two exclusive end keys, `""` (open) being the latest. */
function endOfBoth(a: string, b: string): string {
  if (a === "" || b === "") return "";
  return compareKeys(a, b) >= 0 ? a : b;
}

/**
 * Reads the cached partitions of one origin (or of all) as pages of `_all_docs`. Call
 * {@linkcode PartitionIndex.clusters} once per request and hand its result to the page methods,
 * so one request sees one state of the cache.
 */
export class PartitionIndex {
  #cache: Cache;
  #prefix: string;
  /** Row counts of multi-partition clusters, by the identity of their partitions. */
  #counts = new Map<string, number>();

  /**
   * @param cache The cache to read.
   * @param origin Only the partitions of this origin key; every cached partition when absent.
   */
  constructor(cache: Cache, origin: string | undefined) {
    this.#cache = cache;
    this.#prefix = keyPrefix("partition", origin);
  }

  /**
   * The clusters of the partitions cached now, in key order, with their row counts.
   *
   * @returns The clusters.
   */
  async clusters(): Promise<Cluster[]> {
    const cache = this.#cache;
    const sources: PartitionSource[] = [];
    const patches = new PatchedPartitions(cache.driver);
    for await (const key of cache.keys(this.#prefix)) {
      let parts;
      try {
        parts = parseKey(key);
      } catch {
        continue;
      }
      if (parts.type !== "partition") continue;
      const info = await cache.info(key);
      if (!info || info.status !== 200) continue;
      sources.push({
        key,
        startKey: parts.startKey,
        endKey: parts.endKey,
        fetchedAt: info.fetchedAt,
        count: info.count,
        integrity: info.integrity,
        patch: (await patches.patchOf(key, info.integrity))?.version,
        open: () => cachedBatches(cache, key, patches),
      });
    }
    sources.sort((a, b) => compareKeys(a.startKey, b.startKey) || compareKeys(a.key, b.key));
    const clusters: Cluster[] = [];
    for (const source of sources) {
      const last = clusters.at(-1);
      if (last && (last.endKey === "" || compareKeys(source.startKey, last.endKey) < 0)) {
        last.sources.push(source);
        last.endKey = endOfBoth(last.endKey, source.endKey);
      } else {
        clusters.push({
          startKey: source.startKey,
          endKey: source.endKey,
          sources: [source],
          rows: 0,
        });
      }
    }
    for (const cluster of clusters) cluster.rows = await this.#count(cluster);
    return clusters;
  }

  async #count(cluster: Cluster): Promise<number> {
    const only = cluster.sources[0]!;
    if (cluster.sources.length === 1 && only.count !== undefined && only.patch === undefined) {
      return only.count;
    }
    const id = cluster.sources.map((s) => `${s.key} ${s.integrity} ${s.fetchedAt} ${s.patch}`)
      .join("\n");
    const known = this.#counts.get(id);
    if (known !== undefined) return known;
    let rows = 0;
    for await (const batch of mergeBatches(cluster.sources)) rows += batch.length;
    if (this.#counts.size >= MAX_COUNTS) this.#counts.clear();
    this.#counts.set(id, rows);
    return rows;
  }

  /**
   * Rows from `start` upward.
   *
   * @param clusters The clusters of this request.
   * @param query The page asked for (`start`, `end`, `inclusiveEnd`, `limit`).
   * @returns The rows; `offset` counts the rows before `start`.
   */
  async ascending(clusters: Cluster[], query: AllDocsQuery): Promise<PartitionPage> {
    const { start, end, inclusiveEnd, limit } = query;
    let i = 0;
    let offset = 0;
    if (start !== undefined) {
      // Clusters that end at or before `start` hold only rows before it.
      while (
        i < clusters.length && clusters[i]!.endKey !== "" &&
        compareKeys(clusters[i]!.endKey, start) <= 0
      ) {
        offset += clusters[i++]!.rows;
      }
    }
    const rows: AllDocsRow[] = [];
    scan: for (; i < clusters.length; i++) {
      const cluster = clusters[i]!;
      if (end !== undefined) {
        const order = compareKeys(cluster.startKey, end);
        if (order > 0 || (order === 0 && !inclusiveEnd)) break;
      }
      for await (const batch of mergeBatches(cluster.sources)) {
        for (const row of batch) {
          if (start !== undefined && compareKeys(row.id, start) < 0) {
            offset++;
            continue;
          }
          if (end !== undefined) {
            const order = compareKeys(row.id, end);
            if (order > 0 || (order === 0 && !inclusiveEnd)) break scan;
          }
          if (rows.length >= limit) break scan;
          rows.push(row);
        }
      }
    }
    return { offset, rows };
  }

  /**
   * Rows from `start` downward.
   *
   * @param clusters The clusters of this request.
   * @param query The page asked for (`start`, `end`, `inclusiveEnd`, `limit`).
   * @returns The rows, highest id first; `offset` counts the rows after `start`.
   */
  async descending(clusters: Cluster[], query: AllDocsQuery): Promise<PartitionPage> {
    const { start, end, inclusiveEnd, limit } = query;
    let i = clusters.length - 1;
    let offset = 0;
    if (start !== undefined) {
      // Clusters that begin after `start` hold only rows after it.
      while (i >= 0 && compareKeys(clusters[i]!.startKey, start) > 0) offset += clusters[i--]!.rows;
    }
    const rows: AllDocsRow[] = [];
    for (let first = true; i >= 0; i--, first = false) {
      const cluster = clusters[i]!;
      if (!first && rows.length >= limit) break;
      if (end !== undefined && cluster.endKey !== "" && compareKeys(cluster.endKey, end) <= 0) {
        break;
      }
      // Keep the last `want` rows of the cluster that fall in the range (bounded memory).
      const want = limit - rows.length;
      if (want === 0 && start === undefined) break;
      let kept: AllDocsRow[] = [];
      let seen = 0;
      read: for await (const batch of mergeBatches(cluster.sources)) {
        for (const row of batch) {
          if (start !== undefined && compareKeys(row.id, start) > 0) {
            offset += cluster.rows - seen;
            break read;
          }
          seen++;
          if (end !== undefined) {
            const order = compareKeys(row.id, end);
            if (order < 0 || (order === 0 && !inclusiveEnd)) continue;
          }
          if (want === 0) continue;
          kept.push(row);
          if (kept.length >= 2 * want) kept = kept.slice(-want);
        }
      }
      if (want > 0) rows.push(...kept.slice(-want).reverse());
    }
    return { offset, rows };
  }

  /**
   * The revisions of those of `ids` that are cached.
   *
   * @param clusters The clusters of this request.
   * @param ids The ids to look up.
   * @returns Revisions by id; ids not cached are left out.
   */
  async lookup(clusters: Cluster[], ids: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const wanted = new Map<Cluster, Set<string>>();
    for (const id of ids) {
      const cluster = clusters.find((c) =>
        compareKeys(c.startKey, id) <= 0 && (c.endKey === "" || compareKeys(id, c.endKey) < 0)
      );
      if (!cluster) continue;
      let set = wanted.get(cluster);
      if (!set) wanted.set(cluster, set = new Set());
      set.add(id);
    }
    for (const [cluster, set] of wanted) {
      const last = [...set].reduce((a, b) => compareKeys(a, b) >= 0 ? a : b);
      read: for await (const batch of mergeBatches(cluster.sources)) {
        for (const row of batch) {
          if (set.has(row.id)) found.set(row.id, row.rev);
          if (compareKeys(row.id, last) >= 0) break read;
        }
      }
    }
    return found;
  }
}
