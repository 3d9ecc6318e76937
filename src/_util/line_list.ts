/**
 * Line lists: text files with one entry per line, blank lines and `#` comments ignored. The one
 * reader behind the package-name lists and the pivot files.
 *
 * @module
 */

/** One entry of a line list. */
export interface LineListEntry {
  /** The 1-based line number. */
  line: number;
  /** The entry: the line without its line break, trimmed when asked. */
  value: string;
}

/** Options for {@linkcode parseLineList}. */
export interface LineListOptions {
  /** Trim whitespace around each line. Without trimming an entry keeps its whitespace, and
   * only a `#` in the first column starts a comment.
   * @default {true} */
  trim?: boolean;
}

/**
 * Splits a line list into its entries. Lines end at `\n` or `\r\n`; a line holding only
 * whitespace is blank, a line starting with `#` (after trimming, when trimming) is a comment,
 * and both are skipped.
 *
 * @param text The file contents.
 * @param options Whether to trim.
 * @returns The entries in file order, with their line numbers.
 *
 * @example
 * ```ts
 * import { parseLineList } from "./line_list.ts";
 * const text = "# names\r\nms\n\n  left-pad \n";
 * const trimmed = parseLineList(text);
 * console.assert(JSON.stringify(trimmed) === '[{"line":2,"value":"ms"},{"line":4,"value":"left-pad"}]');
 * const kept = parseLineList(text, { trim: false });
 * console.assert(kept[1]!.value === "  left-pad ");
 * ```
 */
export function parseLineList(text: string, options: LineListOptions = {}): LineListEntry[] {
  const trim = options.trim ?? true;
  const entries: LineListEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const value = trim ? lines[i]!.trim() : lines[i]!;
    if (value.startsWith("#") || value.trim() === "") continue;
    entries.push({ line: i + 1, value });
  }
  return entries;
}
