/**
 * The document index: every `id,rev` in the cached partitions, de-duplicated and sorted by id in
 * code-point order, produced as a stream with memory bounded by the open partitions.
 *
 * Partitions are opened lazily in order of their start key and merged, so a set of disjoint
 * ranges keeps one or two open at a time; overlapping sets (different pivots for one origin) are
 * merged too. When an id appears in several partitions, the most recently fetched one wins.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import type { AllDocsRow } from "../couchdb/rows.ts";
import type { Cache } from "../storage/cache.ts";
import { keyPrefix, parseKey } from "../storage/keys.ts";
import { partitionBatches } from "../couchdb/partition_lines.ts";

interface Source {
  startKey: string;
  fetchedAt: number;
  key: string;
}

interface Cursor {
  /** The current batch; `rows[i]` is the cursor's row. */
  rows: AllDocsRow[];
  i: number;
  fetchedAt: number;
  rest: AsyncGenerator<AllDocsRow[]>;
}

async function* batchesOf(cache: Cache, key: string): AsyncGenerator<AllDocsRow[]> {
  const entry = await cache.get(key, { verify: "while" });
  if (entry) yield* partitionBatches(entry.stream());
}

class Heap {
  items: Cursor[] = [];
  #less(a: Cursor, b: Cursor): boolean {
    const order = compareKeys(a.rows[a.i]!.id, b.rows[b.i]!.id);
    return order < 0 || (order === 0 && a.fetchedAt > b.fetchedAt);
  }
  push(item: Cursor): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): Cursor | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.#less(items[l]!, items[m]!)) m = l;
        if (r < items.length && this.#less(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Rows handed out per batch while partitions overlap. */
const BATCH = 1024;

/**
 * Every document row of the cached partitions, in id order, one per id, in batches. While only
 * one partition covers the ids at hand (the usual case: one set of disjoint ranges), its rows
 * pass through a batch at a time without a per-row merge.
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
  const sources: Source[] = [];
  const keys = only ? [...only].filter((k) => k.startsWith(prefix)) : cache.keys(prefix);
  for await (const key of keys) {
    const info = await cache.info(key);
    const parts = parseKey(key);
    if (!info || parts.type !== "partition") continue;
    sources.push({ key, startKey: parts.startKey, fetchedAt: info.fetchedAt });
  }
  sources.sort((a, b) => compareKeys(a.startKey, b.startKey));
  const heap = new Heap();
  let nextSource = 0;
  /** Moves to the next non-empty batch; `false` when the partition is done. */
  async function refill(cursor: Cursor): Promise<boolean> {
    while (cursor.i >= cursor.rows.length) {
      const next = await cursor.rest.next();
      if (next.done) return false;
      cursor.rows = next.value;
      cursor.i = 0;
    }
    return true;
  }
  async function open(source: Source) {
    const cursor: Cursor = {
      rows: [],
      i: 0,
      fetchedAt: source.fetchedAt,
      rest: batchesOf(cache, source.key),
    };
    if (await refill(cursor)) heap.push(cursor);
  }
  async function advance(cursor: Cursor) {
    cursor.i++;
    if (await refill(cursor)) heap.push(cursor);
  }
  let out: AllDocsRow[] = [];
  while (true) {
    // Open every source that could hold a row at or before the current smallest id.
    while (
      nextSource < sources.length &&
      (heap.items.length === 0 ||
        compareKeys(sources[nextSource]!.startKey, currentId(heap.items[0]!)) <= 0)
    ) {
      await open(sources[nextSource++]!);
    }
    if (heap.items.length === 1) {
      // One partition alone: its rows below where the next one starts go out as they are. Its
      // current row is below that start (the loop above opens every source that is not).
      const only = heap.items[0]!;
      const bound = sources[nextSource]?.startKey;
      let end = only.rows.length;
      if (bound !== undefined && compareKeys(only.rows[end - 1]!.id, bound) >= 0) {
        let low = only.i;
        while (low < end) {
          const middle = (low + end) >> 1;
          if (compareKeys(only.rows[middle]!.id, bound) < 0) low = middle + 1;
          else end = middle;
        }
      }
      if (out.length > 0) {
        yield out;
        out = [];
      }
      yield only.i === 0 && end === only.rows.length ? only.rows : only.rows.slice(only.i, end);
      heap.pop();
      only.i = end;
      if (await refill(only)) heap.push(only);
      continue;
    }
    const top = heap.pop();
    if (!top) break;
    const row = top.rows[top.i]!;
    out.push(row);
    if (out.length >= BATCH) {
      yield out;
      out = [];
    }
    await advance(top);
    // Drop the same id from other partitions (older fetches).
    while (heap.items.length > 0 && currentId(heap.items[0]!) === row.id) {
      await advance(heap.pop()!);
    }
  }
  if (out.length > 0) yield out;
}

function currentId(cursor: Cursor): string {
  return cursor.rows[cursor.i]!.id;
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
