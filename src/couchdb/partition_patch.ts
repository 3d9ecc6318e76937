/**
 * Editing a cached partition in place: a body of partition lines (`["id","rev"]\n`, in key
 * order; see `partition_lines.ts`) and a list of edits (in any order: {@linkcode sortEdits}
 * puts them in key order, one per id) give the new body, as a stream, without parsing the lines
 * the edits do not touch.
 *
 * The edits are found by binary search over the bytes of each chunk (UTF-8 byte order is
 * code-point order, the key order), so a chunk with no edit in it passes through as it came,
 * and the cost is a copy of the bytes plus a few comparisons per edit. Memory is bounded by a
 * chunk, whatever the size of the partition.
 *
 * Which revision wins: an edit replaces (or, for a deletion, removes) the row only when its
 * revision is newer, by the generation before the `-` (`12-abc` is generation 12; on equal
 * generations the edit's wins, as the feed names the winning revision). An older edit leaves the
 * row as it is (`stale`): a change replayed over a partition fetched after it never undoes it.
 *
 * @module
 */

import type { AllDocsRow } from "./rows.ts";
import { encodePartitionLines } from "./partition_lines.ts";
import { concatBytes } from "../_util/bytes.ts";
import { compareKeys } from "../storage/driver.ts";

/** An edit of one document: its new revision, or its deletion. */
export interface PartitionEdit {
  /** The document id. */
  id: string;
  /** The new revision (the tombstone's for a deletion). */
  rev: string;
  /** Remove the document. */
  deleted: boolean;
}

/** What a patch did, counted as the body streams (final once it has been read). */
export interface PatchCounts {
  /** New rows. */
  added: number;
  /** Rows given a newer revision. */
  replaced: number;
  /** Rows removed. */
  removed: number;
  /** Edits older than the row they met, left out. */
  stale: number;
  /** Edits that changed nothing: the row had that revision already, or a deletion found no
   * row. */
  unchanged: number;
}

/** Counters at zero. */
export function emptyPatchCounts(): PatchCounts {
  return { added: 0, replaced: 0, removed: 0, stale: 0, unchanged: 0 };
}

/**
 * Whether revision `next` wins over `current`: a higher generation, or an equal one with
 * another hash. A revision without a generation always wins.
 *
 * @param next The revision an edit brings.
 * @param current The revision held.
 * @returns `true` when `next` should replace `current`.
 *
 * @example
 * ```ts
 * import { revWins } from "./partition_patch.ts";
 * console.assert(revWins("3-b", "2-a") && !revWins("2-a", "3-b") && !revWins("3-b", "3-b"));
 * ```
 */
export function revWins(next: string, current: string): boolean {
  const a = parseInt(next, 10);
  const b = parseInt(current, 10);
  if (!(a > 0 && b > 0)) return next !== current;
  return a > b || (a === b && next !== current);
}

/** Characters at or above U+D800: where UTF-16 order (`<`) and code-point order (the key order)
 * may differ. An id without one compares the same either way. */
export const HIGH_CHARACTERS = /[\ud800-\uffff]/;

/** An order of ids. */
type Order = (a: string, b: string) => number;

/** Plain UTF-16 order: code-point order when one side has no character from U+D800 up. */
function utf16Order(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Edits in key order (code-point order of the ids), one per id: of several edits of an id, the
 * newer revision ({@linkcode revWins}; on a tie, the later one).
 *
 * @param edits The edits, in any order, ids possibly repeated.
 * @returns The sorted, unique edits (frozen).
 *
 * @example
 * ```ts
 * import { sortEdits } from "./partition_patch.ts";
 * const sorted = sortEdits([
 *   { id: "b", rev: "2-b", deleted: false },
 *   { id: "a", rev: "1-a", deleted: false },
 *   { id: "b", rev: "1-b", deleted: false },
 * ]);
 * console.assert(sorted.map((e) => e.rev).join() === "1-a,2-b");
 * ```
 */
export function sortEdits(edits: Iterable<PartitionEdit>): readonly PartitionEdit[] {
  return sortEditRuns([Array.isArray(edits) ? edits : [...edits]]);
}

/**
 * {@linkcode sortEdits} of the concatenation of `runs` (each in feed order, such as the entries
 * of one `_changes` page), done run by run: each run is sorted on its own, then the sorted runs
 * are merged pairwise. Smaller sorts and linear merges cost less than one sort of the whole.
 *
 * @param runs The edits, run after run (a later run is later in the feed).
 * @returns The sorted, unique edits (frozen).
 *
 * @example
 * ```ts
 * import { sortEditRuns } from "./partition_patch.ts";
 * const sorted = sortEditRuns([
 *   [{ id: "b", rev: "1-b", deleted: false }, { id: "a", rev: "1-a", deleted: false }],
 *   [{ id: "b", rev: "2-b", deleted: true }],
 * ]);
 * console.assert(sorted.map((e) => `${e.id} ${e.rev}`).join() === "a 1-a,b 2-b");
 * ```
 */
export function sortEditRuns(
  runs: readonly (readonly PartitionEdit[])[],
): readonly PartitionEdit[] {
  // Sorting with `<` is several times cheaper than code-point order, and the same when no id
  // holds a character from U+D800 up (astral characters, U+E000 and above): the usual case.
  const order = runs.some((run) => run.some((edit) => HIGH_CHARACTERS.test(edit.id)))
    ? compareKeys
    : utf16Order;
  const byId = order === utf16Order ? byIdUtf16 : byIdCodePoint;
  // Stable sorts and merges that take the earlier run first on equal ids: the edits of an id
  // stay in feed order.
  let sorted = runs.filter((run) => run.length > 0).map((run) => run.slice().sort(byId));
  while (sorted.length > 1) {
    const next: PartitionEdit[][] = [];
    for (let i = 0; i < sorted.length; i += 2) {
      next.push(i + 1 < sorted.length ? mergeRuns(sorted[i]!, sorted[i + 1]!, order) : sorted[i]!);
    }
    sorted = next;
  }
  const out = uniqueEdits(sorted[0] ?? []);
  Object.freeze(out);
  return out;
}

/** Of sorted edits, one per id: the newer revision ({@linkcode revWins}; on a tie, the later). */
function uniqueEdits(sorted: readonly PartitionEdit[]): PartitionEdit[] {
  const out: PartitionEdit[] = [];
  for (const edit of sorted) {
    const last = out[out.length - 1];
    if (last === undefined || last.id !== edit.id) out.push(edit);
    else if (revWins(edit.rev, last.rev) || edit.rev === last.rev) out[out.length - 1] = edit;
  }
  return out;
}

/** Edits by id in UTF-16 order. */
function byIdUtf16(a: PartitionEdit, b: PartitionEdit): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Edits by id in code-point order. */
function byIdCodePoint(a: PartitionEdit, b: PartitionEdit): number {
  return compareKeys(a.id, b.id);
}

/** Merges two sorted lists, `a`'s edit first on equal ids. */
function mergeRuns(
  a: readonly PartitionEdit[],
  b: readonly PartitionEdit[],
  order: Order,
): PartitionEdit[] {
  const out: PartitionEdit[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  if (order === utf16Order) {
    while (i < a.length && j < b.length) {
      out[k++] = a[i]!.id <= b[j]!.id ? a[i++]! : b[j++]!;
    }
  } else {
    while (i < a.length && j < b.length) {
      out[k++] = order(a[i]!.id, b[j]!.id) <= 0 ? a[i++]! : b[j++]!;
    }
  }
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Output is handed on in pieces of about this size. */
const OUT_CHUNK = 65_536;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `a[from, to)` compared with `b`, byte by byte. */
function compareRange(a: Uint8Array, from: number, to: number, b: Uint8Array): number {
  const length = Math.min(to - from, b.length);
  for (let i = 0; i < length; i++) {
    const d = a[from + i]! - b[i]!;
    if (d !== 0) return d;
  }
  return to - from - b.length;
}

function badLine(buf: Uint8Array, start: number, end: number): SyntaxError {
  const text = decoder.decode(buf.subarray(start, Math.min(end, start + 80)));
  return new SyntaxError(`Bad partition line: ${JSON.stringify(text)}`);
}

/** The row of the line `buf[start, end)` (without its newline), parsed whole. */
function rowAt(buf: Uint8Array, start: number, end: number): AllDocsRow {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(buf.subarray(start, end)));
  } catch {
    throw badLine(buf, start, end);
  }
  if (!Array.isArray(value) || typeof value[0] !== "string" || typeof value[1] !== "string") {
    throw badLine(buf, start, end);
  }
  return { id: value[0], rev: value[1] };
}

/** The id of the line at `start` (ending at `end`) compared with `target`, the UTF-8 of an id. */
function compareLine(buf: Uint8Array, start: number, end: number, target: Uint8Array): number {
  if (buf[start] !== 0x5b || buf[start + 1] !== QUOTE) throw badLine(buf, start, end);
  let close = start + 2;
  while (close < end) {
    const byte = buf[close]!;
    if (byte === QUOTE) return compareRange(buf, start + 2, close, target);
    // An escaped id (rare: npm names hold no quote or backslash) is decoded to compare.
    if (byte === BACKSLASH) {
      const id = encoder.encode(rowAt(buf, start, end).id);
      return compareRange(id, 0, id.length, target);
    }
    close++;
  }
  throw badLine(buf, start, end);
}

/** The first line start in `[from, to)` (both line starts) whose id is not below `target`. */
function lowerBound(buf: Uint8Array, from: number, to: number, target: Uint8Array): number {
  let low = from;
  let high = to;
  while (low < high) {
    const middle = (low + high) >>> 1;
    let start = middle;
    while (start > low && buf[start - 1] !== NEWLINE) start--;
    const end = buf.indexOf(NEWLINE, start);
    if (compareLine(buf, start, end, target) < 0) low = end + 1;
    else high = start;
  }
  return low;
}

interface Target extends PartitionEdit {
  bytes: Uint8Array;
}

/**
 * The body of a partition with `edits` applied: each new id inserted in key order, each newer
 * revision replacing the row's, each deletion removing its row (see the module documentation
 * for which revision wins). Lines the edits do not touch are passed on byte for byte.
 *
 * @param body The partition body (every line ending in `\n`).
 * @param edits The edits, in any order, an id possibly more than once: of an id's edits the
 *   newer revision counts ({@linkcode sortEdits}; on a tie, the later one).
 * @param counts Counted into as the body streams.
 * @returns The new body.
 * @throws {SyntaxError} From the stream, when a line the search meets is no partition line.
 *
 * @example Add, replace and remove (edits in any order; of `c`'s two, the newer counts)
 * ```ts
 * import { emptyPatchCounts, patchPartition } from "./partition_patch.ts";
 * const body = new Blob(['["a","1-a"]\n["c","1-c"]\n["d","4-d"]\n']).stream();
 * const counts = emptyPatchCounts();
 * const edits = [
 *   { id: "d", rev: "5-d", deleted: true },
 *   { id: "c", rev: "2-c", deleted: false },
 *   { id: "b", rev: "1-b", deleted: false },
 *   { id: "c", rev: "1-x", deleted: false },
 * ];
 * const text = await new Response(patchPartition(body, edits, counts)).text();
 * console.assert(text === '["a","1-a"]\n["b","1-b"]\n["c","2-c"]\n');
 * console.assert(counts.added === 1 && counts.replaced === 1 && counts.removed === 1);
 * ```
 */
export function patchPartition(
  body: ReadableStream<Uint8Array>,
  edits: readonly PartitionEdit[],
  counts: PatchCounts,
): ReadableStream<Uint8Array> {
  const targets: Target[] = sortEdits(edits).map((edit) => ({
    ...edit,
    bytes: encoder.encode(edit.id),
  }));
  const pieces = patched(body, targets, counts);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await pieces.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (error) {
        controller.error(error);
      }
    },
    async cancel() {
      await pieces.return(undefined);
    },
  }, { highWaterMark: 0 });
}

async function* patched(
  body: ReadableStream<Uint8Array>,
  targets: readonly Target[],
  counts: PatchCounts,
): AsyncGenerator<Uint8Array> {
  let next = 0;
  let pieces: Uint8Array[] = [];
  let size = 0;
  const put = (piece: Uint8Array) => {
    pieces.push(piece);
    size += piece.length;
  };
  const take = (): Uint8Array => {
    const out = pieces.length === 1 ? pieces[0]! : concatBytes(pieces);
    pieces = [];
    size = 0;
    return out;
  };
  const lineOf = (target: Target) => encodePartitionLines([target]);

  /** Applies the edits that fall in the whole lines `buf[from, to)` and passes the lines on. */
  function region(buf: Uint8Array, from: number, to: number): void {
    let at = from;
    while (next < targets.length && at < to) {
      const target = targets[next]!;
      const found = lowerBound(buf, at, to, target.bytes);
      if (found > at) put(buf.subarray(at, found));
      at = found;
      // Every line here is below the edit: a later chunk may hold its row.
      if (found === to) return;
      const end = buf.indexOf(NEWLINE, found);
      if (compareLine(buf, found, end, target.bytes) === 0) {
        const held = rowAt(buf, found, end).rev;
        const line = buf.subarray(found, end + 1);
        if (held === target.rev && !target.deleted) {
          counts.unchanged++;
          put(line);
        } else if (!revWins(target.rev, held)) {
          counts.stale++;
          put(line);
        } else if (target.deleted) counts.removed++;
        else {
          counts.replaced++;
          put(lineOf(target));
        }
        at = end + 1;
      } else if (target.deleted) counts.unchanged++;
      else {
        counts.added++;
        put(lineOf(target));
      }
      next++;
    }
    if (at < to) put(buf.subarray(at, to));
  }

  const reader = body.getReader();
  let carry: Uint8Array | undefined;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      let from = 0;
      if (carry !== undefined) {
        // The line cut at the chunk boundary, whole.
        const newline = value.indexOf(NEWLINE);
        if (newline === -1) {
          carry = concatBytes([carry, value]);
          continue;
        }
        const line = concatBytes([carry, value.subarray(0, newline + 1)]);
        carry = undefined;
        region(line, 0, line.length);
        from = newline + 1;
      }
      const last = value.lastIndexOf(NEWLINE);
      if (last >= from) region(value, from, last + 1);
      const rest = Math.max(from, last + 1);
      if (rest < value.length) carry = value.subarray(rest);
      if (size >= OUT_CHUNK) yield take();
    }
    if (carry !== undefined) {
      const line = concatBytes([carry, new Uint8Array([NEWLINE])]);
      region(line, 0, line.length);
    }
  } finally {
    // Closes the body when the patch stops early (a no-op once it was read to its end).
    await reader.cancel().catch(() => {});
  }
  // Ids above every row.
  for (; next < targets.length; next++) {
    const target = targets[next]!;
    if (target.deleted) counts.unchanged++;
    else {
      counts.added++;
      put(lineOf(target));
    }
    if (size >= OUT_CHUNK) yield take();
  }
  if (size > 0) yield take();
}
