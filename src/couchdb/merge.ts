/**
 * The k-way merge of partitions: the rows of several sorted sources (cached partitions, each a
 * key range of `_all_docs`) as one run in id order, one row per id. Where ranges overlap
 * (overlapping partition sets, or one set fetched again), the most recently fetched source
 * covering a point of the key space decides it: its rows are the rows there, and an id it does
 * not hold is gone (deleted at the origin), even when an older source still lists it. The
 * document index and the read replica both read partitions through it.
 *
 * Sources are described, not opened: each names its range, when it was fetched and how to open
 * its row batches. The key space is first cut into segments, each decided by one source (from
 * the ranges alone, before any row is read); sources are then opened lazily, only once the merge
 * reaches their first segment, so a set of disjoint ranges keeps one open at a time. Within a
 * segment a source's batches pass through as they are (cut at the segment's ends by a binary
 * search), without a per-row merge.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import type { AllDocsRow } from "./rows.ts";

/** One sorted source of rows for {@linkcode mergeBatches}: a cached partition, for instance. */
export interface MergeSource {
  /** The least id the source can hold: its range's start key (`""` when open). */
  startKey: string;
  /** The end of its range, exclusive (`""` when open): the source holds every id below it. */
  endKey: string;
  /** When its rows were fetched (milliseconds since the epoch); within its range, the latest
   * fetch decides. */
  fetchedAt: number;
  /**
   * Opens its rows: batches in strictly increasing id order (code-point order, as
   * {@linkcode compareKeys}), within its range (rows outside it are ignored). Called at most
   * once, when the merge reaches the first part of the range it decides; the iterator is
   * closed early when the merge is.
   */
  open(): AsyncIterable<AllDocsRow[]>;
}

/** A part of the key space, `[start, end)` (`end` `""` is open), decided by one source. */
export interface Segment {
  start: string;
  end: string;
  /** The source, by its place in start-key order. */
  source: number;
}

/** Whether `key` lies below the exclusive end `end` (`""` is open). */
function below(key: string, end: string): boolean {
  return end === "" || compareKeys(key, end) < 0;
}

/**
 * Cuts the key space into segments, each decided by the newest source covering it (on equal
 * fetch times the first in `ordered`, which is in start-key order). Ranges that do not overlap
 * (one partition set) give one segment per source, found without the sweep. The `_changes`
 * follower uses it to write a change where {@linkcode mergeBatches} will read it.
 *
 * @param ordered The sources in start-key order (only their ranges and fetch times are read).
 * @returns The segments in key order; `source` is an index into `ordered`.
 */
export function segmentsOf(ordered: readonly Omit<MergeSource, "open">[]): Segment[] {
  let disjoint = true;
  for (let i = 1; i < ordered.length && disjoint; i++) {
    disjoint = !below(ordered[i]!.startKey, ordered[i - 1]!.endKey);
  }
  if (disjoint) {
    return ordered.map((s, source) => ({ start: s.startKey, end: s.endKey, source }));
  }
  // A sweep over the range boundaries, with a heap of the sources covering the current point,
  // the newest on top (ended ones are dropped once they reach the top).
  // `""` as a start is the least point; an open end adds none.
  const points = [
    ...new Set([
      ...ordered.map((s) => s.startKey),
      ...ordered.map((s) => s.endKey).filter((end) => end !== ""),
    ]),
  ].sort(compareKeys);
  const better = (a: number, b: number) => {
    const x = ordered[a]!;
    const y = ordered[b]!;
    return x.fetchedAt > y.fetchedAt || (x.fetchedAt === y.fetchedAt && a < b);
  };
  const heap: number[] = [];
  const push = (item: number) => {
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!better(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const pop = () => {
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    while (true) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && better(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && better(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  const segments: Segment[] = [];
  let next = 0;
  for (let p = 0; p < points.length; p++) {
    const point = points[p]!;
    while (next < ordered.length && ordered[next]!.startKey === point) push(next++);
    while (heap.length > 0 && !below(point, ordered[heap[0]!]!.endKey)) pop();
    if (heap.length === 0) continue;
    const source = heap[0]!;
    const end = points[p + 1] ?? "";
    const last = segments.at(-1);
    if (last && last.source === source && last.end === point) last.end = end;
    else segments.push({ start: point, end, source });
  }
  return segments;
}

/** The first index in `rows[from..]` whose id is not below `key` (`rows.length` if none). */
function firstNotBelow(rows: AllDocsRow[], from: number, key: string): number {
  let low = from;
  let high = rows.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (compareKeys(rows[middle]!.id, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

interface Cursor {
  rows: AllDocsRow[];
  i: number;
  rest: AsyncIterator<AllDocsRow[]>;
  /** The index of the last segment the source decides: it is closed after that one. */
  lastSegment: number;
}

/**
 * Merges sorted sources into one run of rows in id order, one row per id, in batches. Every
 * point of the key space is decided by the most recently fetched source whose range covers it
 * (on a tie, the first in start-key order): its rows there are kept, and the rows other
 * sources hold there are dropped, so an id deleted at the origin since an older fetch stays
 * gone.
 *
 * Sources may come in any order; they are opened lazily, in order of the key space they
 * decide, so a consumer that stops early never opens a source it did not need. A source's own
 * batches are handed out as they are (possibly cut where its part of the key space ends):
 * treat every batch as read-only.
 *
 * @param sources The sources.
 * @returns Batches of rows; together they are in id order. Closing the generator early closes
 *   every source it opened.
 *
 * @example A newer partition decides its range: `b` is updated, `c` was deleted
 * ```ts
 * import { mergeBatches, type MergeSource } from "./merge.ts";
 * import type { AllDocsRow } from "./rows.ts";
 *
 * function source(
 *   startKey: string,
 *   endKey: string,
 *   fetchedAt: number,
 *   rows: AllDocsRow[],
 * ): MergeSource {
 *   return { startKey, endKey, fetchedAt, open: async function* () { yield rows; } };
 * }
 * const rows: AllDocsRow[] = [];
 * const sources = [
 *   source("", "", 1, [{ id: "a", rev: "1-a" }, { id: "b", rev: "1-b" }, { id: "c", rev: "1-c" }]),
 *   source("b", "d", 2, [{ id: "b", rev: "2-b" }]),
 * ];
 * for await (const batch of mergeBatches(sources)) rows.push(...batch);
 * console.assert(rows.map((r) => r.rev).join() === "1-a,2-b");
 * ```
 */
export async function* mergeBatches(
  sources: Iterable<MergeSource>,
): AsyncGenerator<AllDocsRow[]> {
  const ordered = [...sources].sort((a, b) => compareKeys(a.startKey, b.startKey));
  const segments = segmentsOf(ordered);
  const lastSegment = new Map<number, number>();
  segments.forEach((segment, i) => lastSegment.set(segment.source, i));
  const cursors = new Map<number, Cursor>();

  /** Moves to the next non-empty batch; `false` when the source is done. */
  async function refill(cursor: Cursor): Promise<boolean> {
    while (cursor.i >= cursor.rows.length) {
      const next = await cursor.rest.next();
      if (next.done) return false;
      cursor.rows = next.value;
      cursor.i = 0;
    }
    return true;
  }

  try {
    for (let s = 0; s < segments.length; s++) {
      const { start, end, source } = segments[s]!;
      let cursor = cursors.get(source);
      if (!cursor) {
        cursor = {
          rows: [],
          i: 0,
          rest: ordered[source]!.open()[Symbol.asyncIterator](),
          lastSegment: lastSegment.get(source)!,
        };
        cursors.set(source, cursor);
      }
      while (await refill(cursor)) {
        const rows = cursor.rows;
        // Rows below the segment belong to a part of the key space another source decided.
        if (compareKeys(rows[cursor.i]!.id, start) < 0) {
          cursor.i = firstNotBelow(rows, cursor.i, start);
          if (cursor.i >= rows.length) continue;
        }
        const whole = below(rows[rows.length - 1]!.id, end);
        const cut = whole ? rows.length : firstNotBelow(rows, cursor.i, end);
        if (cut > cursor.i) {
          yield cursor.i === 0 && cut === rows.length ? rows : rows.slice(cursor.i, cut);
        }
        cursor.i = cut;
        if (!whole) break;
      }
      if (cursor.lastSegment === s) {
        cursors.delete(source);
        await cursor.rest.return?.();
      }
    }
  } finally {
    await Promise.all([...cursors.values()].map((cursor) => cursor.rest.return?.()));
  }
}
