/**
 * Reading one `_all_docs` page into partition lines: a fast path for pages laid out the way
 * CouchDB writes them, and `JSON.parse` for everything else. Both give the same lines.
 *
 * @module
 */

import { compareKeys } from "../storage/driver.ts";
import type { AllDocsRow } from "./rows.ts";
import { encodePartitionLines } from "./partition_lines.ts";
import { BadResponseError } from "../http/errors.ts";

/** A page read and checked: its rows as partition lines. */
export interface ParsedPage {
  lines: Uint8Array;
  /** Rows kept. */
  count: number;
  /** Rows in the response, the dropped repeat included. */
  raw: number;
  firstId: string | undefined;
  lastId: string | undefined;
}

const decoder = new TextDecoder();

function outOfOrder(id: string, previous: string): BadResponseError {
  return new BadResponseError(
    `Bad _all_docs page: rows out of order (${JSON.stringify(id)} after ${
      JSON.stringify(previous)
    })`,
  );
}

/** Parses any page with `JSON.parse`. */
export function parsePage(bytes: Uint8Array, after: string | undefined): ParsedPage {
  const text = decoder.decode(bytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BadResponseError(`Bad _all_docs page: not JSON (${bytes.length} bytes)`);
  }
  const rows = (body as { rows?: unknown })?.rows;
  if (!Array.isArray(rows)) throw new BadResponseError("Bad _all_docs page: no rows array");
  const out: AllDocsRow[] = [];
  let previous = after;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as { id?: unknown; value?: { rev?: unknown } } | null;
    const id = row?.id;
    const rev = row?.value?.rev;
    if (typeof id !== "string" || typeof rev !== "string") {
      throw new BadResponseError("Bad _all_docs page: a row lacks its id or rev");
    }
    if (previous !== undefined) {
      const order = compareKeys(previous, id);
      if (order === 0 && i === 0) continue; // The repeated first row of a follow-on page.
      if (order >= 0) throw outOfOrder(id, previous);
    }
    out.push({ id, rev });
    previous = id;
  }
  return {
    lines: encodePartitionLines(out, !text.includes("\\")),
    count: out.length,
    raw: rows.length,
    firstId: out[0]?.id,
    lastId: out.at(-1)?.id,
  };
}

/** `{"total_rows":N,"offset":K,"rows":[`, as CouchDB and npm begin a page. */
const PAGE_HEAD = /^\{"total_rows":(?:0|[1-9]\d*),"offset":(?:0|[1-9]\d*),"rows":\[/;
const ROW_ID = new TextEncoder().encode('{"id":"');
const ROW_KEY = new TextEncoder().encode('","key":"');
const ROW_REV = new TextEncoder().encode('","value":{"rev":"');

function matchesAt(bytes: Uint8Array, at: number, literal: Uint8Array): boolean {
  if (at + literal.length > bytes.length) return false;
  for (let i = 0; i < literal.length; i++) if (bytes[at + i] !== literal[i]) return false;
  return true;
}

function skipSpace(bytes: Uint8Array, at: number): number {
  let c = bytes[at];
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = bytes[++at];
  return at;
}

/**
 * Reads a page laid out the way CouchDB writes it, without decoding it: rows of exactly
 * `{"id":"…","key":"…","value":{"rev":"…"}}` with the key equal to the id, printable ASCII
 * throughout, and no backslash anywhere in the page. Such a page is valid JSON whose rows are
 * copied byte for byte into partition lines (ASCII byte order is code-point order). Returns
 * `undefined` for any other page, which is then parsed with `JSON.parse`.
 */
export function scanPage(bytes: Uint8Array, after: string | undefined): ParsedPage | undefined {
  if (bytes.indexOf(0x5c) !== -1) return undefined;
  const head = PAGE_HEAD.exec(decoder.decode(bytes.subarray(0, 80)));
  if (head === null) return undefined;
  const n = bytes.length;
  const lines = new Uint8Array(n);
  let o = 0;
  let at = head[0].length;
  let raw = 0;
  let count = 0;
  let previousStart = -1;
  let previousEnd = -1;
  let firstStart = -1;
  let firstEnd = -1;
  while (true) {
    at = skipSpace(bytes, at);
    if (bytes[at] === 0x5d) break;
    if (raw > 0) {
      if (bytes[at] !== 0x2c) return undefined;
      at = skipSpace(bytes, at + 1);
    }
    if (!matchesAt(bytes, at, ROW_ID)) return undefined;
    const idStart = at + ROW_ID.length;
    const idEnd = bytes.indexOf(0x22, idStart);
    if (idEnd === -1 || !matchesAt(bytes, idEnd, ROW_KEY)) return undefined;
    const keyStart = idEnd + ROW_KEY.length;
    const length = idEnd - idStart;
    if (keyStart + length > n) return undefined;
    let odd = 0;
    for (let i = 0; i < length; i++) {
      const c = bytes[idStart + i]!;
      if (c !== bytes[keyStart + i]) return undefined;
      odd |= c < 0x20 || c > 0x7e ? 1 : 0;
    }
    const revStart = keyStart + length + ROW_REV.length;
    if (!matchesAt(bytes, keyStart + length, ROW_REV)) return undefined;
    const revEnd = bytes.indexOf(0x22, revStart);
    if (revEnd === -1 || bytes[revEnd + 1] !== 0x7d || bytes[revEnd + 2] !== 0x7d) {
      return undefined;
    }
    for (let i = revStart; i < revEnd; i++) {
      const c = bytes[i]!;
      odd |= c < 0x20 || c > 0x7e ? 1 : 0;
    }
    if (odd !== 0) return undefined;
    at = revEnd + 3;
    raw++;
    if (previousStart !== -1) {
      const previousLength = previousEnd - previousStart;
      const common = Math.min(previousLength, length);
      let i = 0;
      while (i < common && bytes[previousStart + i] === bytes[idStart + i]) i++;
      const order = i < common
        ? bytes[previousStart + i]! - bytes[idStart + i]!
        : previousLength - length;
      if (order >= 0) {
        throw outOfOrder(
          decoder.decode(bytes.subarray(idStart, idEnd)),
          decoder.decode(bytes.subarray(previousStart, previousEnd)),
        );
      }
    } else if (after !== undefined) {
      const id = decoder.decode(bytes.subarray(idStart, idEnd));
      const order = compareKeys(after, id);
      if (order > 0) throw outOfOrder(id, after);
      if (order === 0) {
        // The repeated first row of a follow-on page.
        previousStart = idStart;
        previousEnd = idEnd;
        continue;
      }
    }
    previousStart = idStart;
    previousEnd = idEnd;
    if (firstStart === -1) {
      firstStart = idStart;
      firstEnd = idEnd;
    }
    // ["id","rev"]\n
    lines[o++] = 0x5b;
    lines[o++] = 0x22;
    lines.set(bytes.subarray(idStart, idEnd), o);
    o += length;
    lines[o++] = 0x22;
    lines[o++] = 0x2c;
    lines[o++] = 0x22;
    lines.set(bytes.subarray(revStart, revEnd), o);
    o += revEnd - revStart;
    lines[o++] = 0x22;
    lines[o++] = 0x5d;
    lines[o++] = 0x0a;
    count++;
  }
  at = skipSpace(bytes, at + 1);
  if (bytes[at] !== 0x7d) return undefined;
  if (skipSpace(bytes, at + 1) !== n) return undefined;
  return {
    lines: lines.subarray(0, o),
    count,
    raw,
    firstId: count === 0 ? undefined : decoder.decode(bytes.subarray(firstStart, firstEnd)),
    lastId: count === 0 ? undefined : decoder.decode(bytes.subarray(previousStart, previousEnd)),
  };
}
