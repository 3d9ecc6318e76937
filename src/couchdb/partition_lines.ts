/**
 * The body format of a cached partition: NDJSON, one `["id","rev"]` line per document, in key
 * order, each line ending in `\n`. The `_all_docs` client writes pages in it, and the index, the
 * replica and the export read it back.
 *
 * @module
 */

import type { AllDocsRow } from "./rows.ts";

const encoder = new TextEncoder();

/** Characters that JSON must escape in a string, plus surrogates (lone ones must be escaped). */
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function jsonString(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/**
 * Writes rows as partition lines.
 *
 * @param rows The rows.
 * @param plain No id or rev holds a character JSON must escape (so none is checked).
 * @returns The lines, each ending in `\n`.
 *
 * @example
 * ```ts
 * import { encodePartitionLines } from "./partition_lines.ts";
 * const bytes = encodePartitionLines([{ id: "a\"b", rev: "1-x" }]);
 * console.assert(new TextDecoder().decode(bytes) === '["a\\"b","1-x"]\n');
 * ```
 */
export function encodePartitionLines(rows: readonly AllDocsRow[], plain = false): Uint8Array {
  const lines = new Array<string>(rows.length + 1);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    lines[i] = plain
      ? `["${row.id}","${row.rev}"]`
      : `[${jsonString(row.id)},${jsonString(row.rev)}]`;
  }
  lines[rows.length] = "";
  return encoder.encode(lines.join("\n"));
}

/**
 * Parses partition lines back into rows. Lines of text without a backslash (nothing escaped,
 * the usual case) are cut apart without `JSON.parse`.
 *
 * @param text NDJSON lines of `["id","rev"]`.
 * @returns The rows.
 */
export function parsePartitionLines(text: string): AllDocsRow[] {
  const rows: AllDocsRow[] = [];
  const plain = !text.includes("\\");
  let from = 0;
  while (from < text.length) {
    let end = text.indexOf("\n", from);
    if (end === -1) end = text.length;
    if (end > from) {
      let row: AllDocsRow | undefined;
      if (plain && text.startsWith('["', from) && text.startsWith('"]', end - 2)) {
        // Without escapes no id or rev holds a quote: the line is ["id","rev"] exactly when
        // its only quotes are those.
        const close = text.indexOf('"', from + 2);
        if (
          close < end - 2 && text.startsWith('","', close) &&
          text.indexOf('"', close + 3) === end - 2
        ) {
          row = { id: text.slice(from + 2, close), rev: text.slice(close + 3, end - 2) };
        }
      }
      if (row === undefined) {
        const [id, rev] = JSON.parse(text.slice(from, end)) as [string, string];
        row = { id, rev };
      }
      rows.push(row);
    }
    from = end + 1;
  }
  return rows;
}

/**
 * Reads the rows of a partition body as it streams in, a batch of whole lines at a time.
 *
 * @param body The partition body.
 * @returns Batches of rows in body order.
 */
export async function* partitionBatches(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<AllDocsRow[]> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const cut = buffered.lastIndexOf("\n") + 1;
      if (cut === 0) continue;
      yield parsePartitionLines(buffered.slice(0, cut));
      buffered = buffered.slice(cut);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const rest = parsePartitionLines(buffered + decoder.decode());
  if (rest.length > 0) yield rest;
}

/**
 * Reads the rows of a partition body as it streams in, a line at a time.
 *
 * @param body The partition body.
 * @returns The rows in body order.
 */
export async function* partitionRows(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<AllDocsRow> {
  for await (const batch of partitionBatches(body)) yield* batch;
}
