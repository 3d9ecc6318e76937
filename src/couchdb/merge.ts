/**
 * The k-way merge of partitions: the rows of several sorted sources (cached partitions, each a
 * key range of `_all_docs`) as one run in id order, one row per id. When an id is in several
 * sources (overlapping partition sets, or one set fetched again), the most recently fetched
 * source wins. The document index and the read replica both read partitions through it.
 *
 * Sources are described, not opened: each names where its range starts, when it was fetched
 * and how to open its row batches. They are opened lazily in order of their start key, only
 * once the merge reaches that key, so a set of disjoint ranges keeps one or two open at a
 * time. While a single source covers the ids at hand (the usual case), its batches pass through
 * as they are, without a per-row merge.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import type { AllDocsRow } from "./rows.ts";

/** One sorted source of rows for {@linkcode mergeBatches}: a cached partition, for instance. */
export interface MergeSource {
  /** The least id the source can hold: its range's start key (`""` when open). */
  startKey: string;
  /** When its rows were fetched (milliseconds since the epoch); the latest fetch wins an id. */
  fetchedAt: number;
  /**
   * Opens its rows: batches in strictly increasing id order (code-point order, as
   * {@linkcode compareKeys}), none below `startKey`. Called at most once, when the merge
   * reaches `startKey`; the iterator is closed early when the merge is.
   */
  open(): AsyncIterable<AllDocsRow[]>;
}

/** Rows handed out per batch while sources overlap. */
const BATCH = 1024;

interface Cursor {
  /** The current batch; `rows[i]` is the cursor's row. */
  rows: AllDocsRow[];
  i: number;
  fetchedAt: number;
  /** The source's place in start-key order: on equal ids and fetch times, the first wins. */
  order: number;
  rest: AsyncIterator<AllDocsRow[]>;
}

/** Whether `a`'s row comes out before `b`'s: the smaller id, then the newer fetch. */
function before(a: Cursor, b: Cursor): boolean {
  const order = compareKeys(a.rows[a.i]!.id, b.rows[b.i]!.id);
  if (order !== 0) return order < 0;
  return a.fetchedAt > b.fetchedAt || (a.fetchedAt === b.fetchedAt && a.order < b.order);
}

/** A binary min-heap of cursors by {@linkcode before}. */
class Heap {
  items: Cursor[] = [];

  push(item: Cursor): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
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
        if (l < items.length && before(items[l]!, items[m]!)) m = l;
        if (r < items.length && before(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

function currentId(cursor: Cursor): string {
  return cursor.rows[cursor.i]!.id;
}

/**
 * Merges sorted sources into one run of rows in id order, one row per id, in batches; an id in
 * several sources comes from the one fetched last (on a tie, the first in start-key order).
 *
 * Sources may come in any order; they are opened lazily in order of their start key (ties in
 * the order given), and the rows gathered before a source is opened are handed out first, so a
 * consumer that stops early never opens a source it did not need. While one source alone covers
 * the ids at hand, its own batches are handed out as they are (possibly cut where the next
 * source starts): treat every batch as read-only.
 *
 * @param sources The sources.
 * @returns Batches of rows; together they are in id order. Closing the generator early closes
 *   every source it opened.
 *
 * @example Two overlapping partitions: the newer fetch wins `b`
 * ```ts
 * import { mergeBatches, type MergeSource } from "./merge.ts";
 * import type { AllDocsRow } from "./rows.ts";
 *
 * function source(startKey: string, fetchedAt: number, rows: AllDocsRow[]): MergeSource {
 *   return { startKey, fetchedAt, open: async function* () { yield rows; } };
 * }
 * const rows: AllDocsRow[] = [];
 * const sources = [
 *   source("", 1, [{ id: "a", rev: "1-a" }, { id: "b", rev: "1-b" }]),
 *   source("b", 2, [{ id: "b", rev: "2-b" }, { id: "c", rev: "1-c" }]),
 * ];
 * for await (const batch of mergeBatches(sources)) rows.push(...batch);
 * console.assert(rows.map((r) => r.rev).join() === "1-a,2-b,1-c");
 * ```
 */
export async function* mergeBatches(
  sources: Iterable<MergeSource>,
): AsyncGenerator<AllDocsRow[]> {
  const ordered = [...sources].sort((a, b) => compareKeys(a.startKey, b.startKey));
  const heap = new Heap();
  /** Every cursor opened and not yet exhausted, to close when the merge stops early. */
  const live = new Set<Cursor>();
  let nextSource = 0;

  /** Moves to the next non-empty batch; `false` (and closed) when the source is done. */
  async function refill(cursor: Cursor): Promise<boolean> {
    while (cursor.i >= cursor.rows.length) {
      const next = await cursor.rest.next();
      if (next.done) {
        live.delete(cursor);
        cursor.rows = [];
        cursor.i = 0;
        return false;
      }
      cursor.rows = next.value;
      cursor.i = 0;
    }
    return true;
  }

  async function open(order: number): Promise<void> {
    const source = ordered[order]!;
    const cursor: Cursor = {
      rows: [],
      i: 0,
      fetchedAt: source.fetchedAt,
      order,
      rest: source.open()[Symbol.asyncIterator](),
    };
    live.add(cursor);
    if (await refill(cursor)) heap.push(cursor);
  }

  async function advance(cursor: Cursor): Promise<void> {
    cursor.i++;
    if (await refill(cursor)) heap.push(cursor);
  }

  let out: AllDocsRow[] = [];
  try {
    while (true) {
      // Open every source that could hold a row at or before the current smallest id, after
      // handing out the rows gathered so far.
      while (
        nextSource < ordered.length &&
        (heap.items.length === 0 ||
          compareKeys(ordered[nextSource]!.startKey, currentId(heap.items[0]!)) <= 0)
      ) {
        if (out.length > 0) {
          yield out;
          out = [];
        }
        await open(nextSource++);
      }
      if (heap.items.length === 1) {
        // One source alone: its rows below where the next one starts go out as they are. Its
        // current row is below that start (the loop above opens every source that is not).
        const only = heap.items[0]!;
        const bound = ordered[nextSource]?.startKey;
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
      // Drop the same id from the other sources (older fetches).
      while (heap.items.length > 0 && currentId(heap.items[0]!) === row.id) {
        await advance(heap.pop()!);
      }
    }
    if (out.length > 0) yield out;
  } finally {
    await Promise.all([...live].map((cursor) => cursor.rest.return?.()));
  }
}
