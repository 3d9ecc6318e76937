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

import { compareKeys } from "./_compare.ts";
import type { AllDocsRow } from "./all_docs.ts";
import type { Cache } from "./cache.ts";
import { parseKey } from "./keys.ts";
import { partitionRows } from "./partition_rows.ts";

interface Source {
  startKey: string;
  fetchedAt: number;
  key: string;
}

interface Cursor {
  row: AllDocsRow;
  fetchedAt: number;
  rest: AsyncGenerator<AllDocsRow>;
}

async function* rowsOf(cache: Cache, key: string): AsyncGenerator<AllDocsRow> {
  const entry = await cache.get(key, { verify: "while" });
  if (entry) yield* partitionRows(entry.stream());
}

class Heap {
  items: Cursor[] = [];
  #less(a: Cursor, b: Cursor): boolean {
    const order = compareKeys(a.row.id, b.row.id);
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
  const prefix = originKey ? `v1:partition:${originKey}:` : "v1:partition:";
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
  async function open(source: Source) {
    const rest = rowsOf(cache, source.key);
    const first = await rest.next();
    if (!first.done) heap.push({ row: first.value, fetchedAt: source.fetchedAt, rest });
  }
  async function advance(cursor: Cursor) {
    const next = await cursor.rest.next();
    if (!next.done) heap.push({ ...cursor, row: next.value });
  }
  while (true) {
    // Open every source that could hold a row at or before the current smallest id.
    while (
      nextSource < sources.length &&
      (heap.items.length === 0 ||
        compareKeys(sources[nextSource]!.startKey, heap.items[0]!.row.id) <= 0)
    ) {
      await open(sources[nextSource++]!);
    }
    const top = heap.pop();
    if (!top) return;
    yield top.row;
    await advance(top);
    // Drop the same id from other partitions (older fetches).
    while (heap.items.length > 0 && heap.items[0]!.row.id === top.row.id) {
      await advance(heap.pop()!);
    }
  }
}
